"""The names a ``lion-bench`` command line may use, and one line about a name it may not.

Checked before Hydra composes anything, so a typo gets our "did you mean ...?" rather than Hydra's
advice to add the key with ``+`` (which only leads to a second error):

    lion-bench optimzer=adamw                         did you mean optimizer=adamw?
    lion-bench trainer.max_step=5                     did you mean trainer.max_steps?
    lion-bench optimizer=adamw optimizer.lr_divisor=10
                                                      optimizer.lr_divisor is a Lion setting; AdamW trains at base.lr

The names come from the config tree (``configs/``: the groups, their options, the keys each option
file sets) and the schema (``schema.py``: every key per optimizer, task and logger). A key set without
``+`` must be in the composed config (an option file sets it); with ``+`` it must be one the schema
allows for the chosen option. Values are not checked here (the schema does that after composition),
nor are ``hydra.*`` keys or groups (Hydra's own), nor the options of a group that is not ours.
"""

from __future__ import annotations

import difflib
import functools
from importlib.resources import files
from typing import Any, Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from omegaconf import DictConfig, OmegaConf

import lion_bench.schema as schema

CONFIG_PACKAGE = "lion_bench.configs"
# Groups whose keys depend on the option chosen, and the schema of each option's ``name``.
CHOICE_SCHEMAS = {"optimizer": schema.OPTIMIZERS, "task": schema.TASKS, "logger": schema.LOGGERS}
SHOWN_NAMES = {"adamw": "AdamW", "lion": "Lion"}
# Why a key of another option does nothing here, where the general sentence says too little.
REASONS = {
    ("optimizer", "adamw", "lr_divisor"): "AdamW trains at base.lr",
    ("optimizer", "adamw", "wd_multiplier"): "AdamW's weight decay is base.weight_decay",
}


# --- the config tree -----------------------------------------------------------------------------
def _config_dir():
    return files(CONFIG_PACKAGE)


@functools.lru_cache(maxsize=None)
def groups() -> dict[str, tuple[str, ...]]:
    """Our config groups (directories of configs/, Hydra's own aside) and their options."""
    found = {}
    for entry in _config_dir().iterdir():
        if entry.is_dir() and entry.name not in ("hydra", "__pycache__"):
            found[entry.name] = tuple(sorted(item.name.removesuffix(".yaml") for item in entry.iterdir()
                                             if item.name.endswith(".yaml")))
    return found


@functools.lru_cache(maxsize=None)
def option_config(group: str, option: str) -> dict[str, Any] | None:
    """What the option file sets (its defaults list of the same group merged in), unresolved; None
    when the group has no such file (an option from a plugin)."""
    path = _config_dir().joinpath(group, f"{option}.yaml")
    if not path.is_file():
        return None
    loaded = OmegaConf.load(str(path))
    merged = OmegaConf.create()
    defaults = loaded.pop("defaults", []) if isinstance(loaded, DictConfig) else []
    for entry in defaults:
        if isinstance(entry, str) and entry != "_self_":
            base = option_config(group, entry)
            merged = OmegaConf.merge(merged, base or {})
    return OmegaConf.to_container(OmegaConf.merge(merged, loaded), resolve=False)


def top_level() -> dict[str, Any]:
    """The keys of configs/train.yaml (its defaults list and the hydra node aside)."""
    config = OmegaConf.to_container(OmegaConf.load(str(_config_dir().joinpath("train.yaml"))), resolve=False)
    return {key: value for key, value in config.items() if key not in ("defaults", "hydra")}


@functools.lru_cache(maxsize=None)
def default_choices() -> dict[str, str | None]:
    """The option train.yaml's defaults list picks for each group (None: none)."""
    loaded = OmegaConf.load(str(_config_dir().joinpath("train.yaml")))
    chosen = {}
    for entry in loaded.get("defaults", []):
        if isinstance(entry, DictConfig):
            for group, option in entry.items():
                if "/" not in group and not group.startswith("override"):
                    chosen[group] = option
    return chosen


