"""What every task owes the harness, checked once for all of them."""

from __future__ import annotations

import pytest
import torch

from compose import TINY_TEXT
from lion_bench.tasks import TASKS, build_task

CPU = torch.device("cpu")
SMALL_TEXT = [override for override in TINY_TEXT if override.startswith("task.data")]
# Overrides that keep each task small; enwik8 needs its file and has its own tests (test_enwik8.py).
OVERRIDES = {
    "text": TINY_TEXT,
    "lstm_conv": [*SMALL_TEXT, "task.model.seq_len=64", "task.eval.num_windows=16"],
    "image": [],
    "mlp": ["task.data.source=wine"],
    "quadratic": [],
}


def test_every_task_is_covered():
    assert set(TASKS) - {"enwik8"} == set(OVERRIDES)


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_evaluation_is_deterministic(make_config, name):
    task = build_task(make_config([f"task={name}", *OVERRIDES[name]]).task, batch_size=8, seed=0, device=CPU)
    model = task.build_model()
    first = task.evaluate(model)
    assert "val_loss" in first and first == task.evaluate(model)
