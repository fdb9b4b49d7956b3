"""Run records -> tidy pandas tables: one row per run (``runs``) and one per logged step (``curves``).

Only runs that ended as ``finished`` or ``diverged`` are results; anything else (no run.json yet,
unreadable or invalid, interrupted, failed, or a record with values no comparison can use: an lr that is not
a positive finite number, a seed that is not a whole number) is skipped with a warning that names it and
why. Metrics are read line by line and only the columns the report uses are kept, so a long metrics file
costs memory for its numbers, not its text.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from lion_bench.results.contexts import budget_fields, fields_id, planned_steps, setup_fields
from lion_bench.results.protocol import family_of
from lion_bench.runs.errors import DamagedFile, RecordError
from lion_bench.runs.record import RunRecord
from lion_bench.runs.store import METRICS_FILE, RUN_FILE, metrics_row_problem, read_record

# Optimizer switches that change the algorithm; a run with one on is a different optimizer label.
VARIANT_FLAGS = ("cautious", "decoupled_weight_decay", "decay_vectors")
CURVE_KEYS = ("step", "tokens", "train_loss", "val_loss")


class SkippedRun(UserWarning):
    pass


def _number(value: Any) -> float:
    """A float, NaN for null/missing/non-numeric (W&B may hand back 'NaN' or 'Infinity' strings)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def optimizer_label(record: RunRecord) -> str:
    optimizer = record.config.get("optimizer") or {}
    flags = [flag for flag in VARIANT_FLAGS if optimizer.get(flag) is True]
    return "+".join([record.optimizer, *flags])


def as_record(record: Any) -> RunRecord | str:
    """The record, or why it is not a usable result."""
    if record is None:
        return "run.json is missing (partial or still running)"
    if isinstance(record, RecordError):
        return str(record)
    if not isinstance(record, RunRecord):
        try:
            record = RunRecord.from_dict(record)
        except RecordError as error:
            return str(error)
    if not record.status.is_result:
        reason = record.error or record.divergence or ""
        return f"status {record.status.value!r} is not a result {reason}".strip()
    return record


def unusable(record: RunRecord) -> str | None:
    """Why a valid record holds values no comparison can use, or None."""
    hyper = record.hyperparameters or {}
    for key, low in (("lr", 0.0), ("base_lr", 0.0), ("lr_divisor", 0.0)):
        value = _number(hyper.get(key))
        if not (math.isfinite(value) and value > low):
            return f"hyperparameters.{key} is {hyper.get(key)!r}, not a positive finite number"
    for key in ("weight_decay", "base_weight_decay", "wd_multiplier"):
        value = _number(hyper.get(key))
        if not (math.isfinite(value) and value >= 0):
            return f"hyperparameters.{key} is {hyper.get(key)!r}, not a finite number >= 0"
    if not (isinstance(record.batch_size, int) and record.batch_size >= 1):
        return f"batch_size is {record.batch_size!r}"
    return None


def run_row(record: RunRecord, source: str) -> dict[str, Any]:
    hyper = record.hyperparameters
    betas = [float(beta) for beta in hyper["betas"]]
    total_s = _number(record.time_s.get("total"))
    setup = setup_fields(record)
    budget = budget_fields(record, setup)
    lr, weight_decay = float(hyper["lr"]), float(hyper["weight_decay"])
    family, study = family_of(source, record.sweep)
    schedule = ((record.config.get("trainer") or {}).get("schedule") or {})
    return {
        "source": source,
        "trial_id": record.trial_id,
        "status": record.status.value,
        "family": family,
        "study": study,
        "sweep": record.sweep,
        "task": record.task,
        "setup": fields_id(setup),
        "budget_setup": fields_id(budget),
        "optimizer": optimizer_label(record),
        "optimizer_family": record.optimizer,
        "seed": int(record.seed),
        "batch_size": int(record.batch_size),
        "lr": lr,
        "weight_decay": weight_decay,
        # Grouping keys: the same setting written by different code paths is one arm.
        "lr_key": float(f"{lr:.6g}"),
        "wd_key": float(f"{weight_decay:.6g}"),
        "lr_divisor": float(hyper["lr_divisor"]),
        "wd_multiplier": float(hyper["wd_multiplier"]),
        "betas": ",".join(f"{beta:g}" for beta in betas),
        "base_lr": float(hyper["base_lr"]),
        "base_weight_decay": _number(hyper.get("base_weight_decay")),
        "final_val_loss": record.final_val_loss,
        "final_val_bpc": _number(record.final.get("val_bpc")),
        "best_val_loss": _number(record.best.get("val_loss")),
        "initial_train_loss": _number(record.initial_train_loss),
        "steps": record.steps,
        "planned_steps": planned_steps(record),
        "warmup_steps": setup["warmup_steps"],
        "budget": budget["budget"][0],
        "tokens": record.tokens,
        "schedule": schedule.get("name"),
        "final_fraction": _number(schedule.get("final_fraction")),
        "optimizer_state_bytes": _number(record.optimizer_state_bytes),
        # This run's peak device memory (NaN where not recorded) and what it measures (cuda_allocated,
        # rss_since_run_start, process_max_rss); a packed trial's is its pack's.
        "peak_memory_bytes": _number(record.peak_memory_bytes),
        "peak_memory_kind": record.peak_memory_kind,
        "packed_members": int(((record.environment.get("packed") or {}).get("members")) or 1),
        "state_dtype": (record.config.get("optimizer") or {}).get("state_dtype"),
        # Steady-state training throughput; NaN in records written before it was measured.
        "train_tokens_per_s": _number(record.train_tokens_per_s),
        "wall_time_s": total_s,
        "device_type": setup["device_type"],
        "precision": setup["precision"],
        "device_name": record.environment.get("device_name"),
        "git_sha": record.environment.get("git_sha"),
        "unit": record.unit,
        "setup_fields": setup,
        "budget_fields": budget,
    }


