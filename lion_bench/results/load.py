"""Run records -> tidy pandas tables: one row per run (``runs``) and one per logged step (``curves``).

Only runs that ended as ``finished`` or ``diverged`` are results; anything else (no run.json yet,
unreadable, interrupted, failed, missing keys) is skipped with a warning that names it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from lion_bench.results.store import METRICS_FILE, RUN_FILE, read_metrics, read_run
from lion_bench.sweeps.trial import config_hash

RESULT_STATUSES = ("finished", "diverged")
REQUIRED_KEYS = ("status", "trial_id", "task", "optimizer", "seed", "batch_size", "hyperparameters")
REQUIRED_HYPERPARAMETERS = ("lr", "weight_decay", "lr_divisor", "wd_multiplier", "betas", "base_lr")
# Config keys that do not define the experimental setup a run belongs to: the optimizer and its
# ratios, the seed and batch size (compared within a setup), and where/how it was reported.
NON_SETUP_KEYS = ("optimizer", "arm", "base", "seed", "device", "logger", "output_root", "hydra", "sweep")
NON_SETUP_TRAINER_KEYS = ("batch_size", "grad_accum_steps", "progress", "checkpoint_every")
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


def optimizer_label(record: Mapping[str, Any]) -> str:
    optimizer = (record.get("config") or {}).get("optimizer") or {}
    flags = [flag for flag in VARIANT_FLAGS if optimizer.get(flag) is True]
    return "+".join([record["optimizer"], *flags])


def record_problem(record: Any) -> str | None:
    """Why a record is not a usable result, or None when it is one."""
    if not isinstance(record, Mapping):
        return "run.json is missing or unreadable (partial or still running)"
    missing = [key for key in REQUIRED_KEYS if key not in record]
    hyper = record.get("hyperparameters")
    if isinstance(hyper, Mapping):
        missing += [f"hyperparameters.{key}" for key in REQUIRED_HYPERPARAMETERS if key not in hyper]
    if missing:
        return f"run.json lacks {', '.join(missing)}"
    if record["status"] not in RESULT_STATUSES:
        reason = record.get("error") or record.get("divergence") or ""
        return f"status {record['status']!r} is not a result {reason}".strip()
    return None


def run_row(record: Mapping[str, Any], source: str) -> dict[str, Any]:
    hyper = record["hyperparameters"]
    betas = [float(beta) for beta in hyper["betas"]]
    config = record.get("config") or {}
    sweep = config.get("sweep")
    initial = _number(record.get("initial_train_loss"))
    final = _number(record.get("final_val_loss"))
    return {
        "source": source,
        "trial_id": record["trial_id"],
        "status": record["status"],
        "task": record["task"],
        "setup": setup_id(config),
        "optimizer": optimizer_label(record),
        "seed": int(record["seed"]),
        "batch_size": int(record["batch_size"]),
        "lr": float(hyper["lr"]),
        "weight_decay": float(hyper["weight_decay"]),
        "lr_divisor": float(hyper["lr_divisor"]),
        "wd_multiplier": float(hyper["wd_multiplier"]),
        "betas": ",".join(f"{beta:g}" for beta in betas),
        "base_lr": float(hyper["base_lr"]),
        "base_weight_decay": _number(hyper.get("base_weight_decay")),
        "final_val_loss": final,
        "final_val_bpc": _number(record.get("final_val_bpc")),
        "best_val_loss": _number(record.get("best_val_loss")),
        "best_val_bpc": _number(record.get("best_val_bpc")),
        "initial_train_loss": initial,
        # What comparisons use: a diverged run counts as no better than not training at all.
        "score": final if record["status"] == "finished" and math.isfinite(final) else initial,
        "steps": record.get("steps"),
        "tokens": record.get("tokens"),
        "tokens_per_s": _number(record.get("tokens_per_s")),
        "wall_time_s": _number(record.get("wall_time_s")),
        "max_steps": (config.get("trainer") or {}).get("max_steps"),
        "sweep": sweep.get("name") if isinstance(sweep, Mapping) else sweep,
        "device_name": record.get("device_name"),
        "git_sha": record.get("git_sha"),
        "unit": record.get("unit"),
    }


def tables(records: Iterable[tuple[str, Any, list[dict[str, Any]]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) from (source, record, metrics rows) triples; unusable records warn and are skipped."""
    rows, curves = [], []
    for source, record, metrics in records:
        problem = record_problem(record)
        if problem is None:
            try:
                row = run_row(record, source)
            except (TypeError, ValueError, KeyError) as error:
                problem = f"malformed run.json ({type(error).__name__}: {error})"
        if problem is not None:
            warnings.warn(f"skipping {source}: {problem}", SkippedRun, stacklevel=2)
            continue
        rows.append(row)
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
            triples.append((str(run_dir), read_run(run_dir), read_metrics(run_dir)))
    return tables(triples)
