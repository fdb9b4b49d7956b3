"""Lion: the optimizer class. It gathers each param group's tensors and calls the update rule of
its backend: ``lion_update_torch`` or ``lion_update_foreach`` (pure functions in ``functional``), or
the fused kernel's launcher ``lion_update_triton`` (``lion_triton``), which share one signature.

Layers (Liger-Kernel's kernel -> function -> module): ``functional`` imports nothing of ours,
``lion_triton`` imports ``functional``, and this module imports both. The names that lived here
before (``lion_update_torch``, ``stochastic_round_to_bf16``, ``CAUTIOUS_MIN_FRACTION``, ...) are
still importable from here.
"""

from __future__ import annotations

import itertools
import operator
from typing import Callable, Iterable

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

from lion_bench.optimizers.functional import (
    CAUTIOUS_MIN_FRACTION,
    cautious_mask,
    check_real_for_cautious,
    lion_update_foreach,
    lion_update_torch,
    same_layout,
    stochastic_round_to_bf16,
)

try:  # Triton is an extra (lion-bench[triton]); without it impl="triton" says what to install
    from lion_bench.optimizers.lion_triton import LionTritonCache, lion_update_triton
except ImportError as error:
    LionTritonCache = lion_update_triton = None
    _TRITON_IMPORT_ERROR: ImportError | None = error
else:
    _TRITON_IMPORT_ERROR = None

__all__ = ["CAUTIOUS_MIN_FRACTION", "IMPLS", "STATE_DTYPES", "Lion", "cautious_mask", "lion_update_foreach",
           "lion_update_torch", "lion_update_triton", "stochastic_round_to_bf16"]

