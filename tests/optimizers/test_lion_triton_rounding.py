"""bf16 momentum with stochastic rounding in the fused kernel, against pure-torch references.

The rounding is integer arithmetic on the fp32 bit pattern followed by an exact cast, and Philox is
integer arithmetic, so Triton's CPU interpreter computes the same momentum bits as the GPU: these
tests compare bits, not tolerances. What the interpreter cannot show is the GPU's own behaviour
(compiled code, speed, and the old round-to-nearest stall at 0.805, since the interpreter's casts
truncate): benchmarks/bf16_momentum.py measures that on a GPU.

Bounds: momentum bit-equal to the reference, except where the reference's fp32 value (a fused
multiply-add emulated in float64) differs from the kernel's by a double rounding: at most 1 element
in 10,000 (and 1 in any case) may then differ by one bf16 ulp. This assumes the kernel's tl.fma
rounds once, as on the GPU and in the interpreter of Triton >= 3.9 (3.6's rounds twice, which in a
cancelling sum moves the fp32 value by more than a bf16 ulp: that one test fails there).
"""

from __future__ import annotations

import io
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402
from rounding_reference import BLOCK, kernel_random_bits, philox4x32  # noqa: E402

from lion_bench import Lion  # noqa: E402
from lion_bench.optimizers.lion import stochastic_round_to_bf16  # noqa: E402
from lion_bench.optimizers.lion_triton import _stochastic_round_to_bf16  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ODD_SHAPES = [(1,), (2049,), (37, 29), (BLOCK + 3,), (3, 5, 7), (BLOCK + 1500,)]
MISMATCHES_PER_ELEMENT = 1e-4


@triton.jit
def _round_kernel(x_ptr, bits_ptr, out_ptr, numel, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    in_bounds = offsets < numel
    x = tl.load(x_ptr + offsets, mask=in_bounds, other=0.0)
    bits = tl.load(bits_ptr + offsets, mask=in_bounds, other=0)
    tl.store(out_ptr + offsets, _stochastic_round_to_bf16(x, bits), mask=in_bounds)


def bf16_bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16).to(torch.int32) & 0xFFFF


@pytest.mark.parametrize("rounds", [7, 10])
def test_philox_reference_matches_random123_known_answers(rounds):
    # Known-answer vectors of Philox4x32-7 and -10 from the Random123 distribution (kat_vectors).
    # The kernel uses 7 rounds (lion_triton._PHILOX_ROUNDS); 10 is the library default.
    arguments = [(0, 0, 0, 0, 0, 0), (0xFFFFFFFF,) * 6,
                 (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0)]
    expected = {
        7: [(0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48), (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662),
            (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A)],
        10: [(0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
             (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)],
    }[rounds]
    for args, words in zip(arguments, expected):
        assert tuple(int(word) for word in philox4x32(*args, rounds=rounds)) == words


def test_reference_rounding_is_unbiased_and_lands_on_a_neighbour():
    x = torch.tensor([1.0 + 2.0**-9, -(1.0 + 3 * 2.0**-12), 0.3, -7.123e-5, 2.0**-126 * 1.5, 1.0], dtype=torch.float32)
    all_bits = torch.arange(2**16)
    rounded = stochastic_round_to_bf16(x[:, None].expand(-1, 2**16), all_bits[None, :].expand(len(x), -1))
    # Over every value of the 16 bits the mean is x exactly: the rounding is unbiased.
    torch.testing.assert_close(rounded.double().mean(1), x.double(), rtol=0, atol=0)
    # And every result is one of x's two bf16 neighbours (the truncation or the next one out).
    truncated = (x.view(torch.int32) & -65536).view(torch.float32).double()
    exponent = torch.frexp(truncated).exponent.clamp(min=-125)  # |x| in [2**(e-1), 2**e); subnormals: e = -125
    upper = truncated + torch.sign(x.double()) * torch.pow(2.0, exponent.double() - 8)
    assert bool(((rounded.double() == truncated[:, None]) | (rounded.double() == upper[:, None])).all())


def test_kernel_rounding_helper_matches_reference_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    special = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 3.3895e38, -3.3895e38, 1.0, -1.5,
                            2.0**-130, 1.0 + 2.0**-8 - 2.0**-23])
    magnitudes = 10.0 ** torch.empty(1823 - len(special)).uniform_(-30, 30, generator=generator)
    signs = torch.randint(0, 2, magnitudes.shape, generator=generator) * 2 - 1
    x = torch.cat([special, magnitudes * signs]).float()
    bits = torch.randint(-(2**31), 2**31, x.shape, generator=generator, dtype=torch.int64).to(torch.int32)
    bits[:3] = torch.tensor([0, 0xFFFF, -1], dtype=torch.int32)
    out = torch.empty_like(x, dtype=torch.bfloat16, device=DEVICE)
    _round_kernel[(triton.cdiv(len(x), 1024),)](x.to(DEVICE), bits.to(DEVICE), out, len(x), BLOCK_SIZE=1024)
    expected = stochastic_round_to_bf16(x, bits)
    assert torch.equal(bf16_bits(out.cpu()), bf16_bits(expected))


