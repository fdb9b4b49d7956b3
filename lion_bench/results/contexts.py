"""What a verdict belongs to: a run's *setup* (everything but the optimizer, its lr, weight decay and
betas, and the seed), the contexts claims are judged in, and the labels people read them by.

A setup holds the task, model, data fingerprint, batch size, steps, schedule and resolved warmup,
clipping, resolved precision and device type, and the evaluation. Keys that only say where or how a run was
reported (paths, logging, checkpoints) are left out. A claim's context is a setup plus what the claim keeps
fixed beyond it (the AdamW reference lr, each optimizer's weight decay, ...). Contexts are labelled by what
differs between the ones shown together (``short_labels``), with the full setting in a legend
(``describe``); never by a bare hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from lion_bench.results.format import count, short_number
from lion_bench.runs.hashing import config_hash
from lion_bench.runs.record import RunRecord
from lion_bench.schema import resolve_warmup

# Top-level config keys that are not the setup: the optimizer and its ratios, the seed, and reporting.
NON_SETUP_KEYS = ("optimizer", "arm", "base", "seed", "device", "logger", "output_root", "hydra", "sweep")
# Config keys replaced by resolved values (batch_size, steps, warmup_steps, precision) or that do not
# change what a run computes (where data comes from; logging, evaluation cadence, checkpoints).
NON_SETUP_PATHS = frozenset({
    "task.name", "task.base_lr", "task.base_weight_decay", "task.eval.batch_size",
    "task.data.path", "task.data.cache_dir", "task.data.download", "task.data.url", "task.data.source",
    "task.data.hf_dataset", "task.data.hf_config", "task.data.hf_split", "task.data.hf_column",
    "trainer.batch_size", "trainer.grad_accum_steps", "trainer.max_steps", "trainer.budget",
    "trainer.reference_batch_size", "trainer.schedule.warmup_steps", "trainer.schedule.warmup_fraction",
    "trainer.precision", "trainer.compile", "trainer.progress", "trainer.log_every", "trainer.eval_every",
    "trainer.divergence_factor", "trainer.checkpoint_every", "trainer.checkpoint_minutes",
})
# Setup fields a budget context (batch size compared at a fixed token budget) does not hold.
PER_BATCH_FIELDS = ("batch_size", "steps", "warmup_steps")
# How fields read in a label: name -> a function of the value (None: "name=value").
NAMED = {
    "task": str, "batch_size": lambda value: f"bs{value}", "steps": lambda value: f"{value} steps",
    "trainer.schedule.name": str, "precision": str, "device_type": str,
    "warmup_steps": lambda value: f"warmup {value}", "data_sha": lambda value: f"data {str(value)[:6]}",
    "data_source": lambda value: f"{value} corpus",
}


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = tuple(value) if isinstance(value, list) else value
    return flat


def planned_steps(record: RunRecord) -> int:
    """The steps the run was planned to train (its length; a diverged run stops earlier)."""
    if isinstance(record.planned_steps, int) and record.planned_steps > 0:
        return record.planned_steps
    trainer = record.config.get("trainer") or {}
    max_steps = int(trainer.get("max_steps") or record.steps or 1)
    if trainer.get("budget") == "tokens":
        return max(1, max_steps * int(trainer.get("reference_batch_size") or 1) // int(record.batch_size))
    return max_steps


def warmup(record: RunRecord, steps: int) -> tuple[int, float | None]:
    """(resolved warmup steps, warmup fraction or None when warmup was given in steps), by the rule the
    trainer used (``schema.resolve_warmup``)."""
    schedule = (record.config.get("trainer") or {}).get("schedule") or {}
    fraction = schedule.get("warmup_fraction")
    return resolve_warmup(schedule, steps), (float(fraction) if fraction is not None else None)


def short_source(source: Any) -> str | None:
    """python-stdlib:/usr/lib/python3.12 -> stdlib; local:/data/x.txt -> x.txt; sklearn:load_wine -> sklearn."""
    if not isinstance(source, str) or not source:
        return None
    kind, _, where = source.partition(":")
    if kind == "python-stdlib":
        return "stdlib"
    if kind == "local" and where:
        return where.rstrip("/").rsplit("/", 1)[-1]
    return kind


def setup_fields(record: RunRecord) -> dict[str, Any]:
    """The fields runs must share to be compared (all but the optimizer's settings and the seed)."""
    config = {key: value for key, value in record.config.items() if key not in NON_SETUP_KEYS}
    fields = {path: value for path, value in flatten(config).items() if path not in NON_SETUP_PATHS}
    steps = planned_steps(record)
    warmup_steps, _ = warmup(record, steps)
    data = record.data if isinstance(record.data, Mapping) else {}
    sha = data.get("sha256")
    fields.update(
        task=record.task, batch_size=int(record.batch_size), steps=steps, warmup_steps=warmup_steps,
        precision=record.environment.get("precision"), device_type=record.environment.get("device_type"),
        data_sha=sha[:12] if isinstance(sha, str) else None, data_source=short_source(data.get("source")),
    )
    return fields


def budget_fields(record: RunRecord, setup: Mapping[str, Any]) -> dict[str, Any]:
    """The setup without batch size and steps, with the budget instead: what batch sizes are compared within."""
    fields = {key: value for key, value in setup.items() if key not in PER_BATCH_FIELDS}
    trainer = record.config.get("trainer") or {}
    if trainer.get("budget") == "tokens":
        examples = int(trainer.get("max_steps") or 0) * int(trainer.get("reference_batch_size") or 0)
        fields["budget"] = ("tokens", examples)
    else:
        fields["budget"] = ("steps", setup["steps"])
    warmup_steps, fraction = warmup(record, setup["steps"])
    fields["warmup"] = ("fraction", fraction) if fraction is not None else ("steps", warmup_steps)
    return fields


def without(fields: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key not in keys}


def fields_id(fields: Mapping[str, Any]) -> str:
    return config_hash(dict(fields), drop=(), drop_trainer=(), num_hex=10)


# --- labels ------------------------------------------------------------------------------------------
def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_value(item) for item in value)
    return short_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _model(fields: Mapping[str, Any]) -> str:
    layers, width = fields.get("task.model.n_layer"), fields.get("task.model.d_model")
    context = fields.get("task.model.seq_len")
    parts = [f"{layers}x{width}"] if layers is not None and width is not None else []
    if context is not None:
        parts.append(f"ctx{context}")
    return " ".join(parts)


