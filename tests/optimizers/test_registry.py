from __future__ import annotations

import pytest
import torch

from lion_bench import Lion
from lion_bench.optimizers import OPTIMIZERS, build_optimizer, param_groups


def model():
    return torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(ValueError) as error:
        build_optimizer({"name": "sgd"}, model(), lr=1e-3, weight_decay=0.0, device_type="cpu")
    assert "unknown optimizer 'sgd'" in str(error.value)
    for name in OPTIMIZERS:
        assert name in str(error.value)


def test_weight_decay_only_on_matrices_by_default():
    net = model()
    groups = param_groups(net, weight_decay=0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(net[0].weight), id(net[1].weight)}
    assert len(param_groups(net, 0.1, decay_vectors=True)) == 1


def test_lion_from_config():
    optimizer = build_optimizer(
        {"name": "lion", "betas": [0.95, 0.98], "impl": "torch", "cautious": True},
        model(), lr=2e-4, weight_decay=0.3, device_type="cpu",
    )
    assert isinstance(optimizer, Lion) and optimizer.impl == "torch"
    assert optimizer.param_groups[0]["betas"] == (0.95, 0.98)
    assert optimizer.param_groups[0]["cautious"] is True
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.3, 0.0]
    assert all(g["lr"] == 2e-4 for g in optimizer.param_groups)


def test_adamw_impl_choice():
    cpu = build_optimizer({"name": "adamw"}, model(), lr=1e-3, weight_decay=0.0, device_type="cpu")
    assert cpu.defaults["foreach"] is True and not cpu.defaults["fused"]
    with pytest.raises(ValueError, match="adamw impl must be"):
        build_optimizer({"name": "adamw", "impl": "apex"}, model(), lr=1e-3, weight_decay=0.0, device_type="cpu")


def test_lion_auto_impl_is_foreach_on_cpu():
    optimizer = build_optimizer({"name": "lion", "impl": "auto"}, model(), lr=1e-3, weight_decay=0.0, device_type="cpu")
    assert optimizer.impl == "foreach"


def test_lion_state_dtype_and_maximize_from_config():
    optimizer = build_optimizer(
        {"name": "lion", "impl": "foreach", "maximize": True, "state_dtype": None}, model(), lr=1e-3, weight_decay=0.0,
        device_type="cpu",
    )
    assert optimizer.param_groups[0]["maximize"] is True and optimizer.state_dtype is None
    with pytest.raises(ValueError, match="needs impl='triton'"):
        build_optimizer({"name": "lion", "impl": "foreach", "state_dtype": "bf16"}, model(), lr=1e-3, weight_decay=0.0,
                        device_type="cpu")
