"""Your own tasks on the command line: plugin tasks' configs, user config directories, and the
``lion-bench-tasks`` listing.

- ``register_task_configs``: each working plugin task's ``default_config`` becomes the Hydra config
  ``task=<name>`` (ConfigStore, group ``task``, provider: its package), so ``lion-bench task=<name>``
  and ``lion-bench --help`` know it. Called at start-up, before Hydra composes.
- ``command_line_problem``: selecting a broken plugin task (``task=<name>``) is one line saying what
  is wrong with its package; config directories the user adds (``hydra.searchpath=[file:///dir]``,
  ``--config-dir``, ``--config-path``) may hold task, sweep and arm configs but nothing Hydra would
  import and call (``_target_`` and its kin anywhere, ``hydra.callbacks``), like the command line.
- ``main``: ``lion-bench-tasks`` lists every task (name, package, version, one line); exit status 1
  when an installed plugin is broken. ``lion-bench-tasks --check NAME`` checks that task's promises
  (``tasks/contract.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml
from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from lion_bench import __version__
from lion_bench.command_line import CALLABLE_KEYS
from lion_bench.checks import check_config
from lion_bench.devices import resolve_device
from lion_bench.runs.errors import BadInput
from lion_bench.tasks import TASKS, broken_plugin_problem, plugins, task_class
from lion_bench.tasks.contract import contract_checks
from lion_bench.tasks.plugins import describe_class

# Flags of Hydra's that add a config directory (the value follows, or comes after "=").
CONFIG_DIR_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp")
# Config files scanned per directory at most: a directory this large is not a config tree.
MAX_CONFIG_FILES = 10_000


def register_task_configs() -> None:
    """Store each working plugin task's config as ``task/<name>`` in Hydra's ConfigStore."""
    store = ConfigStore.instance()
    for name, plugin in plugins().items():
        if plugin.config is not None:
            store.store(group="task", name=name, node=dict(plugin.config), provider=plugin.distribution)


# --- the command line ----------------------------------------------------------------------------
def command_line_problem(arguments: list[str]) -> str | None:
    """A broken plugin task selected with ``task=...``, or a user config directory holding something
    Hydra would import and call; None when neither."""
    parser = OverridesParser.create()
    directories = []
    for index, argument in enumerate(arguments):
        flag, _, value = argument.partition("=")
        if flag in CONFIG_DIR_FLAGS:
            directories.append(value or (arguments[index + 1] if index + 1 < len(arguments) else ""))
            continue
        if argument.startswith("-") or "=" not in argument:
            continue
        try:
            [override] = parser.parse_overrides([argument])
        except Exception:  # noqa: BLE001 - Hydra reports a malformed override itself
            continue
        key = override.key_or_group
        if key == "task":
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
            for value in values:
                plugin = plugins().get(value) if isinstance(value, str) else None
                if plugin is not None and plugin.task_class is None:
                    return str(plugin.error())
        elif key == "hydra.searchpath":
            value = override.value()
            directories.extend(value if isinstance(value, list) else [value])
    for directory in directories:
        problem = config_directory_problem(str(directory))
        if problem:
            return problem
    return None


def config_directory_problem(location: str) -> str | None:
    """What in the config directory ``location`` (a search path entry) Hydra would import and call, or None.
    ``pkg://`` entries are installed packages (code already): not scanned."""
    if location.startswith("pkg://") or "://" in location and not location.startswith("file://"):
        return None
    directory = Path(location.removeprefix("file://")).expanduser()
    if not directory.is_dir():
        return None  # Hydra says a search path or config path is missing, or ignores it
    for count, path in enumerate(sorted(p for pattern in ("*.yaml", "*.yml") for p in directory.rglob(pattern))):
        if count >= MAX_CONFIG_FILES:
            return (f"the config directory {directory} holds more than {MAX_CONFIG_FILES} YAML files; point "
                    "hydra.searchpath at the directory that holds your task/, sweep/ and arm/ configs")
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # Hydra reports a file it cannot read when it loads it
        for where in (where for document in documents for where in _callable_keys(document, "")):
            return (f"{path} sets {where}: Hydra would import and call what it names (any code). Configs of your "
                    "own may set task, sweep and trainer keys; tasks come from installed packages by name "
                    "(docs/your_own_task.md)")
    return None


def _callable_keys(node: Any, path: str) -> Iterator[str]:
    """Keys under ``node`` that make Hydra import and call something, as dotted paths."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in CALLABLE_KEYS or where.endswith("hydra.callbacks") or where == "callbacks" and not path:
                yield where
            else:
                yield from _callable_keys(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _callable_keys(item, f"{path}[{index}]")


def prepare(arguments: list[str]) -> str | None:
    """Start-up of ``lion-bench``: plugin task configs registered; what is wrong with the command line
    regarding your own tasks and configs, or None."""
    register_task_configs()
    return command_line_problem(arguments)


# --- lion-bench-tasks ----------------------------------------------------------------------------
def task_rows() -> list[tuple[str, str, str, str]]:
    """(name, package, version, description) of every task: built-in ones first, then plugins."""
    rows = [(name, "lion-bench (built-in)", __version__, describe_class(task_class))
            for name, task_class in sorted(TASKS.items())]
    rows += [(name, plugin.distribution, plugin.version, plugin.description)
             for name, plugin in sorted(plugins().items())]
    return rows


def check_task(name: str, overrides: list[str]) -> int:
    """``lion-bench-tasks --check NAME [key=value ...]``: the task built from its composed config, on
    this machine's device, and each promise of the contract checked (tasks/contract.py). Returns the
    exit status: 0 when every promise is kept, 1 otherwise, 2 for bad input."""
    register_task_configs()
    try:
        broken = broken_plugin_problem({"name": name})
        if broken:
            raise BadInput(broken)
        with initialize_config_module(config_module="lion_bench.configs", version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"task={name}", *overrides])
        check_config(cfg)
        cls = task_class(cfg.task.name)
        device = resolve_device(cfg.device)
    except BadInput as error:
        print(f"lion-bench-tasks: {error}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as error:
        print(f"lion-bench-tasks: {' '.join(str(error).split('Config search path')[0].split())}", file=sys.stderr)
        return 2
    results = contract_checks(cls, cfg.task, batch_size=int(cfg.trainer.batch_size), device=device)
    for promise, problem in results:
        print(f"{'ok  ' if problem is None else 'FAIL'}  {promise}{f': {problem}' if problem else ''}")
    return 0 if all(problem is None for _, problem in results) and len(results) == 6 else 1


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="lion-bench-tasks",
        description="List the tasks lion-bench can train: built in, and from installed packages (entry-point "
                    "group lion_bench.tasks); train one with lion-bench task=NAME. Exit status 1 if a plugin is "
                    "broken. With --check NAME: check that task's promises (seeded model and batches, "
                    "deterministic evaluation, resumable data position, a loss that trains, a described source).")
    parser.add_argument("--check", metavar="NAME", help="check the task NAME (built in or a plugin)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for --check")
    args = parser.parse_args(arguments)
    if args.check:
        sys.exit(check_task(args.check, args.overrides))
    if args.overrides:
        parser.error("overrides go with --check NAME")
    rows = [("task", "package", "version", "description"), *task_rows()]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    if any(plugin.task_class is None for plugin in plugins().values()):
        sys.exit(1)


__all__ = ["check_task", "command_line_problem", "config_directory_problem", "main", "prepare", "register_task_configs",
           "task_rows"]
