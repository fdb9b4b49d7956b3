"""The fused Lion kernel as of commit ae54e06 (2026-11-21), before issue 12: round-to-nearest bf16
momentum, no non-finite flag, module-level caches. Frozen here (the code below is that commit's
lion_bench/optimizers/lion_triton.py, unchanged) so that benchmarks time today's kernel against it
on the same device in the same run: benchmarks/bf16_momentum.py and the lion-triton-v1 rows of
benchmarks/optimizer_step.py. Not used by the package.

The original docstring:

Lion as one fused Triton kernel launch per (device, dtype) group of tensors.

``_lion_kernel`` -> ``lion_update_triton`` (same signature as ``lion_update_torch``) ->
``Lion(impl="triton")``.

One launch covers every tensor of a group through a block table: program ``i`` updates ``BLOCK``
elements of tensor ``block_tensor[i]`` starting at element ``block_start[i]``; the tensors'
addresses come from an int64 table of ``data_ptr``s. Both tables live on the device and are
cached, keyed by the tensors' addresses and sizes, so a training loop whose tensors stay put
(the usual case, and a requirement of CUDA graphs) builds them once.

Per element (fp32 registers, whatever the storage dtype):

    p <- p * (1 - lr * wd)
    c  = beta1 * m + (1 - beta1) * g
    p <- p - lr * sign(c) [* cautious mask / kept fraction]
    m <- beta2 * m + (1 - beta2) * g

``lr`` is read from a device tensor: a new lr never recompiles, nothing syncs the host, and a
step can be captured in a CUDA graph (put a device tensor in ``group["lr"]`` so that replays see
a changing lr). Cautious masking needs each tensor's kept fraction before any element is
updated, so it takes two launches: one counts agreements per tensor, one applies.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict

import torch
import triton
import triton.language as tl
from torch import Tensor

# Fixed heuristics (never autotuned: the kernel updates its inputs in place). 2048 elements per
# program, 4 warps: 16 elements per thread, i.e. four 16-byte vectors per fp32 stream. Measured on
# an H200 (benchmarks/NOTES.md): 98-100% of copy bandwidth at 1.3B params for fp32 and bf16
# params and state; 32 elements per thread (8192 / 8 warps) lost up to 23% with bf16.
_BLOCK = 2048
_NUM_WARPS = 4
_SUPPORTED_PARAM_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_SUPPORTED_STATE_DTYPES = (torch.float32, torch.bfloat16)
# Addresses divisible by 16 bytes let the compiler issue 16-byte vector loads and stores.
_ALIGNMENT_BYTES = 16
_MAX_CACHED_PLANS = 16

_TL_DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}

_CAUTIOUS_OFF, _CAUTIOUS_COUNT, _CAUTIOUS_APPLY = 0, 1, 2


@triton.jit
def _sign(x):
    # sign(0) = 0; NaN -> 0 as torch.sign does on the CPU.
    return tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, 0.0))


@triton.jit
def _lion_block(
    param_ptr,  # pointer to this block's first param element (P_DTYPE)
    grad_ptr,  # pointer to this block's first grad element (G_DTYPE)
    exp_avg_ptr,  # pointer to this block's first momentum element (M_DTYPE)
    agreement_ptr,  # pointer to this tensor's int32 cautious agreement count
    num_remaining,  # elements left in the tensor from this block's start
    lr,  # fp32 scalar
    decay,  # fp32 scalar: 1 - lr * weight_decay
    cautious_scale,  # fp32 scalar: 1 / kept fraction (used when CAUTIOUS == 2)
    beta1,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    BLOCK: tl.constexpr,
    MASKED: tl.constexpr,
    CAUTIOUS: tl.constexpr,
):
    offsets = tl.arange(0, BLOCK)
    in_bounds = offsets < num_remaining
    if MASKED:
        grad = tl.load(grad_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
        exp_avg = tl.load(exp_avg_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
    else:
        grad = tl.load(grad_ptr + offsets).to(tl.float32)
        exp_avg = tl.load(exp_avg_ptr + offsets).to(tl.float32)
    direction = _sign(tl.fma(grad, one_minus_beta1, exp_avg * beta1))
    if CAUTIOUS == 1:
        # Pass 1 only counts the entries whose update agrees with the gradient (masked lanes: 0).
        tl.atomic_add(agreement_ptr, tl.sum((direction * grad > 0).to(tl.int32), axis=0))
    else:
        if MASKED:
            param = tl.load(param_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
        else:
            param = tl.load(param_ptr + offsets).to(tl.float32)
        if CAUTIOUS == 2:
            direction = direction * tl.where(direction * grad > 0, cautious_scale, 0.0)
        param = tl.fma(direction, -lr, param * decay)
        exp_avg = tl.fma(grad, one_minus_beta2, exp_avg * beta2)
        if MASKED:
            tl.store(param_ptr + offsets, param.to(param_ptr.dtype.element_ty), mask=in_bounds)
            tl.store(exp_avg_ptr + offsets, exp_avg.to(exp_avg_ptr.dtype.element_ty), mask=in_bounds)
        else:
            tl.store(param_ptr + offsets, param.to(param_ptr.dtype.element_ty))
            tl.store(exp_avg_ptr + offsets, exp_avg.to(exp_avg_ptr.dtype.element_ty))


@triton.jit
def _lion_kernel(
    block_tensor_ptr,  # (num_blocks,) int64: index of the tensor this program updates
    block_start_ptr,  # (num_blocks,) int64: first element of this program's block in its tensor
    addresses_ptr,  # (3, num_tensors) int64: data_ptr of params, grads, exp_avgs
    numels_ptr,  # (num_tensors,) int64: elements per tensor
    agreements_ptr,  # (num_tensors,) int32: cautious agreement counts (unused when not cautious)
    lr_ptr,  # (1,) float: learning rate
    num_tensors,
    weight_decay,
    beta1,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    P_DTYPE: tl.constexpr,
    G_DTYPE: tl.constexpr,
    M_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
    ALIGNED: tl.constexpr,
    CAUTIOUS: tl.constexpr,  # 0: off, 1: count agreements, 2: apply with counts
):
    block = tl.program_id(0)
    tensor = tl.load(block_tensor_ptr + block)
    start = tl.load(block_start_ptr + block)
    numel = tl.load(numels_ptr + tensor)
    param_address = tl.load(addresses_ptr + tensor)
    grad_address = tl.load(addresses_ptr + num_tensors + tensor)
    exp_avg_address = tl.load(addresses_ptr + 2 * num_tensors + tensor)
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
        kept = tl.load(agreements_ptr + tensor).to(tl.float32) / numel.to(tl.float32)
        cautious_scale = 1.0 / tl.maximum(kept, 1e-3)

    num_remaining = numel - start
    # Full blocks take the unmasked path, whose loads and stores can be 16-byte vectors.
    if num_remaining >= BLOCK:
        _lion_block(param_ptr, grad_ptr, exp_avg_ptr, agreements_ptr + tensor, num_remaining, lr, decay,
                    cautious_scale, beta1, one_minus_beta1, beta2, one_minus_beta2, BLOCK, False, CAUTIOUS)
    else:
        _lion_block(param_ptr, grad_ptr, exp_avg_ptr, agreements_ptr + tensor, num_remaining, lr, decay,
                    cautious_scale, beta1, one_minus_beta1, beta2, one_minus_beta2, BLOCK, True, CAUTIOUS)


class _GroupTables:
    """Device tables for tensors sharing a device and dtypes: which block belongs to which tensor."""

    def __init__(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]):
        self.device = params[0].device
        _check_runnable(self.device)
        self.dtypes = tuple(_TL_DTYPES[t.dtype] for t in (params[0], grads[0], exp_avgs[0]))
        self.block = _BLOCK
        numels = [p.numel() for p in params]
        blocks_per_tensor = torch.tensor([-(-n // self.block) for n in numels], dtype=torch.int64)
        block_tensor = torch.repeat_interleave(torch.arange(len(params), dtype=torch.int64), blocks_per_tensor)
        # Block k of a tensor starts at k * block: a running index minus the tensor's first block.
        first_block = torch.cumsum(blocks_per_tensor, 0) - blocks_per_tensor
        block_start = (torch.arange(len(block_tensor), dtype=torch.int64) - first_block[block_tensor]) * self.block
        addresses = [t.data_ptr() for tensors in (params, grads, exp_avgs) for t in tensors]
        self.num_blocks = len(block_tensor)
        self.num_tensors = len(params)
        self.aligned = all(address % _ALIGNMENT_BYTES == 0 for address in addresses)
        # One host-to-device copy for all tables.
        packed = torch.cat(
            [torch.tensor(addresses, dtype=torch.int64), torch.tensor(numels, dtype=torch.int64), block_start,
             block_tensor, torch.zeros(self.num_tensors, dtype=torch.int64)]
        ).to(self.device, non_blocking=True)
        self.addresses, self.numels, self.block_start, self.block_tensor, agreements = packed.split(
            [3 * self.num_tensors, self.num_tensors, self.num_blocks, self.num_blocks, self.num_tensors]
        )
        self.agreements = agreements.view(torch.int32)[: self.num_tensors]


class _Plan:
    """Every group of one call's tensors, split by device and (param, grad, momentum) dtypes."""

    def __init__(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]):
        _check_tensors(params, grads, exp_avgs)
        indices_by_group: dict[tuple, list[int]] = {}
        for index, (p, g, m) in enumerate(zip(params, grads, exp_avgs)):
            if p.numel() > 0:
                indices_by_group.setdefault((p.device, p.dtype, g.dtype, m.dtype), []).append(index)
        self.groups = [
            _GroupTables([params[i] for i in indices], [grads[i] for i in indices], [exp_avgs[i] for i in indices])
            for indices in indices_by_group.values()
        ]