def _length(fields: Mapping[str, Any]) -> str:
    budget = fields.get("budget")
    if budget is None:
        return f"{fields.get('steps')} steps"
    kind, amount = budget
    if kind == "steps":
        return f"{amount} steps"
    context = fields.get("task.model.seq_len")
    return f"{count(amount * context)} tokens" if context else f"{count(amount)} examples"


def _warmup(fields: Mapping[str, Any]) -> str:
    kind, amount = fields.get("warmup") or ("steps", fields.get("warmup_steps"))
    if kind == "fraction":
        return f"warmup {amount:.0%}"
    return f"warmup {amount}" if amount is not None else ""


def describe(fields: Mapping[str, Any]) -> str:
    """The whole setting, for the legend: task, model, batch, length, schedule, device, data, and every other
    field as key=value."""
    named = {"task", "task.model.n_layer", "task.model.d_model", "task.model.seq_len", "batch_size", "steps",
             "budget", "trainer.schedule.name", "warmup", "warmup_steps", "precision", "device_type", "data_sha",
             "data_source"}
    head = [str(fields.get("task") or "?"), _model(fields)]
    if "budget" not in fields:
        head.append(f"bs{fields.get('batch_size')}")
    head += [_length(fields), str(fields.get("trainer.schedule.name") or ""), _warmup(fields),
             " ".join(str(part) for part in (fields.get("device_type"), fields.get("precision")) if part)]
    data = " ".join(str(part) for part in (fields.get("data_source"), (fields.get("data_sha") or "")[:6]) if part)
    rest = [f"{key.rsplit('.', 1)[-1]}={_value(value)}" for key, value in sorted(fields.items())
            if key not in named and value is not None]
    return ", ".join(part for part in (" ".join(p for p in head if p), data, *rest) if part)


def _differences(fields: Mapping[str, Any], differing: list[str]) -> list[str]:
    parts = []
    for key in differing:
        value = fields.get(key)
        if key in NAMED:
            parts.append(NAMED[key](value) if value is not None else f"no {key}")
        elif key == "budget":
            parts.append(_length(fields))
        elif key == "warmup":
            parts.append(_warmup(fields))
        else:
            parts.append(f"{key.rsplit('.', 1)[-1]}={_value(value)}")
    return parts


def short_labels(setups: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Setup id -> what sets it apart from the other setups given: the task and model when tasks differ
    (``mlp``, ``text 6x512 ctx1024``), then what differs between the setups of the same task (``bs64, 500
    steps``); the task and model alone for a setup that is its task's only one."""
    by_task: dict[Any, dict[str, Mapping[str, Any]]] = {}
    for setup_id, fields in setups.items():
        by_task.setdefault(fields.get("task"), {})[setup_id] = fields
    labels = {}
    for task, group in by_task.items():
        keys = sorted({key for fields in group.values() for key in fields})
        differing = [key for key in keys if len({repr(fields.get(key)) for fields in group.values()}) > 1]
        for setup_id, fields in group.items():
            head = " ".join(p for p in (str(task or "?"), _model(fields)) if p)
            parts = _differences(fields, differing)
            labels[setup_id] = ", ".join(([head] if len(by_task) > 1 or not parts else []) + parts)
    return labels


@dataclass(frozen=True, order=True)
class Context:
    """One column of the verdict map: a setup (or budget setup) and what the claim fixes beyond it."""

    setup: str  # setup id (budget setup id for batch-size claims; a cross-setup id for cross-task claims)
    fixed: tuple[str, ...] = ()  # what the label shows after the setup's ("AdamW lr 1e-3", "wd 0")
    attrs: tuple[tuple[str, Any], ...] = ()  # what a protocol question may select it by ("reference_lr", 1e-3)

    def label(self, setup_labels: Mapping[str, str]) -> str:
        return ", ".join(part for part in (setup_labels.get(self.setup, ""), *self.fixed) if part)