IMPLS = ("torch", "foreach", "triton")
# Momentum dtypes: None keeps the parameter's dtype. bf16 momentum is a Triton-only option, since
# only the fused kernel upcasts it to fp32 in registers (the torch ops would round in between).
STATE_DTYPES = {None: None, "fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                "bfloat16": torch.bfloat16}


def _triton_update() -> Callable[..., None]:
    if lion_update_triton is None:
        raise ImportError(
            f"Lion(impl='triton') needs Triton and the lion_bench Triton kernel ({_TRITON_IMPORT_ERROR}). "
            "Install Triton with `pip install triton` (or `pip install 'lion-bench[triton]'`), "
            "or use impl='foreach' or impl='torch'."
        ) from _TRITON_IMPORT_ERROR
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


_GRAD = operator.attrgetter("grad")
_EXP_AVG = operator.itemgetter("exp_avg")


class _GatheredGroup:
    """One param group's tensors as the fused kernel last saw them (triton impl), so that a step
    gathers nothing again unless the group's params, which of them have grads, or the optimizer
    state changed. The kernel's device tables live in ``cache`` and check addresses themselves."""

    def __init__(self, params: list, state: dict, grads: list, active: list, exp_avgs: list, cache) -> None:
        self.params_list = params  # the group's list object, as given
        self.num_params = len(params)
        self.state = state  # the optimizer's state dict object (load_state_dict replaces it)
        # None when every param has a grad; else which ones have none.
        self.missing = None if len(active) == len(params) else tuple(g is None for g in grads)
        self.params = active
        self.state_dicts = [state[p] for p in active]
        self.exp_avgs = exp_avgs
        self.cache = cache

    def current(self, params: list, grads: list, state: dict) -> tuple[list, list] | None:
        """(grads of ``self.params``, their momenta) if this gathering still holds, else None.
        O(len(params)), all in C: a few calls of ``map`` over the lists. A momentum replaced in the
        state shows as a new address in the kernel's key."""
        if params is not self.params_list or len(params) != self.num_params or state is not self.state:
            return None
        if self.missing is None:
            # Not `None in grads`: that compares with Tensor.__eq__ (milliseconds).
            if any(map(operator.is_, grads, itertools.repeat(None))):
                return None
        elif tuple(map(operator.is_, grads, itertools.repeat(None))) != self.missing:
            return None
        else:
            grads = [g for g in grads if g is not None]
        try:
            return grads, list(map(_EXP_AVG, self.state_dicts))
        except KeyError:
            return None


class Lion(Optimizer):
    r"""Lion, EvoLved Sign Momentum (Chen et al. 2023, "Symbolic Discovery of Optimization
    Algorithms", arXiv 2302.06675).

    For each parameter ``p`` with gradient ``g`` (``-g`` with ``maximize``) and momentum ``m``:

    .. math::
        p &\leftarrow p\,(1 - \eta\lambda) \\
        c &= \beta_1 m + (1-\beta_1) g \\
        p &\leftarrow p - \eta\,\mathrm{sgn}(c) \qquad (\mathrm{sgn}(0) = 0) \\
        m &\leftarrow \beta_2 m + (1-\beta_2) g

    ``sgn`` is the sign for real parameters and ``c / |c|`` for complex ones (lion-pytorch's
    ``sgn_``). Constructor compatible with ``lion_pytorch.Lion`` (0.2.5). With ``impl="torch"`` and
    fp32 tensors the parameters are bit-for-bit those of ``lion_pytorch.Lion`` with the same arguments.

    Usage advice (the paper, section 5): because every coordinate moves by exactly ``lr``, Lion's
    updates have a larger norm than AdamW's. Use an lr 3-10x smaller than AdamW's and a weight
    decay 3-10x larger, so that the effective decay ``lr * weight_decay`` stays similar.
    lion-pytorch's author found lr/3 best for language models, and batch sizes >= 64.

    Args:
        params: parameters or param groups (each group may set its own lr, betas, weight_decay,
            cautious, maximize).
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
            whose sign disagrees with the gradient, rescale the rest by 1 / (kept fraction, at
            least ``CAUTIOUS_MIN_FRACTION``). Real parameters only.
        state_dtype: dtype of the momentum ``exp_avg``: None (the parameter's dtype), "fp32" or
            "bf16". bf16 momentum needs ``impl="triton"``, which computes in fp32 registers, stores
            the momentum with stochastic rounding (so it follows fp32 momentum on average instead of
            stalling), and moves 4 fewer bytes per fp32 parameter and step (16 instead of 20).
        maximize: maximize the objective (the update uses ``-grad``), as torch's optimizers.
        seed: key of the random bits for bf16 stochastic rounding (an int in [0, 2**64)). Default:
            ``torch.initial_seed()``, so ``torch.manual_seed(s)`` before construction fixes it,
            without drawing from (and so shifting) torch's random stream. The bits also depend on
            the step count, the param group and the tensor, so a run repeats bit for bit.

    A group's ``lr`` may be a one-element tensor on the parameters' device: the triton impl reads
    it on the device (no host sync, CUDA-graph capturable with a changing lr); the torch and
    foreach impls read its value with ``float()``.

    State: ``state[p]["exp_avg"]`` (momentum, same shape as ``p``) for every backend, so a
    checkpoint saved with one backend loads into another. Each param group also records ``seed``
    and ``step`` (steps taken), which feed the random bits: ``state_dict()`` carries them, and an
    optimizer loaded from it continues the run bit for bit.

    ``nonfinite_grad_flag``: None before the first step, then a one-element int32 tensor on the
    parameters' device that is nonzero once any step met a NaN or infinite gradient element (the
    update turns that element's momentum NaN, and sgn(NaN) = 0 freezes it silently). It is never
    cleared and the optimizer never reads it on the host: read it when you read the loss. The triton
    impl sets it inside the kernel; torch and foreach derive it when it is read, from the momenta
    (a non-finite gradient leaves a non-finite momentum, for good).
    """

    # False: bf16 momentum rounds to nearest, the old behaviour (kept to measure what stochastic
    # rounding fixes: benchmarks/bf16_momentum.py).
    _stochastic_rounding = True

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
        maximize: bool = False,
        seed: int | None = None,
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
        if seed is None:
            seed = torch.initial_seed()
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ValueError(f"Lion: seed must be an int in [0, 2**64), got seed={seed!r}")
        self.impl = impl
        self.decoupled_weight_decay = decoupled_weight_decay
        self.state_dtype = STATE_DTYPES[state_dtype]
        self._nonfinite_flags: dict[torch.device, Tensor] = {}
        # CUDA graphs: per device, steps replayed on the device since the last eager gathering (see step).
        self._step_offsets: dict[torch.device, Tensor] = {}
        self._replayed_steps = False
        self._gathered: list[_GatheredGroup | None] = []
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, cautious=cautious, maximize=maximize,
                        seed=seed)
        super().__init__(params, defaults)
        self._update = {
            "torch": lion_update_torch,
            "foreach": lion_update_foreach,
        }.get(impl) or _triton_update()

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _check_hyperparameters(group["lr"], group["betas"], group["weight_decay"])
        # The lr that decoupled weight decay divides by: this group's lr when added.
        group.setdefault("decoupled_wd_lr", float(group["lr"]))
        group.setdefault("step", 0)
        if any(p.is_complex() for p in group["params"]):
            if group["cautious"]:
                check_real_for_cautious(group["params"])
            if self.state_dtype == torch.bfloat16:
                raise ValueError("Lion: state_dtype='bf16' is for real parameters; complex ones keep complex64 momentum")

    def __setstate__(self, state: dict) -> None:
        # Called by load_state_dict: groups saved by lion_pytorch.Lion (or before these keys) lack them.
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("cautious", False)
            group.setdefault("maximize", False)
            group.setdefault("seed", self.defaults.get("seed", 0))
            group.setdefault("step", 0)
            group.setdefault("decoupled_wd_lr", float(group["lr"]))

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self._replayed_steps:
            # CUDA graph replays advanced the step on the device only: count them (one sync).
            replayed = max(int(offset) for offset in self._step_offsets.values())
            for group in state["param_groups"]:
                group["step"] += replayed
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # The loaded steps count any replays already; graphs captured before are stale anyway.
        for offset in self._step_offsets.values():
            offset.zero_()
        self._replayed_steps = False

    @property
    def nonfinite_grad_flag(self) -> Tensor | None:
        """One-element int32 tensor, nonzero once a step met a NaN or infinite gradient element
        (None before the first step). Reading it never syncs."""
        if self.impl != "triton":
            self._flag_nonfinite_momenta()
        flags = list(self._nonfinite_flags.values())
        if len(flags) <= 1:
            return flags[0] if flags else None
        combined = flags[0].clone()  # params on several devices: one flag on the first
        for flag in flags[1:]:
            combined.bitwise_or_(flag.to(combined.device, non_blocking=True))
        return combined

    def _flag_nonfinite_momenta(self) -> None:
        momenta_by_device: dict[torch.device, list[Tensor]] = {}
        for state in self.state.values():
            exp_avg = state.get("exp_avg")
            if exp_avg is not None and exp_avg.numel() > 0:
                momenta_by_device.setdefault(exp_avg.device, []).append(exp_avg)
        for device, momenta in momenta_by_device.items():
            # The max-norm is NaN or inf exactly when an element is.
            norms = torch.stack(torch._foreach_norm(momenta, float("inf")))
            found = torch.isfinite(norms).all().logical_not().to(torch.int32).reshape(1)
            flag = self._nonfinite_flags.get(device)
            if flag is None:
                self._nonfinite_flags[device] = found
            else:
                flag.bitwise_or_(found)

    def _effective_weight_decay(self, group: dict) -> float:
        weight_decay = group["weight_decay"]
        if self.decoupled_weight_decay:
            weight_decay = weight_decay / group["decoupled_wd_lr"]
        return weight_decay

    def _exp_avg(self, p: Tensor) -> Tensor:
        """p's momentum, created on first use, in the configured dtype."""
        state = self.state[p]
        state_dtype = self.state_dtype or p.dtype
        if len(state) == 0:
            state["exp_avg"] = torch.zeros_like(p, dtype=state_dtype, memory_format=torch.preserve_format)
        elif state["exp_avg"].dtype != state_dtype:
            # load_state_dict casts state to the parameter's dtype; restore the momentum dtype.
            state["exp_avg"] = state["exp_avg"].to(state_dtype)
        return state["exp_avg"]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.impl == "triton":
            self._step_triton()
            return loss
        for group in self.param_groups:
            params, grads, exp_avgs = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Lion does not support sparse gradients")
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(self._exp_avg(p))
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            if isinstance(lr, Tensor):
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
                maximize=group["maximize"],
            )
            group["step"] += 1
        return loss

    def _gather(self, group: dict, grads: list, cache) -> _GatheredGroup:
        """The slow path of a triton step: collect the params with grads and their momenta."""
        active = []
        for p, grad in zip(group["params"], grads):
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError("Lion does not support sparse gradients")
            active.append(p)
        exp_avgs = []
        for p in active:
            exp_avg = self._exp_avg(p)
            if not same_layout(p, exp_avg):
                # A momentum loaded from a checkpoint with another layout: the kernel needs p's strides.
                exp_avg = self.state[p]["exp_avg"] = torch.empty_like(p, dtype=exp_avg.dtype).copy_(exp_avg)
            exp_avgs.append(exp_avg)
        cache = cache or LionTritonCache(check_metadata=False)  # see LionTritonCache: the grads and momenta are ours
        return _GatheredGroup(group["params"], self.state, grads, active, exp_avgs, cache)

    def _step_triton(self) -> None:
        # Per group and step, Python work in proportion to the number of tensors is a handful of
        # C-level passes (grads, their presence, momentum identity, addresses and sizes); the
        # per-parameter loop runs only when something changed (_gather).
        gathered_groups = self._gathered
        del gathered_groups[len(self.param_groups) :]
        gathered_groups.extend([None] * (len(self.param_groups) - len(gathered_groups)))
        for index, group in enumerate(self.param_groups):
            grads = list(map(_GRAD, group["params"]))
            gathered = gathered_groups[index]
            tensors = None if gathered is None else gathered.current(group["params"], grads, self.state)
            if tensors is None:
                gathered = gathered_groups[index] = self._gather(group, grads, gathered and gathered.cache)
                tensors = [g for g in grads if g is not None], gathered.exp_avgs
            beta1, beta2 = group["betas"]
            self._update(
                gathered.params,
                *tensors,
                lr=group["lr"],
                weight_decay=self._effective_weight_decay(group),
                beta1=beta1,
                beta2=beta2,
                cautious=group["cautious"],
                maximize=group["maximize"],
                seed=group["seed"],
                step=group["step"],
                stream=index,
                stochastic_rounding=self._stochastic_rounding,
                nonfinite_flags=self._nonfinite_flags,
                step_offsets=self._step_offsets,
                cache=gathered.cache,
            )
            group["step"] += 1
        if any(device.type == "cuda" for device in self._step_offsets) and torch.cuda.is_current_stream_capturing():
            # A captured step bakes in this step count: each replay must draw new random bits, so the
            # graph advances a device-side offset that the kernel adds to the step.
            for offset in self._step_offsets.values():
                offset.add_(1)
            self._replayed_steps = True
