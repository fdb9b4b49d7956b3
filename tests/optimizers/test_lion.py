"""Lion against references: a formula written here, lion-pytorch 0.2.5, and its own backends."""

from __future__ import annotations

import copy

import pytest
import torch

from lion_bench import Lion
from lion_bench.optimizers.lion import lion_update_foreach, lion_update_torch

SHAPES = [(1,), (1023,), (37, 29), (4, 3, 5)]


def make_params(seed: int = 0, shapes=SHAPES, dtype=torch.float32) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype)) for shape in shapes]


def set_grads(params, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
    # Exact zeros in the update direction must give sign(0) = 0.
    params[0].grad.zero_()


def run_steps(optimizer_factory, num_steps: int = 5, seed: int = 0, shapes=SHAPES):
    params = make_params(seed, shapes)
    optimizer = optimizer_factory(params)
    for step in range(num_steps):
        set_grads(params, seed=100 + step)
        optimizer.step()
    return params, optimizer


def lion_formula(p, m, g, lr, wd, beta1, beta2):
    """The update written out from the paper, independently of the implementation."""
    p = p * (1 - lr * wd)
    c = beta1 * m + (1 - beta1) * g
    p = p - lr * torch.sign(c)
    m = beta2 * m + (1 - beta2) * g
    return p, m


@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_torch_impl_matches_formula_exactly(wd):
    lr, beta1, beta2 = 0.01, 0.9, 0.99
    params = make_params()
    expected = [(p.detach().clone(), torch.zeros_like(p)) for p in params]
    optimizer = Lion(params, lr=lr, betas=(beta1, beta2), weight_decay=wd, impl="torch")
    for step in range(4):
        set_grads(params, seed=step)
        optimizer.step()
        expected = [lion_formula(p, m, q.grad, lr, wd, beta1, beta2) for (p, m), q in zip(expected, params)]
    for (p_ref, m_ref), p in zip(expected, params):
        torch.testing.assert_close(p.detach(), p_ref, rtol=0, atol=1e-7)
        torch.testing.assert_close(optimizer.state[p]["exp_avg"], m_ref, rtol=0, atol=1e-7)


def test_sign_of_zero_is_zero():
    p = torch.nn.Parameter(torch.ones(3))
    optimizer = Lion([p], lr=0.1, impl="torch")
    p.grad = torch.tensor([0.0, 1.0, -1.0])
    optimizer.step()
    assert p.detach().tolist() == pytest.approx([1.0, 0.9, 1.1])


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_torch_impl_bit_exact_with_lion_pytorch(decoupled, wd):
    lion_pytorch = pytest.importorskip("lion_pytorch")
    kwargs = dict(lr=3e-3, betas=(0.9, 0.99), weight_decay=wd, decoupled_weight_decay=decoupled)
    ours, _ = run_steps(lambda ps: Lion(ps, impl="torch", **kwargs), num_steps=6)
    theirs, _ = run_steps(lambda ps: lion_pytorch.Lion(ps, **kwargs), num_steps=6)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_decoupled_weight_decay_divides_by_each_groups_initial_lr():
    a, b = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))
    optimizer = Lion(
        [{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}],
        lr=0.1, weight_decay=0.2, decoupled_weight_decay=True, impl="torch",
    )
    a.grad, b.grad = torch.zeros(4), torch.zeros(4)
    optimizer.step()
    # Zero gradient: only decay acts, p *= 1 - lr * wd / initial_lr = 1 - wd for both groups.
    torch.testing.assert_close(a.detach(), torch.full((4,), 0.8))
    torch.testing.assert_close(b.detach(), torch.full((4,), 0.8))
    # A schedule halving the lr halves the decay too.
    for group in optimizer.param_groups:
        group["lr"] /= 2
    optimizer.step()
    torch.testing.assert_close(a.detach(), torch.full((4,), 0.8 * 0.9))


