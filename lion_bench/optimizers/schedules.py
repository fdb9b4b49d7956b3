"""Learning-rate schedules as multipliers of the optimizer's base lr.

Each schedule maps a step to a factor; ``torch.optim.lr_scheduler.LambdaLR`` multiplies every
group's base lr by it. Because the schedule is a multiplier, dividing Lion's lr by a divisor
scales the initial, peak and final lr together.
"""

from __future__ import annotations

import math
from typing import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _warmup(step: int, warmup_steps: int) -> float:
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0


def cosine(step: int, *, total_steps: int, warmup_steps: int, final_fraction: float) -> float:
    """Linear warmup, then cosine decay from 1 to ``final_fraction`` at the last step."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear(step: int, *, total_steps: int, warmup_steps: int, final_fraction: float) -> float:
    """Linear warmup, then linear decay from 1 to ``final_fraction`` at the last step."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    return 1.0 - (1.0 - final_fraction) * progress


def constant(step: int, *, total_steps: int, warmup_steps: int, final_fraction: float) -> float:
    """Linear warmup, then constant."""
    return _warmup(step, warmup_steps)


def inverse_sqrt(step: int, *, total_steps: int, warmup_steps: int, final_fraction: float) -> float:
    """Linear warmup, then 1/sqrt(step / warmup_steps) (never below ``final_fraction``)."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    return max(final_fraction, math.sqrt(max(1, warmup_steps) / (step + 1)))


SCHEDULES: dict[str, Callable[..., float]] = {
    "cosine": cosine,
    "linear": linear,
    "constant": constant,
    "inverse_sqrt": inverse_sqrt,
}


def check_schedule(name: str, total_steps: int, warmup_steps: int, final_fraction: float) -> None:
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {name!r}; valid schedules: {', '.join(SCHEDULES)}")
    if warmup_steps < 0:
        raise ValueError(f"schedule warmup_steps must be >= 0, got {warmup_steps}")
    if not 0.0 <= final_fraction <= 1.0:
        raise ValueError(f"schedule final_fraction must be in [0, 1], got {final_fraction}")
    if total_steps < 1:
        raise ValueError(f"total steps must be >= 1, got {total_steps}")


def build_scheduler(
    optimizer: Optimizer, name: str, *, total_steps: int, warmup_steps: int, final_fraction: float
) -> LambdaLR:
    check_schedule(name, total_steps, warmup_steps, final_fraction)
    schedule = SCHEDULES[name]

    def factor(step: int) -> float:
        return schedule(
            step, total_steps=total_steps, warmup_steps=warmup_steps, final_fraction=final_fraction
        )

    return LambdaLR(optimizer, factor)
