"""Each built-in task's memory estimate counts exactly the parameters its model has (the rest of the
estimate is a documented lower bound: see docs/bad_input.md)."""

from __future__ import annotations

import pytest
import torch
from compose import TINY_TEXT, compose_config

from lion_bench.checks import resolved_config
from lion_bench.tasks import build_task, estimate_memory


@pytest.mark.parametrize("overrides", [
    TINY_TEXT,
    [*TINY_TEXT, "task.model.n_layer=3", "task.model.d_model=48", "task.model.n_head=4"],
    ["task=lstm_conv", "task.data.max_bytes=200000", "task.model.seq_len=16", "task.model.num_lstm_layers=2"],
    ["task=image"],
    ["task=image", "task.model.channels=[8,4,2]"],
    ["task=mlp"],
    ["task=mlp", "task.data.source=wine", "task.model.hidden=[7,5]"],
    ["task=quadratic", "task.dim=9", "task.outputs=3"],
])
def test_the_estimate_counts_the_models_parameters(overrides):
    config = resolved_config(compose_config(["device=cpu", *overrides]))
    need = estimate_memory(config["task"], config["trainer"]["batch_size"])
    task = build_task(compose_config(["device=cpu", *overrides]).task, batch_size=4, seed=0, device=torch.device("cpu"))
    assert need.num_params == sum(parameter.numel() for parameter in task.build_model().parameters())
    assert need.activation_values > 0 and need.data_bytes > 0
