"""The device a run trains on, and the precision and compilation that follow from it."""

from __future__ import annotations

from typing import Any

import torch

from lion_bench.runs.errors import BadInput


def resolve_device(name: str) -> torch.device:
    """``device``: auto (CUDA if this machine has it, else the CPU), cpu, cuda, cuda:N, or mps where
    it exists; anything this machine cannot train on raises BadInput."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInput(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"device={name!r} but CUDA is not available here; use device=cpu or device=auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise BadInput(f"device={name!r} but this machine has {count} CUDA device(s): use cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise BadInput(f"device={name!r} but MPS is not available here; use device=cpu or device=auto")
    elif device.type != "cpu" or device.index not in (None, 0):
        raise BadInput(f"device={name!r} is not one lion-bench trains on; use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``trainer.precision``: auto is bf16 autocast on CUDA, fp32 elsewhere."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def resolve_compile(value: Any, device: torch.device) -> bool:
    """``trainer.compile``: auto compiles on CUDA (see the trainer config for why), never on the CPU."""
    return device.type == "cuda" if value == "auto" else bool(value)
