"""Lion's fused Triton kernel against the torch impl and an fp32 reference.

On CUDA the kernel runs compiled; without CUDA it runs through Triton's interpreter (tests/conftest.py
sets TRITON_INTERPRET=1 before the kernel module is imported), so sizes stay modest.

Bounds used below:
- fp32 params: momentum equal to the torch impl within 1e-6 relative (fma placement may differ
  by an ulp). Params equal within 1e-6 relative, except elements whose sign(c) flipped because
  |c| was within rounding of 0: at most 1 per 10,000 elements (and 1 in any case), each off by
  at most 2 * lr per step.
- bf16 storage (params or momentum): against the same math in fp32 rounded to bf16 after each
  step, within 1 bf16 ulp (relative 2**-7) elementwise. Params may differ by up to 2 lr only
  where c is 0 in exact arithmetic (|c| <= 1e-6 of its terms): bf16 momentum and grads cancel
  exactly (g = -9 m) often enough to be seen in a few thousand elements.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from lion_bench import Lion  # noqa: E402
from lion_bench.optimizers.lion import lion_update_torch  # noqa: E402
from lion_bench.optimizers import lion_triton  # noqa: E402
from lion_bench.optimizers.lion_triton import LionTritonCache, lion_update_triton  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
LR = 1e-3
FLIPS_PER_ELEMENT = 1e-4
BF16_RTOL = 2.0**-7

# ~50 tensors of assorted shapes: a zero-size one, blocks that end exactly, odd tails.
MIXED_SHAPES = [(1,), (1023,), (0,), (4096,), (4097,), (3, 5, 7), (64, 33), (8191,)] + [
    (7 * k + 1, k % 5 + 1) for k in range(42)
]


def make_params(shapes, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=generator).to(DEVICE, dtype)) for s in shapes]


def set_grads(params, seed):
    generator = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator).to(DEVICE, p.dtype)
    params[0].grad.zero_()  # with zero momentum: c = 0 exactly, sign(0) = 0


def clone_params(params):
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def count_sign_flips(actual, expected, *, rtol, atol, lr):
    """Elements outside rtol/atol; each may only be a flipped sign(c): off by at most 2 lr (+ rounding)."""
    difference = (actual.detach().double() - expected.detach().double()).abs()
    tolerance = rtol * expected.detach().double().abs() + atol
    outside = difference > tolerance
    if outside.any():
        assert float(difference[outside].max()) <= 2 * lr + 2 * float(tolerance[outside].max())
    return int(outside.sum())


def assert_params_match(candidate, reference, num_steps, lr=LR):
    """Equal within fp32 rounding, except a bounded count of sign flips."""
    num_elements = sum(p.numel() for p in reference)
    num_flips = sum(
        count_sign_flips(p, p_ref, rtol=1e-6, atol=1e-7, lr=lr * num_steps) for p, p_ref in zip(candidate, reference)
    )
    assert num_flips <= max(1, FLIPS_PER_ELEMENT * num_elements), f"{num_flips} elements differ"


def assert_state_match(candidate_opt, candidate, reference_opt, reference):
    for p, p_ref in zip(candidate, reference):
        torch.testing.assert_close(
            candidate_opt.state[p]["exp_avg"], reference_opt.state[p_ref]["exp_avg"], rtol=1e-6, atol=1e-7
        )


def run(impl, params, num_steps, first_seed=100, **kwargs):
    optimizer = Lion(params, impl=impl, **kwargs)
    for step in range(num_steps):
        set_grads([p for group in optimizer.param_groups for p in group["params"]], seed=first_seed + step)
        optimizer.step()
    return optimizer


CONFIGS = {
    "plain": dict(lr=LR),
    "wd": dict(lr=LR, weight_decay=0.5),
    "decoupled_wd": dict(lr=LR, weight_decay=1e-4, decoupled_weight_decay=True),
    "cautious_wd": dict(lr=LR, weight_decay=0.5, cautious=True, betas=(0.95, 0.98)),
}


@pytest.mark.parametrize("config", CONFIGS)
def test_matches_torch_impl_on_mixed_shapes(config):
    reference = make_params(MIXED_SHAPES)
    candidate = clone_params(reference)
    reference_opt = run("torch", reference, num_steps=3, **CONFIGS[config])
    candidate_opt = run("triton", candidate, num_steps=3, **CONFIGS[config])
    assert_params_match(candidate, reference, num_steps=3)
    assert_state_match(candidate_opt, candidate, reference_opt, reference)


@pytest.mark.parametrize("cautious", [False, True])
def test_matches_torch_impl_on_a_large_odd_matrix(cautious):
    reference = make_params([(1823, 781), (1,)])
    candidate = clone_params(reference)
    kwargs = dict(lr=LR, weight_decay=0.1, cautious=cautious)
    num_steps = 1 if cautious else 2  # the interpreter is slow; cautious runs two passes a step
    reference_opt = run("torch", reference, num_steps=num_steps, **kwargs)
    candidate_opt = run("triton", candidate, num_steps=num_steps, **kwargs)
    assert_params_match(candidate, reference, num_steps=num_steps)
    assert_state_match(candidate_opt, candidate, reference_opt, reference)


def test_sign_of_zero_is_zero_and_decay_comes_first():
    p = torch.nn.Parameter(torch.full((5,), 2.0, device=DEVICE))
    optimizer = Lion([p], lr=0.1, weight_decay=0.5, use_triton=True)
    p.grad = torch.tensor([0.0, 1.0, -1.0, 0.0, 3.0], device=DEVICE)
    optimizer.step()
    # p * (1 - 0.1 * 0.5) = 1.9, then -0.1 * sign(0.1 * g)
    torch.testing.assert_close(p.detach().cpu(), torch.tensor([1.9, 1.8, 2.0, 1.9, 1.8]))


def test_two_param_groups_use_their_own_hyperparameters():
    def groups(params):
        return [
            {"params": params[:25], "lr": 2e-3, "weight_decay": 0.2, "betas": (0.8, 0.9)},
            {"params": params[25:], "weight_decay": 0.0, "cautious": True},
        ]

    reference = make_params(MIXED_SHAPES)
    candidate = clone_params(reference)
    reference_opt = run("torch", groups(reference), num_steps=3, lr=LR)
    candidate_opt = run("triton", groups(candidate), num_steps=3, lr=LR)
    assert_params_match(candidate, reference, num_steps=3, lr=2e-3)
    assert_state_match(candidate_opt, candidate, reference_opt, reference)


def bf16_storage_reference(p, m, g, lr, wd, beta1, beta2):
    """The update in fp32 registers, rounded to the storage dtypes at the end of the step."""
    p32, m32, g32 = p.float(), m.float(), g.float()
    p32 = p32 * (1 - lr * wd)
    p32 = p32 - lr * torch.sign(beta1 * m32 + (1 - beta1) * g32)
    m32 = beta2 * m32 + (1 - beta2) * g32
    return p32.to(p.dtype), m32.to(m.dtype)


@pytest.mark.parametrize(
    "param_dtype, state_dtype",
    [(torch.bfloat16, None), (torch.bfloat16, "fp32"), (torch.float32, "bf16"), (torch.float16, "bf16")],
)
def test_low_precision_storage_against_fp32_math(param_dtype, state_dtype):
    lr, wd, beta1, beta2 = 1e-2, 0.1, 0.9, 0.99
    params = make_params(MIXED_SHAPES[:20] + [(300, 7)], dtype=param_dtype)
    optimizer = Lion(params, lr=lr, weight_decay=wd, betas=(beta1, beta2), use_triton=True, state_dtype=state_dtype)
    expected_state_dtype = {None: param_dtype, "fp32": torch.float32, "bf16": torch.bfloat16}[state_dtype]
    expected = None
    for step in range(4):
        set_grads(params, seed=step)
        if expected is None:
            expected = [(p.detach().clone(), torch.zeros_like(p, dtype=expected_state_dtype)) for p in params]
        before = expected
        expected = [bf16_storage_reference(p, m, q.grad, lr, wd, beta1, beta2) for (p, m), q in zip(expected, params)]
        optimizer.step()
        # Compare to the reference of this step only, so rounding differences do not compound.
        for (p_ref, m_ref), (_, m_before), p in zip(expected, before, params):
            state = optimizer.state[p]["exp_avg"]
            assert p.dtype == param_dtype and state.dtype == expected_state_dtype
            torch.testing.assert_close(state.float(), m_ref.float(), rtol=BF16_RTOL, atol=1e-6)
            difference = (p.detach().double() - p_ref.double()).abs()
            outside = difference > BF16_RTOL * p_ref.double().abs() + 1e-6
            # Low-precision m and g cancel exactly (g = -9 m, say) far more often than fp32 ones: there
            # c is 0 in exact arithmetic and its rounded sign is arbitrary. Only those may differ.
            m64, g64 = m_before.double()[outside], p.grad.double()[outside]
            c64 = beta1 * m64 + (1 - beta1) * g64
            assert bool((c64.abs() <= 1e-6 * (beta1 * m64.abs() + (1 - beta1) * g64.abs())).all())
            assert bool((difference[outside] <= 2 * lr + 2 * BF16_RTOL * p_ref.double().abs()[outside]).all())
        expected = [(p.detach().clone(), optimizer.state[p]["exp_avg"].clone()) for p in params]


@pytest.mark.parametrize("source, target", [("triton", "torch"), ("torch", "triton"), ("triton", "foreach")])
def test_checkpoint_moves_between_impls(source, target):
    kwargs = dict(lr=LR, weight_decay=0.1)
    reference = make_params(MIXED_SHAPES[:12])
    reference_opt = run("torch", reference, num_steps=4, **kwargs)

    params = clone_params(make_params(MIXED_SHAPES[:12]))
    first = run(source, params, num_steps=2, **kwargs)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = Lion(params, impl=target, **kwargs)
    second.load_state_dict(torch.load(buffer, weights_only=True))
    for step in range(2, 4):
        set_grads(params, seed=100 + step)
        second.step()
    assert_params_match(params, reference, num_steps=4)
    assert_state_match(second, params, reference_opt, reference)


def test_bf16_state_checkpoint_resumes_identically():
    kwargs = dict(lr=LR, weight_decay=0.1, use_triton=True, state_dtype="bf16")
    straight = make_params(MIXED_SHAPES[:10])
    resumed = clone_params(straight)
    run("triton", straight, num_steps=4, first_seed=100, **{k: v for k, v in kwargs.items() if k != "use_triton"})
    first = run("triton", resumed, num_steps=2, **{k: v for k, v in kwargs.items() if k != "use_triton"})
    state = first.state_dict()
    second = Lion(resumed, **kwargs)
    second.load_state_dict(state)  # casts exp_avg to the param dtype; the step restores bf16
    for step in range(2, 4):
        set_grads(resumed, seed=100 + step)
        second.step()
    assert all(second.state[p]["exp_avg"].dtype == torch.bfloat16 for p in resumed)
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)


def test_lr_tensor_is_read_on_the_device():
    by_float = make_params(MIXED_SHAPES[:6])
    by_tensor = clone_params(by_float)
    lr = torch.tensor([LR], dtype=torch.float64, device=DEVICE)
    float_opt = Lion(by_float, lr=LR, weight_decay=0.1, use_triton=True)
    tensor_opt = Lion(by_tensor, lr=lr, weight_decay=0.1, use_triton=True)
    for step in range(3):
        set_grads(by_float, seed=step)
        set_grads(by_tensor, seed=step)
        float_opt.param_groups[0]["lr"] = LR * (step + 1)
        lr.fill_(LR * (step + 1))  # in place: the optimizer holds this very tensor
        float_opt.step()
        tensor_opt.step()
    for a, b in zip(by_float, by_tensor):
        assert torch.equal(a, b)


def test_update_function_signature_matches_torch():
    params = make_params(MIXED_SHAPES[:8])
    set_grads(params, seed=3)
    reference = [p.detach().clone() for p in params]
    grads = [p.grad for p in params]
    exp_avgs = [torch.randn_like(p) for p in params]
    reference_exp_avgs = [m.clone() for m in exp_avgs]
    kwargs = dict(lr=0.1, weight_decay=0.2, beta1=0.9, beta2=0.99, cautious=True)
    with torch.no_grad():
        lion_update_torch(reference, grads, reference_exp_avgs, **kwargs)
        lion_update_triton([p.detach() for p in params], grads, exp_avgs, **kwargs)
    assert_params_match(params, reference, num_steps=1, lr=0.1 / 1e-3)  # cautious scale up to 1000x
    for m, m_ref in zip(exp_avgs, reference_exp_avgs):
        torch.testing.assert_close(m, m_ref, rtol=1e-6, atol=1e-7)


def test_cached_tables_follow_size_and_dtype_at_a_reused_address():
    # Views at one address stand in for a freed tensor whose memory a new one reuses.
    buffers = [torch.zeros(64, device=DEVICE) for _ in range(3)]
    cache = LionTritonCache()  # one cache across the calls, as Lion keeps one per param group
    for numel, dtype in [(3, torch.float32), (17, torch.float32), (17, torch.bfloat16)]:
        p, g, m = (buffer.view(dtype)[:numel] for buffer in buffers)
        p.fill_(1.0), g.fill_(1.0), m.zero_()
        lion_update_triton([p], [g], [m], lr=0.5, weight_decay=0.0, beta1=0.9, beta2=0.99, cache=cache)
        assert torch.equal(p, torch.full_like(p, 0.5)), (numel, dtype)
        torch.testing.assert_close(m, torch.full_like(m, 0.01))


def test_tables_are_built_once_for_many_groups_and_rebuilt_when_grads_move(monkeypatch):
    builds = []
    original = lion_triton._build_launch
    monkeypatch.setattr(lion_triton, "_build_launch", lambda *args: builds.append(1) or original(*args))

    def groups(params):
        return [{"params": params[i : i + 2], "lr": LR * (1 + i % 3)} for i in range(0, 40, 2)]  # 20 groups

    reference = make_params(MIXED_SHAPES[:40])
    candidate = clone_params(reference)
    reference_opt = Lion(groups(reference), lr=LR, impl="torch")
    candidate_opt = Lion(groups(candidate), lr=LR, use_triton=True)
    old_grads, builds_before = [], []
    for step in range(4):
        set_grads(reference, seed=step)
        if step == 3:
            old_grads = [p.grad for p in candidate]  # kept alive: the new grads get new addresses
        set_grads(candidate, seed=step)
        builds_before.append(len(builds))
        reference_opt.step()
        candidate_opt.step()
    # Tables for each of the 20 groups at the first step (no eviction); the moved grads at step 3
    # rebuild every group's. (At steps 1 and 2 set_grads may or may not reuse the freed addresses.)
    assert builds_before[1] == 20
    assert len(builds) - builds_before[3] == 20
    assert len(old_grads) == 40
    assert_params_match(candidate, reference, num_steps=4, lr=3 * LR)
    assert_state_match(candidate_opt, candidate, reference_opt, reference)


def test_steps_on_unchanged_tensors_build_nothing(monkeypatch):
    builds = []
    original = lion_triton._build_launch
    monkeypatch.setattr(lion_triton, "_build_launch", lambda *args: builds.append(1) or original(*args))
    params = make_params(MIXED_SHAPES[:30])
    optimizer = Lion([{"params": params[i : i + 3]} for i in range(0, 30, 3)], lr=LR, use_triton=True)
    set_grads(params, seed=0)
    for _ in range(3):
        optimizer.step()
    assert len(builds) == 10


def test_caches_belong_to_each_optimizer():
    # No process-wide cache: two optimizers over the same tensors keep their own tables and lr.
    params = make_params(MIXED_SHAPES[:4])
    first, second = Lion(params, lr=LR, use_triton=True), Lion(params, lr=2 * LR, use_triton=True)
    set_grads(params, seed=0)
    first.step()
    second.step()
    assert first._gathered[0].cache is not second._gathered[0].cache
    module_state = [name for name, value in vars(lion_triton).items()
                    if isinstance(value, (dict, list, set)) and value and not name.startswith("__") and name != "_TL_DTYPES"]
    assert module_state == []


@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_dense_layouts_match_the_torch_impl(layout):
    def make(seed):
        generator = torch.Generator().manual_seed(seed)
        if layout == "channels_last":
            tensor = torch.randn(5, 3, 7, 9, generator=generator).to(memory_format=torch.channels_last)
        else:
            tensor = torch.randn(65, 33, generator=generator).t()
        return tensor.to(DEVICE)

    reference = [torch.nn.Parameter(make(0)), torch.nn.Parameter(torch.randn(11).to(DEVICE))]
    candidate = [torch.nn.Parameter(p.detach().clone(memory_format=torch.preserve_format)) for p in reference]
    assert candidate[0].stride() == reference[0].stride() and not candidate[0].is_contiguous()
    reference_opt = Lion(reference, lr=LR, weight_decay=0.1, impl="torch")
    candidate_opt = Lion(candidate, lr=LR, weight_decay=0.1, use_triton=True)
    for step in range(3):
        for params in (reference, candidate):
            params[0].grad = make(10 + step)
            params[1].grad = torch.randn(11, generator=torch.Generator().manual_seed(step)).to(DEVICE)
        reference_opt.step()
        candidate_opt.step()
    assert candidate_opt.state[candidate[0]]["exp_avg"].stride() == candidate[0].stride()
    assert_params_match(candidate, reference, num_steps=3)
    assert_state_match(candidate_opt, candidate, reference_opt, reference)


def test_overlapping_or_mismatched_layouts_are_rejected():
    expanded = torch.nn.Parameter(torch.randn(1, 4, device=DEVICE).expand(3, 4))
    expanded.grad = torch.randn(3, 4, device=DEVICE)
    with pytest.raises(ValueError, match="dense, non-overlapping param"):
        Lion([expanded], lr=LR, use_triton=True).step()
    p = torch.nn.Parameter(torch.randn(8, 4, device=DEVICE))
    p.grad = torch.randn(4, 8, device=DEVICE).t()  # the right shape, another layout
    with pytest.raises(ValueError, match=r"grad \(strides \(1, 8\)\)"):
        Lion([p], lr=LR, use_triton=True).step()


# The interpreter computes g * 0 in numpy, which warns on inf * 0.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("impl", ["torch", "foreach", "triton"])
def test_nonfinite_gradient_sets_a_sticky_device_flag(impl):
    params = make_params(MIXED_SHAPES[:7])
    optimizer = Lion(params, lr=LR, impl=impl)
    assert optimizer.nonfinite_grad_flag is None
    for step, bad_value in enumerate([None, float("nan"), None, float("inf")]):
        set_grads(params, seed=step)
        if bad_value is not None:
            params[6].grad[1, 2] = bad_value
        optimizer.step()
        flag = optimizer.nonfinite_grad_flag
        assert flag.shape == (1,) and flag.dtype == torch.int32 and flag.device == params[0].device
        assert int(flag) == (0 if step == 0 else 1), step  # set at step 1 and never cleared
    if impl == "triton":
        assert optimizer.nonfinite_grad_flag is flag  # one tensor, updated in place by the kernel


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nonfinite_flag_is_set_in_a_masked_tail_block_and_with_cautious():
    params = make_params([(4096 + 5,), (3,)])
    optimizer = Lion(params, lr=LR, use_triton=True, cautious=True)
    set_grads(params, seed=0)
    params[0].grad[-1] = -float("inf")
    optimizer.step()
    assert int(optimizer.nonfinite_grad_flag) == 1


# A tensor of two full blocks and a last block of 1500 elements, which the kernel takes in pieces of
# 512 (fp32: rows of 4) or 1024 (bf16 momentum: rows of 8) elements: 3001 lies in a full block, 5500
# in the last piece.
FLAG_NUMEL = 2 * 2048 + 1500


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("state_dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("position", [3001, 5500])
@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_flag_catches_each_kind_in_full_blocks_and_tail_pieces(bad_value, position, state_dtype):
    params = [torch.nn.Parameter(torch.zeros(n, device=DEVICE)) for n in (FLAG_NUMEL, 3)]
    optimizer = Lion(params, lr=LR, use_triton=True, state_dtype=state_dtype)
    set_grads(params, seed=0)
    # Finite extremes leave it clear: the largest and smallest fp32 magnitudes, signed zeros.
    extremes = torch.tensor([3.4028235e38, -3.4028235e38, 1e-45, -1e-45, 0.0, -0.0], device=DEVICE)
    params[0].grad[position - 3 : position + 3] = extremes
    optimizer.step()
    assert int(optimizer.nonfinite_grad_flag) == 0
    set_grads(params, seed=1)
    params[0].grad[position] = bad_value
    optimizer.step()
    assert int(optimizer.nonfinite_grad_flag) == 1


MAXIMIZE_CONFIGS = {"plain": dict(lr=LR), "cautious_wd": dict(lr=LR, weight_decay=0.5, cautious=True)}


@pytest.mark.parametrize("config", MAXIMIZE_CONFIGS)
def test_maximize_matches_torch_impl(config):
    reference = make_params(MIXED_SHAPES[:20])
    candidate = clone_params(reference)
    reference_opt = run("torch", reference, num_steps=3, maximize=True, **MAXIMIZE_CONFIGS[config])
    candidate_opt = run("triton", candidate, num_steps=3, maximize=True, **MAXIMIZE_CONFIGS[config])
    assert_params_match(candidate, reference, num_steps=3)
    assert_state_match(candidate_opt, candidate, reference_opt, reference)


COMPLEX_SHAPES = [(1,), (1023,), (37, 29), (2049,)]


def test_complex_params_follow_the_torch_impl():
    generator = torch.Generator().manual_seed(0)
    reference = [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=torch.complex64).to(DEVICE))
                 for s in COMPLEX_SHAPES]
    candidate = [torch.nn.Parameter(p.detach().clone()) for p in reference]
    kwargs = dict(lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99))
    reference_opt = Lion(reference, impl="torch", **kwargs)
    candidate_opt = Lion(candidate, use_triton=True, **kwargs)
    for step in range(3):
        for params in (reference, candidate):
            generator = torch.Generator().manual_seed(step)
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator, dtype=torch.complex64).to(DEVICE)
            if step == 0:
                params[1].grad[:5] = 0  # zero momentum and grad: sgn(0) = 0
        reference_opt.step()
        candidate_opt.step()
    for p, p_ref in zip(candidate, reference):
        # sgn(c) = c / |c|: a sqrt and a division, a few fp32 ulps from torch's hypot-based abs.
        torch.testing.assert_close(p, p_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(candidate_opt.state[p]["exp_avg"], reference_opt.state[p_ref]["exp_avg"],
                                   rtol=1e-6, atol=1e-7)


def test_state_dtype_choices():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="needs impl='triton'"):
        Lion([p], impl="foreach", state_dtype="bf16")
    with pytest.raises(ValueError, match="valid: None, 'fp32'"):
        Lion([p], use_triton=True, state_dtype="fp16")


def test_missing_triton_says_what_to_install():
    # A fresh interpreter where `import triton` fails: lion_bench still imports (the kernel module is
    # imported at the top of lion.py, guarded), and only impl="triton" raises, saying what to install.
    script = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch\n"
        "from lion_bench import Lion\n"
        "Lion([torch.nn.Parameter(torch.zeros(2))], impl='foreach')\n"
        "try:\n"
        "    Lion([torch.nn.Parameter(torch.zeros(2))], use_triton=True)\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install triton" in result.stdout, result.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_step_captured_in_a_cuda_graph_follows_a_changing_lr():
    eager = make_params(MIXED_SHAPES)
    graphed = clone_params(eager)
    lr = torch.tensor([LR], dtype=torch.float64, device=DEVICE)
    eager_opt = Lion(eager, lr=LR, weight_decay=0.1, cautious=True, use_triton=True)
    graphed_opt = Lion(graphed, lr=lr, weight_decay=0.1, cautious=True, use_triton=True)
    set_grads(eager, seed=0)
    set_grads(graphed, seed=0)
    # Warm-up step on a side stream (compiles the kernel, builds the tables), then capture.
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        graphed_opt.step()
    torch.cuda.current_stream().wait_stream(stream)
    eager_opt.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        graphed_opt.step()
    for step in range(1, 4):
        generator = torch.Generator().manual_seed(step)
        for a, b in zip(eager, graphed):
            new_grad = torch.randn(a.shape, generator=generator).to(DEVICE)
            a.grad.copy_(new_grad)
            b.grad.copy_(new_grad)  # in place: the graph reads these addresses
        eager_opt.param_groups[0]["lr"] = LR / (step + 1)
        lr.fill_(LR / (step + 1))
        eager_opt.step()
        graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(eager, graphed):
        assert torch.equal(a, b)


def test_replaced_param_storage_and_momentum_are_followed():
    reference = make_params(MIXED_SHAPES[:8])
    candidate = clone_params(reference)
    reference_opt = run("torch", reference, num_steps=2, lr=LR, weight_decay=0.1)
    candidate_opt = run("triton", candidate, num_steps=2, lr=LR, weight_decay=0.1)
    # New storage for a param (as module.to() may do) and a new momentum tensor in the state.
    for params in (reference, candidate):
        params[3].data = params[3].data.clone()
    for opt, params in ((reference_opt, reference), (candidate_opt, candidate)):
        opt.state[params[5]]["exp_avg"] = opt.state[params[5]]["exp_avg"].clone() * 0.5
    for step in range(2, 4):
        for params, opt in ((reference, reference_opt), (candidate, candidate_opt)):
            set_grads(params, seed=100 + step)
            opt.step()
    assert_params_match(candidate, reference, num_steps=4)
    assert_state_match(candidate_opt, candidate, reference_opt, reference)
