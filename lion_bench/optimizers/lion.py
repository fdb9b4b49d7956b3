"""Lion: the pure update rule (torch and foreach backends) and the Optimizer that calls it.

Every backend has the same signature, so tests swap one for another:

    update(params, grads, exp_avgs, *, lr, weight_decay, beta1, beta2, cautious) -> None

and updates ``params`` and ``exp_avgs`` in place. ``weight_decay`` is the coefficient that
multiplies ``lr`` (after any ``decoupled_weight_decay`` division has been applied).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

IMPLS = ("torch", "foreach", "triton")
# Momentum dtypes: None keeps the parameter's dtype. bf16 momentum is a Triton-only option, since
# only the fused kernel upcasts it to fp32 in registers (the torch ops would round in between).
STATE_DTYPES = {None: None, "fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                "bfloat16": torch.bfloat16}

# Liang et al. 2024 (arXiv 2411.16085), reference code: the mask mean is clamped so a tensor whose
# update disagrees everywhere with its gradient is not divided by zero.
CAUTIOUS_MIN_FRACTION = 1e-3


def _cautious_mask(update: Tensor, grad: Tensor) -> Tensor:
    """Cautious masking: keep update entries whose sign agrees with the gradient, rescaled."""
    mask = (update * grad > 0).to(update.dtype)
    return mask.div_(mask.mean().clamp_(min=CAUTIOUS_MIN_FRACTION))


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
) -> None:
    """Reference Lion update, one tensor at a time.

    The op sequence is lion-pytorch 0.2.5's ``update_fn``, so fp32 results are bit-for-bit equal.
    """
    for p, grad, exp_avg in zip(params, grads, exp_avgs):
        p.mul_(1.0 - lr * weight_decay)
        update = exp_avg.clone().mul_(beta1).add(grad, alpha=1.0 - beta1).sign_()
        if cautious:
            update.mul_(_cautious_mask(update, grad))
        p.add_(update, alpha=-lr)
        exp_avg.mul_(beta2).add_(grad, alpha=1.0 - beta2)


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
) -> None:
    """Lion update with torch's multi-tensor ``_foreach`` kernels (same arithmetic as the torch impl)."""
    if not params:
        return
    if weight_decay != 0.0:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    updates = torch._foreach_mul(exp_avgs, beta1)
    torch._foreach_add_(updates, grads, alpha=1.0 - beta1)
    torch._foreach_sign_(updates)
    if cautious:
        torch._foreach_mul_(updates, [_cautious_mask(u, g) for u, g in zip(updates, grads)])
    torch._foreach_add_(params, updates, alpha=-lr)
    torch._foreach_mul_(exp_avgs, beta2)
    torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta2)


def _triton_update() -> Callable[..., None]:
    try:
        from lion_bench.optimizers.lion_triton import lion_update_triton
    except ImportError as error:
        raise ImportError(
            f"Lion(impl='triton') needs Triton and the lion_bench Triton kernel ({error}). "
            "Install Triton with `pip install triton` (or `pip install 'lion-bench[triton]'`), "
            "or use impl='foreach' or impl='torch'."
        ) from error
    return lion_update_triton


def _check_hyperparameters(lr: float, betas: tuple[float, float], weight_decay: float) -> None:
    if isinstance(lr, Tensor):
        lr_value = float(lr)
    else:
        lr_value = lr
    if not lr_value > 0.0:
        raise ValueError(f"Lion: lr must be > 0, got lr={lr}")
    if len(betas) != 2:
        raise ValueError(f"Lion: betas must be two numbers (beta1, beta2), got betas={tuple(betas)}")
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Lion: betas[{index}] must be in [0, 1), got betas={tuple(betas)}")
    if not weight_decay >= 0.0:
        raise ValueError(f"Lion: weight_decay must be >= 0, got weight_decay={weight_decay}")