def arm_optimizer(arm: str) -> str | None:
    """The optimizer an arm (configs/arm/) chooses, read from its ``override /optimizer`` line."""
    path = _config_dir().joinpath("arm", f"{arm}.yaml")
    if not path.is_file():
        return None
    for entry in OmegaConf.load(str(path)).get("defaults", []):
        if isinstance(entry, DictConfig) and "override /optimizer" in entry:
            return entry["override /optimizer"]
    return None


def schema_name(group: str, option: str) -> str | None:
    """The ``name`` an option file gives its node (task=enwik8_12l is task enwik8), else None."""
    config = option_config(group, option)
    name = config.get("name") if isinstance(config, Mapping) else None
    return name if isinstance(name, str) else None


# --- what the command line chooses ---------------------------------------------------------------
def _values(override: Override) -> list[str] | None:
    """The plain option names an override gives (several for ``a,b``), or None (a glob, a range...)."""
    if override.is_sweep_override():
        if override.value_type not in (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP):
            return None
        values = list(override.sweep_string_iterator())
    else:
        values = [override.value()]
    return [value for value in values if isinstance(value, str)] if all(isinstance(v, str) for v in values) else None


def chosen_options(overrides: list[Override]) -> dict[str, list[str]]:
    """The options each choice group takes over the trials of this command: the command line's
    ``group=...`` first, then the optimizers of the arms it or its sweep preset sweeps, then the
    defaults. An option without a file of ours (a plugin's) is left out: it is not checked here."""
    given: dict[str, list[str]] = {}
    for override in overrides:
        values = _values(override)
        if override.key_or_group in (*CHOICE_SCHEMAS, "arm", "sweep") and values:
            given[override.key_or_group] = values
    arms = given.get("arm")
    for preset in given.get("sweep", []):
        params = (option_config("sweep", preset) or {}).get("hydra", {}).get("sweeper", {}).get("params") or {}
        if arms is None and isinstance(params.get("arm"), str):
            arms = [arm.strip() for arm in params["arm"].split(",")]
    chosen = {}
    for group in CHOICE_SCHEMAS:
        options = given.get(group)
        if options is None and group == "optimizer" and arms:
            options = [optimizer for optimizer in map(arm_optimizer, arms) if optimizer]
        if options is None:
            default = default_choices().get(group)
            options = [default] if default else []
        chosen[group] = [option for option in options if option in groups().get(group, ())]
    return chosen


# --- the check -----------------------------------------------------------------------------------
def _closest(name: str, candidates: list[str]) -> list[str]:
    return difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _node(tree: Any, path: list[str]) -> tuple[Any, int]:
    """How far ``path`` goes into ``tree`` (a config or schema): (the last node reached, parts matched)."""
    node = tree
    for depth, part in enumerate(path):
        if not isinstance(node, Mapping) or part not in node:
            return node, depth
        node = node[part]
    return node, len(path)


def _has(tree: Any, path: list[str]) -> bool:
    return _node(tree, path)[1] == len(path)


def _schema_of(group: str, option: str) -> Mapping[str, Any] | None:
    name = schema_name(group, option)
    return CHOICE_SCHEMAS[group].get(name) if name else None


def _shown(group: str, option: str) -> str:
    """How a message names an option: Lion, AdamW, task=text."""
    name = schema_name(group, option) or option
    return SHOWN_NAMES.get(name, f"{group}={name}")


def _typo(key: str, trees: list[Any], value: str | None = None) -> str:
    """The line for a key that no option has: the closest names where it goes astray."""
    path = key.split(".")
    depth = max(_node(tree, path)[1] for tree in trees)
    if depth >= len(path):
        return f"unknown config key {key}"
    nodes = [_node(tree, path[:depth])[0] for tree in trees if _node(tree, path[:depth])[1] == depth]
    siblings = sorted({name for node in nodes if isinstance(node, Mapping) for name in node})
    rest = path[depth + 1:]
    guesses = [".".join([*path[:depth], guess, *rest]) for guess in _closest(path[depth], siblings)]
    guesses = [guess for guess in guesses if any(_has(tree, guess.split(".")) for tree in trees)] or guesses
    if guesses:
        shown = [f"{guess}={value}" if value is not None and len(path) == 1 and len(guesses) == 1 else guess
                 for guess in guesses]
        return f"unknown config key {key}; did you mean {_or(shown)}?"
    where = f" of {'.'.join(path[:depth])}" if depth else ""
    return f"unknown config key {key}; remove it (valid keys{where}: {', '.join(siblings)})"


