"""Ratio space: an optimizer's lr and weight decay relative to a named AdamW reference.

``base.lr`` and ``base.weight_decay`` are the AdamW reference. An optimizer config may carry
``lr_divisor`` and ``wd_multiplier`` (Lion does; AdamW does not, so it uses the base values):

    lr = base.lr / lr_divisor        weight_decay = base.weight_decay * wd_multiplier

Each value may be fine while what it resolves to is not (``lr_divisor=1e-320`` makes an infinite
lr), so the resolved values are checked too (``derived_problems``): the lr within float32's normal
range (the optimizers compute in float32: above it the lr is inf, below it 0 or imprecise), the weight
decay finite, and the per-step decay factor ``1 - lr * weight_decay`` (Lion with
``decoupled_weight_decay``: ``1 - weight_decay`` at the schedule's peak) in (0, 1], since at 0 it
zeroes the decayed weights and below 0 flips their sign every step.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from lion_bench.runs.errors import BadInput

FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32
FLOAT32_MAX = 3.4028234663852886e38
LR_KEYS = ("base.lr", "optimizer.lr_divisor", "task.base_lr")
WEIGHT_DECAY_KEYS = ("base.weight_decay", "optimizer.wd_multiplier", "task.base_weight_decay")


def resolve_hyperparameters(base: Mapping[str, Any], optimizer: Mapping[str, Any]) -> dict[str, Any]:
    """Absolute hyperparameters of one run, next to the ratios they came from.

    Raises BadInput, naming the value, for anything that cannot train.
    """
    base_lr = float(base["lr"])
    base_weight_decay = float(base["weight_decay"])
    lr_divisor = float(optimizer.get("lr_divisor", 1.0))
    wd_multiplier = float(optimizer.get("wd_multiplier", 1.0))
    betas = [float(beta) for beta in optimizer.get("betas", ())]
    if not (math.isfinite(base_lr) and base_lr > 0):
        raise BadInput(f"base.lr must be a finite number > 0, got {base['lr']}")
    if not (math.isfinite(base_weight_decay) and base_weight_decay >= 0):
        raise BadInput(f"base.weight_decay must be a finite number >= 0, got {base['weight_decay']}")
    if not (math.isfinite(lr_divisor) and lr_divisor > 0):
        raise BadInput(f"optimizer.lr_divisor must be > 0, got {optimizer.get('lr_divisor')}")
    if not (math.isfinite(wd_multiplier) and wd_multiplier >= 0):
        raise BadInput(f"optimizer.wd_multiplier must be >= 0, got {optimizer.get('wd_multiplier')}")
    if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
        raise BadInput(f"optimizer.betas must be two numbers in [0, 1), got {list(optimizer.get('betas', ()))}")
    resolved = resolved_values(base, optimizer)
    problems = derived_problems(resolved, bool(optimizer.get("decoupled_weight_decay", False)))
    if problems:
        raise BadInput(problems[0][1])
    return resolved


def resolved_values(base: Mapping[str, Any], optimizer: Mapping[str, Any]) -> dict[str, Any]:
    """The absolute hyperparameters, computed without any check (``resolve_hyperparameters`` checks)."""
    base_lr, base_weight_decay = float(base["lr"]), float(base["weight_decay"])
    lr_divisor = float(optimizer.get("lr_divisor", 1.0))
    wd_multiplier = float(optimizer.get("wd_multiplier", 1.0))
    return {
        "optimizer": optimizer["name"],
        "lr": base_lr / lr_divisor,
        "weight_decay": base_weight_decay * wd_multiplier,
        "base_lr": base_lr,
        "base_weight_decay": base_weight_decay,
        "lr_divisor": lr_divisor,
        "wd_multiplier": wd_multiplier,
        "betas": [float(beta) for beta in optimizer.get("betas", ())],
    }


def derived_problems(hyperparameters: Mapping[str, Any], decoupled: bool = False) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with resolved hyperparameters whose parts each passed their own checks:
    (the config keys involved, one line that says what to do) for each problem."""
    hyper = hyperparameters
    lr, weight_decay = hyper["lr"], hyper["weight_decay"]
    lr_text = (f"base.lr / optimizer.lr_divisor = {_shown(hyper['base_lr'])} / {_shown(hyper['lr_divisor'])}"
               if hyper["lr_divisor"] != 1 else "base.lr")
    fix_lr = "set base.lr and optimizer.lr_divisor so that the lr is a step size (1e-6 to 1 are usual)"
    found = []
    if not math.isfinite(lr) or lr > FLOAT32_MAX:
        found.append((LR_KEYS, f"the resolved lr {lr_text} = {lr:.3g} {_too_large(lr)} (the optimizers compute in "
                               f"float32); {fix_lr}"))
    elif lr < FLOAT32_TINY:
        found.append((LR_KEYS, f"the resolved lr {lr_text} = {lr:.3g} is below {FLOAT32_TINY:.2g}, the smallest "
                               f"normal float32 (the optimizers compute in float32: it would be 0 or imprecise); "
                               f"{fix_lr}"))
    wd_text = (f"base.weight_decay * optimizer.wd_multiplier = {_shown(hyper['base_weight_decay'])} * "
               f"{_shown(hyper['wd_multiplier'])}" if hyper["wd_multiplier"] != 1 else "base.weight_decay")
    if not math.isfinite(weight_decay) or weight_decay > FLOAT32_MAX:
        found.append((WEIGHT_DECAY_KEYS, f"the resolved weight decay {wd_text} = {weight_decay:.3g} "
                                         f"{_too_large(weight_decay)}; lower base.weight_decay or "
                                         "optimizer.wd_multiplier"))
    if found:
        return found
    decay = weight_decay if decoupled else lr * weight_decay
    if decay >= 1:
        step = (f"with optimizer.decoupled_weight_decay=true each step multiplies the decayed weights by "
                f"1 - weight_decay (at the schedule's peak) = 1 - {weight_decay:.3g}" if decoupled else
                f"each step multiplies the decayed weights by 1 - lr * weight_decay = 1 - {lr:.3g} * "
                f"{weight_decay:.3g}")
        effect = "zeroes them" if decay == 1 else "flips their sign"
        keep = ("the weight decay below 1 (lower base.weight_decay or optimizer.wd_multiplier)" if decoupled else
                "lr * weight_decay below 1 (lower base.weight_decay or optimizer.wd_multiplier, or the lr)")
        found.append(((*WEIGHT_DECAY_KEYS, *LR_KEYS, "optimizer.decoupled_weight_decay"),
                      f"{step} = {1 - decay:.3g}, which {effect}; keep {keep}"))
    return found


def _shown(value: float) -> str:
    """A number as typed: the shortest text that reads back as it (3, 0.002, 1e-320)."""
    text = repr(value)
    return text.removesuffix(".0")


def _too_large(value: float) -> str:
    return "is not a finite number" if not math.isfinite(value) else \
        f"is above {FLOAT32_MAX:.3g}, the largest float32"
