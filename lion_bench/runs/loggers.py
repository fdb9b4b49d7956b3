"""Loggers by name (``logger=none`` | ``logger=wandb``): where metrics go besides the local run store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from lion_bench.runs.errors import BadInput


def _no_loggers(cfg: DictConfig, run_dir: Path | None) -> list[Any]:
    return []


def _wandb(cfg: DictConfig, run_dir: Path | None) -> list[Any]:
    from lion_bench.runs.wandb_logger import WandbLogger

    return [WandbLogger(cfg, run_dir)]


LOGGERS: dict[str, Callable[[DictConfig, Path | None], list[Any]]] = {"none": _no_loggers, "wandb": _wandb}


def build_loggers(cfg: DictConfig, run_dir: Path | None = None) -> list[Any]:
    """The loggers that ``cfg.logger`` names for the run in ``run_dir``, ready to pass to
    ``lion_bench.trainer.train``."""
    logger = cfg.get("logger")
    name = "none" if logger is None else logger.get("name", "none")
    if name not in LOGGERS:
        raise BadInput(f"unknown logger {name!r}; valid loggers: {', '.join(sorted(LOGGERS))}")
    return LOGGERS[name](cfg, run_dir)
