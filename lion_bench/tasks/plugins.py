"""Tasks from other installed packages: the entry-point group ``lion_bench.tasks``.

A package declares, in its pyproject.toml,

    [project.entry-points."lion_bench.tasks"]
    diabetes = "lion_bench_diabetes:DiabetesTask"

and ``task=diabetes`` then trains ``DiabetesTask`` (a ``Task`` subclass, contract in ``base.py``). Tasks
are registered by the entry point's name, never by a class path from a config or the command line.

Every plugin is loaded and checked once per process (``load_plugins``): it imports, it is a ``Task``
subclass with every method, its ``api_version`` is one this lion-bench knows, its ``default_config``
passes its ``config_schema``, and its name is free. A plugin that fails is kept with one line saying
what is wrong (``Plugin.problem``), raised as ``PluginError`` (a ``BadInput``) only when that task is
selected, so a broken plugin never breaks the other tasks. A working plugin's class is wrapped so
that what its methods return is checked too (``checked_class``): a wrong type is one line naming the
package and the method, never a traceback from deep inside the trainer.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Mapping

from omegaconf import OmegaConf
from torch import Tensor, nn

import lion_bench.schema as schema
from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import TASK_API_VERSION, Task

ENTRY_POINT_GROUP = "lion_bench.tasks"
# A task name is a config option and a part of directory names: no dots, no separators.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
GUIDE = "docs/your_own_task.md"
# Keys every task node has; a plugin's default_config must give the last two.
COMMON_KEYS = {"name": schema.Text(), "base_lr": schema.POSITIVE, "base_weight_decay": schema.NON_NEGATIVE}
SPEC_OF_TYPE = {bool: schema.Bool, int: schema.Int, float: schema.Float, str: schema.Text}


class PluginError(BadInput):
    """A plugin task that cannot be used: one line naming its package and what is wrong."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of the group: the task it names, or why it cannot be used."""

    name: str
    distribution: str
    version: str
    target: str  # "module:Class", as the entry point says
    task_class: type[Task] | None = None  # None when broken
    schema: Mapping[str, Any] | None = None  # the task node's schema (lion_bench.schema specs)
    config: Mapping[str, Any] | None = None  # the task=<name> node, ``name`` included
    problem: str | None = None

    @property
    def label(self) -> str:
        return f"task {self.name!r} of package {self.distribution} {self.version}"

    @property
    def description(self) -> str:
        return describe_class(self.task_class) if self.task_class else f"BROKEN: {self.problem}"

    def error(self) -> PluginError:
        return PluginError(f"{self.label} cannot be used: {self.problem} (see {GUIDE})")


def describe_class(task_class: type[Task]) -> str:
    """The task's one-line description: ``description``, else its docstring's first paragraph."""
    text = task_class.description or inspect.getdoc(task_class) or ""
    return " ".join(text.strip().split("\n\n")[0].split())


# --- loading and checking ------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def load_plugins(reserved: frozenset[str]) -> dict[str, Plugin]:
    """Every entry point of the group, loaded and checked (``reserved``: names taken by built-in tasks
    and configs). Never raises: a plugin that cannot be used carries its ``problem``."""
    entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    counts = Counter(entry_point.name for entry_point in entry_points)
    plugins: dict[str, Plugin] = {}
    for entry_point in entry_points:
        dist = entry_point.dist
        distribution = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        base = Plugin(entry_point.name, distribution, version, entry_point.value)
        if counts[entry_point.name] > 1:
            others = sorted({(ep.dist.metadata["Name"] if ep.dist else "?") for ep in entry_points
                             if ep.name == entry_point.name})
            plugin = _broken(base, f"the name is declared by several packages ({', '.join(others)}); "
                                   "uninstall all but one")
        else:
            plugin = _load(base, entry_point, reserved)
        plugins[entry_point.name] = plugin
    return plugins


def _broken(plugin: Plugin, problem: str) -> Plugin:
    return Plugin(plugin.name, plugin.distribution, plugin.version, plugin.target, problem=problem)


def _load(plugin: Plugin, entry_point: metadata.EntryPoint, reserved: frozenset[str]) -> Plugin:
    if not NAME_PATTERN.fullmatch(plugin.name):
        return _broken(plugin, "the entry point's name must be letters, digits, _ and - (at most 64); rename it")
    if plugin.name in reserved:
        return _broken(plugin, f"the name clashes with lion-bench's own task {plugin.name!r}; rename the entry point")
    try:
        task_class = entry_point.load()
    except Exception as error:  # noqa: BLE001 - any import failure is the plugin's problem, told in one line
        return _broken(plugin, f"importing {plugin.target} failed: {type(error).__name__}: {_first_line(error)}")
    problem = class_problem(task_class)
    if problem:
        return _broken(plugin, problem)
    try:
        task_schema, config = declared_config(plugin.name, task_class)
    except ValueError as error:
        return _broken(plugin, str(error))
    return Plugin(plugin.name, plugin.distribution, plugin.version, plugin.target,
                  task_class=checked_class(task_class, plugin), schema=task_schema, config=config)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"