def fp32_momentum(exp_avg: torch.Tensor, grad: torch.Tensor, beta2: float) -> torch.Tensor:
    """The kernel's fp32 momentum, fma(g, 1 - beta2, m * beta2), through float64 (the product is exact)."""
    beta2_32 = torch.tensor(beta2, dtype=torch.float32)
    one_minus_32 = torch.tensor(1.0 - beta2, dtype=torch.float32)
    scaled = (exp_avg.float() * beta2_32).double()
    return (grad.float().double() * one_minus_32.double() + scaled).float()


def count_ulp_mismatches(actual: torch.Tensor, expected: torch.Tensor) -> int:
    difference = (bf16_bits(actual) - bf16_bits(expected)).abs()
    assert int(difference.max()) <= 1, "more than one bf16 ulp apart"
    return int((difference != 0).sum())


def make_params(shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=generator).to(DEVICE)) for s in shapes]


def set_grads(params, seed):
    generator = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator).to(DEVICE)


@pytest.mark.parametrize("seed", [12345, 2**64 - 3])
def test_bf16_momentum_is_the_philox_reference_rounding(seed):
    beta2 = 0.99
    params = make_params(ODD_SHAPES)
    optimizer = Lion(params, lr=1e-3, betas=(0.9, beta2), use_triton=True, state_dtype="bf16", seed=seed)
    num_elements = sum(p.numel() for p in params)
    for step in range(3):
        set_grads(params, seed=100 + step)
        before = [optimizer.state[p]["exp_avg"].cpu().clone() if optimizer.state[p] else torch.zeros(p.shape) for p in params]
        optimizer.step()
        mismatches = 0
        for index, (p, exp_avg) in enumerate(zip(params, before)):
            bits = kernel_random_bits(p.numel(), seed=seed, step=step, stream=0, index=index).reshape(p.shape)
            expected = stochastic_round_to_bf16(fp32_momentum(exp_avg, p.grad.cpu(), beta2), bits)
            mismatches += count_ulp_mismatches(optimizer.state[p]["exp_avg"].cpu(), expected)
        assert mismatches <= max(1, MISMATCHES_PER_ELEMENT * num_elements), (step, mismatches)


def test_bits_depend_on_seed_step_group_and_tensor():
    words = [
        kernel_random_bits(4096, seed=1, step=0, stream=0, index=0),
        kernel_random_bits(4096, seed=2, step=0, stream=0, index=0),
        kernel_random_bits(4096, seed=1, step=1, stream=0, index=0),
        kernel_random_bits(4096, seed=1, step=0, stream=1, index=0),
        kernel_random_bits(4096, seed=1, step=0, stream=0, index=1),
    ]
    for a in range(len(words)):
        assert 0 <= int(words[a].min()) and int(words[a].max()) < 2**16
        assert abs(float(words[a].double().mean()) / 2**16 - 0.5) < 0.02
        for b in range(a):
            assert float((words[a] == words[b]).double().mean()) < 0.01


def test_random_bits_are_balanced_in_every_bit_and_column():
    # 2**16 elements, i.e. 8192 Philox calls: each of the 16 bits, in each of the 8 columns of a row
    # (output word j // 2, half j % 2), is set in half the elements of that column (8192 of them:
    # standard deviation 0.0055), and consecutive rows do not repeat.
    bits = kernel_random_bits(2**16, seed=2**40 + 17, step=3, stream=1, index=5).reshape(-1, 8)
    shares = ((bits[:, :, None] >> torch.arange(16)) & 1).double().mean(0)  # (column, bit)
    assert float((shares - 0.5).abs().max()) < 0.03
    assert not bool((bits[1:] == bits[:-1]).all(1).any())


