"""From a composed config to a run plan: every check that needs no data and no model, and every
setting resolved (device, precision, compile, steps, hyperparameters), so that bad input fails
before any directory or record exists. Raises ``BadInput`` with a message that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from lion_bench.optimizers.registry import check_optimizer_name
from lion_bench.optimizers.schedules import check_schedule
from lion_bench.runs.errors import BadInput
from lion_bench.runs.ratio import resolve_hyperparameters
from lion_bench.tasks import check_task_name

BUDGETS = ("steps", "tokens")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_CHOICES = ("auto", True, False)


@dataclass(frozen=True)
class RunPlan:
    """A run's settings, resolved once: the loop reads plain values, never the config, on every step."""

    hyperparameters: dict[str, Any]
    num_steps: int
    warmup_steps: int  # resolved: schedule.warmup_fraction of the run when set, else schedule.warmup_steps
    device: torch.device
    precision: str  # resolved: fp32 | bf16 (autocast)
    compile: bool
    grad_accum_steps: int = 1
    grad_clip: float = 0.0  # 0: no clipping
    eval_every: int = 50
    log_every: int = 10
    divergence_factor: float = 4.0
    checkpoint_every: int = 0  # steps; 0: never
    checkpoint_minutes: float = 0.0  # wall time; 0: never
    progress: bool = True


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInput(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"device={name!r} but CUDA is not available here; use device=cpu or device=auto")
    return device


def planned_steps(trainer: DictConfig) -> int:
    """Optimizer steps of this run. ``budget: steps`` trains ``max_steps``; ``budget: tokens`` trains
    on the data that ``max_steps`` steps see at ``reference_batch_size`` (rounded down, at least one
    step), so runs at different batch sizes see the same number of tokens."""
    budget = trainer.get("budget", "steps")
    if budget not in BUDGETS:
        raise BadInput(f"trainer.budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if budget == "steps":
        return int(trainer.max_steps)
    reference = int(trainer.get("reference_batch_size") or 0)
    if reference < 1:
        raise BadInput(f"trainer.reference_batch_size must be >= 1 with budget=tokens, got {reference}")
    batch = int(trainer.batch_size) * int(trainer.grad_accum_steps)
    return max(1, int(trainer.max_steps) * reference // batch)


def resolve_warmup(schedule: DictConfig, num_steps: int) -> int:
    """Warmup steps: ``warmup_fraction`` of the run's steps (rounded) when set, so runs of different
    lengths (a token budget at several batch sizes) warm up over the same share of training;
    otherwise ``warmup_steps``."""
    fraction = schedule.get("warmup_fraction")
    if fraction is None:
        return int(schedule.warmup_steps)
    if not 0.0 <= float(fraction) < 1.0:
        raise BadInput(f"trainer.schedule.warmup_fraction must be in [0, 1), got {fraction}")
    return round(float(fraction) * num_steps)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise BadInput(f"trainer.precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def resolve_compile(value: Any, device: torch.device) -> bool:
    """``trainer.compile``: auto compiles on CUDA (see the trainer config for why), never on the CPU."""
    if value not in COMPILE_CHOICES:
        raise BadInput(f"trainer.compile must be auto, true or false, got {value!r}")
    return device.type == "cuda" if value == "auto" else bool(value)


def plan_run(cfg: DictConfig) -> RunPlan:
    """Check ``cfg`` and resolve it; raises BadInput for anything that cannot train."""
    try:
        check_optimizer_name(cfg.optimizer.name)
        check_task_name(cfg.task.name)
    except ValueError as error:
        raise BadInput(str(error)) from None
    hyperparameters = resolve_hyperparameters(cfg.base, cfg.optimizer)
    trainer = cfg.trainer
    for key in ("max_steps", "grad_accum_steps", "batch_size", "eval_every", "log_every"):
        if trainer[key] < 1:
            raise BadInput(f"trainer.{key} must be >= 1, got {trainer[key]}")
    for key in ("checkpoint_every", "checkpoint_minutes"):
        if trainer.get(key, 0) < 0:
            raise BadInput(f"trainer.{key} must be >= 0 (0: never), got {trainer[key]}")
    num_steps = planned_steps(trainer)
    schedule = trainer.schedule
    warmup_steps = resolve_warmup(schedule, num_steps)
    try:
        check_schedule(schedule.name, num_steps, warmup_steps, schedule.final_fraction)
    except ValueError as error:
        raise BadInput(str(error)) from None
    device = resolve_device(cfg.device)
    return RunPlan(
        hyperparameters=hyperparameters, num_steps=num_steps, warmup_steps=warmup_steps, device=device,
        precision=resolve_precision(trainer.precision, device),
        compile=resolve_compile(trainer.get("compile", "auto"), device),
        grad_accum_steps=int(trainer.grad_accum_steps), grad_clip=float(trainer.grad_clip),
        eval_every=int(trainer.eval_every), log_every=int(trainer.log_every),
        divergence_factor=float(trainer.divergence_factor), checkpoint_every=int(trainer.get("checkpoint_every") or 0),
        checkpoint_minutes=float(trainer.get("checkpoint_minutes") or 0), progress=bool(trainer.progress),
    )
