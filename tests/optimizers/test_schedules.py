from __future__ import annotations

import pytest
import torch

from lion_bench.optimizers import SCHEDULES, build_scheduler


def lrs(name, base_lr, total=100, warmup=10, final=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=base_lr)
    scheduler = build_scheduler(optimizer, name, total_steps=total, warmup_steps=warmup, final_fraction=final)
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


@pytest.mark.parametrize("name", SCHEDULES)
def test_warmup_reaches_peak(name):
    values = lrs(name, 1.0)
    assert values[0] == pytest.approx(0.1)
    assert values[9] == pytest.approx(1.0)
    assert max(values) == pytest.approx(1.0)


def test_cosine_and_linear_end_at_final_fraction():
    for name in ("cosine", "linear"):
        values = lrs(name, 1.0, total=101)
        assert values[-1] == pytest.approx(0.1)
        assert all(a >= b - 1e-12 for a, b in zip(values[9:], values[10:]))  # non-increasing after warmup


def test_constant_and_inverse_sqrt():
    assert lrs("constant", 1.0)[50] == pytest.approx(1.0)
    assert lrs("inverse_sqrt", 1.0, warmup=4)[15] == pytest.approx(0.5)


@pytest.mark.parametrize("name", SCHEDULES)
def test_dividing_the_lr_scales_the_whole_schedule(name):
    full, divided = lrs(name, 3e-3), lrs(name, 1e-3)
    for a, b in zip(full, divided):
        assert a == pytest.approx(3 * b)


def test_unknown_schedule_lists_valid_names():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="valid schedules: cosine, linear, constant, inverse_sqrt"):
        build_scheduler(torch.optim.SGD([p], lr=1.0), "step", total_steps=10, warmup_steps=0, final_fraction=0.0)
