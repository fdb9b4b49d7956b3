"""Run a sweep from Python (a notebook) without typing Hydra: the real ``lion-bench -m`` in a subprocess
of this interpreter, then the run records and the verdicts as ``lion-bench-report`` reads them.

    from lion_bench import run_sweep

    result = run_sweep("lr_ratio", task="diabetes", overrides=["trainer.max_steps=300"])
    result.runs[["optimizer", "lr", "seed", "final_val_loss"]]        # one row per trial
    result.claims[["claim", "context", "answer", "verdict", "effect", "ci_low", "ci_high", "n"]]

The command is exactly ``lion-bench -m sweep=<sweep> task=<task> output_root=<root> <overrides...>``,
so everything the command line does holds here too: the checks (bad input raises ValueError with
the command's one line), trial identity, skipping finished trials and resuming the rest when run
again, failures recorded. The records returned are those of the trials this call ran or skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from lion_bench.results.claims.judge import Family, judge, study_protocols
from lion_bench.results.load import load_local
from lion_bench.schema import NAME_PATTERN
from lion_bench.sweeps.resume import ATTEMPTS_FILE, read_attempts

# Exit statuses of lion-bench: bad input (nothing ran), a trial failed (the others ran), interrupted.
BAD_INPUT, TRIAL_FAILED, INTERRUPTED = 2, 1, (130, 143)


@dataclass
class SweepResult:
    """What a sweep left: its records as ``lion-bench-report`` tables, and the verdicts on them."""

    runs: pd.DataFrame  # one row per run that is a result (finished or diverged): runs.csv's columns
    curves: pd.DataFrame  # one row per logged step of those runs
    families: list[Family]  # the verdicts: one family per sweep directory or study, each with its cells
    claims: pd.DataFrame  # the verdicts as rows (claims.csv's columns: claim, context, verdict, effect, ...)
    trial_dirs: list[Path]  # the trials this call ran or skipped
    exit_status: int  # 0, or 1 when a trial failed (its directory holds traceback.txt)
    output: str = field(repr=False, default="")  # what the command printed


def records_and_verdicts(run_dirs: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[Family], pd.DataFrame]:
    """(runs, curves, families, claims) of the runs under ``run_dirs``, judged as ``lion-bench-report`` judges
    them (each study under its protocol): the one call into the report package."""
    runs, curves = load_local(run_dirs)
    families = judge(runs, curves, study_protocols(runs)) if len(runs) else []
    claims = pd.DataFrame([cell.row() for family in families for cell in family.cells])
    return runs, curves, families, claims


def sweep_command(sweep: str, task: str, overrides: Sequence[str], output_root: Path) -> list[str]:
    """The lion-bench command line ``run_sweep`` runs (this interpreter, ``python -m lion_bench.train``; run
    with PYTHONSAFEPATH=1, so that a ``lion_bench`` source directory in the working directory does not shadow
    the installed package, as with the ``lion-bench`` command)."""
    for name, value in (("sweep", sweep), ("task", task)):
        if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"{name} must be a preset or task name (letters, digits, _ . -), got {value!r}")
    if isinstance(overrides, str) or not all(isinstance(item, str) for item in overrides):
        raise TypeError(f"overrides must be a list of 'key=value' strings, got {overrides!r}")
    return [sys.executable, "-m", "lion_bench.train", "-m", f"sweep={sweep}", f"task={task}",
            f"output_root={output_root}", *overrides]


def trials_since(output_root: Path, since: float) -> list[Path]:
    """Trial directories under ``<output_root>/sweeps/`` with an attempt (run, resumed, skipped, busy,
    failed) made at or after ``since``: the trials of a sweep started then."""
    return [path.parent for path in sorted(output_root.glob(f"sweeps/*/*/{ATTEMPTS_FILE}"))
            if any(attempt["at"] >= since for attempt in read_attempts(path.parent))]


def run_sweep(sweep: str, task: str = "text", overrides: Sequence[str] = (), output_root: str | Path = "results",
              *, verbose: bool = True) -> SweepResult:
    """Run the sweep preset ``sweep`` (configs/sweep/, e.g. "lr_ratio") on ``task`` (built in, or a plugin
    task of an installed package) with ``overrides`` ("trainer.max_steps=300", "seed=0,1,2", ...),
    writing under ``output_root`` as ``lion-bench -m`` does, and return its records and verdicts.

    Raises ValueError with lion-bench's one line when the input is bad (nothing is run or written),
    and RuntimeError when the sweep was interrupted or lion-bench ended otherwise. A failed trial does
    not raise: ``exit_status`` is 1, a warning names it, and the other trials' records are returned.
    ``verbose`` prints the command's output as it comes (progress lines per trial)."""
    output_root = Path(output_root).expanduser().resolve()
    command = sweep_command(sweep, task, overrides, output_root)
    started = time.time()
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1"}) as process:
        for line in process.stdout:
            lines.append(line)
            if verbose:
                print(line, end="", flush=True)
    output, status = "".join(lines), process.returncode
    said = [line.strip() for line in lines if line.startswith("lion-bench: ")]
    if status == BAD_INPUT:
        raise ValueError(said[-1] if said else output.strip().splitlines()[-1:])
    if status in INTERRUPTED or status not in (0, TRIAL_FAILED):
        raise RuntimeError(f"lion-bench ended with status {status}: {said[-1] if said else output[-2000:]}")
    if status == TRIAL_FAILED:
        warnings.warn(said[-1] if said else "a trial of the sweep failed", RuntimeWarning, stacklevel=2)
    trial_dirs = trials_since(output_root, started)
    runs, curves, families, claims = records_and_verdicts(trial_dirs)
    return SweepResult(runs, curves, families, claims, trial_dirs, status, output)


__all__ = ["SweepResult", "records_and_verdicts", "run_sweep", "sweep_command", "trials_since"]