def key_problem(override: Override, chosen: Mapping[str, list[str]]) -> str | None:
    """What is wrong with the name an override sets (``a.b.c=...``, ``+a.b=...``, ``~a.b``), or None."""
    key = override.key_or_group
    if override.package or key.startswith("hydra") or key in groups():
        return None
    appended = override.is_add() or override.is_force_add()
    value = override.input_line.split("=", 1)[1] if "=" in (override.input_line or "") else None
    path = key.split(".")
    top = top_level()
    if path[0] not in top and path[0] not in groups() and path[0] not in schema.TOP:
        group_guesses = _closest(path[0], sorted(groups()))
        if len(path) == 1 and group_guesses and value in groups()[group_guesses[0]]:
            return f"unknown config group {key}; did you mean {group_guesses[0]}={value}?"
        return _typo(key, [{**top, **{group: {} for group in groups()}}, schema.TOP], value)
    group = path[0]
    if group not in CHOICE_SCHEMAS:
        trees = [top, {**schema.TOP, "sweep": schema.SWEEP}]
        if group == "trainer":
            trees.append({"trainer": option_config("trainer", default_choices().get("trainer") or "default")})
        if group == "sweep" or any(_has(tree, path) for tree in trees):
            return None
        return _typo(key, trees, value)
    options = chosen.get(group, [])
    for option in options:
        own_schema = _schema_of(group, option)
        own_config = option_config(group, option)
        if own_schema is None or own_config is None:
            continue  # an option whose keys we do not know: Hydra and the schema check it
        present = _has(own_config, path[1:]) or (appended and _has(own_schema, path[1:]))
        if present:
            continue
        others = [other for other in groups()[group] if schema_name(group, other) != schema_name(group, option)
                  and _has(option_config(group, other) or {}, path[1:])]
        owners = _or(sorted({_shown(group, other) for other in others})) if others else None
        reason = REASONS.get((group, schema_name(group, option), ".".join(path[1:])))
        if owners and reason:
            return f"{key} is a {owners} setting; {reason}"
        if _has(own_schema, path[1:]):  # optional, not in the option's file: it is added, not overridden
            return f"{key} is not set by {group}={option}; add it with +{key}={value}"
        if owners:
            return f"{key} is a {owners} setting; {_shown(group, option)} has no {'.'.join(path[1:])}"
        all_trees = [{group: option_config(group, other) or {}} for other in groups()[group]]
        all_trees += [{group: tree} for tree in CHOICE_SCHEMAS[group].values()]
        return _typo(key, all_trees, value)
    return None


def command_line_names_problem(arguments: list[str]) -> str | None:
    """The first name on the command line that no config has (with the closest ones), or None. Never
    raises: a name this check cannot judge is left to Hydra and the schema."""
    try:
        return _names_problem(arguments)
    except Exception:  # noqa: BLE001 - a check of names must not be a new way to fail
        return None


def _names_problem(arguments: list[str]) -> str | None:
    parser = OverridesParser.create()
    overrides = []
    for argument in arguments:
        if argument.startswith("-") or ("=" not in argument and not argument.startswith("~")):
            continue
        try:
            overrides.extend(parser.parse_overrides([argument]))
        except Exception:  # noqa: BLE001 - Hydra reports a malformed override itself
            continue
    chosen = chosen_options(overrides)
    for override in overrides:
        problem = key_problem(override, chosen)
        if problem:
            return problem
    return None


def option_problem(group: str, option: str, options: list[str]) -> str:
    """The line for ``group=option`` when the group has no such option (``options``: those it has)."""
    guesses = _closest(option, options)
    guess = f"did you mean {_or([f'{group}={name}' for name in guesses])}? Its" if guesses else "its"
    hint = f"; {schema.PLUGIN_TASK_HINT}" if group == "task" else ""
    return f"{group}={option} is not an option of {group}; {guess} options: {', '.join(options)}{hint}"


__all__ = ["command_line_names_problem", "groups", "option_problem"]
