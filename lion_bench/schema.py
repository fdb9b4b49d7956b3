"""The schema of the composed config: every key lion-bench reads, its type and range, and the
relations between keys. ``config_problems`` checks a resolved config against it and lists what is
wrong, each problem naming the keys involved and saying what to do in one line.

Unknown keys are refused wherever they appear (a typo, or ``+optimizer._target_=...``): lion_bench
builds optimizers, tasks and loggers by name and never instantiates a class from the config. Data
files and the device are checked in ``plan.py``, which needs the machine and the disk.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from lion_bench.runs.ratio import derived_problems, resolved_values

# A name that is safe as a directory name: letters, digits, _ . - (not starting with a dot).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Problem:
    keys: tuple[str, ...]  # the config keys involved; the first is the one to change
    message: str


# --- value specs: each returns what is wrong with a value (None when nothing is) ------------------
def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


class Spec:
    optional = False  # the key may be absent

    def problem(self, value: Any) -> str | None:
        raise NotImplementedError


# Whole numbers lion-bench takes stay below 2**63 (torch's int64, JSON readers' integers); seeds below
# 2**64, the range of torch.manual_seed and torch.Generator (and of Lion's random-bit seed).
INT_LIMIT, SEED_LIMIT = 2**63, 2**64


def _whole(value: int) -> str:
    """A whole number as shown in a message: long ones by their first digits and length."""
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


class Int(Spec):
    def __init__(self, low: int | None = None, below: int = INT_LIMIT, why: str = ""):
        self.low, self.below, self.why = low, below, why

    def problem(self, value: Any) -> str | None:
        bound = f" >= {self.low}" if self.low is not None else ""
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number{bound}, got {_shown(value)}"
        if self.low is not None and value < self.low:
            return f"must be a whole number{bound}, got {value}"
        if value >= self.below:
            return f"must be a whole number below 2**{self.below.bit_length() - 1}{self.why}, got {_whole(value)}"
        return None


class Float(Spec):
    """A finite number in [low, high] (``open_low`` / ``open_high``: excluding the end)."""

    def __init__(self, low: float | None = None, high: float | None = None, open_low: bool = False,
                 open_high: bool = False):
        self.low, self.high, self.open_low, self.open_high = low, high, open_low, open_high

    def range_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f" in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
        if self.low is not None:
            return f" {'>' if self.open_low else '>='} {self.low:g}"
        return ""

    def problem(self, value: Any) -> str | None:
        if not _number(value):
            return f"must be a finite number{self.range_text()}, got {_shown(value)}"
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        above = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        return f"must be a number{self.range_text()}, got {value}" if below or above else None


class Bool(Spec):
    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"must be true or false, got {_shown(value)}"


class Choice(Spec):
    def __init__(self, *choices: Any):
        self.choices = choices

    def problem(self, value: Any) -> str | None:
        # `in` would take 1 for True: compare types too.
        if any(value == choice and type(value) is type(choice) for choice in self.choices):
            return None
        return f"must be one of {', '.join(_shown(c).strip(chr(39)) for c in self.choices)}, got {_shown(value)}"


class Text(Spec):
    def __init__(self, name: bool = False):
        self.name = name  # must be a safe directory-name part

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return f"must be a non-empty string, got {_shown(value)}"
        if self.name and not NAME_PATTERN.fullmatch(value):
            return f"must be a name of letters, digits, _ . - (at most 64, no leading dot), got {value!r}"
        return None


class List(Spec):
    def __init__(self, item: Spec, length: int | None = None, min_length: int = 0):
        self.item, self.length, self.min_length = item, length, min_length

    def problem(self, value: Any) -> str | None:
        size = f"{self.length} " if self.length is not None else ""
        if not isinstance(value, (list, tuple)):
            return f"must be a list of {size}items, got {_shown(value)}"
        if (self.length is not None and len(value) != self.length) or len(value) < self.min_length:
            wanted = self.length if self.length is not None else f"at least {self.min_length}"
            return f"must be a list of {wanted} items, got {list(value)}"
        for item in value:
            problem = self.item.problem(item)
            if problem:
                return f"must be a list whose items each {problem.replace('must be', 'are')} (in {list(value)})"
        return None


class OrAuto(Spec):
    """``auto`` (resolved from other keys, see ``resolve_warmup``) or a value of ``inner``."""

    def __init__(self, inner: Spec):
        self.inner = inner

    def problem(self, value: Any) -> str | None:
        if value == "auto":
            return None
        problem = self.inner.problem(value)
        return problem and problem.replace("must be", "must be auto or", 1)


class Nullable(Spec):
    def __init__(self, inner: Spec):
        self.inner = inner

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None
        problem = self.inner.problem(value)
        return problem and problem.replace("must be", "must be null or", 1)


class Optional(Nullable):
    """May be absent or null."""

    optional = True


# --- the tree ------------------------------------------------------------------------------------
SEED = Int(0, below=SEED_LIMIT, why=" (the range of torch's random generators)")
POSITIVE = Float(0, open_low=True)
NON_NEGATIVE = Float(0)
FRACTION_OPEN = Float(0, 1, open_low=True, open_high=True)
BETAS = List(Float(0, 1, open_high=True), length=2)
BYTE_LM_DATA = {"path": Nullable(Text()), "max_bytes": Nullable(Int(1)), "val_fraction": FRACTION_OPEN,
                "block_bytes": Int(1),
                # source=hf: a column of a Hugging Face dataset (tasks/datasets_text.py)
                "source": Optional(Choice("file", "hf")), "hf_dataset": Optional(Text()),
                "hf_config": Optional(Text()), "hf_split": Optional(Text()), "hf_column": Optional(Text())}
BYTE_LM_EVAL = {"num_windows": Int(1), "batch_size": Int(1), "final": Choice("sample", "full_valid"),
                "stride": Nullable(Int(1))}
TRANSFORMER = {"seq_len": Int(1), "d_model": Int(1), "n_layer": Int(1), "n_head": Int(1),
               "dropout": Float(0, 1, open_high=True)}
TASK_COMMON = {"name": Text(), "base_lr": POSITIVE, "base_weight_decay": NON_NEGATIVE}

# Said wherever a task name is unknown: tasks beyond the built-in ones come from installed packages.
PLUGIN_TASK_HINT = ("a task of your own comes from an installed package (the example: pip install -e "
                    "examples/diabetes; see docs/your_own_task.md)")

TASKS: dict[str, dict[str, Any]] = {
    "text": {**TASK_COMMON, "data": BYTE_LM_DATA, "model": TRANSFORMER, "eval": BYTE_LM_EVAL},
    "lstm_conv": {**TASK_COMMON, "data": BYTE_LM_DATA,
                  "model": {"seq_len": Int(1), "embed_dim": Int(1), "kernel_size": Int(1), "num_conv_layers": Int(0),
                            "hidden_size": Int(1), "num_lstm_layers": Int(1)},
                  "eval": {**BYTE_LM_EVAL, "stride": Optional(Int(1))}},
    "enwik8": {**TASK_COMMON,
               "data": {"source": Optional(Choice("file", "hf")), "path": Nullable(Text()), "cache_dir": Text(),
                        "download": Bool(), "url": Text(), "hf_dataset": Optional(Text()),
                        "hf_config": Optional(Text())},
               "model": TRANSFORMER,
               "eval": {**BYTE_LM_EVAL, "final": Choice("sample", "full_valid", "full_test")}},
    "image": {**TASK_COMMON,
              "data": {"source": Choice("digits", "cifar10"), "val_fraction": FRACTION_OPEN, "split_seed": SEED},
              "model": {"channels": List(Int(1), min_length=1)}, "eval": {"batch_size": Int(1)}},
    "mlp": {**TASK_COMMON,
            "data": {"source": Choice("teacher", "breast_cancer", "wine", "digits"), "input_dim": Int(1),
                     "teacher_hidden": Int(1), "output_dim": Int(1), "noise": NON_NEGATIVE, "num_val": Int(1),
                     "problem_seed": SEED, "val_fraction": FRACTION_OPEN, "split_seed": SEED},
            "model": {"hidden": List(Int(1)), "activation": Choice("relu", "gelu", "tanh")},
            "eval": {"batch_size": Int(1)}},
    "quadratic": {**TASK_COMMON, "dim": Int(1), "outputs": Int(1), "condition_number": Float(1), "noise": NON_NEGATIVE,
                  "problem_seed": SEED, "num_val": Int(1)},
}
RATIOS = {"lr_divisor": POSITIVE, "wd_multiplier": NON_NEGATIVE}
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "lion": {"name": Text(), **RATIOS, "betas": BETAS, "impl": Choice("auto", "torch", "foreach", "triton"),
             "cautious": Bool(), "decoupled_weight_decay": Bool(), "decay_vectors": Bool(),
             "state_dtype": Optional(Choice("fp32", "bf16")), "maximize": Optional(Bool())},
    # AdamW may take the ratios too (base.lr / lr_divisor), though its arms never set them.
    "adamw": {"name": Text(), "betas": BETAS, "eps": POSITIVE, "impl": Choice("auto", "fused", "foreach", "for_loop"),
              "decay_vectors": Bool(), **{key: Optional(spec) for key, spec in RATIOS.items()}},
}
LOGGERS: dict[str, dict[str, Any]] = {
    "none": {"name": Text()},
    "wandb": {"name": Text(), "project": Nullable(Text()), "entity": Nullable(Text()),
              "mode": Nullable(Choice("online", "offline", "disabled")), "group": Nullable(Text()),
              "tags": List(Text()), "dir": Nullable(Text()), "init_timeout": POSITIVE},
}
TRAINER = {
    "max_steps": Int(1), "batch_size": Int(1), "grad_accum_steps": Int(1), "grad_clip": NON_NEGATIVE,
    "precision": Choice("auto", "fp32", "bf16"), "compile": Choice("auto", True, False),
    "eval_every": Int(1), "log_every": Int(1), "divergence_factor": Float(1, open_low=True),
    "progress": Choice("auto", True, False),
    "schedule": {"name": Choice("cosine", "linear", "constant", "inverse_sqrt"), "warmup_steps": OrAuto(Int(0)),
                 "warmup_fraction": Nullable(Float(0, 1, open_high=True)), "final_fraction": Float(0, 1)},
    "budget": Choice("steps", "tokens"), "reference_batch_size": Int(1),
    "checkpoint_minutes": NON_NEGATIVE, "checkpoint_every": Int(0),
    "compile_cache": Optional(Text()),
}
class NumberTable(Spec):
    """A mapping of point names to positive numbers (a preset's lr grid: ``{p1: 8, p2: 4}``)."""

    optional = True

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, Mapping) or not value:
            return f"must be a mapping of grid points to numbers > 0, got {_shown(value)}"
        for key, item in value.items():
            if POSITIVE.problem(item):
                return f"must map each grid point to a number > 0, got {key}: {_shown(item)}"
        return None


