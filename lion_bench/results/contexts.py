"""What a verdict belongs to: a run's *setup* (everything but the optimizer, its lr, weight decay and
betas, and the seed), the contexts claims are judged in, and readable labels for them.

A setup holds the task, model, data fingerprint, batch size, steps, schedule and resolved warmup,
clipping, resolved precision and device type, the evaluation, and the committed study a run belongs
to. Keys that only say where or how a run was reported (paths, logging, checkpoints) are left out.
A claim's context is a setup plus what the claim keeps fixed beyond it (the AdamW reference lr,
each optimizer's weight decay, ...); labels are built from those fields, never a bare hash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lion_bench.runs.identity import config_hash
from lion_bench.runs.record import RunRecord

# Top-level config keys that are not the setup: the optimizer and its ratios, the seed, and reporting.
NON_SETUP_KEYS = ("optimizer", "arm", "base", "seed", "device", "logger", "output_root", "hydra", "sweep")
# Config keys replaced by resolved values (batch_size, steps, warmup_steps, precision) or that do not
# change what a run computes (where data comes from; logging, evaluation cadence, checkpoints).
NON_SETUP_PATHS = frozenset({
    "task.name", "task.base_lr", "task.base_weight_decay", "task.eval.batch_size",
    "task.data.path", "task.data.cache_dir", "task.data.download", "task.data.url",
    "trainer.batch_size", "trainer.grad_accum_steps", "trainer.max_steps", "trainer.budget",
    "trainer.reference_batch_size", "trainer.schedule.warmup_steps", "trainer.schedule.warmup_fraction",
    "trainer.precision", "trainer.compile", "trainer.progress", "trainer.log_every", "trainer.eval_every",
    "trainer.divergence_factor", "trainer.checkpoint_every", "trainer.checkpoint_minutes",
})
# Setup fields a budget context (batch size compared at a fixed token budget) does not hold.
PER_BATCH_FIELDS = ("batch_size", "steps", "warmup_steps")
# Fields the label spells out in its own words; any other field appears as key=value where contexts differ.
NAMED_FIELDS = frozenset({
    "task", "task.model.n_layer", "task.model.d_model", "task.model.seq_len", "batch_size", "steps",
    "budget", "schedule", "trainer.schedule.name", "precision", "device_type", "data_sha", "data_source",
    "study",
})


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
    """(resolved warmup steps, warmup fraction or None when warmup was given in steps)."""
    schedule = (record.config.get("trainer") or {}).get("schedule") or {}
    fraction = schedule.get("warmup_fraction")
    if fraction is not None:
        return round(float(fraction) * steps), float(fraction)
    return int(schedule.get("warmup_steps") or 0), None


def study_of(run_dir: str) -> str | None:
    """The committed study a run directory lies in: the nearest directory above it holding a README.md
    and a runs/ folder (``results/<study>/``). Its runs never pool with runs from elsewhere."""
    if run_dir.startswith("wandb:"):
        return None
    for parent in Path(run_dir).resolve().parents:
        if (parent / "README.md").is_file() and (parent / "runs").is_dir():
            return parent.name
    return None


def short_source(source: Any) -> str | None:
    """python-stdlib:/usr/lib/python3.12 -> stdlib; local:/data/x.txt -> x.txt; sklearn:load_wine -> sklearn."""
    if not isinstance(source, str) or not source:
        return None
    kind, _, where = source.partition(":")
    if kind == "python-stdlib":
        return "stdlib"
    if kind == "local" and where:
        return Path(where).name
    return kind


def setup_fields(record: RunRecord, source: str) -> dict[str, Any]:
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
        study=study_of(source),
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


def fields_id(fields: Mapping[str, Any]) -> str:
    return config_hash(dict(fields), drop=(), drop_trainer=(), num_hex=10)


# --- labels ------------------------------------------------------------------------------------------

def short_number(value: Any) -> str:
    """1e-3, 3.33e-4, 0.1, 0, 800: numbers as people write them in a label."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value == 0:
        return "0"
    if isinstance(value, int) or 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def count(value: float) -> str:
    """13107200 -> 13.1M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


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
    kind, amount = fields.get("warmup") or (None, None)
    if kind == "fraction":
        return f"warmup {amount:.0%}"
    return f"warmup {amount} steps" if kind == "steps" else ""


def _data(fields: Mapping[str, Any]) -> str:
    parts = [part for part in (fields.get("data_source"), (fields.get("data_sha") or "")[:6]) if part]
    return " ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_value(item) for item in value)
    return short_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def setup_labels(setups: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, str, str]]:
    """Setup id -> (head, device, tail) of its label. Head: task, model, batch, length, schedule; device:
    device type and precision; tail: data source and fingerprint, then ``key=value`` for every other field
    whose value differs between the setups given, then the committed study."""
    keys = sorted({key for fields in setups.values() for key in fields} - NAMED_FIELDS - {"warmup"})
    differing = [key for key in keys if len({repr(fields.get(key)) for fields in setups.values()}) > 1]
    short_names = {key: key.rsplit(".", 1)[-1] for key in differing}
    if len(set(short_names.values())) < len(short_names):
        short_names = {key: key for key in differing}
    labels = {}
    for setup_id, fields in setups.items():
        head = [fields.get("task") or "?", _model(fields)]
        if "budget" not in fields:
            head.append(f"bs{fields.get('batch_size')}")
        head += [_length(fields), str(fields.get("trainer.schedule.name") or ""), _warmup(fields)]
        device = " ".join(str(part) for part in (fields.get("device_type"), fields.get("precision")) if part)
        tail = [_data(fields), *(f"{short_names[key]}={_value(fields.get(key))}" for key in differing)]
        if fields.get("study"):
            tail.append(f"study {fields['study']}")
        labels[setup_id] = (" ".join(part for part in head if part), device, ", ".join(part for part in tail if part))
    return labels


@dataclass(frozen=True, order=True)
class Context:
    """One column of the verdict map: a setup (or budget setup) and what the claim fixes beyond it."""

    setup: str  # setup id (budget setup id for batch-size claims)
    fixed: tuple[str, ...] = ()  # what the label shows after the setup's head and device ("AdamW lr 1e-3")

    def label(self, setup_labels: Mapping[str, tuple[str, str, str]]) -> str:
        head, device, tail = setup_labels[self.setup]
        return ", ".join(part for part in (head, device, *self.fixed, tail) if part)
