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
import traceback
from pathlib import Path
from typing import Any, Callable

from lion_bench.results.store import RUN_FILE, TRACEBACK_FILE, atomic_write_json, read_run

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


def run_trial(run_dir: Path, run: Callable[[], dict[str, Any]]) -> float:
    """Run one sweep trial in ``run_dir`` by calling ``run`` (which returns the run record), unless
    its run.json already says finished or diverged. An exception is recorded (status failed,
    traceback.txt) and logged, not raised, so the sweep goes on; Ctrl-C still stops the sweep.
    Returns the objective for the sweeper."""
    run_dir = Path(run_dir)
    previous = read_run(run_dir)
    if previous is not None and previous.get("status") in DONE_STATUSES:
        print(f"skipped {run_dir.name}: already {previous['status']} (val loss {previous.get('final_val_loss')})")
        record_attempt(run_dir, "skipped")
        return objective(previous)
    try:
        record = run()
    except KeyboardInterrupt:
        record_attempt(run_dir, "interrupted")
        raise
    except Exception as error:
        (run_dir / TRACEBACK_FILE).write_text(traceback.format_exc())
        if read_run(run_dir) is None:  # failed before the trainer could write a record
            atomic_write_json(run_dir / RUN_FILE, {"status": "failed", "error": f"{type(error).__name__}: {error}"})
        record_attempt(run_dir, "failed")
        log.error(f"trial {run_dir.name} failed: {type(error).__name__}: {error} (see {run_dir / TRACEBACK_FILE})")
        return math.nan
    record_attempt(run_dir, record["status"])
    return objective(record)
