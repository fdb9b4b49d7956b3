"""Lion as one fused Triton kernel launch per (device, dtype) group of tensors.

``_lion_kernel`` -> ``lion_update_triton`` (``lion_update_torch``'s signature plus the Triton-only
keywords) -> ``Lion(impl="triton")``. This module imports only ``functional`` of lion_bench (the
shared constants and layout checks); ``lion.Lion`` imports this one.

One launch covers every tensor of a group through two device tables: program ``i`` updates
``BLOCK`` elements of tensor ``blocks[i]``, starting at ``(i - first_block[tensor]) * BLOCK``, seen
as rows of 16 bytes of the narrowest dtype (a tensor's last block goes in pieces of one row per
thread); the tensors' addresses come from an int64 table of ``data_ptr``s. The tables belong to a
``LionTritonCache`` that the caller keeps (``Lion`` keeps one per param group; nothing is shared
between optimizers). Each call compares every tensor's address and every param's size with the
cached tables (and, unless the cache is told otherwise, each param's size and dtype) and rebuilds
them when one differs, so a loop whose tensors stay put (the usual case even with
``zero_grad(set_to_none=True)``, thanks to the caching allocator; a requirement of CUDA graphs)
builds them once. Shapes, layouts and dtypes are checked when tables are built.

Per element (fp32 registers, whatever the storage dtype; g is -g with ``maximize``):

    p <- p * (1 - lr * wd)
    c  = beta1 * m + (1 - beta1) * g
    p <- p - lr * sign(c) [* cautious mask / kept fraction]      (complex: sgn(c) = c / |c|)
    m <- beta2 * m + (1 - beta2) * g                               (bf16 m: stochastically rounded)

bf16 momentum is stored with stochastic rounding: the fp32 result's low 16 bits plus 16 random bits
from Philox4x32-7, then cut to bf16, so the stored value's mean is the fp32 value and EMA
increments smaller than a bf16 ulp survive on average (round-to-nearest drops every increment below
half an ulp: with a constant gradient the momentum stalls at 0.805 for beta2 = 0.99). Element ``i``
of the ``k``-th tensor of a call takes output word ``(i % 8) // 2`` of the Philox call with counter
``(i // 8, k, stream, step)`` and key ``seed``, its low half for even ``i`` and its high half for
odd ``i``: a pure function of (seed, step, stream, k, i), so a run is reproducible and a resumed one
continues bit for bit.

What Triton's CPU interpreter (the tests without a GPU) can and cannot check: the rounding is integer
arithmetic followed by an exact cast, and Philox is integer arithmetic, so the interpreter computes
the same bf16 momentum bits as the GPU for the same fp32 values; the tests check them against a
pure-torch reference. It cannot check the compiled kernel (instruction selection, fma contraction,
vector widths, speed), and its own fp32 -> bf16 casts truncate instead of rounding to nearest, so
bf16 *parameters* and the old round-to-nearest momentum (which stalls at 0.805 on the GPU and at
0.613 in the interpreter) behave differently there. ``benchmarks/bf16_momentum.py`` checks on a GPU.

Every step also looks for NaN and infinite gradient elements: a thread whose row holds one stores 1
in an int32 device flag (no atomic, no barrier, no host sync); the flag is never cleared, and the
caller reads it when it likes (``Lion.nonfinite_grad_flag``).

``lr`` is read from a device tensor: a new lr never recompiles, nothing syncs the host, and a step
can be captured in a CUDA graph (put a device tensor in ``group["lr"]`` so that replays see a
changing lr). Cautious masking needs each tensor's kept fraction before any element is updated, so
it takes two launches: one counts agreements per tensor, one applies.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from lion_bench.optimizers.functional import CAUTIOUS_MIN_FRACTION, is_dense, same_layout

# Fixed heuristics (never autotuned: the kernel updates its inputs in place). 2048 elements per
# program, 4 warps: 16 elements per thread, i.e. four 16-byte vectors per fp32 stream. Measured on
# an H200 (benchmarks/NOTES.md): 98-100% of copy bandwidth at 1.3B params for fp32 and bf16
# params and state; 32 elements per thread (8192 / 8 warps) lost up to 23% with bf16.
_BLOCK = 2048
_NUM_WARPS = 4
# Rows per piece of a tensor's last block (masked): one per thread.
_TAIL_ROWS = tl.constexpr(32 * _NUM_WARPS)
_SUPPORTED_PARAM_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.complex64)
_SUPPORTED_STATE_DTYPES = (torch.float32, torch.bfloat16, torch.complex64)
# Philox4x32 rounds for the stochastic-rounding bits. Salmon et al. 2011 ("Parallel random numbers:
# as easy as 1, 2, 3", SC'11, table 2) find 7 rounds the fewest with which Philox4x32 is
# Crush-resistant (passes TestU01's SmallCrush, Crush and BigCrush with the counter patterns they
# try); the default of 10 (Random123, cuRAND, Triton) adds a safety margin. Rounding asks less of
# the bits than BigCrush checks (each 16-bit value uniform and independent of the data); 7 rounds
# do 30% less Philox work (benchmarks/NOTES.md).
_PHILOX_ROUNDS = tl.constexpr(7)
# Addresses divisible by 16 bytes let the compiler issue 16-byte vector loads and stores.
_ALIGNMENT_BYTES = 16

_TL_DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16,
              torch.complex64: tl.float32}

_CAUTIOUS_OFF, _CAUTIOUS_COUNT, _CAUTIOUS_APPLY = 0, 1, 2
# Rows of the per-tensor table (each num_tensors long), in the order _build_launch writes them.
_PARAM_ADDRESS, _GRAD_ADDRESS, _EXP_AVG_ADDRESS, _NUMEL, _FIRST_BLOCK, _INDEX, _AGREEMENTS = map(tl.constexpr, range(7))


@triton.jit
def _sign(x):
    # sign(0) = 0; NaN -> 0 as torch.sign does on the CPU.
    return tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, 0.0))


@triton.jit
def _stochastic_round_to_bf16(x, random_bits):
    # x: fp32 block; random_bits: 32-bit integer block of x's shape, of which the low 16 bits are used.
    # A bf16 is the high half of an fp32. Adding 16 uniform random bits to the low half before
    # cutting it rounds the magnitude up with probability (low half) / 2**16, so E[result] = x
    # (for either sign: the bits are sign and magnitude). The high half is then taken as the bf16's
    # bits, with no float cast: exact on every backend, subnormals and NaN payloads included.
    bits = x.to(tl.int32, bitcast=True)
    rounded = bits + (random_bits & 0xFFFF).to(tl.int32, bitcast=True)
    # A NaN stays NaN (the carry could turn its pattern into an infinity or a zero).
    rounded = tl.where(x == x, rounded, bits)
    return (rounded >> 16).to(tl.int16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _random_bits(first_row, rows, index, stream, step, seed_lo, seed_hi):
    # -> (rows, 8) uint32 whose low 16 bits are random: one Philox4x32 call per row of 8 elements,
    # all 128 of its bits used. Row r: counter (first_row + r, index, stream, step), key (seed_lo,
    # seed_hi); column j takes output j // 2, its low half for even j and its high half for odd j.
    counters = rows.to(tl.uint32) + first_row.to(tl.uint32)
    zeros = counters * 0
    r0, r1, r2, r3 = tl.philox_impl(
        counters, zeros + index.to(tl.uint32), zeros + stream.to(tl.uint32), zeros + step.to(tl.uint32),
        seed_lo.to(tl.uint32), seed_hi.to(tl.uint32), _PHILOX_ROUNDS,
    )
    # join(a, b) appends a last dimension [a, b], held in each thread's registers, and reshape keeps
    # the order: join(join(r0, r2), join(r1, r3)) flattens to r0, r1, r2, r3. A thread's rows become
    # its (row, 8) values with no data exchanged between threads.
    words = tl.reshape(tl.join(tl.join(r0, r2), tl.join(r1, r3)), (rows.shape[0], 4))
    return tl.reshape(tl.join(words, words >> 16), (rows.shape[0], 8))


@triton.jit
def _lion_block(
    param_ptr,  # pointer to this block's first param element (P_DTYPE; fp32 pairs when COMPLEX)
    grad_ptr,  # pointer to this block's first grad element (G_DTYPE)
    exp_avg_ptr,  # pointer to this block's first momentum element (M_DTYPE)
    agreement_ptr,  # pointer to this tensor's int64 cautious agreement count
    nonfinite_ptr,  # pointer to the int32 non-finite gradient flag
    rows,  # (BLOCK / ROW,) int32: 0, 1, ...
    offsets,  # (BLOCK / ROW, ROW) int32: element offsets, rows of ROW consecutive elements
    num_remaining,  # int32 (MASKED: < BLOCK): elements left in the tensor from this block's start
    lr,  # fp32 scalar
    decay,  # fp32 scalar: 1 - lr * weight_decay
    cautious_scale,  # fp32 scalar: 1 / kept fraction (used when CAUTIOUS == 2)
    beta1,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    first_row,  # STOCHASTIC_ROUNDING: Philox counter word 0 of rows[0] (tensor element offset / 8),
    index,  # counter words 1, 2, 3
    stream,
    step,
    seed_lo,  # key
    seed_hi,
    MASKED: tl.constexpr,
    CAUTIOUS: tl.constexpr,
    MAXIMIZE: tl.constexpr,
    COMPLEX: tl.constexpr,
    STOCHASTIC_ROUNDING: tl.constexpr,
):
    # Every load comes before any arithmetic, so that the compiler issues them all early and the
    # arithmetic (the Philox rounds too) overlaps their latency.
    in_bounds = offsets < num_remaining
    if MASKED:
        grad = tl.load(grad_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
        exp_avg = tl.load(exp_avg_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
    else:
        grad = tl.load(grad_ptr + offsets).to(tl.float32)
        exp_avg = tl.load(exp_avg_ptr + offsets).to(tl.float32)
    if CAUTIOUS != 1:
        if MASKED:
            param = tl.load(param_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
        else:
            param = tl.load(param_ptr + offsets).to(tl.float32)
        # g * 0 is 0 for finite g and NaN for NaN and +-inf, so a row's sum is NaN exactly when the
        # row holds a non-finite gradient. In a full block a row lies in one thread's registers: no
        # exchange between threads, no barrier, and a store that every lane skips in the usual case.
        poison = tl.sum(grad * 0.0, axis=1)
        tl.store(nonfinite_ptr + rows * 0, 1, mask=poison != poison)
    if MAXIMIZE:
        grad = -grad
    interpolated = tl.fma(grad, one_minus_beta1, exp_avg * beta1)
    if COMPLEX:
        # Each row is (real, imaginary): sgn(c) = c / |c|, and 0 at 0, as torch.sgn.
        modulus = tl.sqrt_rn(tl.sum(interpolated * interpolated, axis=1))[:, None]
        direction = tl.where(modulus > 0, tl.div_rn(interpolated, tl.where(modulus > 0, modulus, 1.0)), 0.0)
    else:
        direction = _sign(interpolated)
    if CAUTIOUS == 1:
        # Pass 1 only counts the entries whose update agrees with the gradient (masked lanes: 0).
        tl.atomic_add(agreement_ptr, tl.sum((direction * grad > 0).to(tl.int64)))
    else:
        if CAUTIOUS == 2:
            direction = direction * tl.where(direction * grad > 0, cautious_scale, 0.0)
        param = tl.fma(direction, -lr, param * decay)
        exp_avg = tl.fma(grad, one_minus_beta2, exp_avg * beta2)
        if STOCHASTIC_ROUNDING:
            random_bits = _random_bits(first_row, rows, index, stream, step, seed_lo, seed_hi)
            new_exp_avg = _stochastic_round_to_bf16(exp_avg, random_bits)
        else:
            new_exp_avg = exp_avg.to(exp_avg_ptr.dtype.element_ty)
        if MASKED:
            tl.store(param_ptr + offsets, param.to(param_ptr.dtype.element_ty), mask=in_bounds)
            tl.store(exp_avg_ptr + offsets, new_exp_avg, mask=in_bounds)
        else:
            tl.store(param_ptr + offsets, param.to(param_ptr.dtype.element_ty))
            tl.store(exp_avg_ptr + offsets, new_exp_avg)


@triton.jit(do_not_specialize=["num_tensors", "seed_lo", "seed_hi", "step", "stream"])
def _lion_kernel(
    blocks_ptr,  # (num_blocks,) int32: index of the tensor each program updates
    tensors_ptr,  # (7, num_tensors) int64: param, grad, exp_avg addresses; numel; first block; index; agreements
    lr_ptr,  # (1,) fp64 or fp32: learning rate
    nonfinite_ptr,  # (1,) int32: set to 1 when a gradient element is NaN or infinite, never cleared
    step_offset_ptr,  # (1,) int64: added to step (CUDA graph replays advance it on the device)
    num_tensors,
    seed_lo,  # int32 bit pattern: Philox key, low word
    seed_hi,  # int32 bit pattern: Philox key, high word
    step,  # Philox counter word 3: optimizer steps taken (before step_offset)
    stream,  # Philox counter word 2: the caller's stream (Lion: the param group's index)
    weight_decay,
    beta1,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    P_DTYPE: tl.constexpr,
    G_DTYPE: tl.constexpr,
    M_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
    ROW: tl.constexpr,  # elements per row of the block: 16 bytes of the narrowest dtype; 2 (a pair) when COMPLEX
    ALIGNED: tl.constexpr,
    CAUTIOUS: tl.constexpr,  # 0: off, 1: count agreements, 2: apply with counts
    CAUTIOUS_MIN_FRACTION: tl.constexpr,  # floor of the kept fraction (functional.CAUTIOUS_MIN_FRACTION)
    MAXIMIZE: tl.constexpr,
    COMPLEX: tl.constexpr,  # tensors are complex64 seen as fp32 (real, imaginary) pairs
    STOCHASTIC_ROUNDING: tl.constexpr,  # bf16 momentum stored with stochastic rounding
):
    # One Philox call per row of 8 elements.
    tl.static_assert(not STOCHASTIC_ROUNDING or ROW == 8)
    block = tl.program_id(0)
    tensor = tl.load(blocks_ptr + block).to(tl.int64)
    row = tensors_ptr + tensor
    param_address = tl.load(row + _PARAM_ADDRESS * num_tensors)
    grad_address = tl.load(row + _GRAD_ADDRESS * num_tensors)
    exp_avg_address = tl.load(row + _EXP_AVG_ADDRESS * num_tensors)
    numel = tl.load(row + _NUMEL * num_tensors)
    start = (block - tl.load(row + _FIRST_BLOCK * num_tensors)) * BLOCK
    param_ptr = param_address.to(tl.pointer_type(P_DTYPE), bitcast=True)
    grad_ptr = grad_address.to(tl.pointer_type(G_DTYPE), bitcast=True)
    exp_avg_ptr = exp_avg_address.to(tl.pointer_type(M_DTYPE), bitcast=True)
    if ALIGNED:
        # The host checked every address; start is a multiple of BLOCK by construction.
        param_ptr = tl.multiple_of(param_ptr, 16)
        grad_ptr = tl.multiple_of(grad_ptr, 16)
        exp_avg_ptr = tl.multiple_of(exp_avg_ptr, 16)
        start = tl.multiple_of(start, BLOCK)
    param_ptr += start
    grad_ptr += start
    exp_avg_ptr += start

    # Scalar math in fp64 so that 1 - lr * wd rounds once, as torch does with Python floats.
    lr64 = tl.load(lr_ptr).to(tl.float64)
    lr = lr64.to(tl.float32)
    decay = (1.0 - lr64 * weight_decay).to(tl.float32)
    cautious_scale = 1.0
    if CAUTIOUS == 2:
        kept = tl.load(row + _AGREEMENTS * num_tensors).to(tl.float32) / numel.to(tl.float32)
        cautious_scale = 1.0 / tl.maximum(kept, CAUTIOUS_MIN_FRACTION)

    # The block as (BLOCK / ROW, ROW): a thread holds whole rows (16-byte vectors). With stochastic
    # rounding, element i of a tensor takes Philox counter i // 8 (rows of 8, one call each).
    rows = tl.arange(0, BLOCK // ROW)
    offsets = rows[:, None] * ROW + tl.arange(0, ROW)[None, :]
    first_row = start // ROW
    index = 0
    total_step = 0
    if STOCHASTIC_ROUNDING:
        index = tl.load(row + _INDEX * num_tensors)
        total_step = step + tl.load(step_offset_ptr)

    num_remaining = numel - start
    agreement_ptr = row + _AGREEMENTS * num_tensors
    if num_remaining >= BLOCK:
        # Full blocks (all but a tensor's last, partial one): no masks, 16-byte vector loads and stores.
        _lion_block(param_ptr, grad_ptr, exp_avg_ptr, agreement_ptr, nonfinite_ptr, rows, offsets, BLOCK,
                    lr, decay, cautious_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                    first_row, index, stream, total_step, seed_lo, seed_hi,
                    False, CAUTIOUS, MAXIMIZE, COMPLEX, STOCHASTIC_ROUNDING)
    else:
        # A tensor's last block, in pieces of one row per thread: its masked accesses are one element
        # wide, and a whole block of them would hold more registers than the full blocks need (the
        # kernel's register count, and so the programs per SM, is that of its hungriest path).
        tail_rows = tl.arange(0, _TAIL_ROWS)
        tail_offsets = tail_rows[:, None] * ROW + tl.arange(0, ROW)[None, :]
        for piece in range(0, tl.cdiv(num_remaining.to(tl.int32), _TAIL_ROWS * ROW)):
            done = piece * (_TAIL_ROWS * ROW)
            _lion_block(param_ptr + done, grad_ptr + done, exp_avg_ptr + done, agreement_ptr, nonfinite_ptr,
                        tail_rows, tail_offsets, (num_remaining - done).to(tl.int32), lr, decay, cautious_scale,
                        beta1, one_minus_beta1, beta2, one_minus_beta2, first_row + done // ROW, index, stream,
                        total_step, seed_lo, seed_hi, True, CAUTIOUS, MAXIMIZE, COMPLEX, STOCHASTIC_ROUNDING)


@dataclass
class _Launch:
    """Device tables for tensors sharing a device and (param, grad, momentum) dtypes."""

    device: torch.device
    torch_dtypes: tuple[torch.dtype, torch.dtype, torch.dtype]  # (param, grad, momentum)
    dtypes: tuple  # their triton dtypes (complex64 -> fp32: the kernel sees (real, imaginary) pairs)
    complex: bool
    numels: tuple[int, ...]  # elements per tensor (fp32 elements for complex tensors)
    first_block: list[int]  # each tensor's first program
    num_blocks: int
    row: int  # elements per row of a block (the kernel's ROW)
    aligned: bool
    blocks: Tensor  # (num_blocks,) int32 on the device
    tensors: Tensor  # (7 * num_tensors,) int64 on the device

    @property
    def bf16_momentum(self) -> bool:
        return self.torch_dtypes[2] == torch.bfloat16

    @property
    def num_tensors(self) -> int:
        return len(self.numels)

    @property
    def agreements(self) -> Tensor:
        return self.tensors[_AGREEMENTS.value * self.num_tensors :]


def _upload(table: Tensor, device: torch.device) -> Tensor:
    """``table`` (on the host) copied to ``device`` without stalling the host. From pageable memory a
    CUDA copy may wait for the stream's queued work (the whole forward and backward in flight); from
    pinned memory it is queued like a kernel. The caching host allocator keeps the pinned buffer
    until the copy is done."""
    if device.type != "cuda":
        return table.to(device)
    return table.pin_memory().to(device, non_blocking=True)


def _block_table(numels: tuple[int, ...], device: torch.device) -> tuple[Tensor, list[int]]:
    """(blocks, first block of each tensor): program i updates tensor blocks[i]."""
    blocks_per_tensor = torch.tensor([-(-n // _BLOCK) for n in numels], dtype=torch.int64)
    first_block = torch.cumsum(blocks_per_tensor, 0) - blocks_per_tensor
    blocks = torch.repeat_interleave(torch.arange(len(numels), dtype=torch.int32), blocks_per_tensor)
    return _upload(blocks, device), first_block.tolist()


def _build_launch(params, grads, exp_avgs, indices: list[int], previous: _Launch | None) -> _Launch:
    p, g, m = params[indices[0]], grads[indices[0]], exp_avgs[indices[0]]
    device = p.device
    _check_runnable(device)
    complex_ = p.is_complex()
    tensors = [[t[i] for i in indices] for t in (params, grads, exp_avgs)]
    if complex_:
        tensors = [[torch.view_as_real(t) for t in column] for column in tensors]
    numels = tuple(t.numel() for t in tensors[0])
    if previous is not None and previous.numels == numels and previous.device == device:
        blocks, first_block = previous.blocks, previous.first_block  # only addresses changed
    else:
        blocks, first_block = _block_table(numels, device)
    addresses = [t.data_ptr() for column in tensors for t in column]
    # One host-to-device copy for the per-tensor rows; the agreement counts start at 0.
    table = torch.tensor(addresses + list(numels) + first_block + indices + [0] * len(numels), dtype=torch.int64)
    return _Launch(
        device=device,
        torch_dtypes=(p.dtype, g.dtype, m.dtype),
        dtypes=tuple(_TL_DTYPES[t.dtype] for t in (p, g, m)),
        complex=complex_,
        numels=numels,
        first_block=first_block,
        num_blocks=len(blocks),
        row=2 if complex_ else 16 // min(t.element_size() for t in (p, g, m)),
        aligned=all(address % _ALIGNMENT_BYTES == 0 for address in addresses),
        blocks=blocks,
        tensors=_upload(table, device),
    )


class LionTritonCache:
    """What one caller's steps reuse: the device tables of the tensors last seen, their key, and the
    lr tensors. Pass the same object to every ``lion_update_triton`` call for one list of tensors
    (``Lion`` keeps one per param group); nothing is shared between objects, so there is no
    process-wide state and no eviction.

    The key is every tensor's address and, with ``check_metadata`` (the default), each param's size
    and dtype. ``Lion`` turns that off: torch keeps a grad's size and dtype equal to its param's,
    Lion creates the momenta itself, and a param's size or dtype can change at an unchanged address
    only through a view of its own storage assigned to ``.data``, which it does not support."""

    def __init__(self, check_metadata: bool = True) -> None:
        self.check_metadata = check_metadata
        self.key: tuple | None = None
        self.launches: list[_Launch] = []
        self._lr: dict[torch.device, tuple[float, Tensor]] = {}
        self._scratch: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def update(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], key: tuple) -> None:
        """Rebuild the tables for these tensors (checked first)."""
        if not len(params) == len(grads) == len(exp_avgs):
            raise ValueError(
                f"lion_update_triton: got {len(params)} params, {len(grads)} grads and {len(exp_avgs)} exp_avgs"
            )
        if params[0].is_cuda and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                "lion_update_triton: these tensors have no cached tables yet, and building them cannot be "
                "captured in a CUDA graph. Run one optimizer step before capturing (with the same "
                "params, grads and state tensors)."
            )
        _check_tensors(params, grads, exp_avgs)
        indices_by_group: dict[tuple, list[int]] = {}
        for index, (p, g, m) in enumerate(zip(params, grads, exp_avgs)):
            if p.numel() > 0:
                indices_by_group.setdefault((p.device, p.dtype, g.dtype, m.dtype), []).append(index)
        previous = {(launch.device, *launch.torch_dtypes): launch for launch in self.launches}
        self.launches = [
            _build_launch(params, grads, exp_avgs, indices, previous.get(group))
            for group, indices in indices_by_group.items()
        ]
        self.key = key

    def lr_tensor(self, lr: float | Tensor, device: torch.device, capturing: bool) -> Tensor:
        """The lr as a one-element device tensor; a float lr is copied to the device only when it changes."""
        if isinstance(lr, Tensor):
            if lr.numel() != 1:
                raise ValueError(
                    f"lion_update_triton: lr must be a number or a one-element tensor, got shape {tuple(lr.shape)}"
                )
            return lr if lr.device == device else lr.to(device)
        cached = self._lr.get(device)
        if cached is not None and cached[0] == lr and not capturing:
            return cached[1]
        # fp64 so that the kernel sees the Python float exactly, as the torch impl does. A new tensor,
        # never an in-place fill: kernels queued on other streams may still read the old one.
        tensor = torch.full((1,), lr, dtype=torch.float64, device=device)
        if not capturing:
            self._lr[device] = (lr, tensor)
        return tensor

    def scratch(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """A one-element tensor, zero at first: the flag or step offset when the caller passes none."""
        tensor = self._scratch.get((device, dtype))
        if tensor is None:
            tensor = self._scratch[(device, dtype)] = torch.zeros(1, dtype=dtype, device=device)
        return tensor


def _check_tensors(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]) -> None:
    for index, (p, g, m) in enumerate(zip(params, grads, exp_avgs)):
        if g.is_sparse:
            raise RuntimeError("Lion does not support sparse gradients")
        if p.shape != g.shape or p.shape != m.shape:
            raise ValueError(
                f"lion_update_triton: tensor {index}: param {tuple(p.shape)}, grad {tuple(g.shape)} and "
                f"exp_avg {tuple(m.shape)} differ in shape"
            )
        if not p.device == g.device == m.device:
            raise ValueError(
                f"lion_update_triton: tensor {index}: param on {p.device}, grad on {g.device}, exp_avg on {m.device}"
            )
        if p.dtype not in _SUPPORTED_PARAM_DTYPES or g.dtype not in _SUPPORTED_PARAM_DTYPES:
            raise ValueError(
                f"lion_update_triton: tensor {index}: param dtype {p.dtype} / grad dtype {g.dtype} not supported; "
                f"valid: {', '.join(map(str, _SUPPORTED_PARAM_DTYPES))}"
            )
        if m.dtype not in _SUPPORTED_STATE_DTYPES:
            raise ValueError(
                f"lion_update_triton: tensor {index}: exp_avg dtype {m.dtype} not supported; "
                f"valid: {', '.join(map(str, _SUPPORTED_STATE_DTYPES))}"
            )
        if (p.dtype == torch.complex64) != (g.dtype == torch.complex64) or (g.dtype == torch.complex64) != (
            m.dtype == torch.complex64
        ):
            raise ValueError(
                f"lion_update_triton: tensor {index}: param {p.dtype}, grad {g.dtype} and exp_avg {m.dtype} mix "
                "complex and real dtypes; a complex64 param needs a complex64 grad and exp_avg"
            )
        if not (is_dense(p) and same_layout(p, g) and same_layout(p, m)):
            raise ValueError(
                f"lion_update_triton: tensor {index} (shape {tuple(p.shape)}, strides {p.stride()}): the fused "
                "kernel needs a dense, non-overlapping param (any dimension order: contiguous, channels_last, ...) "
                f"whose grad (strides {g.stride()}) and exp_avg (strides {m.stride()}) have its strides. Make "
                "them match or use impl='foreach'."
            )


def _check_runnable(device: torch.device) -> None:
    if device.type != "cuda" and not os.environ.get("TRITON_INTERPRET") == "1":
        raise ValueError(
            f"lion_update_triton: tensors are on {device}; the Triton kernel runs on CUDA devices, or on "
            "the CPU through Triton's interpreter (set TRITON_INTERPRET=1 before importing triton; slow, for tests)"
        )


_data_ptr = Tensor.data_ptr
_numel = Tensor.numel
_dtype = operator.attrgetter("dtype")


def _int32_bits(value: int) -> int:
    """The low 32 bits of value as a signed int32 (kernel ints stay int32 whatever the value)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def lion_update_triton(
    params: list[Tensor],  # each (*shape) fp32 / bf16 / fp16 / complex64, dense (any dimension order)
    grads: list[Tensor],  # same shapes, dtypes and strides as params
    exp_avgs: list[Tensor],  # same shapes and strides, fp32 or bf16 momentum (complex64 for complex params)
    *,
    lr: float | Tensor,  # number, or a one-element tensor (read on the device, never synced)
    weight_decay: float,
    beta1: float,
    beta2: float,
    cautious: bool = False,
    maximize: bool = False,
    seed: int = 0,  # Philox key (64 bits) for bf16 stochastic rounding
    step: int = 0,  # Philox counter word: the caller's step count (a new one every call)
    stream: int = 0,  # Philox counter word: tells apart calls at the same step (Lion: the param group)
    stochastic_rounding: bool = True,  # False: bf16 momentum rounds to nearest (the stalling behaviour)
    nonfinite_flags: dict[torch.device, Tensor] | None = None,  # device -> (1,) int32 flag, created if missing
    step_offsets: dict[torch.device, Tensor] | None = None,  # device -> (1,) int64 added to step, created if missing
    cache: LionTritonCache | None = None,  # reuse between calls on the same tensors; None: build every call
) -> None:
    """Fused Lion update, in place: one kernel launch per (device, param/grad/state dtypes) group
    (two with ``cautious``). Runs on the current stream and never syncs the host.

    The random bits for bf16 momentum are a function of (``seed``, ``step`` + ``step_offsets``,
    ``stream``, tensor position in the call, element): pass a new ``step`` every call. The kernel
    sets ``nonfinite_flags[device]`` to 1 when a gradient element is NaN or infinite."""
    if not params:
        return
    if cache is None:
        cache = LionTritonCache()
    # Per call, compared with the cached key: one data_ptr per tensor and (check_metadata) each
    # param's numel and dtype, all through C-level map (a grad has its param's size and dtype: torch
    # enforces it).
    key = tuple(map(_data_ptr, itertools.chain(params, grads, exp_avgs)))
    if cache.check_metadata:
        key = (*key, *map(_numel, params), *map(_dtype, params))
    if key != cache.key:
        cache.update(params, grads, exp_avgs, key)
    device_type = params[0].device.type
    capturing = device_type == "cuda" and torch.cuda.is_current_stream_capturing()
    scalars = (float(weight_decay), float(beta1), 1.0 - float(beta1), float(beta2), 1.0 - float(beta2))
    seed_words = (_int32_bits(seed), _int32_bits(seed >> 32), _int32_bits(step) & 0x7FFFFFFF, _int32_bits(stream))
    for launch in cache.launches:
        device = launch.device
        if nonfinite_flags is None:
            flag = cache.scratch(device, torch.int32)
        else:
            flag = nonfinite_flags.get(device)
            if flag is None:
                flag = nonfinite_flags[device] = torch.zeros(1, dtype=torch.int32, device=device)
        rounding = stochastic_rounding and launch.bf16_momentum
        if step_offsets is None or not rounding:
            step_offset = cache.scratch(device, torch.int64)
        else:
            step_offset = step_offsets.get(device)
            if step_offset is None:
                step_offset = step_offsets[device] = torch.zeros(1, dtype=torch.int64, device=device)
        lr_tensor = cache.lr_tensor(lr, device, capturing)
        p_dtype, g_dtype, m_dtype = launch.dtypes
        with _on_device(device):
            if cautious:
                launch.agreements.zero_()
            for cautious_pass in (_CAUTIOUS_COUNT, _CAUTIOUS_APPLY) if cautious else (_CAUTIOUS_OFF,):
                _lion_kernel[(launch.num_blocks,)](
                    launch.blocks,
                    launch.tensors,
                    lr_tensor,
                    flag,
                    step_offset,
                    launch.num_tensors,
                    *seed_words,
                    *scalars,
                    P_DTYPE=p_dtype,
                    G_DTYPE=g_dtype,
                    M_DTYPE=m_dtype,
                    BLOCK=_BLOCK,
                    ROW=launch.row,
                    ALIGNED=launch.aligned,
                    CAUTIOUS=cautious_pass,
                    CAUTIOUS_MIN_FRACTION=CAUTIOUS_MIN_FRACTION,
                    MAXIMIZE=bool(maximize),
                    COMPLEX=launch.complex,
                    STOCHASTIC_ROUNDING=rounding,
                    num_warps=_NUM_WARPS,
                )


def _on_device(device: torch.device):
    """Triton launches on the current CUDA device: switch only when the tensors live elsewhere."""
    if device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device():
        return torch.cuda.device(device)
    return contextlib.nullcontext()
