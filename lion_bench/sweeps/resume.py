"""One trial of a sweep: skip it if it is done or another process is training it, run (or resume)
it otherwise, and never let its failure stop the sweep.

A lock per trial (``.lock`` in its directory, an OS file lock the system releases when its process
dies) means two processes on one sweep directory never train the same trial at once: the second
skips it as ``busy`` and moves on, so several processes (one per GPU) can share one sweep directory
and split its trials. Skipping rather than waiting: a waiting process would sit idle for a whole
trial and then find it done; a busy trial left unfinished by a crash is resumed by the next run of
the command.

Under the lock, files a killed or damaged attempt left are repaired before anything is read: temp
files of atomic writes are removed, and a run.json that does not validate, an attempts.jsonl with a
bad line, or any of the trial's files that is not a regular file or is a symbolic link, is set aside
with a ``.damaged`` suffix and a warning naming it (``runs.store.set_aside``), and the trial runs
again. A ``.lock`` that is not a regular file is set aside before the lock is taken; the trial's
directory itself and its ``.hydra`` are made usable when Hydra names the directory (the
``${trial_dir:}`` resolver, ``runs.store.prepare_run_dir``), before it creates them.

A trial is skipped only when its record is its own: a run.json (valid, of any status) whose
``trial_id`` is not the trial's (a copied file, another sweep's trial in a reused directory) is set
aside, with the files of that run beside it (``run.json.trial_<its id>``, ...) and a warning naming
both ids, and the trial runs. A checkpoint of another trial is set aside the same way and the trial
starts from step 0.

An attempt that does not train (done, or busy) leaves the trial's ``.hydra`` files as they were: Hydra
rewrites them for every job before the job runs, so what was there is kept when Hydra names the directory
and put back (``runs.store.put_back_hydra_files``; exact for one process per sweep directory).

Each attempt appends one line to the trial's ``attempts.jsonl`` ({"outcome", "at", "sweep_run"});
the sweep's closing summary (``callbacks.SweepSummary``) counts its own sweep run's attempts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from lion_bench.identity import config_trial_id, safe_part, trial_id_of
from lion_bench.runs.checkpoint import CHECKPOINT_FILE, checkpoint_trial_id
from lion_bench.runs.errors import BadInput, RecordError, RunFailed
from lion_bench.runs.record import Outcome, RunRecord, Status
from lion_bench.runs.store import (
    CONFIG_FILE,
    METRICS_FILE,
    RUN_FILE,
    TRACEBACK_FILE,
    forget_hydra_files,
    put_back_hydra_files,
    read_json_lines,
    read_record,
    remove_stale_temp_files,
    set_aside,
    set_aside_odd_entries,
    write_failure,
)

ATTEMPTS_FILE = "attempts.jsonl"
LOCK_FILE = ".lock"
# What the trainer and the sweep write in a trial's directory, each a regular file (or absent).
TRIAL_FILES = (RUN_FILE, METRICS_FILE, ATTEMPTS_FILE, CHECKPOINT_FILE, CONFIG_FILE, TRACEBACK_FILE)
OUTCOMES = tuple(outcome.value for outcome in Outcome)
# Set by the sweep's callback at its start (callbacks.SweepSummary) and read by every trial it
# launches, in this process or (inherited) in a launcher's: which sweep run an attempt belongs to.
SWEEP_RUN_VARIABLE = "LION_BENCH_SWEEP_RUN"

log = logging.getLogger(__name__)


def objective(record: RunRecord) -> float:
    """What sweepers minimize: the final val loss; a diverged run is infinitely bad, a failed one NaN."""
    if record.status is Status.DIVERGED:
        return math.inf
    return record.final_val_loss if record.status is Status.FINISHED else math.nan


def record_attempt(run_dir: Path, outcome: Outcome) -> None:
    """Append one attempt line in one write (so lines of several processes never interleave),
    after a newline if a killed writer left a torn line."""
    path = Path(run_dir) / ATTEMPTS_FILE
    line = json.dumps({"outcome": Outcome(outcome).value, "at": time.time(), "sweep_run": os.environ.get(SWEEP_RUN_VARIABLE)})
    try:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
    except (FileNotFoundError, OSError):
        torn = False
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(descriptor, (("\n" if torn else "") + line + "\n").encode())
    finally:
        os.close(descriptor)


def attempt_problem(attempt: dict[str, Any]) -> str | None:
    if attempt.get("outcome") not in OUTCOMES:
        return f"outcome {attempt.get('outcome')!r} is not one of {', '.join(OUTCOMES)}"
    at = attempt.get("at")
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        return f"at is {at!r}, not a time"
    return None


def read_attempts(run_dir: Path) -> list[dict[str, Any]]:
    """The trial's attempts; lines that are not attempts are left out (``repair`` sets such a file aside)."""
    return read_json_lines(Path(run_dir) / ATTEMPTS_FILE, attempt_problem)[0]


