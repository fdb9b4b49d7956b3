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

from omegaconf import DictConfig, OmegaConf

from lion_bench.runs.errors import RecordError
from lion_bench.runs.identity import trial_id
from lion_bench.runs.record import RunRecord, Status
from lion_bench.runs.store import RUN_FILE, TRACEBACK_FILE, read_record, write_failure

ATTEMPTS_FILE = "attempts.jsonl"
# The outcome of one attempt at a trial: a run status, or skipped (its record already a result).
OUTCOMES = (*(status.value for status in Status), "skipped")

log = logging.getLogger(__name__)


def objective(record: RunRecord) -> float:
    """What sweepers minimize: the final val loss; a diverged run is infinitely bad, a failed one NaN."""
    if record.status is Status.DIVERGED:
        return math.inf
    return record.final_val_loss if record.status is Status.FINISHED else math.nan


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


def previous_result(run_dir: Path) -> RunRecord | None:
    """The trial's record when it is already a result (finished or diverged) and valid."""
    try:
        record = read_record(run_dir)
    except RecordError as error:
        log.warning(f"{error}: the trial runs again")
        return None
    return record if record is not None and record.status.is_result else None


def run_trial(cfg: DictConfig, run_dir: Path, run: Callable[[], RunRecord]) -> float:
    """Run one sweep trial of config ``cfg`` in ``run_dir`` by calling ``run`` (which returns the
    run record), unless its run.json is already a result. An exception is recorded (status failed,
    traceback.txt; also when it came before the trainer wrote anything, as bad input does) and
    logged, not raised, so the sweep goes on; Ctrl-C still stops the sweep. Returns the objective
    for the sweeper."""
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    before = _mtime_ns(run_file)
    previous = previous_result(run_dir)
    if previous is not None:
        loss = previous.final_val_loss
        loss_text = f" (val loss {loss:.4f})" if math.isfinite(loss) else ""
        print(f"skipped {run_dir.name}: already {previous.status.value}{loss_text}")
        record_attempt(run_dir, "skipped")
        return objective(previous)
    try:
        record = run()
    except KeyboardInterrupt:
        record_attempt(run_dir, "interrupted")
        raise
    except Exception as error:
        if before is None or _mtime_ns(run_file) == before:  # failed before the trainer wrote a record
            config = OmegaConf.to_container(cfg, resolve=False)
            try:
                config = OmegaConf.to_container(cfg, resolve=True)
            except Exception:  # a broken interpolation: record the config as written
                pass
            write_failure(run_dir, RunRecord.begin(config, trial_id(config)))
        record_attempt(run_dir, "failed")
        log.error(f"trial {run_dir.name} failed: {type(error).__name__}: {error} (see {run_dir / TRACEBACK_FILE})")
        return math.nan
    record_attempt(run_dir, record.status.value)
    return objective(record)
