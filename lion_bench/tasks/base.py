"""The small base every task builds on.

A task owns its data and model and knows how to score the model. The training loop only calls:

    task.build_model() -> nn.Module
    task.train_batch() -> batch           (tensors on the task's device; next batch of the seeded stream)
    task.loss(model, batch) -> scalar     (mean loss in nats, or the task's unit; a device tensor)
    task.evaluate(model) -> {"val_loss": ..., ...}   (deterministic, on the fixed held-out split)
    task.final_evaluate(model) -> {...}   (once, after the last step: numbers that replace or add to
                                           the last evaluation's; default none)
    task.units_per_batch(batch) -> int    (tokens for LMs, examples otherwise)
    task.describe() -> dict               (data source and fingerprint, recorded in run.json)

Metric keys are canonical, so the trainer knows none of a task's own: ``val_loss`` (lower is
better; what runs are compared on), optionally ``val_bpc`` and ``val_accuracy``, and for a
held-out test split ``test_loss`` / ``test_bpc``; ``*_bytes`` and the like count what was scored.

Batches are drawn on the host from ``self.generator`` (so a seed gives the same batches on every
device) and copied to the device from pinned memory without blocking the host. The data position
is the state of ``self.generator``; ``state_dict`` and ``load_state_dict`` carry it across checkpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from lion_bench.runs.errors import BadInput

Batch = tuple[Tensor, ...]


@dataclass(frozen=True)
class MemoryNeed:
    """What one run of a task holds at once, from its config alone (``Task.estimate_memory``)."""

    num_params: int  # the model's parameters; the harness adds a gradient and optimizer state for each
    activation_values: int  # values one training micro-batch keeps for the backward pass
    data_bytes: int = 0  # bytes of data the task holds in host memory


class Task(ABC):
    name: str = ""
    # Name of the unit counted by ``units_per_batch`` ("tokens", "examples").
    unit: str = "examples"

    def __init__(self, cfg: Mapping[str, Any], *, batch_size: int, seed: int, device: torch.device):
        if batch_size < 1:
            raise BadInput(f"batch size must be >= 1, got {batch_size}")
        self.cfg = cfg
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def check_data(cls, cfg: Mapping[str, Any]) -> None:
        """Raise BadInput for data settings that cannot work, found from the config and file sizes
        alone (nothing is read, so it is cheap enough to run before anything else). Default: none."""

    @classmethod
    def data_identity(cls, cfg: Mapping[str, Any]) -> str:
        """What a trial's identity holds of its data, cheap to compute (``plan.trial_context``):
        a different value means different data. Default: the config alone defines the data."""
        return "config"

    @classmethod
    def estimate_memory(cls, cfg: Mapping[str, Any], batch_size: int) -> MemoryNeed | None:
        """What a run with task config ``cfg`` and micro-batches of ``batch_size`` holds at once,
        counted from the config without building anything, or None (the default): unknown, not
        checked. ``plan.memory_problem`` refuses a run whose need exceeds the memory available, so
        count only what is certainly held (a lower bound): a run that fits must never be refused."""
        return None

    @abstractmethod
    def build_model(self) -> nn.Module: ...

    @abstractmethod
    def train_batch(self) -> Batch: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> Tensor: ...

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def final_evaluate(self, model: nn.Module) -> dict[str, float]:
        """Numbers to report at the end of a run besides (or instead of) the evaluation the loop
        just ran at the last step; tasks with a costlier, fuller evaluation (every byte of a split, a
        test split) override this. Default: nothing more (evaluation is deterministic, so running
        ``evaluate`` again would only repeat the last step's numbers)."""
        return {}

    def units_per_batch(self, batch: Batch) -> int:
        return int(batch[0].shape[0])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def to_device(self, batch: Batch) -> Batch:
        """``batch`` on the task's device. From the CPU to a GPU the copy goes through pinned memory
        and does not block the host (the caching host allocator keeps each pinned buffer until its
        copy is done), so the host can prepare the next batch while the GPU trains on this one."""
        if self.device.type == "cpu":
            return batch
        return tuple(t.pin_memory().to(self.device, non_blocking=True) if not t.is_cuda else t for t in batch)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
