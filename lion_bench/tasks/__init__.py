"""Tasks by config name (``task.name``)."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import MemoryNeed, Task
from lion_bench.tasks.enwik8 import Enwik8Task
from lion_bench.tasks.image import ImageTask
from lion_bench.tasks.lstm_conv import LSTMConvTask
from lion_bench.tasks.mlp import MLPTask
from lion_bench.tasks.quadratic import QuadraticTask
from lion_bench.tasks.text import TextTask

TASKS: dict[str, type[Task]] = {
    "text": TextTask,
    "quadratic": QuadraticTask,
    "enwik8": Enwik8Task,
    "image": ImageTask,
    "mlp": MLPTask,
    "lstm_conv": LSTMConvTask,
}


def check_task_name(name: str) -> None:
    if name not in TASKS:
        raise BadInput(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")


def check_task_data(cfg: Mapping[str, Any]) -> None:
    """Raise BadInput for data settings of ``cfg`` (the task node) that cannot work; reads no data."""
    check_task_name(cfg["name"])
    TASKS[cfg["name"]].check_data(cfg)


def data_identity(cfg: Mapping[str, Any]) -> str:
    """The task's data as a trial's identity holds it (a content hash, a checksum or a source name)."""
    check_task_name(cfg["name"])
    return TASKS[cfg["name"]].data_identity(cfg)


def estimate_memory(cfg: Mapping[str, Any], batch_size: int) -> MemoryNeed | None:
    """What a run of the task ``cfg`` (the task node) holds at once (``Task.estimate_memory``); None: unknown."""
    check_task_name(cfg["name"])
    return TASKS[cfg["name"]].estimate_memory(cfg, batch_size)


def build_task(cfg: Mapping[str, Any], *, batch_size: int, seed: int, device: torch.device) -> Task:
    check_task_name(cfg["name"])
    return TASKS[cfg["name"]](cfg, batch_size=batch_size, seed=seed, device=device)


__all__ = ["MemoryNeed", "Task", "TASKS", "build_task", "check_task_data", "check_task_name", "data_identity",
           "estimate_memory"]
