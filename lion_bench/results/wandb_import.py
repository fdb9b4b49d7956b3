"""Pull runs from a W&B project through the public API into the local record shape
(source, run.json dict, metrics rows), so the report treats them like local runs.

Runs logged by ``logger=wandb`` carry the whole record in their summary under ``record``; other runs are
rebuilt from their config (the resolved lion_bench config) and summary where possible.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from lion_bench.runs.ratio import resolve_hyperparameters
from lion_bench.runs.wandb_logger import SUMMARY_KEYS

HISTORY_KEYS = ("step", "tokens", "train_loss", "lr", "elapsed_s", "val_loss", "val_bpc")


def _plain(value: Any) -> Any:
    """W&B hands back its own dict/list wrappers and 'NaN'/'Infinity' strings; make them plain."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, str) and value in ("NaN", "nan", "Infinity", "-Infinity", "inf", "-inf"):
        return float(value)
    return value


def _summary(run: Any) -> dict[str, Any]:
    summary = getattr(run.summary, "_json_dict", None)
    return _plain(summary if isinstance(summary, Mapping) else dict(run.summary))


def _last(summary: Mapping[str, Any], key: str) -> Any:
    value = summary.get(f"final_{key}")
    if value is None and isinstance(summary.get(key), Mapping):
        value = summary[key].get("last")
    return value


def rebuild_record(config: Mapping[str, Any], summary: Mapping[str, Any], state: str) -> dict[str, Any] | None:
    """A run.json-shaped dict from a lion_bench run's W&B config and summary; None if it is not one."""
    try:
        hyperparameters = config.get("hyperparameters") or resolve_hyperparameters(config["base"], config["optimizer"])
        trainer = config["trainer"]
        record = {
            "task": config["task"]["name"],
            "optimizer": config["optimizer"]["name"],
            "seed": int(config["seed"]),
            "batch_size": int(trainer["batch_size"]) * int(trainer.get("grad_accum_steps", 1)),
            "hyperparameters": hyperparameters,
        }
    except (KeyError, TypeError, ValueError):
        return None
    record.update({key: summary.get(key) for key in SUMMARY_KEYS if key in summary})
    record.setdefault("status", "finished" if state == "finished" else state)
    for key in ("val_loss", "val_bpc"):
        if record.get(f"final_{key}") is None:
            record[f"final_{key}"] = _last(summary, key)
        if record.get(f"best_{key}") is None and isinstance(summary.get(key), Mapping):
            record[f"best_{key}"] = summary[key].get("min")
    return record


def history_rows(run: Any) -> list[dict[str, Any]]:
    rows = []
    for row in run.scan_history():
        row = _plain(row)
        step = row.get("step", row.get("_step"))
        if step is None:
            continue
        metric = {key: row[key] for key in HISTORY_KEYS if row.get(key) is not None}
        metric["step"] = int(step)
        rows.append(metric)
    return sorted(rows, key=lambda row: row["step"])


def run_triple(run: Any, project: str) -> tuple[str, dict[str, Any] | None, list[dict[str, Any]]]:
    source = f"wandb:{project}/{run.id}"
    config = _plain(dict(run.config))
    summary = _summary(run)
    record = summary.get("record")
    if isinstance(record, Mapping):
        record = dict(record)
    elif run.state == "running":
        record = None  # no record yet: partial, skipped with a warning by load.tables
    else:
        record = rebuild_record(config, summary, run.state)
    if record is not None:
        record["config"] = {key: value for key, value in config.items() if key != "hyperparameters"}
        record.setdefault("trial_id", f"wandb-{run.id}")
        record["wandb_run"] = f"{project}/{run.id}"
    return source, record, history_rows(run) if record is not None else []


def fetch_project(project: str, api: Any = None) -> Iterator[tuple[str, dict[str, Any] | None, list[dict[str, Any]]]]:
    """Every run of ``ENTITY/PROJECT`` as (source, record or None, metrics rows)."""
    if project.count("/") != 1 or not all(project.split("/")):
        raise ValueError(f"--wandb takes ENTITY/PROJECT, got {project!r}")
    if api is None:
        try:
            import wandb
        except ImportError as error:
            raise ImportError("--wandb needs the wandb package: pip install 'lion-bench[wandb]'") from error
        api = wandb.Api(timeout=60)
    for run in api.runs(project):
        yield run_triple(run, project)

