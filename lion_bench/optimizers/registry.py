"""Optimizers by config name. Only names in ``OPTIMIZERS`` can be built: no ``_target_`` classes."""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, Mapping

import torch
from torch import nn

from lion_bench.optimizers.lion import Lion


def param_groups(model: nn.Module, weight_decay: float, decay_vectors: bool = False) -> list[dict]:
    """Split parameters into a decayed group (tensors with >= 2 dims: matrices, embeddings) and an
    undecayed one (biases, norm gains), unless ``decay_vectors`` decays everything."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        (decay if decay_vectors or parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _build_adamw(groups: list[dict], cfg: Mapping[str, Any], lr: float, device_type: str):
    impl = cfg.get("impl", "auto")
    if impl not in ("auto", "fused", "foreach", "for_loop"):
        raise ValueError(f"adamw impl must be auto, fused, foreach or for_loop, got {impl!r}")
    if impl == "auto":
        impl = "fused" if device_type == "cuda" else "foreach"
    return torch.optim.AdamW(
        groups,
        lr=lr,
        betas=tuple(cfg.get("betas", (0.9, 0.999))),
        eps=float(cfg.get("eps", 1e-8)),
        fused=impl == "fused" or None,
        foreach=impl == "foreach" or (False if impl == "for_loop" else None),
    )


def _build_lion(groups: list[dict], cfg: Mapping[str, Any], lr: float, device_type: str):
    impl = cfg.get("impl", "auto")
    if impl == "auto":
        impl = "triton" if device_type == "cuda" and importlib.util.find_spec("triton") else "foreach"
    extra = {}
    if cfg.get("state_dtype") not in (None, "fp32", "float32"):
        extra["state_dtype"] = cfg["state_dtype"]
    return Lion(
        groups,
        lr=lr,
        betas=tuple(cfg.get("betas", (0.9, 0.99))),
        decoupled_weight_decay=bool(cfg.get("decoupled_weight_decay", False)),
        impl=impl,
        cautious=bool(cfg.get("cautious", False)),
        maximize=bool(cfg.get("maximize", False)),
        **extra,
    )


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": _build_adamw,
    "lion": _build_lion,
}


def check_optimizer_name(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(sorted(OPTIMIZERS))}")


def build_optimizer(
    cfg: Mapping[str, Any], model: nn.Module, *, lr: float, weight_decay: float, device_type: str
) -> torch.optim.Optimizer:
    """Build the optimizer named ``cfg["name"]`` with resolved absolute ``lr`` and ``weight_decay``."""
    check_optimizer_name(cfg["name"])
    groups = param_groups(model, weight_decay, bool(cfg.get("decay_vectors", False)))
    return OPTIMIZERS[cfg["name"]](groups, cfg, lr, device_type)
