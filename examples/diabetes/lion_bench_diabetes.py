"""A lion-bench task from another package: scikit-learn's diabetes table (442 patients, 10 features,
one year's disease progression), regressed with a small MLP. Metric: val MSE of the standardized
target (1.0 is predicting the mean)."""

import hashlib

import torch
from torch import nn
from torch.nn import functional as F

from lion_bench.schema import Float, Int
from lion_bench.tasks.base import Task


class DiabetesTask(Task):
    description = "tabular regression: scikit-learn's diabetes table (442 x 10) with a small MLP"
    api_version = 1
    default_config = {"base_lr": 3e-3, "base_weight_decay": 0.01,  # the AdamW reference of ratio space
                      "data": {"val_fraction": 0.2, "split_seed": 0}, "model": {"hidden": 64}}
    # Ranges beyond each default's type (keys left out are checked against their default's type).
    config_schema = {"data": {"val_fraction": Float(0, 1, open_low=True, open_high=True), "split_seed": Int(0)},
                     "model": {"hidden": Int(1)}}

    def __init__(self, cfg, **kwargs):
        super().__init__(cfg, **kwargs)
        from sklearn.datasets import load_diabetes  # here, not at the top: lion-bench imports every plugin at start-up

        x, y = (torch.as_tensor(array, dtype=torch.float32) for array in load_diabetes(return_X_y=True))
        # A fixed split, the same for every run seed, standardized with training statistics.
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg["data"]["split_seed"]))
        num_val = round(len(x) * cfg["data"]["val_fraction"])
        train, val = order[num_val:], order[:num_val]
        x = (x - x[train].mean(0)) / x[train].std(0)
        y = (y - y[train].mean()) / y[train].std()
        self.train_x, self.train_y, self.val_x, self.val_y = x[train], y[train], x[val], y[val]

    @classmethod
    def data_identity(cls, cfg):
        return "sklearn:load_diabetes"  # the split and model are config keys: the config holds them

    def build_model(self):
        torch.manual_seed(self.seed)
        hidden = self.cfg["model"]["hidden"]
        return nn.Sequential(nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def train_batch(self):
        index = torch.randint(0, len(self.train_x), (self.batch_size,), generator=self.generator)
        return self.to_device((self.train_x[index], self.train_y[index]))

    def loss(self, model, batch):
        x, y = batch
        return F.mse_loss(model(x).squeeze(-1).float(), y)

    @torch.no_grad()
    def evaluate(self, model):
        x, y = self.to_device((self.val_x, self.val_y))
        return {"val_loss": F.mse_loss(model(x).squeeze(-1).float(), y).item()}

    def describe(self):
        digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in (self.train_x, self.train_y, self.val_x, self.val_y)))
        return {"name": self.name, "source": "sklearn:load_diabetes", "sha256": digest.hexdigest(),
                "num_train": len(self.train_x), "num_val": len(self.val_x)}