def repair(run_dir: Path) -> None:
    """Make a trial's directory safe to read and retry (call under its lock): remove temp files of
    killed writes, and set aside whatever is not usable, with a warning naming it."""
    run_dir = Path(run_dir)
    remove_stale_temp_files(run_dir)
    set_aside_odd_entries(run_dir, files=TRIAL_FILES)
    skipped = read_json_lines(run_dir / ATTEMPTS_FILE, attempt_problem)[1]
    if skipped:
        set_aside(run_dir / ATTEMPTS_FILE, f"has a line that is not an attempt ({skipped[0].split(': ', 1)[-1]})",
                  "a new one is started")


def previous_result(run_dir: Path, trial_id: str | None = None) -> RunRecord | None:
    """The trial's record when it is already a result (finished or diverged), valid and, given
    ``trial_id``, of that trial. A run.json that does not validate is set aside (``run.json.damaged``),
    one of another trial too, with that run's files (``set_aside_other_trial``): the trial runs again."""
    try:
        record = read_record(run_dir)
    except RecordError as error:
        set_aside(Path(run_dir) / RUN_FILE, str(error).removeprefix(f"{Path(run_dir) / RUN_FILE}: "))
        return None
    if record is not None and trial_id is not None and record.trial_id != trial_id:
        set_aside_other_trial(run_dir, (RUN_FILE, METRICS_FILE, CONFIG_FILE, TRACEBACK_FILE), record.trial_id,
                              trial_id, "the trial runs")
        return None
    return record if record is not None and record.status.is_result else None


def is_result(run_dir: Path, trial_id: str) -> bool:
    """Whether ``run_dir`` holds a valid record of trial ``trial_id`` that is a result; reads only."""
    try:
        record = read_record(run_dir)
    except (RecordError, OSError):
        return False
    return record is not None and record.trial_id == trial_id and record.status.is_result


def set_aside_other_trial(run_dir: Path, names: tuple[str, ...], other: str, own: str, consequence: str) -> None:
    """Set aside the files ``names`` in ``run_dir`` that belong to trial ``other``, not to this trial
    ``own``, as ``<name>.trial_<other>``, with a warning naming both ids."""
    suffix = f"trial_{safe_part(other, 40)}"
    for name in names:
        path = Path(run_dir) / name
        if path.exists() or path.is_symlink():
            set_aside(path, f"belongs to trial {other!r}, not to this trial ({own})", consequence, suffix=suffix)


def run_attempt(cfg: DictConfig, run_dir: Path, train: Callable[..., RunRecord], *,
                prepare: Callable[[], Any] | None = None) -> Attempt:
    """One attempt at the trial of config ``cfg`` in ``run_dir``: ``train`` (which returns the run
    record) is called unless another process holds the trial's lock (busy) or its run.json is already a
    result (skipped). A failure is recorded (status failed, traceback.txt) and logged, not raised, so a
    sweep goes on. Ctrl-C is recorded and raised. Returns the attempt: its outcome and the objective.

    With ``prepare`` (a single run), bad input is refused instead: ``prepare()`` runs first, before
    anything in ``run_dir`` is read or changed (unless its record is already this trial's result), and
    what it returns is passed to ``train``; BadInput from either is raised, nothing recorded."""
    run_dir = Path(run_dir)
    prepared = None
    if prepare is not None and not is_result(run_dir, trial_id_of(cfg)):
        prepared = prepare()
    attempt = Attempt(cfg, run_dir)
    if not attempt.claim():
        return attempt
    try:
        try:
            record = train(prepared) if prepare is not None else train()
        except BadInput:
            if prepare is not None:
                raise
            attempt.failed()
        except KeyboardInterrupt:
            attempt.interrupted()
            raise
        except Exception:  # noqa: BLE001 - recorded: a trial's failure never stops the sweep
            attempt.failed()
        else:
            attempt.finished(record)
    finally:
        attempt.release()
    return attempt