class Lion(Optimizer):
    r"""Lion, EvoLved Sign Momentum (Chen et al. 2023, "Symbolic Discovery of Optimization
    Algorithms", arXiv 2302.06675).

    For each parameter ``p`` with gradient ``g`` and momentum ``m``:

    .. math::
        p &\leftarrow p\,(1 - \eta\lambda) \\
        c &= \beta_1 m + (1-\beta_1) g \\
        p &\leftarrow p - \eta\,\mathrm{sign}(c) \qquad (\mathrm{sign}(0) = 0) \\
        m &\leftarrow \beta_2 m + (1-\beta_2) g

    Constructor compatible with ``lion_pytorch.Lion`` (0.2.5). With ``impl="torch"`` and fp32
    tensors the parameters are bit-for-bit those of ``lion_pytorch.Lion`` with the same arguments.

    Usage advice (the paper, section 5): because every coordinate moves by exactly ``lr``, Lion's
    updates have a larger norm than AdamW's. Use an lr 3-10x smaller than AdamW's and a weight
    decay 3-10x larger, so that the effective decay ``lr * weight_decay`` stays similar.
    lion-pytorch's author found lr/3 best for language models, and batch sizes >= 64.

    Args:
        params: parameters or param groups (each group may set its own lr, betas, weight_decay).
        lr: learning rate (> 0).
        betas: (beta1, beta2), each in [0, 1). beta1 interpolates the update direction, beta2
            the momentum. (0.95, 0.98) is the paper's advice for stability.
        weight_decay: decoupled decay coefficient (>= 0); each step multiplies ``p`` by
            ``1 - lr * weight_decay``.
        use_triton: same as ``impl="triton"`` (lion-pytorch's switch).
        decoupled_weight_decay: lion-pytorch's meaning: ``weight_decay`` is divided by the initial
            lr, so each step multiplies ``p`` by ``1 - weight_decay * lr / initial_lr``. The decay
            per step is then ``weight_decay`` itself at the peak of the schedule, whatever the lr,
            and follows the schedule's shape. lion-pytorch divides by the constructor's lr for every
            group; here each group divides by its own initial lr (identical when groups share it).
        impl: "torch" (reference, one tensor at a time), "foreach" (torch multi-tensor kernels)
            or "triton" (one fused kernel launch per device and dtype). Default: "triton" if
            ``use_triton`` else "foreach".
        cautious: cautious masking (Liang et al. 2024, arXiv 2411.16085): zero the update entries
            whose sign disagrees with the gradient, rescale the rest by 1 / (kept fraction).
        state_dtype: dtype of the momentum ``exp_avg``: None (the parameter's dtype), "fp32" or
            "bf16". bf16 momentum needs ``impl="triton"``, which computes in fp32 registers and
            moves 4 fewer bytes per fp32 parameter and step (16 instead of 20).

    A group's ``lr`` may be a one-element tensor on the parameters' device: the triton impl reads
    it on the device (no host sync, CUDA-graph capturable with a changing lr); the torch and
    foreach impls read its value with ``float()``.

    State: ``state[p]["exp_avg"]`` (momentum, same shape as ``p``) for every backend, so a
    checkpoint saved with one backend loads into another.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        use_triton: bool = False,
        decoupled_weight_decay: bool = False,
        *,
        impl: str | None = None,
        cautious: bool = False,
        state_dtype: str | None = None,
    ):
        _check_hyperparameters(lr, betas, weight_decay)
        if impl is None:
            impl = "triton" if use_triton else "foreach"
        if impl not in IMPLS:
            raise ValueError(f"Lion: unknown impl {impl!r}; valid impls: {', '.join(IMPLS)}")
        if use_triton and impl != "triton":
            raise ValueError(f"Lion: use_triton=True conflicts with impl={impl!r}; pass one of them")
        if state_dtype not in STATE_DTYPES:
            raise ValueError(
                f"Lion: unknown state_dtype {state_dtype!r}; valid: None, {', '.join(map(repr, list(STATE_DTYPES)[1:]))}"
            )
        if STATE_DTYPES[state_dtype] == torch.bfloat16 and impl != "triton":
            raise ValueError(f"Lion: state_dtype={state_dtype!r} (bf16 momentum) needs impl='triton', got impl={impl!r}")
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, cautious=cautious)
        super().__init__(params, defaults)
        self.impl = impl
        self.decoupled_weight_decay = decoupled_weight_decay
        self.state_dtype = STATE_DTYPES[state_dtype]
        for group in self.param_groups:
            _check_hyperparameters(group["lr"], group["betas"], group["weight_decay"])
            # The lr that decoupled weight decay divides by: this group's lr at construction.
            group.setdefault("decoupled_wd_lr", float(group["lr"]))
        self._update = {
            "torch": lion_update_torch,
            "foreach": lion_update_foreach,
        }.get(impl) or _triton_update()

    def __setstate__(self, state: dict) -> None:
        # Called by load_state_dict: groups saved by lion_pytorch.Lion lack our keys.
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("cautious", False)
            group.setdefault("decoupled_wd_lr", float(group["lr"]))

    def _effective_weight_decay(self, group: dict) -> float:
        weight_decay = group["weight_decay"]
        if self.decoupled_weight_decay:
            weight_decay = weight_decay / group["decoupled_wd_lr"]
        return weight_decay

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Lion does not support sparse gradients")
                state = self.state[p]
                state_dtype = self.state_dtype or p.dtype
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(p, dtype=state_dtype, memory_format=torch.preserve_format)
                elif state["exp_avg"].dtype != state_dtype:
                    # load_state_dict casts state to the parameter's dtype; restore the momentum dtype.
                    state["exp_avg"] = state["exp_avg"].to(state_dtype)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            if isinstance(lr, Tensor) and self.impl != "triton":
                lr = float(lr)
            self._update(
                params,
                grads,
                exp_avgs,
                lr=lr,
                weight_decay=self._effective_weight_decay(group),
                beta1=beta1,
                beta2=beta2,
                cautious=group["cautious"],
            )
        return loss