# A preset's ``sweep`` node (configs/sweep/): its name names the sweep directory; ``point`` picks each
# optimizer's lr divisor from ``grid`` (arms adamw_grid, lion_own_grid).
SWEEP = {"name": Text(name=True), "lr_divisor": Optional(POSITIVE), "point": Optional(Text(name=True)),
         "grid": {"adamw": NumberTable(), "lion": NumberTable()},
         "search": {"lr_factor": List(POSITIVE, length=2), "lr_divisor": List(POSITIVE, length=2)}}
OPTIONAL_SUBTREES = {"sweep.search", "sweep.grid"}  # mappings that may be absent
TOP = {"base": {"lr": POSITIVE, "weight_decay": NON_NEGATIVE}, "seed": SEED, "device": Text(),
       "output_root": Text(), "arm": Optional(Text(name=True)), "trainer": TRAINER}

TARGET_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


# --- checking ------------------------------------------------------------------------------------
def _check_tree(value: Any, schema: Mapping[str, Any], path: str, found: list[Problem]) -> None:
    if not isinstance(value, Mapping):
        found.append(Problem((path,), f"{path} must be a mapping of keys, got {_shown(value)}"))
        return
    for key in value:
        where = f"{path}.{key}" if path else str(key)
        if key in TARGET_KEYS:
            found.append(Problem((where,), f"{where}: lion_bench builds optimizers, tasks and loggers by name and "
                                            f"never instantiates a class from the config; remove {key}"))
        elif key not in schema:
            found.append(Problem((where,), f"unknown config key {where}; remove it (valid keys{f' of {path}' if path else ''}: "
                                            f"{', '.join(sorted(schema))})"))
    for key, spec in schema.items():
        where = f"{path}.{key}" if path else key
        if key not in value:
            if not (getattr(spec, "optional", False) or where in OPTIONAL_SUBTREES):
                found.append(Problem((where,), f"{where} is missing; add it back (see configs/)"))
        elif isinstance(spec, Mapping):
            _check_tree(value[key], spec, where, found)
        else:
            problem = spec.problem(value[key])
            if problem:
                found.append(Problem((where,), f"{where} {problem}"))


