"""The image task: digits (offline) trains a small CNN, evaluation is deterministic, and bad
sources fail with clear errors (CIFAR-10 needs `datasets` and is never fetched in tests)."""

from __future__ import annotations

import builtins

import pytest
import torch

from lion_bench.tasks import build_task
from lion_bench.trainer import train

CPU = torch.device("cpu")


def test_digits_split_is_fixed_and_normalized(make_config):
    cfg = make_config(["task=image"])
    first = build_task(cfg.task, batch_size=16, seed=0, device=CPU)
    second = build_task(cfg.task, batch_size=16, seed=1, device=CPU)
    assert first.train_x.shape == (1438, 1, 8, 8) and first.val_x.shape == (359, 1, 8, 8)
    # The held-out images do not depend on the run seed.
    assert torch.equal(first.val_x, second.val_x) and torch.equal(first.val_y, second.val_y)
    assert first.train_x.mean().abs() < 1e-4 and (first.train_x.std() - 1).abs() < 1e-3
    assert set(first.val_y.tolist()) == set(range(10))


def test_evaluation_is_deterministic(make_config):
    cfg = make_config(["task=image"])
    task = build_task(cfg.task, batch_size=16, seed=0, device=CPU)
    model = task.build_model()
    assert task.evaluate(model) == task.evaluate(model)


def test_cnn_learns_digits(make_config, tmp_path):
    cfg = make_config(["task=image", "optimizer=lion", "trainer.max_steps=60", "trainer.eval_every=60",
                       "trainer.progress=false", "device=cpu"])
    task = build_task(cfg.task, batch_size=16, seed=0, device=CPU)
    untrained = task.evaluate(task.build_model())
    record = train(cfg, tmp_path)
    assert record["status"] == "finished"
    assert untrained["val_accuracy"] < 0.2  # chance is 0.1
    assert record["final_val_loss"] < 0.5 * untrained["val_loss"]
    assert record["final_val_accuracy"] > 0.7


def test_unknown_source_lists_the_valid_ones(make_config):
    cfg = make_config(["task=image", "task.data.source=mnist"])
    with pytest.raises(ValueError, match="digits, cifar10"):
        build_task(cfg.task, batch_size=16, seed=0, device=CPU)


def test_cifar10_without_datasets_says_what_to_install(make_config, monkeypatch):
    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    cfg = make_config(["task=image", "task.data.source=cifar10"])
    with pytest.raises(ImportError, match=r"pip install 'lion-bench\[data\]'.*task.data.source=digits"):
        build_task(cfg.task, batch_size=16, seed=0, device=CPU)
