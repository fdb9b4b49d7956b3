"""The image task: digits (offline) trains a small CNN, evaluation is deterministic, and bad
sources fail with clear errors (CIFAR-10 needs `datasets` and is never fetched in tests)."""

from __future__ import annotations

import builtins

import pytest
import torch

from lion_bench.runs.errors import BadInput
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
    with pytest.raises(BadInput, match=r"pip install 'lion-bench\[data\]'.*task.data.source=digits"):
        build_task(cfg.task, batch_size=16, seed=0, device=CPU)


def fake_cifar10(num_images: int = 40):
    datasets = pytest.importorskip("datasets")
    np = pytest.importorskip("numpy")
    from PIL import Image

    rng = np.random.default_rng(0)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(num_images)]
    labels = [i % 10 for i in range(num_images)]
    return datasets, datasets.Dataset.from_dict({"img": images, "label": labels}, features=features)


def test_cifar10_is_read_from_the_hub_dataset(make_config, monkeypatch):
    datasets, fake = fake_cifar10()
    requested = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: requested.append((name, split)) or fake)
    cfg = make_config(["task=image", "task.data.source=cifar10"])
    task = build_task(cfg.task, batch_size=4, seed=0, device=CPU)
    assert requested == [("uoft-cs/cifar10", "train")]
    assert task.train_x.shape == (32, 3, 32, 32) and task.val_x.shape == (8, 3, 32, 32)
    assert task.build_model()(task.val_x).shape == (8, 10)


def test_cifar10_offline_says_what_to_do(make_config, monkeypatch):
    datasets, _ = fake_cifar10()

    def offline(name, split):
        raise ConnectionError("Couldn't reach 'uoft-cs/cifar10' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    cfg = make_config(["task=image", "task.data.source=cifar10"])
    with pytest.raises(BadInput, match=r"(?s)could not load CIFAR-10.*Couldn't reach.*task.data.source=digits"):
        build_task(cfg.task, batch_size=4, seed=0, device=CPU)