_plans: OrderedDict[tuple, _Plan] = OrderedDict()
_data_ptr = Tensor.data_ptr
_numel = Tensor.numel


def _plan_for(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]) -> _Plan:
    """The cached plan for these tensors, keyed by their addresses and sizes and the first
    tensors' dtypes (per step: one ``data_ptr`` per tensor and one ``numel`` per parameter).
    Layout and every dtype are checked when a plan is built; a tensor whose data is replaced in
    place by a view of another dtype or layout at the same address is not detected."""
    if not len(params) == len(grads) == len(exp_avgs):
        raise ValueError(
            f"lion_update_triton: got {len(params)} params, {len(grads)} grads and {len(exp_avgs)} exp_avgs"
        )
    key = (params[0].dtype, grads[0].dtype, exp_avgs[0].dtype, *map(_numel, params),
           *map(_data_ptr, params), *map(_data_ptr, grads), *map(_data_ptr, exp_avgs))
    plan = _plans.get(key)
    if plan is not None:
        _plans.move_to_end(key)
        return plan
    if params[0].is_cuda and torch.cuda.is_current_stream_capturing():
        raise RuntimeError(
            "lion_update_triton: these tensors have no cached tables yet, and building them cannot be "
            "captured in a CUDA graph. Run one optimizer step before capturing (with the same "
            "params, grads and state tensors)."
        )
    plan = _Plan(params, grads, exp_avgs)
    _plans[key] = plan
    if len(_plans) > _MAX_CACHED_PLANS:
        _plans.popitem(last=False)
    return plan


