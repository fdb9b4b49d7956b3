"""What a run needs before it runs: the memory it holds at once on its device (refused when it cannot
fit) and the work of one training step (a warning when the CPU would take minutes per step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from lion_bench.devices import resolve_precision
from lion_bench.runs.memory import available_memory_bytes
from lion_bench.schema import Problem
from lion_bench.tasks import estimate_memory

# Where a memory problem lies (the optimizer's state is a small part: a sweep over optimizers is
# refused as a whole when the base config cannot fit).
MEMORY_KEYS = ("trainer.batch_size", "task.model", "task.data", "task.name", "trainer.precision")
# Bytes of optimizer state per parameter (fp32 state; Lion's bf16 momentum: 2).
OPTIMIZER_STATE_BYTES = {"adamw": 8, "lion": 4}
# Floating-point operations per training step above which a CPU run gets a warning: minutes per step.
SLOW_CPU_STEP_FLOPS = 1e13


def _size(num_bytes: float) -> str:
    """Bytes as people read them: 139 GB, 2.29 PB, 7.73 MB."""
    for scale, unit in ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.3g} {unit}"
    return f"{num_bytes:.0f} bytes"


@dataclass(frozen=True)
class MemoryUse:
    """What a run holds at once on its device, at least (``memory_use``), in bytes."""

    num_params: int
    model: int  # parameters, their gradients and the optimizer's state
    activations: int  # what one micro-batch keeps for the backward pass
    data: int  # the task's data (on the device's memory only on the CPU)

    @property
    def total(self) -> int:
        return self.model + self.activations + self.data


def memory_use(config: Mapping[str, Any], device: torch.device) -> MemoryUse | None:
    """What the task says the run holds at once (``Task.estimate_memory``: parameters, the values a
    micro-batch keeps, the data), in bytes on ``device``: 4 per parameter, 4 per gradient, the
    optimizer's state (``OPTIMIZER_STATE_BYTES``; 2 for Lion's bf16 momentum), 4 per kept value (2
    under bf16 autocast), and the data where it lives in the device's memory (the CPU). None when the
    task gives no estimate."""
    trainer, optimizer = config["trainer"], config["optimizer"]
    need = estimate_memory(config["task"], int(trainer["batch_size"]))
    if need is None:
        return None
    state = 2 if optimizer.get("state_dtype") == "bf16" else OPTIMIZER_STATE_BYTES.get(optimizer["name"], 0)
    value_bytes = 2 if resolve_precision(trainer["precision"], device) == "bf16" else 4
    return MemoryUse(need.num_params, need.num_params * (4 + 4 + state), need.activation_values * value_bytes,
                     need.data_bytes if device.type == "cpu" else 0)


def memory_need(config: Mapping[str, Any], device: torch.device) -> int | None:
    """Bytes a run holds at once on ``device``, at least (``memory_use``); None when unknown."""
    use = memory_use(config, device)
    return None if use is None else use.total


def memory_problem(config: Mapping[str, Any], device: torch.device) -> Problem | None:
    """A run that cannot fit in memory, found before anything is allocated: ``memory_use`` against
    what ``device`` has available (and, on a GPU, the data against the host's). The use counts only
    what is certainly held, so a run refused here could not have fit. None when it fits or the task
    gives no estimate."""
    use = memory_use(config, device)
    if use is None:
        return None
    available = available_memory_bytes(device)
    if available is not None and use.total > available:
        data = f", data {_size(use.data)}" if use.data else ""
        return Problem(MEMORY_KEYS, (
            f"this run needs at least {_size(use.total)} of {device.type} memory ({use.num_params:,} parameters "
            f"with their gradients and {config['optimizer']['name']} state {_size(use.model)}, the activations of a "
            f"batch of {config['trainer']['batch_size']} {_size(use.activations)}{data}), but {_size(available)} is "
            "available; lower trainer.batch_size or the model's size (task.model.*), or use a device with more memory"))
    if device.type != "cpu":
        data_bytes = estimate_memory(config["task"], int(config["trainer"]["batch_size"])).data_bytes
        host = available_memory_bytes(torch.device("cpu"))
        if host is not None and data_bytes > host:
            return Problem(MEMORY_KEYS, f"this run holds at least {_size(data_bytes)} of data in host memory, but "
                                        f"{_size(host)} is available; use less data (task.data.*)")
    return None


def transformer_step_flops(config: Mapping[str, Any]) -> float | None:
    """Rough floating-point operations of one training step of a byte transformer (6 per parameter
    and token, plus causal attention over the context), or None for tasks without one."""
    model, trainer = config["task"].get("model") or {}, config["trainer"]
    if not {"seq_len", "d_model", "n_layer", "n_head"} <= set(model):
        return None
    sequences = trainer["batch_size"] * trainer["grad_accum_steps"]
    seq_len, width, layers = model["seq_len"], model["d_model"], model["n_layer"]
    return 6.0 * 12 * layers * width**2 * sequences * seq_len + 6.0 * layers * sequences * seq_len**2 * width
