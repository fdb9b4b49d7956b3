"""One table of optimizers under test, each converging on a quadratic and on Rosenbrock."""

from __future__ import annotations

import pytest
import torch

from lion_bench import Lion
from lion_bench.optimizers import build_optimizer

# name -> (factory(params, lr), lr for the quadratic, lr for Rosenbrock)
OPTIMIZERS_UNDER_TEST = {
    "lion_torch": (lambda ps, lr: Lion(ps, lr=lr, impl="torch"), 0.02, 3e-3),
    "lion_foreach": (lambda ps, lr: Lion(ps, lr=lr, impl="foreach"), 0.02, 3e-3),
    "adamw": (lambda ps, lr: torch.optim.AdamW(ps, lr=lr, weight_decay=0.0), 0.1, 3e-2),
}


def minimize(factory, lr, loss_fn, start, num_steps):
    p = torch.nn.Parameter(start.clone())
    optimizer = factory([p], lr)
    # Linear decay to 0: sign-based steps shrink with the lr, so Lion settles instead of hovering.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / num_steps)
    for _ in range(num_steps):
        optimizer.zero_grad()
        loss_fn(p).backward()
        optimizer.step()
        scheduler.step()
    return p.detach()


@pytest.mark.parametrize("name", OPTIMIZERS_UNDER_TEST)
def test_converges_on_ill_conditioned_quadratic(name):
    factory, lr, _ = OPTIMIZERS_UNDER_TEST[name]
    curvature = torch.logspace(0, 2, 10)  # condition number 100
    optimum = torch.linspace(-1, 1, 10)
    loss_fn = lambda p: 0.5 * (curvature * (p - optimum) ** 2).sum()
    start = torch.zeros(10)
    final = minimize(factory, lr, loss_fn, start, num_steps=500)
    assert loss_fn(final) < 1e-3 * loss_fn(start)


@pytest.mark.parametrize("name", OPTIMIZERS_UNDER_TEST)
def test_converges_on_rosenbrock(name):
    factory, _, lr = OPTIMIZERS_UNDER_TEST[name]
    loss_fn = lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2
    final = minimize(factory, lr, loss_fn, torch.tensor([-1.5, 2.0]), num_steps=3000)
    torch.testing.assert_close(final, torch.tensor([1.0, 1.0]), atol=1e-2, rtol=0)


def test_adamw_baseline_is_torch_adamw():
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.LayerNorm(4))
    reference = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.LayerNorm(4))
    reference.load_state_dict(model.state_dict())
    ours = build_optimizer({"name": "adamw", "betas": [0.9, 0.95]}, model, lr=1e-2, weight_decay=0.1, device_type="cpu")
    assert type(ours) is torch.optim.AdamW
    decay = [p for p in reference.parameters() if p.ndim >= 2]
    no_decay = [p for p in reference.parameters() if p.ndim < 2]
    theirs = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-2, betas=(0.9, 0.95)
    )
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    for net, optimizer in ((model, ours), (reference, theirs)):
        for _ in range(5):
            optimizer.zero_grad()
            net(x).pow(2).mean().backward()
            optimizer.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_lion_training_is_deterministic():
    def train_once():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))
        optimizer = build_optimizer({"name": "lion"}, net, lr=1e-3, weight_decay=0.1, device_type="cpu")
        x, y = torch.randn(32, 6), torch.randn(32, 1)
        for _ in range(10):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            optimizer.step()
        return [p.detach().clone() for p in net.parameters()]

    for a, b in zip(train_once(), train_once()):
        assert torch.equal(a, b)
