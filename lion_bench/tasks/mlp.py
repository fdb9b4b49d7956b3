"""A feedforward MLP (Linear + activation, repeated).

Data (``task.data.source``):
- ``teacher`` (default, synthetic): regression onto a fixed random two-layer tanh network
  ("teacher") plus Gaussian noise; fresh training examples every step, a fixed validation set.
  Metric: validation mean squared error; its floor is ``task.data.noise ** 2``.
- ``breast_cancer``, ``wine``, ``digits``: tabular classification sets that ship inside
  scikit-learn (569 x 30 features, 2 classes; 178 x 13, 3 classes; 1,797 x 64, 10 classes);
  features standardized with training statistics. Metric: validation cross-entropy and accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import Batch, MemoryNeed
from lion_bench.tasks.supervised import (
    SKLEARN_DATASETS,
    ArrayTask,
    load_sklearn_dataset,
    split_train_val,
)

MLP_SOURCES = ("teacher",) + SKLEARN_DATASETS
# Per scikit-learn table: (examples, features, classes).
TABLE_SHAPES = {"breast_cancer": (569, 30, 2), "wine": (178, 13, 3), "digits": (1797, 64, 10)}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class Teacher:
    """y = W2 tanh(W1 x) / sqrt(hidden) + noise, with x ~ N(0, I) and fixed Gaussian W1, W2."""

    def __init__(self, input_dim: int, hidden: int, output_dim: int, noise: float, generator: torch.Generator):
        self.first = torch.randn(hidden, input_dim, generator=generator) / input_dim**0.5
        self.second = torch.randn(output_dim, hidden, generator=generator) / hidden**0.5
        self.noise = noise

    def sample(self, count: int, generator: torch.Generator) -> Batch:
        x = torch.randn(count, self.first.shape[1], generator=generator)
        y = torch.tanh(x @ self.first.T) @ self.second.T
        return x, y + self.noise * torch.randn(y.shape, generator=generator)


class MLPTask(ArrayTask):
    name = "mlp"
    description = "MLP: regression onto a random teacher network, or scikit-learn tables (classification)"

    @classmethod
    def estimate_memory(cls, cfg, batch_size: int) -> MemoryNeed:
        """Parameters of the MLP; per example each hidden layer's output and the outputs (and, for the
        teacher, the sample it draws); the data (the teacher's weights and validation set)."""
        data, hidden = cfg["data"], [int(width) for width in cfg["model"]["hidden"]]
        if data["source"] == "teacher":
            inputs, outputs, examples = int(data["input_dim"]), int(data["output_dim"]), int(data["num_val"])
            sample = inputs + int(data["teacher_hidden"]) + outputs
            data_values = examples * (inputs + outputs) + int(data["teacher_hidden"]) * (inputs + outputs)
        else:
            examples, inputs, outputs = TABLE_SHAPES[data["source"]]
            sample, data_values = 0, examples * (inputs + 1)
        widths = [inputs, *hidden, outputs]
        params = sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:]))
        return MemoryNeed(params, batch_size * (sum(hidden) + outputs + sample), 4 * data_values)

    def load_data(self):
        data_cfg = self.cfg.data
        source = data_cfg.source
        self.teacher = None
        if source == "teacher":
            # The teacher and the validation set come from their own seed, never the run's stream.
            problem = torch.Generator().manual_seed(int(data_cfg.problem_seed))
            self.teacher = Teacher(
                int(data_cfg.input_dim), int(data_cfg.teacher_hidden), int(data_cfg.output_dim),
                float(data_cfg.noise), problem,
            )
            val_x, val_y = self.teacher.sample(int(data_cfg.num_val), problem)
            # Training examples are drawn fresh each step (train_batch); the train tensors stay empty.
            return val_x[:0], val_y[:0], val_x, val_y, "synthetic:teacher"
        if source not in SKLEARN_DATASETS:
            raise BadInput(f"unknown task.data.source {source!r}; valid: {', '.join(MLP_SOURCES)}")
        x, y = load_sklearn_dataset(source)
        train_x, train_y, val_x, val_y = split_train_val(x, y, float(data_cfg.val_fraction), int(data_cfg.split_seed))
        mean, std = train_x.mean(dim=0), train_x.std(dim=0)
        std[std < 1e-6] = 1.0  # features constant in training (digits' border pixels) are only centred
        return (train_x - mean) / std, train_y, (val_x - mean) / std, val_y, f"sklearn:load_{source}"

    def train_batch(self) -> Batch:
        if self.teacher is not None:
            return self.to_device(self.teacher.sample(self.batch_size, self.generator))
        return super().train_batch()

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        model_cfg = self.cfg.model
        if model_cfg.activation not in ACTIVATIONS:
            raise BadInput(f"unknown task.model.activation {model_cfg.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        widths = [self.val_x.shape[1]] + [int(width) for width in model_cfg.hidden]
        if min(widths) < 1:
            raise BadInput(f"task.model.hidden must hold positive widths, got {list(model_cfg.hidden)}")
        if self.teacher is not None:
            outputs = self.val_y.shape[1]
        else:
            outputs = int(torch.cat([self.train_y, self.val_y]).max()) + 1
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[model_cfg.activation]()]
        return nn.Sequential(*layers, nn.Linear(widths[-1], outputs))

    def describe(self) -> dict:
        description = super().describe()
        if self.teacher is not None:
            description["num_train"] = "fresh samples each step"
        return description