def _check_tensors(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]) -> None:
    for index, (p, g, m) in enumerate(zip(params, grads, exp_avgs)):
        if not (p.is_contiguous() and g.is_contiguous() and m.is_contiguous()):
            raise ValueError(
                f"lion_update_triton: tensor {index} (shape {tuple(p.shape)}) or its grad or exp_avg is not "
                "contiguous; the fused kernel needs contiguous tensors. Make the parameter contiguous "
                "or use impl='foreach'."
            )
        if p.shape != g.shape or p.shape != m.shape:
            raise ValueError(
                f"lion_update_triton: tensor {index}: param {tuple(p.shape)}, grad {tuple(g.shape)} and "
                f"exp_avg {tuple(m.shape)} differ in shape"
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


_lr_cache: dict[torch.device, tuple[float, Tensor]] = {}


def _lr_tensor(lr: float | Tensor, device: torch.device) -> Tensor:
    """The lr as a one-element device tensor; a float lr is copied to the device only when it changes."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"lion_update_triton: lr must be a number or a one-element tensor, got shape {tuple(lr.shape)}")
        return lr if lr.device == device else lr.to(device)
    lr = float(lr)
    capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    cached = _lr_cache.get(device)
    if cached is not None and cached[0] == lr and not capturing:
        return cached[1]
    # fp64 so that the kernel sees the Python float exactly, as the torch impl does. A new tensor,
    # never an in-place fill: kernels queued on other streams may still read the old one.
    tensor = torch.full((1,), lr, dtype=torch.float64, device=device)
    if not capturing:
        _lr_cache[device] = (lr, tensor)
    return tensor


def _check_runnable(device: torch.device) -> None:
    if device.type != "cuda" and not os.environ.get("TRITON_INTERPRET") == "1":
        raise ValueError(
            f"lion_update_triton: tensors are on {device}; the Triton kernel runs on CUDA devices, or on "
            "the CPU through Triton's interpreter (set TRITON_INTERPRET=1 before importing triton; slow, for tests)"
        )


def lion_update_triton(
    params: list[Tensor],  # each (*shape) fp32 / bf16 / fp16, contiguous
    grads: list[Tensor],  # same shapes as params, fp32 / bf16 / fp16
    exp_avgs: list[Tensor],  # same shapes, fp32 or bf16 momentum
    *,
    lr: float | Tensor,  # number, or a one-element tensor (read on the device, never synced)
    weight_decay: float,
    beta1: float,
    beta2: float,
    cautious: bool = False,
) -> None:
    """Fused Lion update, in place: one kernel launch per (device, param/grad/state dtypes) group
    (two with ``cautious``). Runs on the current stream."""
    if not params:
        return
    plan = _plan_for(params, grads, exp_avgs)
    scalars = (float(weight_decay), float(beta1), 1.0 - float(beta1), float(beta2), 1.0 - float(beta2))
    for tables in plan.groups:
        lr_tensor = _lr_tensor(lr, tables.device)
        p_dtype, g_dtype, m_dtype = tables.dtypes
        with _on_device(tables.device):
            if cautious:
                tables.agreements.zero_()
            for cautious_pass in (_CAUTIOUS_COUNT, _CAUTIOUS_APPLY) if cautious else (_CAUTIOUS_OFF,):
                _lion_kernel[(tables.num_blocks,)](
                    tables.block_tensor,
                    tables.block_start,
                    tables.addresses,
                    tables.numels,
                    tables.agreements,
                    lr_tensor,
                    tables.num_tensors,
                    *scalars,
                    P_DTYPE=p_dtype,
                    G_DTYPE=g_dtype,
                    M_DTYPE=m_dtype,
                    BLOCK=tables.block,
                    ALIGNED=tables.aligned,
                    CAUTIOUS=cautious_pass,
                    num_warps=_NUM_WARPS,
                )


def _on_device(device: torch.device):
    """Triton launches on the current CUDA device: switch only when the tensors live elsewhere."""
    if device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device():
        return torch.cuda.device(device)
    return contextlib.nullcontext()