def tree_problems(value: Any, schema: Mapping[str, Any], path: str) -> list[Problem]:
    """What is wrong with ``value`` (the node at ``path``) against ``schema``: unknown and missing keys, types."""
    found: list[Problem] = []
    _check_tree(value, schema, path, found)
    return found


def _choose(config: Mapping[str, Any], group: str, schemas: Mapping[str, dict], found: list[Problem]) -> dict | None:
    node = config.get(group)
    name = node.get("name") if isinstance(node, Mapping) else None
    if name not in schemas:
        found.append(Problem((f"{group}.name",), f"unknown {group} {name!r}; valid {group}s: {', '.join(sorted(schemas))}"))
        return None
    return schemas[name]


def planned_steps(trainer: Mapping[str, Any]) -> int:
    """Optimizer steps of this run. ``budget: steps`` trains ``max_steps``; ``budget: tokens`` trains
    on the data that ``max_steps`` steps see at ``reference_batch_size`` (rounded down, at least one
    step), so runs at different batch sizes see the same number of tokens."""
    if trainer.get("budget", "steps") == "steps":
        return int(trainer["max_steps"])
    batch = int(trainer["batch_size"]) * int(trainer["grad_accum_steps"])
    return max(1, int(trainer["max_steps"]) * int(trainer["reference_batch_size"]) // batch)


# warmup_steps=auto: the smaller of this and a tenth of the run's steps (configs/trainer/default.yaml says why).
AUTO_WARMUP_STEPS = 20


def resolve_warmup(schedule: Mapping[str, Any], num_steps: int) -> int:
    """Warmup steps of a run of ``num_steps`` steps under ``schedule`` (a config's or a record's
    ``trainer.schedule``, old ones included): ``warmup_fraction`` of the steps (rounded) when set, so
    runs of different lengths (a token budget at several batch sizes) warm up over the same share of
    training; else ``warmup_steps``, where ``auto`` (the default) is the smaller of 20 steps and a tenth
    of the run (rounded down), so a run of any length fits its warmup."""
    fraction = schedule.get("warmup_fraction")
    if fraction is not None:
        return round(float(fraction) * num_steps)
    steps = schedule.get("warmup_steps", "auto")
    if steps == "auto":
        return min(AUTO_WARMUP_STEPS, num_steps // 10)
    return int(steps)


def _relation_problems(config: Mapping[str, Any]) -> list[Problem]:
    """Relations between keys whose values each passed their own check."""
    found = []
    trainer, task, optimizer = config["trainer"], config["task"], config["optimizer"]
    num_steps = planned_steps(trainer)
    schedule = trainer["schedule"]
    warmup = resolve_warmup(schedule, num_steps)
    if warmup >= num_steps > 0 and warmup > 0:
        keys = ("trainer.schedule.warmup_steps", "trainer.max_steps", "trainer.batch_size", "trainer.budget",
                "trainer.grad_accum_steps", "trainer.reference_batch_size", "trainer.schedule.warmup_fraction")
        setting = (f"warmup_steps={warmup}" if schedule.get("warmup_fraction") is None
                   else f"warmup_fraction={schedule['warmup_fraction']} ({warmup} steps)")
        found.append(Problem(keys, f"trainer.schedule.{setting} is not below the run's {num_steps} steps, so the lr "
                                   f"would never reach its value; set trainer.schedule.warmup_steps=auto (a tenth of the run, "
                                   f"at most 20 steps), below {num_steps} (0: none), or trainer.schedule.warmup_fraction=0.1"))
    model = task.get("model") if isinstance(task.get("model"), Mapping) else {}
    if "n_head" in model and "d_model" in model and model["d_model"] % model["n_head"]:
        found.append(Problem(("task.model.n_head", "task.model.d_model"),
                             f"task.model.n_head={model['n_head']} must divide task.model.d_model={model['d_model']}; "
                             "pick a head count that divides the width"))
    stride = (task.get("eval") or {}).get("stride") if isinstance(task.get("eval"), Mapping) else None
    if stride is not None and "seq_len" in model and stride > model["seq_len"]:
        found.append(Problem(("task.eval.stride", "task.model.seq_len"),
                             f"task.eval.stride={stride} must be at most task.model.seq_len={model['seq_len']}"))
    if optimizer["name"] == "lion" and optimizer.get("state_dtype") == "bf16" and optimizer["impl"] not in ("triton", "auto"):
        found.append(Problem(("optimizer.state_dtype", "optimizer.impl"),
                             f"optimizer.state_dtype=bf16 (bf16 momentum) needs optimizer.impl=triton, "
                             f"got {optimizer['impl']}"))
    found += derived_value_problems(config)
    search, sweep = None, config.get("sweep")
    if isinstance(sweep, Mapping) and isinstance(sweep.get("search"), Mapping):
        search = sweep["search"]
    for key, bounds in (search or {}).items():
        if bounds[0] >= bounds[1]:
            found.append(Problem((f"sweep.search.{key}",), f"sweep.search.{key} must be [low, high] with low < high, "
                                                           f"got {list(bounds)}"))
    return found


def derived_value_problems(config: Mapping[str, Any]) -> list[Problem]:
    """What the typed values resolve to: the absolute lr and weight decay of ratio space and their
    per-step decay factor (``runs.ratio.derived_problems``)."""
    optimizer = config["optimizer"]
    hyperparameters = resolved_values(config["base"], optimizer)
    decoupled = optimizer["name"] == "lion" and bool(optimizer.get("decoupled_weight_decay"))
    return [Problem(keys, message) for keys, message in derived_problems(hyperparameters, decoupled)]


def config_problems(config: Mapping[str, Any], plugin_tasks: Mapping[str, dict] | None = None) -> list[Problem]:
    """Everything wrong with ``config`` (resolved, without the ``hydra`` node), checked against the
    schema: unknown and missing keys, types, ranges, then relations between keys. ``plugin_tasks``:
    the schemas of tasks from installed packages (``tasks.plugin_task_schemas``), beside ``TASKS``."""
    found: list[Problem] = []
    schema = {**TOP, "sweep": SWEEP if config.get("sweep") is not None else Optional(Text())}
    tasks = {**TASKS, **(plugin_tasks or {})}
    for group, schemas in (("optimizer", OPTIMIZERS), ("task", tasks), ("logger", LOGGERS)):
        schema[group] = _choose(config, group, schemas, found)
    if found:  # an unknown optimizer, task or logger: its keys cannot be checked
        return found
    _check_tree(config, schema, "", found)
    return found or _relation_problems(config)
