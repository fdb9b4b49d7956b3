"""The Task contract: what every task, built in or from another package, owes the harness.

Version ``TASK_API_VERSION`` (1). A task from another package (a *plugin*, registered under the
entry-point group ``lion_bench.tasks``; docs/your_own_task.md) subclasses ``Task``, sets
``api_version = 1`` and implements the four abstract methods; the rest has defaults.

The training loop calls, on an instance built as ``Task(cfg, batch_size=..., seed=..., device=...)``:

    task.build_model() -> nn.Module       (seeded: call torch.manual_seed(self.seed) first)
    task.train_batch() -> batch           (next batch of the seeded stream: draw from ``self.generator``;
                                           a tuple of tensors on the task's device: ``self.to_device``)
    task.loss(model, batch) -> scalar     (mean loss in nats, or the task's unit; a device tensor)
    task.evaluate(model) -> {"val_loss": ..., ...}   (deterministic, on a fixed held-out split that
                                           never depends on the run seed)
    task.final_evaluate(model) -> {...}   (once, after the last step: numbers that replace or add to
                                           the last evaluation's; default none)
    task.units_per_batch(batch) -> int    (tokens for LMs, examples otherwise)
    task.describe() -> dict               (JSON: the data source and a ``sha256`` fingerprint of the
                                           data used, recorded in run.json as ``data``)
    task.state_dict() / load_state_dict() (the data position, for resume; default: ``self.generator``;
                                           saved in checkpoints loaded with weights_only=True, so
                                           tensors, numbers, strings, lists and dicts only)

and before anything runs or is written, on the class, with the resolved task config (a mapping):

    Task.check_data(cfg) -> None          (raise BadInput, one line saying what to do, for data that
                                           cannot work; cheap: no training data is read if avoidable)
    Task.data_identity(cfg) -> str        (what a trial's identity holds of the data: a content hash,
                                           a checksum or a source name; different data, different value)

Metric keys are canonical, so the trainer knows none of a task's own: ``val_loss`` (lower is
better; what runs are compared on), optionally ``val_bpc`` and ``val_accuracy``, and for a
held-out test split ``test_loss`` / ``test_bpc``; ``*_bytes`` and the like count what was scored.

What a task declares about its config (plugins; built-in tasks keep theirs in configs/task/*.yaml
and lion_bench/schema.py): ``default_config``, the ``task=<name>`` node (``base_lr`` and
``base_weight_decay``, the AdamW reference of ratio space, plus the task's own keys; ``name`` is
the entry point's name), and ``config_schema``, the type of each key (``lion_bench.schema`` specs
such as ``Int(1)``, ``Float(0, 1)``, ``Choice("a", "b")``, ``Nullable(Text())``, or the Python types
int, float, bool, str; nested dicts for subtrees). Keys the schema leaves out get the type of their
default value. Unknown keys are refused and types checked, as for built-in tasks.

Batches are drawn on the host from ``self.generator`` (so a seed gives the same batches on every
device) and copied to the device from pinned memory without blocking the host. The data position
is the state of ``self.generator``; ``state_dict`` and ``load_state_dict`` carry it across checkpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from lion_bench.runs.errors import BadInput

Batch = tuple[Tensor, ...]
# The version of the contract above. A plugin declares the version it implements (``api_version``);
# lion-bench refuses one written for a version it does not know.
TASK_API_VERSION = 1


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
    # One line saying what is trained on what (lion-bench-tasks lists it).
    description: ClassVar[str] = ""
    # Plugins: the contract version implemented (TASK_API_VERSION), the task=<name> config and its schema.
    api_version: ClassVar[int | None] = None
    default_config: ClassVar[Mapping[str, Any] | None] = None
    config_schema: ClassVar[Mapping[str, Any] | None] = None

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
