"""Run records -> tidy pandas tables: one row per run (``runs``) and one per logged step (``curves``).

Only runs that ended as ``finished`` or ``diverged`` are results; anything else (no run.json yet,
unreadable or invalid, interrupted, failed, or a record the report cannot read) is skipped with a
warning that names it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from lion_bench.results.contexts import budget_fields, fields_id, setup_fields
from lion_bench.runs.errors import RecordError
from lion_bench.runs.record import RunRecord
from lion_bench.runs.store import METRICS_FILE, RUN_FILE, read_metrics, read_record

# Optimizer switches that change the algorithm; a run with one on is a different optimizer label.
VARIANT_FLAGS = ("cautious", "decoupled_weight_decay", "decay_vectors")
# The early window: evaluations in the first quarter of a run (lion-pytorch update 3's "early results").
EARLY_FRACTION = 0.25
CURVE_KEYS = ("step", "tokens", "train_loss", "lr", "val_loss", "val_bpc")


class SkippedRun(UserWarning):
    pass


def _number(value: Any) -> float:
    """A float, NaN for null/missing/non-numeric (W&B may hand back 'NaN' or 'Infinity' strings)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


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


def early_metrics(rows: list[Mapping[str, Any]], steps: int) -> dict[str, Any]:
    """The early window of one run's evaluations: the steps evaluated in the first quarter of its planned
    steps, the mean val loss over them, and the val loss at 25% of the steps (linear between the
    evaluations around it when none falls there)."""
    quarter = EARLY_FRACTION * steps
    evaluations = sorted((int(row["step"]), _number(row.get("val_loss"))) for row in rows
                         if row.get("val_loss") is not None and row.get("step") is not None)
    early = [(step, loss) for step, loss in evaluations if step <= quarter]
    losses = np.array([loss for _, loss in early], dtype=float)
    at_quarter = math.nan
    after = [(step, loss) for step, loss in evaluations if step >= quarter]
    if early and after:
        (step_a, loss_a), (step_b, loss_b) = early[-1], after[0]
        at_quarter = loss_a if step_b == step_a else loss_a + (loss_b - loss_a) * (quarter - step_a) / (step_b - step_a)
    return {
        "early_eval_steps": ",".join(str(step) for step, _ in early),
        "early_val_loss": float(losses.mean()) if len(losses) and np.isfinite(losses).all() else math.nan,
        "quarter_val_loss": at_quarter,
    }


def run_row(record: RunRecord, source: str, metrics: list[Mapping[str, Any]]) -> dict[str, Any]:
    hyper = record.hyperparameters
    betas = [float(beta) for beta in hyper["betas"]]
    sweep = record.config.get("sweep")
    total_s = _number(record.time_s.get("total"))
    setup = setup_fields(record, source)
    budget = budget_fields(record, setup)
    lr, weight_decay = float(hyper["lr"]), float(hyper["weight_decay"])
    return {
        "source": source,
        "trial_id": record.trial_id,
        "status": record.status.value,
        "task": record.task,
        "setup": fields_id(setup),
        "budget_setup": fields_id(budget),
        "optimizer": optimizer_label(record),
        "family": record.optimizer,
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
        **early_metrics(metrics, setup["steps"]),
        "steps": record.steps,
        "planned_steps": setup["steps"],
        "warmup_steps": setup["warmup_steps"],
        "budget": budget["budget"][0],
        "tokens": record.tokens,
        "schedule": (((record.config.get("trainer") or {}).get("schedule") or {}).get("name")),
        # Steady-state training throughput; None in records written before it was measured.
        "train_tokens_per_s": _number(record.train_tokens_per_s),
        # Wall clock over everything (evaluation, checkpoints, start-up): not a throughput.
        "wall_tokens_per_s": record.tokens / total_s if total_s and total_s > 0 else math.nan,
        "wall_time_s": total_s,
        "sweep": sweep.get("name") if isinstance(sweep, Mapping) else sweep,
        "device_type": setup["device_type"],
        "precision": setup["precision"],
        "device_name": record.environment.get("device_name"),
        "study": setup["study"],
        "git_sha": record.environment.get("git_sha"),
        "unit": record.unit,
        "setup_fields": setup,
        "budget_fields": budget,
    }


def tables(records: Iterable[tuple[str, Any, list[dict[str, Any]]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) from (source, record, metrics rows) triples, where a record is a RunRecord, a
    run.json-shaped dict, None (missing) or the RecordError reading it raised. Unusable records warn
    and are skipped. Rows come sorted by source, so nothing downstream depends on the reading order."""
    rows, curves = [], []
    for source, record, metrics in sorted(records, key=lambda triple: str(triple[0])):
        record = as_record(record)
        if isinstance(record, str):
            warnings.warn(f"skipping {source}: {record}", SkippedRun, stacklevel=2)
            continue
        metrics = [row for row in metrics if isinstance(row, Mapping)]
        try:
            row = run_row(record, source, metrics)
        # A record that validates can still hold values no report can use (a config that is not a
        # mapping, a step that is not a number): skip the run, never stop the report.
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            warnings.warn(f"skipping {source}: unreadable record ({type(error).__name__}: {error})", SkippedRun,
                          stacklevel=2)
            continue
        rows.append(row)
        for metric in metrics:
            curves.append({"source": source, **{key: metric.get(key) for key in CURVE_KEYS}})
    runs = pd.DataFrame(rows, columns=None if rows else ["source", "trial_id", "status", "setup", "budget_setup"])
    if len(runs):
        duplicated = runs.duplicated("trial_id", keep="last")
        for source in runs.loc[duplicated, "source"]:
            warnings.warn(f"skipping {source}: an identical trial is loaded from a later source", SkippedRun)
        runs = runs.loc[~duplicated].reset_index(drop=True)
    curves = pd.DataFrame(curves, columns=["source", *CURVE_KEYS])
    curves = curves[curves["source"].isin(set(runs["source"]))]
    curves = curves.assign(**{key: pd.to_numeric(curves[key], errors="coerce") for key in CURVE_KEYS})
    return runs, curves


def _read(run_dir: Path) -> tuple[RunRecord | RecordError | None, list[dict[str, Any]]]:
    try:
        record = read_record(run_dir)
    except RecordError as error:
        return error, []
    try:
        return record, read_metrics(run_dir)
    except (OSError, UnicodeDecodeError) as error:
        return RecordError(f"{Path(run_dir) / METRICS_FILE} cannot be read ({error})"), []


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
            triples.append((str(run_dir), *_read(run_dir)))
    return tables(triples)
