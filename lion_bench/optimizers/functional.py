"""Lion's update as pure functions on lists of tensors, and the helpers every backend shares.

The bottom of the optimizer package (Liger-Kernel's layout: kernel -> function -> module): this
module imports nothing of lion_bench; ``lion_triton`` (the fused kernel and its launcher) imports it,
and ``lion`` (the ``Lion`` optimizer) imports both. Every backend has the same signature, so tests
swap one for another:

    update(params, grads, exp_avgs, *, lr, weight_decay, beta1, beta2, cautious, maximize) -> None

and updates ``params`` and ``exp_avgs`` in place. ``weight_decay`` is the coefficient that
multiplies ``lr`` (after any ``decoupled_weight_decay`` division has been applied). The Triton
launcher takes the same arguments plus keywords of its own (random-bit seed and step, flags, cache).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Liang et al. 2024 (arXiv 2411.16085), reference code: the mask mean is clamped so a tensor whose
# update disagrees everywhere with its gradient is not divided by zero.
CAUTIOUS_MIN_FRACTION = 1e-3


def cautious_mask(update: Tensor, grad: Tensor, maximize: bool = False) -> Tensor:
    """Cautious masking: keep update entries whose sign agrees with the gradient (with ``maximize``,
    the negated gradient), rescaled."""
    agreement = update * grad
    mask = (agreement < 0 if maximize else agreement > 0).to(update.dtype)
    return mask.div_(mask.mean().clamp_(min=CAUTIOUS_MIN_FRACTION))


def check_real_for_cautious(tensors: list[Tensor]) -> None:
    if any(t.is_complex() for t in tensors):
        raise ValueError(
            "Lion: cautious masking compares signs of real numbers; complex parameters need cautious=False"
        )


def stochastic_round_to_bf16(x: Tensor, random_bits: Tensor) -> Tensor:
    """The fused kernel's rounding of fp32 momentum to bf16, in torch (the reference the tests use).

    ``random_bits``: integers of ``x``'s shape whose low 16 bits are uniform. They are added to the
    low half of each fp32 bit pattern, which is then cut: the magnitude rounds up with probability
    (dropped bits) / 2**16, so the expected result is ``x``. NaN stays NaN."""
    bits = x.float().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    rounded = torch.where(torch.isnan(x), bits, bits + (random_bits.to(torch.int64) & 0xFFFF))
    high = (rounded >> 16) & 0xFFFF
    return (high - (high >= 0x8000).to(torch.int64) * 0x10000).to(torch.int16).view(torch.bfloat16)


def is_dense(t: Tensor) -> bool:
    """Non-overlapping and dense: its elements fill numel() consecutive slots in some order."""
    expected = 1
    for stride, size in sorted((stride, size) for size, stride in zip(t.shape, t.stride()) if size != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def same_layout(a: Tensor, b: Tensor) -> bool:
    """The same strides in every dimension that has more than one element."""
    return all(sa == sb for size, sa, sb in zip(a.shape, a.stride(), b.stride()) if size != 1)


def lion_update_torch(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    lr: float,
    weight_decay: float,
    beta1: float,
    beta2: float,
    cautious: bool = False,
    maximize: bool = False,
) -> None:
    """Reference Lion update, one tensor at a time.

    The op sequence is lion-pytorch 0.2.5's ``update_fn``, so fp32 results are bit-for-bit equal.
    Like it, the direction is ``sgn``: the sign for real tensors, ``c / |c|`` for complex ones.
    ``maximize`` negates the gradient (through the ``alpha`` of each op, so no copy is made).
    """
    if cautious:
        check_real_for_cautious(params)
    sign = -1.0 if maximize else 1.0
    for p, grad, exp_avg in zip(params, grads, exp_avgs):
        p.mul_(1.0 - lr * weight_decay)
        update = exp_avg.clone().mul_(beta1).add(grad, alpha=sign * (1.0 - beta1)).sgn_()
        if cautious:
            update.mul_(cautious_mask(update, grad, maximize))
        p.add_(update, alpha=-lr)
        exp_avg.mul_(beta2).add_(grad, alpha=sign * (1.0 - beta2))


def lion_update_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    lr: float,
    weight_decay: float,
    beta1: float,
    beta2: float,
    cautious: bool = False,
    maximize: bool = False,
) -> None:
    """Lion update with torch's multi-tensor ``_foreach`` kernels (same arithmetic as the torch impl)."""
    if not params:
        return
    if cautious:
        check_real_for_cautious(params)
    sign = -1.0 if maximize else 1.0
    if weight_decay != 0.0:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    updates = torch._foreach_mul(exp_avgs, beta1)
    torch._foreach_add_(updates, grads, alpha=sign * (1.0 - beta1))
    real = [u for u in updates if not u.is_complex()]
    if real:
        torch._foreach_sign_(real)
    if len(real) != len(updates):  # torch has no _foreach_sgn: complex tensors one at a time
        for update in updates:
            if update.is_complex():
                update.sgn_()
    if cautious:
        torch._foreach_mul_(updates, [cautious_mask(u, g, maximize) for u, g in zip(updates, grads)])
    torch._foreach_add_(params, updates, alpha=-lr)
    torch._foreach_mul_(exp_avgs, beta2)
    torch._foreach_add_(exp_avgs, grads, alpha=sign * (1.0 - beta2))
