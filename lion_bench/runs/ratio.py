"""Ratio space: an optimizer's lr and weight decay relative to a named AdamW reference.

``base.lr`` and ``base.weight_decay`` are the AdamW reference. An optimizer config may carry
``lr_divisor`` and ``wd_multiplier`` (Lion does; AdamW does not, so it uses the base values):

    lr = base.lr / lr_divisor        weight_decay = base.weight_decay * wd_multiplier
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from lion_bench.runs.errors import BadInput


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
    return {
        "optimizer": optimizer["name"],
        "lr": base_lr / lr_divisor,
        "weight_decay": base_weight_decay * wd_multiplier,
        "base_lr": base_lr,
        "base_weight_decay": base_weight_decay,
        "lr_divisor": lr_divisor,
        "wd_multiplier": wd_multiplier,
        "betas": betas,
    }
