"""A non-finite gradient ends a Lion run as diverged, although the fused kernel keeps the loss finite.

The kernel's sign(NaN) is 0: the coordinate stops moving and the loss stays finite, so only the kernel's
device flag, read by the trainer at log steps, shows it. (Runs on CPU through Triton's interpreter.)
"""

from __future__ import annotations

import math

import pytest

from compose import compose_config
from lion_bench.tasks.quadratic import QuadraticTask
from lion_bench.trainer import train

pytest.importorskip("triton")

POISONED_FROM_STEP = 3


def test_nan_gradient_is_a_divergence_named_at_its_step(tmp_path, monkeypatch):
    build_model = QuadraticTask.build_model
    backward_calls = []

    def poisoned_model(self):
        model = build_model(self)

        def poison(grad):
            backward_calls.append(1)
            if len(backward_calls) >= POISONED_FROM_STEP:
                grad = grad.clone()
                grad[0, 0] = math.nan
            return grad

        model.weight.register_hook(poison)
        return model

    monkeypatch.setattr(QuadraticTask, "build_model", poisoned_model)
    cfg = compose_config(["task=quadratic", "optimizer=lion", "optimizer.impl=triton", "device=cpu",
                          "trainer.max_steps=40", "trainer.log_every=5", "trainer.grad_clip=0",
                          "trainer.schedule.warmup_steps=0", "trainer.progress=false"])
    record = train(cfg, tmp_path)
    assert record.status.value == "diverged"
    assert "non-finite gradient" in record.divergence
    # Read every 5 steps: found at the read after step 3 (step 5), named from the first unread step.
    assert record.steps == 5 and record.diverged_at_step == 2
    assert math.isfinite(record.initial_train_loss)
