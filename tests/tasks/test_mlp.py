"""The MLP task: teacher-student regression (default) and scikit-learn tabular classification."""

from __future__ import annotations

import pytest
import torch

from lion_bench.tasks import build_task
from lion_bench.trainer import train

CPU = torch.device("cpu")


def test_teacher_validation_set_is_fixed_and_training_is_fresh(make_config):
    cfg = make_config(["task=mlp"])
    first = build_task(cfg.task, batch_size=16, seed=0, device=CPU)
    second = build_task(cfg.task, batch_size=16, seed=1, device=CPU)
    assert first.val_x.shape == (2048, 32) and first.val_y.shape == (2048, 4)
    assert torch.equal(first.val_y, second.val_y)
    assert not torch.equal(first.train_batch()[0], second.train_batch()[0])
    assert not torch.equal(first.train_batch()[0], first.train_batch()[0])


def test_mlp_fits_the_teacher(make_config, tmp_path):
    cfg = make_config(["task=mlp", "optimizer=lion", "trainer.max_steps=100", "trainer.eval_every=100",
                       "trainer.progress=false", "device=cpu"])
    task = build_task(cfg.task, batch_size=16, seed=0, device=CPU)
    untrained = task.evaluate(task.build_model())["val_loss"]
    record = train(cfg, tmp_path)
    assert record["status"] == "finished"
    # The noise floor is 0.1 ** 2 = 0.01.
    assert 0.01 < record["final_val_loss"] < 0.5 * untrained


@pytest.mark.parametrize("source, num_features, num_classes", [("breast_cancer", 30, 2), ("digits", 64, 10)])
def test_mlp_classifies_sklearn_tables(make_config, tmp_path, source, num_features, num_classes):
    cfg = make_config(["task=mlp", f"task.data.source={source}", "optimizer=adamw", "trainer.max_steps=60",
                       "trainer.eval_every=60", "trainer.progress=false", "device=cpu"])
    task = build_task(cfg.task, batch_size=16, seed=0, device=CPU)
    assert task.val_x.shape[1] == num_features
    assert task.build_model()[-1].out_features == num_classes
    untrained = task.evaluate(task.build_model())
    record = train(cfg, tmp_path)
    assert record["status"] == "finished"
    assert record["final_val_loss"] < 0.5 * untrained["val_loss"]
    assert record["final_val_accuracy"] > 0.85


def test_bad_choices_list_the_valid_ones(make_config):
    cfg = make_config(["task=mlp", "task.data.source=iris"])
    with pytest.raises(ValueError, match="teacher, digits, breast_cancer, wine"):
        build_task(cfg.task, batch_size=16, seed=0, device=CPU)
    cfg = make_config(["task=mlp", "task.model.activation=swish"])
    with pytest.raises(ValueError, match="relu, gelu, tanh"):
        build_task(cfg.task, batch_size=16, seed=0, device=CPU).build_model()