def class_problem(task_class: Any) -> str | None:
    """What keeps ``task_class`` from being a task lion-bench can train, or None."""
    if not (inspect.isclass(task_class) and issubclass(task_class, Task)):
        return f"{task_class!r} is not a subclass of lion_bench.tasks.base.Task"
    missing = sorted(getattr(task_class, "__abstractmethods__", ()))
    if missing:
        return f"{task_class.__name__} lacks the method(s) {', '.join(missing)} of the Task contract; implement them"
    version = task_class.api_version
    if version is None:
        return f"{task_class.__name__} does not declare the contract version it implements: set api_version = " \
               f"{TASK_API_VERSION}"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"{task_class.__name__}.api_version must be a whole number (this lion-bench: {TASK_API_VERSION})"
    if version > TASK_API_VERSION:
        return f"it implements Task contract version {version}, newer than this lion-bench's {TASK_API_VERSION}: " \
               "pip install -U lion-bench"
    if not isinstance(task_class.description, str):
        return f"{task_class.__name__}.description must be a string"
    return None


def declared_config(name: str, task_class: type[Task]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema of the task node, the task=<name> node) from what the class declares; ValueError if unusable."""
    default = task_class.default_config
    if not isinstance(default, Mapping):
        raise ValueError(f"{task_class.__name__}.default_config must be a dict holding base_lr, base_weight_decay "
                         f"and the task's keys, got {type(default).__name__}")
    if "name" in default and default["name"] != name:
        raise ValueError(f"default_config sets name={default['name']!r}; leave name out (the entry point's name, "
                         f"{name!r}, is the task's name)")
    config = {"name": name, **copy.deepcopy(dict(default))}
    try:
        OmegaConf.create(config)
    except Exception as error:  # noqa: BLE001 - OmegaConf rejects many kinds of values
        raise ValueError(f"default_config is not a plain config (dicts, lists, numbers, strings, bools, null): "
                         f"{_first_line(error)}") from None
    declared = task_class.config_schema or {}
    if not isinstance(declared, Mapping):
        raise ValueError(f"{task_class.__name__}.config_schema must be a dict, got {type(declared).__name__}")
    task_schema = {**node_schema(config, declared, "task"), **COMMON_KEYS}
    problems = schema.tree_problems(config, task_schema, "task")
    if problems:
        raise ValueError(f"its default_config does not pass its config_schema: {problems[0].message}")
    return task_schema, config


def node_schema(values: Mapping[str, Any], declared: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The schema of a config node: each key's declared spec (``declared``), else one for its default value."""
    result = {}
    for key in sorted({*values, *declared}, key=str):
        where = f"{path}.{key}"
        if key in declared:
            result[key] = spec_of(declared[key], values.get(key), where)
        else:
            result[key] = spec_of_value(values[key], where)
    return result


def spec_of(declared: Any, value: Any, where: str) -> Any:
    """A schema entry from a declaration: a ``lion_bench.schema`` spec, a Python type, or a dict (subtree)."""
    if isinstance(declared, schema.Spec):
        return declared
    if isinstance(declared, Mapping):
        return node_schema(value if isinstance(value, Mapping) else {}, declared, where)
    if declared in SPEC_OF_TYPE:
        return SPEC_OF_TYPE[declared]()
    raise ValueError(f"config_schema for {where} must be a lion_bench.schema spec (Int(1), Float(0, 1), Choice(...), "
                     f"Nullable(...)), int, float, bool, str or a dict, got {declared!r}")


def spec_of_value(value: Any, where: str) -> Any:
    """The spec a default value implies: its type (a float key accepts whole numbers too)."""
    if isinstance(value, Mapping):
        return node_schema(value, {}, where)
    if isinstance(value, (list, tuple)):
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and next(iter(kinds)) in SPEC_OF_TYPE:
            return schema.List(SPEC_OF_TYPE[next(iter(kinds))]())
        if kinds <= {int, float} and kinds:
            return schema.List(schema.Float())
        raise ValueError(f"default_config's {where} is a list of mixed or empty items: declare its type in config_schema "
                         "(e.g. List(Int(1)))")
    if type(value) in SPEC_OF_TYPE:
        return SPEC_OF_TYPE[type(value)]()
    raise ValueError(f"default_config's {where} is {value!r}: declare its type in config_schema "
                     "(e.g. Nullable(Text()) for a path that may be null)")


