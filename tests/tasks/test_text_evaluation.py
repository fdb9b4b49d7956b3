"""The byte LMs' evaluation (lion_bench/tasks/text.py ``_sum_loss``): the fixed validation windows and the
full-split windows with a stride score the same bytes as one plain forward pass over all windows, whatever
the evaluation batch size. (The split is copied to the task's device once and windows are gathered
there; on the CPU that is the host itself, so this checks the numbers, not the copies.)"""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from compose import TINY_TEXT, compose_config
from lion_bench.tasks import build_task

CPU = torch.device("cpu")


def reference_loss(model, data: torch.Tensor, starts, first_scored, seq_len: int) -> tuple[float, int]:
    """All windows in one forward pass, losses summed in float64 from first_scored[i] on, counted."""
    windows = torch.stack([data[start:start + seq_len + 1].long() for start in starts.tolist()])
    with torch.no_grad():
        logits = model(windows[:, :-1]).double()
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1), reduction="none")
    scored = torch.arange(seq_len)[None, :] >= first_scored[:, None]
    return losses.view(len(starts), seq_len)[scored].sum().item(), int(scored.sum())


@pytest.mark.parametrize("eval_batch_size", [1, 5, 32])
def test_fixed_windows_evaluate_as_all_windows_at_once(eval_batch_size):
    cfg = compose_config([*TINY_TEXT, "device=cpu", f"task.eval.batch_size={eval_batch_size}",
                          "task.eval.num_windows=12"])
    task = build_task(cfg.task, batch_size=4, seed=0, device=CPU)
    model = task.build_model()
    result = task.evaluate(model)
    total, count = reference_loss(model, task.val_data, task.val_starts, torch.zeros_like(task.val_starts), task.seq_len)
    assert count == 12 * task.seq_len
    assert result["val_loss"] == pytest.approx(total / count, rel=1e-6)
    assert result["val_bpc"] == pytest.approx(total / count / math.log(2), rel=1e-6)
    assert model.training  # put back in training mode


@pytest.mark.parametrize("stride", [9])
def test_full_split_windows_score_every_byte_once_as_all_windows_at_once(stride):
    cfg = compose_config([*TINY_TEXT, "device=cpu", "task.eval.batch_size=7", f"task.eval.stride={stride}",
                          "task.data.max_bytes=20000", "task.data.block_bytes=1000"])
    task = build_task(cfg.task, batch_size=4, seed=0, device=CPU)
    model = task.build_model()
    result = task.evaluate_full(model, task.val_data, "val")
    starts, first_scored = task.full_split_windows(len(task.val_data), stride)
    total, count = reference_loss(model, task.val_data, starts, first_scored, task.seq_len)
    assert count == result["val_bytes"] == len(task.val_data) - 1
    assert result["val_loss"] == pytest.approx(total / count, rel=1e-6)
