"""Installed distributions made on the fly for the plugin tests: a ``*.dist-info`` (METADATA and
entry_points.txt) and its module in a directory that goes on ``sys.path`` (or PYTHONPATH), which is
all ``importlib.metadata.entry_points`` needs to find a package's entry points."""

from __future__ import annotations

import textwrap
from pathlib import Path

# A whole task in the contract's terms: fit y = 2x + 1 from noisy samples with one linear layer.
LINE_TASK = '''
import torch
from torch import nn
from torch.nn import functional as F

from lion_bench.tasks.base import Task


class LineTask(Task):
    """Fit a line from noisy samples (a plugin task of the tests)."""

    api_version = 1
    default_config = {"base_lr": 0.05, "base_weight_decay": 0.0, "noise": 0.1, "model": {"bias": True}}

    def build_model(self):
        torch.manual_seed(self.seed)
        return nn.Linear(1, 1, bias=self.cfg["model"]["bias"])

    def train_batch(self):
        x = torch.randn(self.batch_size, 1, generator=self.generator)
        return x, 2 * x + 1 + self.cfg["noise"] * torch.randn(x.shape, generator=self.generator)

    def loss(self, model, batch):
        x, y = batch
        return F.mse_loss(model(x), y)

    @torch.no_grad()
    def evaluate(self, model):
        x = torch.linspace(-1, 1, 64)[:, None]
        return {"val_loss": F.mse_loss(model(x), 2 * x + 1).item()}
'''


def add_distribution(root: Path, distribution: str, entry_points: dict[str, str], modules: dict[str, str],
                     version: str = "0.1") -> Path:
    """Write module files and a ``<distribution>-<version>.dist-info`` declaring ``entry_points``
    (task name -> "module:attribute") in the group lion_bench.tasks under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[lion_bench.tasks]\n{lines}")
    return root
