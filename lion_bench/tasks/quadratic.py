"""A noisy, ill-conditioned quadratic: least-squares linear regression whose features have
variances spread over ``condition_number``. Trains in well under a second; for tests and for
checking optimizer behaviour where the optimum is known (val_loss -> noise variance).
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import Batch, MemoryNeed, Task


class QuadraticTask(Task):
    name = "quadratic"
    description = "noisy, ill-conditioned least squares (linear regression); trains in under a second"
    unit = "examples"

    def __init__(self, cfg, **kwargs):
        super().__init__(cfg, **kwargs)
        self.dim = int(cfg.get("dim", 32))
        self.outputs = int(cfg.get("outputs", 4))
        condition_number = float(cfg.get("condition_number", 100.0))
        if self.dim < 1 or self.outputs < 1 or condition_number < 1:
            raise BadInput("quadratic task: dim and outputs must be >= 1, condition_number >= 1")
        self.noise = float(cfg.get("noise", 0.1))
        problem = torch.Generator().manual_seed(int(cfg.get("problem_seed", 1234)))
        # Feature scales from 1 down to 1/sqrt(condition_number): Hessian eigenvalues span it.
        self.scales = torch.logspace(0, -0.5 * torch.log10(torch.tensor(condition_number)).item(), self.dim)
        self.true_weight = torch.randn(self.outputs, self.dim, generator=problem)
        num_val = int(cfg.get("num_val", 1024))
        self.val = self._sample(num_val, problem)

    @classmethod
    def estimate_memory(cls, cfg, batch_size: int) -> MemoryNeed:
        """The linear model; per example its inputs, targets and outputs; the problem (validation
        set, true weights and scales)."""
        dim, outputs = int(cfg.get("dim", 32)), int(cfg.get("outputs", 4))
        num_val = int(cfg.get("num_val", 1024))
        return MemoryNeed(dim * outputs + outputs, batch_size * (dim + 2 * outputs),
                          4 * (num_val * (dim + outputs) + dim * outputs + dim))

    def _sample(self, count: int, generator: torch.Generator) -> Batch:
        x = torch.randn(count, self.dim, generator=generator) * self.scales
        y = x @ self.true_weight.T + self.noise * torch.randn(count, self.outputs, generator=generator)
        return x, y

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return nn.Linear(self.dim, self.outputs)

    def train_batch(self) -> Batch:
        return self.to_device(self._sample(self.batch_size, self.generator))

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        x, y = batch
        return F.mse_loss(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        x, y = self.to_device(self.val)
        return {"val_loss": F.mse_loss(model(x).float(), y).item()}

    def describe(self) -> dict:
        # The problem (true weights and validation set) is what the data is: its fingerprint.
        problem = b"".join(tensor.numpy().tobytes() for tensor in (self.true_weight, self.scales, *self.val))
        return {"name": self.name, "source": "synthetic", "sha256": hashlib.sha256(problem).hexdigest(),
                "dim": self.dim, "outputs": self.outputs}