def run_trial(cfg: DictConfig, run_dir: Path, run: Callable[[], RunRecord]) -> float:
    """A sweep's trial (``run_attempt``): the objective for the sweeper."""
    return run_attempt(cfg, run_dir, run).objective


@dataclass
class Attempt:
    """One attempt at a trial, from its lock to the line in its attempts.jsonl. ``claim`` takes the lock;
    then exactly one of ``finished``, ``failed`` (inside the ``except``) or ``interrupted``; then
    ``release``. ``outcome`` and ``objective`` say how it ended."""

    cfg: DictConfig
    run_dir: Path
    lock: FileLock | None = None
    outcome: Outcome | None = None
    objective: float = math.nan

    def claim(self) -> bool:
        """Whether the trial is to be trained here: its lock held, its directory repaired, and its record
        not already a result. Else the attempt is over: busy (another process holds it) or skipped."""
        self.lock = claim_trial(self.run_dir)
        if self.lock is None:
            self.outcome = Outcome.BUSY
            put_back_hydra_files(self.run_dir)
            return False
        try:
            done = skip_if_done(self.run_dir, trial_id_of(self.cfg))
        except BaseException:
            self.release()
            raise
        if done is None:
            forget_hydra_files(self.run_dir)
            return True
        self.outcome, self.objective = Outcome.SKIPPED, done
        put_back_hydra_files(self.run_dir)
        self.release()
        return False

    def finished(self, record: RunRecord) -> None:
        """The trainer returned the run's record (finished or diverged)."""
        self.outcome, self.objective = Outcome(record.status.value), objective(record)
        record_attempt(self.run_dir, self.outcome)

    def failed(self) -> None:
        """Call inside the ``except`` that caught the failure. The trainer's ``RunFailed`` says it wrote
        the failed record; for any other error (bad input, a failure before the trainer began) it is
        written here, with the traceback beside it."""
        error = sys.exc_info()[1]
        if isinstance(error, RunFailed):
            error = error.error
        else:
            config = OmegaConf.to_container(self.cfg, resolve=False)
            try:
                config = OmegaConf.to_container(self.cfg, resolve=True)
            except Exception:  # noqa: BLE001 - a broken interpolation: record the config as written
                pass
            write_failure(self.run_dir, RunRecord.begin(config, config_trial_id(config)))
        self.outcome, self.objective = Outcome.FAILED, math.nan
        record_attempt(self.run_dir, Outcome.FAILED)
        log.error(f"trial {self.run_dir.name} failed: {type(error).__name__}: {error} "
                  f"(see {self.run_dir / TRACEBACK_FILE})")

    def interrupted(self) -> None:
        self.outcome = Outcome.INTERRUPTED
        record_attempt(self.run_dir, Outcome.INTERRUPTED)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def claim_trial(run_dir: Path) -> FileLock | None:
    """The trial's lock, held, with its directory repaired; None (printed, and recorded as a busy
    attempt) when another process holds it. Release it when the trial's attempt is recorded."""
    run_dir = Path(run_dir)
    set_aside_odd_entries(run_dir, files=(LOCK_FILE,), consequence="a new lock is made")
    lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        print(f"busy: {run_dir.name} is trained by another process; skipped here", flush=True)
        record_attempt(run_dir, Outcome.BUSY)
        return None
    try:
        repair(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def skip_if_done(run_dir: Path, trial_id: str) -> float | None:
    """Under the trial's lock: its objective when its record is already a result of this trial
    (``trial_id``; printed, recorded as a skipped attempt), else None: the trial is to be trained. Another
    trial's record or checkpoint in its place is set aside first, with a warning naming both ids."""
    other = checkpoint_trial_id(run_dir)
    if other is not None and other != trial_id:
        set_aside_other_trial(run_dir, (CHECKPOINT_FILE,), other, trial_id, "the trial starts from step 0")
    previous = previous_result(run_dir, trial_id)
    if previous is None:
        return None
    loss = previous.final_val_loss
    loss_text = f" (val loss {loss:.4f})" if math.isfinite(loss) else ""
    print(f"skipped {Path(run_dir).name}: already {previous.status.value}{loss_text}", flush=True)
    record_attempt(run_dir, Outcome.SKIPPED)
    return objective(previous)