@pytest.mark.parametrize("cautious", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.3])
def test_foreach_matches_torch(cautious, wd):
    # Same arithmetic in the same order: equal to float32 rounding (the tolerance below is 1 ulp-ish).
    factory = lambda impl: lambda ps: Lion(ps, lr=1e-2, weight_decay=wd, cautious=cautious, impl=impl)
    reference, ref_opt = run_steps(factory("torch"), num_steps=6)
    candidate, cand_opt = run_steps(factory("foreach"), num_steps=6)
    for p_ref, p in zip(reference, candidate):
        torch.testing.assert_close(p, p_ref, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(cand_opt.state[p]["exp_avg"], ref_opt.state[p_ref]["exp_avg"], rtol=1e-6, atol=1e-7)


def test_update_functions_share_one_signature():
    for update in (lion_update_torch, lion_update_foreach):
        params = make_params()
        set_grads(params, 1)
        grads = [p.grad for p in params]
        exp_avgs = [torch.zeros_like(p) for p in params]
        before = [p.detach().clone() for p in params]
        with torch.no_grad():
            update(params, grads, exp_avgs, lr=0.1, weight_decay=0.0, beta1=0.9, beta2=0.99, cautious=False)
        for p, b, g, m in zip(params[1:], before[1:], grads[1:], exp_avgs[1:]):
            torch.testing.assert_close(p.detach(), b - 0.1 * torch.sign(g))
            torch.testing.assert_close(m, 0.01 * g)


def test_cautious_masks_disagreeing_entries_and_rescales():
    p = torch.nn.Parameter(torch.zeros(4))
    optimizer = Lion([p], lr=1.0, betas=(0.5, 0.99), impl="torch", cautious=True)
    optimizer.state[p]["exp_avg"] = torch.tensor([4.0, -4.0, 4.0, -4.0])
    # c = 0.5 m + 0.5 g: signs (+, -, +, -); agreement with g: (yes, no, no, yes) -> kept fraction 1/2.
    p.grad = torch.tensor([1.0, 1.0, -1.0, -1.0])
    optimizer.step()
    assert p.detach().tolist() == [-2.0, 0.0, 0.0, 2.0]


def test_state_dict_round_trip_and_cross_impl_load():
    reference, ref_opt = run_steps(lambda ps: Lion(ps, lr=1e-2, weight_decay=0.1, impl="torch"), num_steps=6)

    # Three steps with torch, save, load into foreach, three more: same as six with torch.
    params = make_params()
    first = Lion(params, lr=1e-2, weight_decay=0.1, impl="torch")
    for step in range(3):
        set_grads(params, seed=100 + step)
        first.step()
    saved = copy.deepcopy(first.state_dict())
    assert set(saved["state"][0]) == {"exp_avg"}
    second = Lion(params, lr=1e-2, weight_decay=0.1, impl="foreach")
    second.load_state_dict(saved)
    for step in range(3, 6):
        set_grads(params, seed=100 + step)
        second.step()
    for p_ref, p in zip(reference, params):
        torch.testing.assert_close(p, p_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(second.state_dict()["state"][1]["exp_avg"], ref_opt.state_dict()["state"][1]["exp_avg"])


def test_loads_a_lion_pytorch_state_dict():
    lion_pytorch = pytest.importorskip("lion_pytorch")
    params, theirs = run_steps(lambda ps: lion_pytorch.Lion(ps, lr=1e-2), num_steps=2)
    ours = Lion(params, lr=1e-2, impl="foreach")
    ours.load_state_dict(theirs.state_dict())
    set_grads(params, seed=7)
    ours.step()
    assert ours.param_groups[0]["cautious"] is False


def test_param_groups_use_their_own_hyperparameters():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    optimizer = Lion([{"params": [a]}, {"params": [b], "lr": 0.5, "betas": (0.0, 0.5)}], lr=0.1, impl="foreach")
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    optimizer.step()
    torch.testing.assert_close(a.detach(), torch.full((3,), -0.1))
    torch.testing.assert_close(b.detach(), torch.full((3,), -0.5))
    torch.testing.assert_close(optimizer.state[b]["exp_avg"], torch.full((3,), 0.5))


def test_works_with_lr_schedulers():
    p = torch.nn.Parameter(torch.zeros(2))
    optimizer = Lion([p], lr=1.0, impl="foreach")
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
    torch.testing.assert_close(p.detach(), torch.full((2,), -(1.0 + 0.5 + 0.25)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=0.0), "lr must be > 0, got lr=0.0"),
        (dict(lr=-1e-3), "lr must be > 0"),
        (dict(betas=(1.2, 0.9)), "betas[0] must be in [0, 1), got betas=(1.2, 0.9)"),
        (dict(betas=(0.9, 1.0)), "betas[1] must be in [0, 1)"),
        (dict(weight_decay=-0.1), "weight_decay must be >= 0, got weight_decay=-0.1"),
        (dict(impl="cuda"), "unknown impl 'cuda'; valid impls: torch, foreach, triton"),
        (dict(use_triton=True, impl="torch"), "use_triton=True conflicts with impl='torch'"),
    ],
)
def test_bad_hyperparameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError) as error:
        Lion([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    assert message in str(error.value)


def test_bad_group_hyperparameters_raise_value_error():
    with pytest.raises(ValueError, match="betas"):
        Lion([{"params": [torch.nn.Parameter(torch.zeros(2))], "betas": (0.9, 1.5)}])


@pytest.mark.parametrize("impl", ["torch", "foreach"])
@pytest.mark.parametrize("cautious", [False, True])
def test_maximize_is_minimizing_the_negated_gradient(impl, cautious):
    kwargs = dict(lr=1e-2, weight_decay=0.1, cautious=cautious, impl=impl)
    maximized, minimized = make_params(), make_params()
    maximizer = Lion(maximized, maximize=True, **kwargs)
    minimizer = Lion(minimized, **kwargs)
    for step in range(4):
        set_grads(maximized, seed=step)
        set_grads(minimized, seed=step)
        for p in minimized:
            p.grad.neg_()
        maximizer.step()
        minimizer.step()
    for a, b in zip(maximized, minimized):
        assert torch.equal(a, b)
        assert torch.equal(maximizer.state[a]["exp_avg"], minimizer.state[b]["exp_avg"])


def make_complex_params(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.complex64)) for shape in SHAPES]