def curve_arrays(rows: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The curve columns of metrics rows as float arrays (NaN where a row lacks one)."""
    columns: dict[str, list[float]] = {key: [] for key in CURVE_KEYS}
    for row in rows:
        for key in CURVE_KEYS:
            columns[key].append(_number(row.get(key)))
    return {key: np.asarray(values, dtype=float) for key, values in columns.items()}


def tables(records: Iterable[tuple[str, Any, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) from (source, record, metrics) triples, where a record is a RunRecord, a run.json-shaped
    dict, None (missing) or the RecordError reading it raised, and metrics are rows or a callable returning
    an iterator of rows (read only for kept runs). Unusable records warn and are skipped. Rows come sorted by
    source, so nothing downstream depends on the reading order."""
    rows, curves = [], []
    for source, record, metrics in sorted(records, key=lambda triple: str(triple[0])):
        record = as_record(record)
        if isinstance(record, RunRecord):
            problem = unusable(record)
            record = problem if problem else record
        if isinstance(record, str):
            warnings.warn(f"skipping {source}: {record}", SkippedRun, stacklevel=2)
            continue
        try:
            row = run_row(record, source)
        # A record that validates can still hold values no report can use (a config that is not a
        # mapping, a step that is not a number): skip the run, never stop the report.
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            warnings.warn(f"skipping {source}: unreadable record ({type(error).__name__}: {error})", SkippedRun,
                          stacklevel=2)
            continue
        rows.append(row)
        arrays = curve_arrays(metrics() if callable(metrics) else
                              (metric for metric in metrics if isinstance(metric, Mapping)))
        curves.append(pd.DataFrame({"source": source, **arrays}))
    runs = pd.DataFrame(rows, columns=None if rows else ["source", "trial_id", "status", "family", "setup",
                                                          "budget_setup"])
    if len(runs):
        duplicated = runs.duplicated("trial_id", keep="last")
        for source in runs.loc[duplicated, "source"]:
            warnings.warn(f"skipping {source}: an identical trial is loaded from a later source", SkippedRun)
        runs = runs.loc[~duplicated].reset_index(drop=True)
    curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["source", *CURVE_KEYS])
    curves = curves[curves["source"].isin(set(runs["source"]))].reset_index(drop=True)
    return runs, curves


def iter_metrics(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Rows of ``metrics.jsonl``, one line at a time. A line that is not a row (not JSON, not an object, no
    integer step; a torn last line of a killed run) is skipped with a DamagedFile warning naming file:line."""
    path = Path(run_dir) / METRICS_FILE
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    except OSError as error:
        warnings.warn(f"{path}: cannot be read ({error.strerror or error}); no curve for this run", DamagedFile)
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except ValueError:
                warnings.warn(f"{path}:{number}: not JSON (a torn line of a killed run?); line skipped", DamagedFile)
                continue
            why = metrics_row_problem(value) if isinstance(value, dict) else f"{type(value).__name__}, not an object"
            if why:
                warnings.warn(f"{path}:{number}: {why}; line skipped", DamagedFile)
                continue
            yield value


def _read(run_dir: Path) -> RunRecord | RecordError | None:
    try:
        return read_record(run_dir)
    except RecordError as error:
        return error


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories under ``root``: those with a run.json, and partial ones with only metrics."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    found = {path.parent for name in (RUN_FILE, METRICS_FILE) for path in root.rglob(name)}
    return sorted(found)


def load_local(paths: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run under the given directories (searched recursively)."""
    triples = []
    for root in paths:
        for run_dir in find_run_dirs(Path(root)):
            triples.append((str(run_dir), _read(run_dir), lambda run_dir=run_dir: iter_metrics(run_dir)))
    return tables(triples)
