"""The run record: one schema for ``run.json``, validated whenever a record is written or read.

``run.json`` is flat where people grep it: the final and best metrics are ``final_<metric>`` and
``best_<metric>`` keys (``final_val_loss``, ``best_val_bpc``, ...). The machine and the time
breakdown are nested (``environment``, ``time_s``). Records written before this schema existed
(no ``schema_version``) are read and converted; keys this code does not know are kept in ``extra``
and written back unchanged.

Non-finite numbers (a diverged loss, an infinite lr) are not JSON numbers: they are written as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (the spellings of JavaScript and of Python's
``json``) and read back as floats in every number field of a record (``hyperparameters``,
``final_*``, ``best_*``, ``initial_train_loss``, ``train_tokens_per_s``, ``time_s``), so every record
the trainer writes reads back the same. Records that stored them as null still read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Mapping

from lion_bench.runs.errors import RecordError

SCHEMA_VERSION = 2


class Status(str, Enum):
    FINISHED = "finished"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    @property
    def is_result(self) -> bool:
        """Finished and diverged runs are results: a sweep skips them, the report compares them."""
        return self in (Status.FINISHED, Status.DIVERGED)


class Outcome(str, Enum):
    """How one attempt at a trial ended (a line of its ``attempts.jsonl``): the status of the record it
    wrote, or skipped (its record was already a result) or busy (another process held its lock)."""

    FINISHED = "finished"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    SKIPPED = "skipped"
    BUSY = "busy"


REQUIRED_HYPERPARAMETERS = ("lr", "weight_decay", "base_lr", "base_weight_decay", "lr_divisor", "wd_multiplier")
# Keys of the first schema that now live in ``environment``.
_V1_ENVIRONMENT_KEYS = ("device", "device_name", "torch_version", "triton_version", "python_version",
                        "lion_bench_version", "git_sha", "num_threads", "cuda_visible_devices")


# How a non-finite float is spelled in run.json and metrics.jsonl, and back.
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_number(value: Any) -> Any:
    """``value``, with a non-finite float as its string spelling (``NON_FINITE``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    return value


def decode_number(value: Any) -> Any:
    """``value``, with a spelling of ``NON_FINITE`` as its float (anything else unchanged)."""
    return NON_FINITE[value] if isinstance(value, str) and value in NON_FINITE else value


def _decode_numbers(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _decode_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_numbers(item) for item in value]
    return decode_number(value)


# Fields of run.json whose numbers may be non-finite (besides final_* and best_*).
_NUMBER_FIELDS = ("hyperparameters", "initial_train_loss", "train_tokens_per_s", "time_s")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class RunRecord:
    status: Status
    trial_id: str
    config: dict[str, Any]
    started_at: str
    sweep: str | None = None
    arm: str | None = None
    task: str | None = None
    optimizer: str | None = None
    seed: int | None = None
    # Known once the run is built.
    hyperparameters: dict[str, Any] | None = None
    batch_size: int | None = None  # examples (sequences) per optimizer step, accumulation included
    budget: str | None = None
    planned_steps: int | None = None
    data: dict[str, Any] | None = None
    num_params: int | None = None
    unit: str | None = None  # what `tokens` counts: tokens (byte LMs) or examples
    environment: dict[str, Any] = field(default_factory=dict)
    # The outcome.
    steps: int = 0
    tokens: int = 0
    initial_train_loss: float | None = None
    final: dict[str, Any] = field(default_factory=dict)  # written as final_<key>
    best: dict[str, Any] = field(default_factory=dict)  # written as best_<key>
    # Seconds spent in startup, compile, train, eval, checkpoint; total = all of it.
    time_s: dict[str, float] = field(default_factory=dict)
    # Steady state: training steps only, after compilation and warm-up.
    train_tokens_per_s: float | None = None
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None
    optimizer_state_bytes: int | None = None
    resumed_from_step: int | None = None
    divergence: str | None = None
    diverged_at_step: int | None = None
    error: str | None = None
    finished_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def begin(cls, config: Mapping[str, Any], trial_id: str) -> RunRecord:
        """What is known before anything can fail (status failed until the run says otherwise)."""
        sweep = config.get("sweep")
        return cls(
            status=Status.FAILED, trial_id=trial_id, config=dict(config), started_at=now(),
            sweep=sweep.get("name") if isinstance(sweep, Mapping) else sweep,
            arm=config.get("arm"), task=(config.get("task") or {}).get("name"),
            optimizer=(config.get("optimizer") or {}).get("name"), seed=config.get("seed"),
        )

    # --- reading what people compare -----------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        """A record reads like its run.json: ``record["final_val_loss"]``, ``record["status"]``."""
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.to_dict()

    @property
    def final_val_loss(self) -> float:
        value = self.final.get("val_loss")
        return float(value) if _is_number(value) else math.nan

    @property
    def device_type(self) -> str | None:
        return self.environment.get("device_type")

    @property
    def wall_time_s(self) -> float | None:
        return self.time_s.get("total")

    # --- validation ----------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Why this record is not a valid record of its status (empty when it is one)."""
        found = []
        if not isinstance(self.status, Status):
            found.append(f"status {self.status!r} is not one of {', '.join(s.value for s in Status)}")
        if not isinstance(self.trial_id, str) or not self.trial_id:
            found.append("trial_id is missing")
        if not isinstance(self.config, dict):
            found.append("config is not a mapping")
        for name in ("final", "best", "environment", "time_s", "extra"):
            if not isinstance(getattr(self, name), dict):
                found.append(f"{name} is not a mapping")
        for prefix, metrics in (("final", self.final), ("best", self.best)) if not found else ():
            found += [f"{prefix}_{key} is {value!r}, not a number" for key, value in metrics.items()
                      if value is not None and not _is_number(value)]
        for name in ("steps", "tokens"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                found.append(f"{name} is {getattr(self, name)!r}, not a count")
        if found or not self.status.is_result:
            return found
        for name in ("task", "optimizer"):
            if not isinstance(getattr(self, name), str):
                found.append(f"{name} is missing")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool)):
            found.append(f"seed is {self.seed!r}, not an integer")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            found.append(f"batch_size is {self.batch_size!r}")
        hyper = self.hyperparameters
        if not isinstance(hyper, dict):
            found.append("hyperparameters are missing")
        else:
            found += [f"hyperparameters.{key} is missing or not a number" for key in REQUIRED_HYPERPARAMETERS
                      if not _is_number(hyper.get(key))]
            betas = hyper.get("betas")
            if not (isinstance(betas, list) and len(betas) == 2 and all(map(_is_number, betas))):
                found.append(f"hyperparameters.betas is {betas!r}, not two numbers")
        if self.status is Status.FINISHED and not math.isfinite(self.final_val_loss):
            found.append(f"a finished run without a finite final_val_loss ({self.final.get('val_loss')!r})")
        return found

    # --- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, **self.extra}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("final", "best"):
                out.update({f"{item.name}_{key}": metric for key, metric in value.items()})
            elif item.name != "extra":
                out[item.name] = value.value if isinstance(value, Status) else value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        """The record in ``data`` (parsed run.json); raises RecordError naming what is wrong."""
        if not isinstance(data, Mapping):
            raise RecordError(f"run.json holds {type(data).__name__}, not a record")
        data = dict(data)
        version = data.pop("schema_version", 1)
        if version == 1:
            data = _from_first_schema(data)
        elif version != SCHEMA_VERSION:
            raise RecordError(f"run.json has schema_version {version!r}; this lion_bench reads 1 and {SCHEMA_VERSION}")
        names = {item.name for item in fields(cls)} - {"final", "best", "extra"}
        known = {key: data.pop(key) for key in list(data) if key in names}
        for name in _NUMBER_FIELDS:
            if name in known:
                known[name] = _decode_numbers(known[name])
        final = {key[len("final_"):]: decode_number(data.pop(key)) for key in list(data) if key.startswith("final_")}
        best = {key[len("best_"):]: decode_number(data.pop(key)) for key in list(data) if key.startswith("best_")}
        missing = [key for key in ("status", "trial_id", "config", "started_at") if key not in known]
        if missing:
            raise RecordError(f"run.json lacks {', '.join(missing)}")
        try:
            known["status"] = Status(known["status"])
        except ValueError:
            raise RecordError(f"run.json: status {known['status']!r} is not one of "
                              f"{', '.join(s.value for s in Status)}") from None
        record = cls(**known, final=final, best=best, extra=data)
        problems = record.problems()
        if problems:
            raise RecordError(f"run.json: {'; '.join(problems)}")
        return record


def _from_first_schema(data: dict[str, Any]) -> dict[str, Any]:
    """Records written before ``schema_version`` existed: environment keys were flat, time was one number."""
    environment = {key: data.pop(key) for key in _V1_ENVIRONMENT_KEYS if key in data}
    if isinstance(environment.get("device"), str):
        environment["device_type"] = environment["device"].split(":")[0]
        precision = ((data.get("config") or {}).get("trainer") or {}).get("precision", "auto")
        environment["precision"] = ("bf16" if precision == "bf16" or (precision == "auto" and environment["device_type"]
                                                                      == "cuda") else "fp32")
    data["environment"] = environment
    if "wall_time_s" in data:
        data["time_s"] = {"total": data.pop("wall_time_s")}
    data.pop("tokens_per_s", None)  # wall-clock, evaluation included: recomputed from time_s when shown
    data.setdefault("started_at", "")
    return data