def run_complex(factory, num_steps=4):
    params = make_complex_params()
    optimizer = factory(params)
    for step in range(num_steps):
        generator = torch.Generator().manual_seed(100 + step)
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator, dtype=torch.complex64)
        params[0].grad.zero_()
        optimizer.step()
    return params, optimizer


def test_complex_params_bit_exact_with_lion_pytorch_sgn():
    lion_pytorch = pytest.importorskip("lion_pytorch")
    kwargs = dict(lr=3e-3, betas=(0.9, 0.99), weight_decay=0.1)
    ours, _ = run_complex(lambda ps: Lion(ps, impl="torch", **kwargs))
    theirs, _ = run_complex(lambda ps: lion_pytorch.Lion(ps, **kwargs))
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    # sgn moves a complex coordinate by lr along c / |c| (a step of modulus lr), not lr on each part.
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.complex64))
    p.grad = torch.tensor([3 + 4j, -1j, 0, 2], dtype=torch.complex64)
    Lion([p], lr=0.5, impl="torch").step()
    torch.testing.assert_close(p.detach(), torch.tensor([-0.3 - 0.4j, 0.5j, 0, -0.5], dtype=torch.complex64))


def test_complex_params_foreach_matches_torch():
    kwargs = dict(lr=3e-3, weight_decay=0.1)
    reference, ref_opt = run_complex(lambda ps: Lion(ps, impl="torch", **kwargs))
    candidate, cand_opt = run_complex(lambda ps: Lion(ps, impl="foreach", **kwargs))
    for a, b in zip(candidate, reference):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(cand_opt.state[a]["exp_avg"], ref_opt.state[b]["exp_avg"], rtol=1e-6, atol=1e-7)


def test_complex_params_with_cautious_or_bf16_momentum_raise_value_error():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="complex parameters need cautious=False"):
        Lion([p], cautious=True)
    with pytest.raises(ValueError, match="state_dtype='bf16' is for real parameters"):
        Lion([p], impl="triton", state_dtype="bf16")


def test_param_group_added_later_gets_the_per_group_keys():
    optimizer = Lion([torch.nn.Parameter(torch.zeros(2))], lr=0.1, impl="torch", decoupled_weight_decay=True, seed=9)
    late = torch.nn.Parameter(torch.ones(2))
    optimizer.add_param_group({"params": [late], "lr": 0.05, "weight_decay": 0.2})
    group = optimizer.param_groups[1]
    assert (group["decoupled_wd_lr"], group["step"], group["seed"], group["maximize"]) == (0.05, 0, 9, False)
    late.grad = torch.zeros(2)
    optimizer.step()
    torch.testing.assert_close(late.detach(), torch.full((2,), 0.8))
    with pytest.raises(ValueError, match="betas"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "betas": (0.9, 1.0)})