def test_constant_gradient_ema_follows_fp32_momentum():
    # Round to nearest drops EMA increments below half a bf16 ulp: with g = 1 the momentum stalls
    # (at 0.805 on a GPU; the interpreter's casts truncate, so there at 0.613). Stochastic rounding
    # keeps the fp32 trajectory on average. 200 steps: 1 - 0.99**200 = 0.866.
    num_steps, beta2 = 200, 0.99
    finals = {}
    for name, state_dtype, stochastic in [("fp32", "fp32", True), ("sr", "bf16", True), ("nearest", "bf16", False)]:
        p = torch.nn.Parameter(torch.zeros(BLOCK, device=DEVICE))
        optimizer = Lion([p], lr=1e-4, betas=(0.9, beta2), use_triton=True, state_dtype=state_dtype, seed=7)
        optimizer._stochastic_rounding = stochastic
        p.grad = torch.ones_like(p)
        for _ in range(num_steps):
            optimizer.step()
        finals[name] = float(optimizer.state[p]["exp_avg"].float().mean())
    exact = 1 - beta2**num_steps
    assert finals["fp32"] == pytest.approx(exact, rel=1e-5)
    assert finals["sr"] == pytest.approx(finals["fp32"], rel=0.01)
    assert finals["nearest"] < 0.98 * finals["fp32"]


def run(params, num_steps, first_step=0, optimizer=None, **kwargs):
    optimizer = optimizer or Lion(params, lr=1e-3, weight_decay=0.1, use_triton=True, state_dtype="bf16", **kwargs)
    for step in range(first_step, first_step + num_steps):
        set_grads(params, seed=100 + step)
        optimizer.step()
    return optimizer


def test_same_seed_repeats_and_a_resumed_run_continues_bit_for_bit():
    straight = make_params(ODD_SHAPES)
    again, resumed = make_params(ODD_SHAPES), make_params(ODD_SHAPES)
    run(straight, 4, seed=3)
    run(again, 4, seed=3)
    first = run(resumed, 2, seed=3)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    # Constructed with another seed: the state dict's seed and step win.
    second = Lion(resumed, lr=1e-3, weight_decay=0.1, use_triton=True, state_dtype="bf16", seed=99)
    second.load_state_dict(torch.load(buffer, weights_only=True))
    run(resumed, 2, first_step=2, optimizer=second)
    assert second.param_groups[0]["step"] == 4 and second.param_groups[0]["seed"] == 3
    for a, b, c in zip(straight, again, resumed):
        assert torch.equal(a, b) and torch.equal(a, c)
    # Another seed rounds differently: some momentum elements differ by one bf16 ulp.
    seed_3, seed_4 = make_params(ODD_SHAPES), make_params(ODD_SHAPES)
    opt_3, opt_4 = run(seed_3, 2, seed=3), run(seed_4, 2, seed=4)
    assert any(not torch.equal(opt_3.state[a]["exp_avg"], opt_4.state[b]["exp_avg"]) for a, b in zip(seed_3, seed_4))


def test_seed_defaults_to_torch_initial_seed_without_drawing():
    torch.manual_seed(5)
    expected_draw = torch.rand(3)
    torch.manual_seed(5)
    optimizer = Lion([torch.nn.Parameter(torch.zeros(2))], use_triton=True, state_dtype="bf16")
    assert optimizer.param_groups[0]["seed"] == 5
    assert torch.equal(torch.rand(3), expected_draw)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True])
def test_bad_seed_raises_value_error(seed):
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*64\)"):
        Lion([torch.nn.Parameter(torch.zeros(2))], seed=seed)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graph_replays_draw_new_bits_and_count_in_the_state_dict():
    eager = make_params(ODD_SHAPES)
    graphed = [torch.nn.Parameter(p.detach().clone()) for p in eager]
    eager_opt = Lion(eager, lr=1e-3, use_triton=True, state_dtype="bf16", seed=11)
    graphed_opt = Lion(graphed, lr=1e-3, use_triton=True, state_dtype="bf16", seed=11)
    set_grads(eager, seed=0)
    set_grads(graphed, seed=0)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        graphed_opt.step()  # step 0, eager: builds the tables
    torch.cuda.current_stream().wait_stream(stream)
    eager_opt.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        graphed_opt.step()  # captured with step 1; replay k runs step 1 + k
    for step in range(1, 4):
        generator = torch.Generator().manual_seed(step)
        for a, b in zip(eager, graphed):
            grad = torch.randn(a.shape, generator=generator).to(DEVICE)
            a.grad.copy_(grad)
            b.grad.copy_(grad)
        eager_opt.step()
        graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(eager, graphed):
        assert torch.equal(a, b)
        assert torch.equal(eager_opt.state[a]["exp_avg"], graphed_opt.state[b]["exp_avg"])
    assert graphed_opt.state_dict()["param_groups"][0]["step"] == eager_opt.param_groups[0]["step"] + 1
    assert graphed_opt.param_groups[0]["step"] == 2  # the eager step and the capture call
