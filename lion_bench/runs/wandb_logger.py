"""Mirror one run to Weights & Biases. The local run store is the source of truth: any W&B failure
(missing package, no network, bad key, init timeout) becomes a warning and the run goes on without it.

The W&B run starts at construction, after the config checks and before training starts its clock, so
W&B's start-up (or its timeout) never counts in the run's wall time or tokens/s. ``finish`` always closes
it, and a new run finishes any left open, so Hydra multirun jobs never share one.

The W&B run id is derived from the run's directory (which, in a sweep, is named by the trial id), with
``resume="allow"``: a resumed trial continues its own W&B run instead of starting a new one.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from lion_bench.runs.errors import BadInput
from lion_bench.runs.ratio import resolve_hyperparameters
from lion_bench.runs.record import RunRecord

MODES = ("online", "offline", "disabled")
DEFAULT_PROJECT = "lion-bench"

# Scalars from run.json that go into the W&B summary (val_loss/val_bpc come from define_metric).
SUMMARY_KEYS = (
    "status", "trial_id", "final_val_loss", "final_val_bpc", "best_val_loss", "best_val_bpc",
    "steps", "tokens", "train_tokens_per_s", "num_params", "initial_train_loss",
)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def run_name(task: str, hyperparameters: Mapping[str, Any], batch_size: int, seed: int) -> str:
    """E.g. ``text lion lr/3 wd*3 b0.9,0.99 bs16 s0``: readable in the W&B run list."""
    betas = ",".join(f"{beta:g}" for beta in hyperparameters["betas"])
    return (
        f"{task} {hyperparameters['optimizer']} lr/{hyperparameters['lr_divisor']:g} "
        f"wd*{hyperparameters['wd_multiplier']:g} b{betas} bs{batch_size} s{seed}"
    )


def sweep_name(cfg: DictConfig) -> str | None:
    sweep = cfg.get("sweep")
    if sweep is None:
        return None
    return sweep.get("name") if isinstance(sweep, DictConfig) else str(sweep)


def _hydra_output_dir() -> str | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return HydraConfig.get().runtime.output_dir
    except (ImportError, ValueError):
        pass
    return None


def run_id(run_dir: Path) -> str:
    """A W&B run id that is the same for every attempt at the run in ``run_dir`` (a sweep trial's
    directory holds its trial id, and since single runs are named by theirs too, so does a single run's)
    and differs between directories."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def init_kwargs(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Everything ``wandb.init`` needs for this run; raises BadInput for a bad logger config."""
    logger = cfg.logger
    if "api_key" in logger or "key" in logger:
        raise BadInput("logger.api_key is not supported: use `wandb login` or the WANDB_API_KEY variable")
    mode = logger.get("mode") or os.environ.get("WANDB_MODE") or "online"
    if mode not in MODES:
        raise BadInput(f"logger.mode must be one of {', '.join(MODES)}, got {mode!r}")
    hyperparameters = resolve_hyperparameters(cfg.base, cfg.optimizer)
    batch_size = int(cfg.trainer.batch_size) * int(cfg.trainer.grad_accum_steps)
    run_dir = run_dir if run_dir is not None else _hydra_output_dir()
    directory = logger.get("dir") or os.environ.get("WANDB_DIR") or run_dir
    resume = {"id": run_id(run_dir), "resume": "allow"} if run_dir is not None else {}
    return {
        **resume,
        "project": logger.get("project") or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
        "entity": logger.get("entity") or os.environ.get("WANDB_ENTITY") or None,
        "mode": mode,
        "group": logger.get("group") or sweep_name(cfg),
        "job_type": cfg.optimizer.name,
        "tags": [str(tag) for tag in (logger.get("tags") or [])],
        "name": run_name(cfg.task.name, hyperparameters, batch_size, int(cfg.seed)),
        "config": {**OmegaConf.to_container(cfg, resolve=True), "hyperparameters": hyperparameters},
        "dir": str(directory) if directory else None,
        "init_timeout": float(logger.get("init_timeout", 60)),
    }


class WandbLogger:
    """The ``Logger`` of lion_bench.trainer for W&B. Never raises out of ``log`` or ``finish``."""

    def __init__(self, cfg: DictConfig, run_dir: Path | None = None):
        self.kwargs = init_kwargs(cfg, run_dir)
        self.run = None
        self.failed = False
        self._start()

    def _warn(self, what: str, error: BaseException) -> None:
        self.failed = True
        warnings.warn(
            f"W&B {what} failed for run '{self.kwargs['name']}' ({type(error).__name__}: {error}); "
            "the run goes on, recorded locally only",
            RuntimeWarning, stacklevel=2,
        )

    def _start(self) -> bool:
        if self.run is not None or self.failed:
            return self.run is not None
        try:
            import wandb
        except ImportError as error:
            self._warn("import (pip install 'lion-bench[wandb]')", error)
            return False
        kwargs = dict(self.kwargs)
        settings = wandb.Settings(init_timeout=kwargs.pop("init_timeout"), reinit="finish_previous")
        if kwargs["dir"]:
            Path(kwargs["dir"]).mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(settings=settings, **kwargs)
            # The summary holds the minimum and the last evaluated value; non-finite values are never logged.
            for metric in ("val_loss", "val_bpc"):
                self.run.define_metric(metric, step_metric="step", summary="min,last")
            self.run.define_metric("train_loss", step_metric="step", summary="min,last")
        except Exception as error:  # wandb raises many types (CommError, UsageError, timeouts)
            self._warn("init", error)
            self.run = None
        return self.run is not None

    def log(self, row: dict[str, Any]) -> None:
        if not self._start():
            return
        try:
            values = {key: value for key, value in row.items()
                      if not (isinstance(value, float) and not math.isfinite(value))}
            self.run.log(values, step=int(row["step"]))
        except Exception as error:
            self._warn("log", error)

    def finish(self, record: RunRecord) -> None:
        if not self._start():
            return
        try:
            flat = record.to_dict()
            summary = {key: _finite_or_none(flat.get(key)) for key in SUMMARY_KEYS}
            summary["time_s"] = _finite_or_none(record.time_s)
            # The whole record (minus the config, which is the run's W&B config) so the report can
            # rebuild it from the public API.
            summary["record"] = _finite_or_none({k: v for k, v in flat.items() if k != "config"})
            self.run.summary.update(summary)
            self.run.finish(exit_code=0 if record.status.is_result else 1)
        except Exception as error:
            self._warn("finish", error)
        finally:
            self.run = None
