"""One trial of a sweep: skip it if it is done, run (or resume) it otherwise, and never let its
failure stop the sweep.

Each attempt appends one line to the trial's ``attempts.jsonl`` ({"outcome", "at"}); the sweep's
closing summary (``callbacks.SweepSummary``) counts the attempts made since the sweep started.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from lion_bench.results.store import RUN_FILE, TRACEBACK_FILE, atomic_write_json, read_run
from lion_bench.trainer import first_record, record_failure

ATTEMPTS_FILE = "attempts.jsonl"
# A trial whose run.json says one of these is a result: rerunning the sweep skips it.
DONE_STATUSES = ("finished", "diverged")
OUTCOMES = ("finished", "diverged", "failed", "interrupted", "skipped")

log = logging.getLogger(__name__)


def objective(record: dict[str, Any]) -> float:
    """What sweepers minimize: the final val loss; a diverged run is infinitely bad, a failed one NaN."""
    if record.get("status") == "diverged":
        return math.inf
    loss = record.get("final_val_loss")
    return float(loss) if isinstance(loss, (int, float)) else math.nan


def record_attempt(run_dir: Path, outcome: str) -> None:
    assert outcome in OUTCOMES, outcome
    with open(Path(run_dir) / ATTEMPTS_FILE, "a") as handle:
        handle.write(json.dumps({"outcome": outcome, "at": time.time()}) + "\n")


def read_attempts(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / ATTEMPTS_FILE
    if not path.exists():
        return []
    attempts = []
    for line in path.read_text().splitlines():
        try:
            attempts.append(json.loads(line))
        except ValueError:  # a torn last line
            continue
    return attempts


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def run_trial(cfg: DictConfig, run_dir: Path, run: Callable[[], dict[str, Any]]) -> float:
    """Run one sweep trial of config ``cfg`` in ``run_dir`` by calling ``run`` (which returns the
    run record), unless its run.json already says finished or diverged. An exception is recorded
    (status failed, traceback.txt; also when it came before the trainer wrote anything, as bad
    input does) and logged, not raised, so the sweep goes on; Ctrl-C still stops the sweep.
    Returns the objective for the sweeper."""
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    before = _mtime_ns(run_file)
    previous = read_run(run_dir)
    if previous is not None and previous.get("status") in DONE_STATUSES:
        loss = previous.get("final_val_loss")
        loss_text = f" (val loss {loss:.4f})" if isinstance(loss, float) else ""
        print(f"skipped {run_dir.name}: already {previous['status']}{loss_text}")
        record_attempt(run_dir, "skipped")
        return objective(previous)
    try:
        record = run()
    except KeyboardInterrupt:
        record_attempt(run_dir, "interrupted")
        raise
    except Exception as error:
        run_dir.mkdir(parents=True, exist_ok=True)
        if before is None or _mtime_ns(run_file) == before:  # failed before the trainer wrote a record
            record = first_record(cfg)
            record_failure(run_dir, record)
            atomic_write_json(run_file, record)
        record_attempt(run_dir, "failed")
        log.error(f"trial {run_dir.name} failed: {type(error).__name__}: {error} (see {run_dir / TRACEBACK_FILE})")
        return math.nan
    record_attempt(run_dir, record["status"])
    return objective(record)
