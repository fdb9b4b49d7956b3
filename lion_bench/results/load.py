"""Run records -> tidy pandas tables: one row per run (``runs``) and one per logged step (``curves``).

Only runs that ended as ``finished`` or ``diverged`` are results; anything else (no run.json yet,
unreadable or invalid, interrupted, failed) is skipped with a warning that names it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from lion_bench.runs.errors import RecordError
from lion_bench.runs.identity import config_hash
from lion_bench.runs.record import RunRecord, Status
from lion_bench.runs.store import METRICS_FILE, RUN_FILE, read_metrics, read_record

# Config keys that do not define the experimental setup a run belongs to: the optimizer and its
# ratios, the seed and batch size (compared within a setup), and where/how it was reported.
NON_SETUP_KEYS = ("optimizer", "arm", "base", "seed", "device", "logger", "output_root", "hydra", "sweep")
NON_SETUP_TRAINER_KEYS = ("batch_size", "grad_accum_steps", "progress", "checkpoint_every", "checkpoint_minutes")
# Optimizer switches that change the algorithm; a run with one on is a different optimizer label.
VARIANT_FLAGS = ("cautious", "decoupled_weight_decay", "decay_vectors")


class SkippedRun(UserWarning):
    pass


def _number(value: Any) -> float:
    """A float, NaN for null/missing/non-numeric (W&B may hand back 'NaN' or 'Infinity' strings)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def setup_id(config: Mapping[str, Any]) -> str:
    """6 hex digits naming the setup (task, model, data, steps, schedule, ...) runs are compared within."""
    return config_hash(config, drop=NON_SETUP_KEYS, drop_trainer=NON_SETUP_TRAINER_KEYS, num_hex=6)


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


def run_row(record: RunRecord, source: str) -> dict[str, Any]:
    hyper = record.hyperparameters
    betas = [float(beta) for beta in hyper["betas"]]
    config = record.config
    sweep = config.get("sweep")
    initial = _number(record.initial_train_loss)
    final = record.final_val_loss
    total_s = _number(record.time_s.get("total"))
    return {
        "source": source,
        "trial_id": record.trial_id,
        "status": record.status.value,
        "task": record.task,
        "setup": setup_id(config),
        "optimizer": optimizer_label(record),
        "seed": int(record.seed),
        "batch_size": int(record.batch_size),
        "lr": float(hyper["lr"]),
        "weight_decay": float(hyper["weight_decay"]),
        "lr_divisor": float(hyper["lr_divisor"]),
        "wd_multiplier": float(hyper["wd_multiplier"]),
        "betas": ",".join(f"{beta:g}" for beta in betas),
        "base_lr": float(hyper["base_lr"]),
        "base_weight_decay": _number(hyper.get("base_weight_decay")),
        "final_val_loss": final,
        "final_val_bpc": _number(record.final.get("val_bpc")),
        "best_val_loss": _number(record.best.get("val_loss")),
        "best_val_bpc": _number(record.best.get("val_bpc")),
        "initial_train_loss": initial,
        # What comparisons use: a diverged run counts as no better than not training at all.
        "score": final if record.status is Status.FINISHED and math.isfinite(final) else initial,
        "steps": record.steps,
        "tokens": record.tokens,
        # Steady-state training throughput; None in records written before it was measured.
        "train_tokens_per_s": _number(record.train_tokens_per_s),
        # Wall clock over everything (evaluation, checkpoints, start-up): not a throughput.
        "wall_tokens_per_s": record.tokens / total_s if total_s and total_s > 0 else math.nan,
        "wall_time_s": total_s,
        "max_steps": (config.get("trainer") or {}).get("max_steps"),
        "sweep": sweep.get("name") if isinstance(sweep, Mapping) else sweep,
        "device_name": record.environment.get("device_name"),
        "git_sha": record.environment.get("git_sha"),
        "unit": record.unit,
    }


def tables(records: Iterable[tuple[str, Any, list[dict[str, Any]]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) from (source, record, metrics rows) triples, where a record is a RunRecord, a
    run.json-shaped dict, None (missing) or the RecordError reading it raised. Unusable records warn
    and are skipped."""
    rows, curves = [], []
    for source, record, metrics in records:
        record = as_record(record)
        if isinstance(record, str):
            warnings.warn(f"skipping {source}: {record}", SkippedRun, stacklevel=2)
            continue
        rows.append(run_row(record, source))
        for metric in metrics:
            curves.append({"source": source, **{key: metric.get(key) for key in
                           ("step", "tokens", "train_loss", "lr", "val_loss", "val_bpc")}})
    runs = pd.DataFrame(rows, columns=None if rows else ["source", "trial_id", "status"])
    if len(runs):
        duplicated = runs.duplicated("trial_id", keep="last")
        for source in runs.loc[duplicated, "source"]:
            warnings.warn(f"skipping {source}: an identical trial is loaded from a later source", SkippedRun)
        runs = runs.loc[~duplicated].reset_index(drop=True)
    curves = pd.DataFrame(curves, columns=["source", "step", "tokens", "train_loss", "lr", "val_loss", "val_bpc"])
    curves = curves[curves["source"].isin(set(runs["source"]))].astype(
        {key: float for key in ("train_loss", "lr", "val_loss", "val_bpc")})
    return runs, curves


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
            triples.append((str(run_dir), _read(run_dir), read_metrics(run_dir)))
    return tables(triples)