# --- what the methods return ---------------------------------------------------------------------
def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metrics_problem(result: Any, required: tuple[str, ...]) -> str | None:
    if not isinstance(result, Mapping):
        return f"returned {type(result).__name__}, not a dict of metric names to numbers"
    for key in required:
        if key not in result:
            return f"returned no {key!r} (keys: {', '.join(map(str, result)) or 'none'})"
    for key, value in result.items():
        if not isinstance(key, str) or not _real(value):
            return f"returned {key!r}: {value!r}; metrics are numbers (floats) under string keys"
    return None


def _loss_problem(loss: Any) -> str | None:
    if not isinstance(loss, Tensor):
        return f"returned {type(loss).__name__}, not a scalar tensor (keep the loss on the device: no .item())"
    if loss.numel() != 1 or not loss.is_floating_point():
        return f"returned a {tuple(loss.shape)} {loss.dtype} tensor, not a scalar floating-point one (take the mean)"
    return None


def _json_problem(result: Any) -> str | None:
    if not isinstance(result, Mapping):
        return f"returned {type(result).__name__}, not a dict"
    try:
        json.dumps(dict(result), allow_nan=True)
    except (TypeError, ValueError) as error:
        return f"returned what run.json cannot hold ({error}); use numbers, strings, lists and dicts"
    return None


def checked_class(task_class: type[Task], plugin: Plugin) -> type[Task]:
    """A subclass of a plugin's task class that checks what each method of the contract returns and
    raises ``PluginError`` naming the package and the method when it is not what the contract says."""

    def fail(method: str, problem: str) -> PluginError:
        return PluginError(f"{plugin.label}: {task_class.__name__}.{method} {problem} (see {GUIDE})")

    class Checked(task_class):  # type: ignore[misc, valid-type]
        name = plugin.name

        @classmethod
        def check_data(cls, cfg: Mapping[str, Any]) -> None:
            try:
                result = super().check_data(cfg)
            except BadInput:
                raise
            except Exception as error:  # noqa: BLE001 - a crash in a plugin is told in one line, not a traceback
                raise fail("check_data", f"raised {type(error).__name__}: {_first_line(error)}") from error
            if result is not None:
                raise fail("check_data", f"returned {result!r}; it returns nothing and raises BadInput for bad data")

        @classmethod
        def data_identity(cls, cfg: Mapping[str, Any]) -> str:
            identity = super().data_identity(cfg)
            if not isinstance(identity, str) or not identity:
                raise fail("data_identity", f"returned {identity!r}, not a non-empty string")
            return identity

        def build_model(self) -> nn.Module:
            model = super().build_model()
            if not isinstance(model, nn.Module):
                raise fail("build_model", f"returned {type(model).__name__}, not a torch.nn.Module")
            return model

        def loss(self, model: nn.Module, batch: Any) -> Tensor:
            loss = super().loss(model, batch)
            problem = _loss_problem(loss)
            if problem:
                raise fail("loss", problem)
            return loss

        def units_per_batch(self, batch: Any) -> int:
            units = super().units_per_batch(batch)
            if isinstance(units, bool) or not isinstance(units, int) or units < 0:
                raise fail("units_per_batch", f"returned {units!r}, not a whole number >= 0")
            return units

        def evaluate(self, model: nn.Module) -> dict[str, float]:
            result = super().evaluate(model)
            problem = _metrics_problem(result, ("val_loss",))
            if problem:
                raise fail("evaluate", problem)
            return dict(result)

        def final_evaluate(self, model: nn.Module) -> dict[str, float]:
            result = super().final_evaluate(model)
            problem = _metrics_problem(result, ())
            if problem:
                raise fail("final_evaluate", problem)
            return dict(result)

        def describe(self) -> dict[str, Any]:
            result = super().describe()
            problem = _json_problem(result)
            if problem:
                raise fail("describe", problem)
            return {"name": plugin.name, **result, "plugin": {"package": plugin.distribution,
                                                              "version": plugin.version}}

        def state_dict(self) -> dict[str, Any]:
            result = super().state_dict()
            if not isinstance(result, Mapping):
                raise fail("state_dict", f"returned {type(result).__name__}, not a dict")
            return result

    Checked.__name__ = Checked.__qualname__ = task_class.__name__
    Checked.__module__ = task_class.__module__
    Checked.__doc__ = task_class.__doc__
    return Checked


__all__ = ["ENTRY_POINT_GROUP", "Plugin", "PluginError", "checked_class", "class_problem", "declared_config",
           "describe_class", "load_plugins"]
