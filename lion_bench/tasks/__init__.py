"""Tasks by config name (``task.name``): the built-in ones, and those of installed packages
(entry-point group ``lion_bench.tasks``; ``plugins.py``)."""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any, Mapping

import torch

import lion_bench.schema as schema
from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import TASK_API_VERSION, MemoryNeed, Task
from lion_bench.tasks.enwik8 import Enwik8Task
from lion_bench.tasks.image import ImageTask
from lion_bench.tasks.lstm_conv import LSTMConvTask
from lion_bench.tasks.mlp import MLPTask
from lion_bench.tasks.plugins import Plugin, PluginError, load_plugins
from lion_bench.tasks.quadratic import QuadraticTask
from lion_bench.tasks.text import TextTask

# The built-in tasks. Tasks of other packages: ``task_class`` and ``plugins``.
TASKS: dict[str, type[Task]] = {
    "text": TextTask,
    "quadratic": QuadraticTask,
    "enwik8": Enwik8Task,
    "image": ImageTask,
    "mlp": MLPTask,
    "lstm_conv": LSTMConvTask,
}


@functools.cache
def _reserved_names() -> frozenset[str]:
    """Names a plugin may not take: the built-in tasks and the shipped task configs (enwik8_12l)."""
    shipped = {entry.name.removesuffix(".yaml") for entry in files("lion_bench.configs").joinpath("task").iterdir()
               if entry.name.endswith(".yaml")}
    return frozenset(TASKS) | frozenset(shipped)


def plugins() -> dict[str, Plugin]:
    """The installed plugin tasks by name, broken ones included (loaded once per process)."""
    return load_plugins(_reserved_names())


def task_class(name: str) -> type[Task]:
    """The task class called ``name``; BadInput naming the valid tasks, or the plugin's problem."""
    if name in TASKS:
        return TASKS[name]
    plugin = plugins().get(name) if isinstance(name, str) else None
    if plugin is None:
        valid = sorted({*TASKS, *(name for name, plugin in plugins().items() if plugin.task_class)})
        raise BadInput(f"unknown task {name!r}; valid tasks: {', '.join(valid)}; {schema.PLUGIN_TASK_HINT}")
    if plugin.task_class is None:
        raise plugin.error()
    return plugin.task_class


def plugin_task_schemas() -> dict[str, dict[str, Any]]:
    """The config schema of each working plugin task (``schema.config_problems`` checks them)."""
    return {name: dict(plugin.schema) for name, plugin in plugins().items() if plugin.schema is not None}


def broken_plugin_problem(cfg: Any) -> str | None:
    """Why the plugin task ``cfg`` (the task node) selects cannot be used, or None (not a broken plugin)."""
    name = cfg.get("name") if isinstance(cfg, Mapping) else None
    plugin = plugins().get(name) if isinstance(name, str) and name not in TASKS else None
    return str(plugin.error()) if plugin is not None and plugin.task_class is None else None


def check_task_name(name: str) -> None:
    task_class(name)


def check_task_data(cfg: Mapping[str, Any]) -> None:
    """Raise BadInput for data settings of ``cfg`` (the task node) that cannot work; reads no data
    (but what a plugin or a dataset source needs to say what its data is)."""
    cls = task_class(cfg["name"])
    cls.check_data(cfg)
    if cfg["name"] not in TASKS:  # a plugin's data identity is checked here, before anything is written
        cls.data_identity(cfg)


def data_identity(cfg: Mapping[str, Any]) -> str:
    """The task's data as a trial's identity holds it (a content hash, a checksum or a source name)."""
    return task_class(cfg["name"]).data_identity(cfg)


def estimate_memory(cfg: Mapping[str, Any], batch_size: int) -> MemoryNeed | None:
    """What a run of the task ``cfg`` (the task node) holds at once (``Task.estimate_memory``); None: unknown."""
    return task_class(cfg["name"]).estimate_memory(cfg, batch_size)


def build_task(cfg: Mapping[str, Any], *, batch_size: int, seed: int, device: torch.device) -> Task:
    return task_class(cfg["name"])(cfg, batch_size=batch_size, seed=seed, device=device)


__all__ = ["TASKS", "TASK_API_VERSION", "MemoryNeed", "Plugin", "PluginError", "Task", "broken_plugin_problem",
           "build_task", "check_task_data", "check_task_name", "data_identity", "estimate_memory",
           "plugin_task_schemas", "plugins", "task_class"]
