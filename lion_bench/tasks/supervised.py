"""The shared base of supervised tasks whose data fits in memory: fixed train and validation
tensors, seeded random minibatches, and a full pass over the validation split to evaluate.

Classification (integer targets) scores cross-entropy (nats) and accuracy; regression (float
targets) scores mean squared error.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import Batch, Task

SKLEARN_DATASETS = ("digits", "breast_cancer", "wine")


def load_sklearn_dataset(name: str) -> tuple[Tensor, Tensor]:
    """(features float32 (n, d), labels int64 (n,)) of a dataset that ships inside scikit-learn."""
    if name not in SKLEARN_DATASETS:
        raise BadInput(f"unknown scikit-learn dataset {name!r}; valid: {', '.join(SKLEARN_DATASETS)}")
    try:
        from sklearn import datasets
    except ImportError as missing:
        raise BadInput(
            f"the {name!r} dataset ships with scikit-learn, which is not installed: pip install scikit-learn"
        ) from missing
    bunch = getattr(datasets, f"load_{name}")()
    return torch.as_tensor(bunch.data, dtype=torch.float32), torch.as_tensor(bunch.target, dtype=torch.int64)


def split_train_val(x: Tensor, y: Tensor, val_fraction: float, split_seed: int) -> Batch:
    """A fixed random split (the same for every run seed): (train x, train y, val x, val y)."""
    if not 0.0 < val_fraction < 1.0:
        raise BadInput(f"task.data.val_fraction must be in (0, 1), got {val_fraction}")
    num_val = max(1, round(len(x) * val_fraction))
    if num_val >= len(x):
        raise BadInput(f"task.data.val_fraction={val_fraction} leaves no training examples of the {len(x)}; "
                       f"use at most {(len(x) - 1) / len(x):.3g}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    val, train = order[:num_val], order[num_val:]
    return x[train], y[train], x[val], y[val]


class ArrayTask(Task):
    """Subclasses return the four tensors from ``load_data`` and build the model."""

    unit = "examples"

    def __init__(self, cfg, **kwargs):
        super().__init__(cfg, **kwargs)
        self.train_x, self.train_y, self.val_x, self.val_y, self.source = self.load_data()
        self.classification = not self.train_y.is_floating_point()

    @classmethod
    def data_identity(cls, cfg) -> str:
        # Built-in datasets (scikit-learn's, CIFAR-10's training split) named by source; the synthetic
        # teacher is defined by its config keys.
        return f"source:{cfg['data']['source']}"

    @abstractmethod
    def load_data(self) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
        """(train x, train y, val x, val y, a description of the source)."""

    def train_batch(self) -> Batch:
        index = torch.randint(0, len(self.train_x), (self.batch_size,), generator=self.generator)
        return self.to_device((self.train_x[index], self.train_y[index]))

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        x, y = batch
        output = model(x).float()
        return F.cross_entropy(output, y) if self.classification else F.mse_loss(output, y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        # Summed on the device and read once: no host sync per chunk.
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        num_correct = torch.zeros((), dtype=torch.int64, device=self.device)
        batch_size = int(self.cfg.eval.batch_size)
        for x, y in zip(self.val_x.split(batch_size), self.val_y.split(batch_size)):
            x, y = self.to_device((x, y))
            output = model(x).float()
            if self.classification:
                total_loss += F.cross_entropy(output, y, reduction="sum")
                num_correct += (output.argmax(dim=1) == y).sum()
            else:
                # Mean over output dimensions, summed over examples.
                total_loss += F.mse_loss(output, y, reduction="sum") / y[0].numel()
        model.train(was_training)
        num_val = len(self.val_x)
        result = {"val_loss": total_loss.item() / num_val}
        if self.classification:
            result["val_accuracy"] = num_correct.item() / num_val
        return result

    def describe(self) -> dict:
        digest = hashlib.sha256()
        for tensor in (self.train_x, self.train_y, self.val_x, self.val_y):
            digest.update(tensor.contiguous().numpy().tobytes())
        return {
            "name": self.name,
            "source": self.source,
            "sha256": digest.hexdigest(),
            "num_train": len(self.train_x),
            "num_val": len(self.val_x),
        }
