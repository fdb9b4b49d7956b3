"""Several runs of one model shape trained as one batched model in one process ("packed" trials).

Each member is a whole run of its own, built by the trainer's ``start_run`` exactly as if it ran
alone: its own task (data stream, seed), its own model whose parameters are its own leaf tensors,
its own optimizer (the real ``Lion`` or ``torch.optim.AdamW``, with its param groups, lr and weight
decay), schedule, clipping, divergence guard, evaluation, checkpoints and record in its own run
directory. Only the forward and backward passes are shared: each step stacks the members'
parameters and batches (a new leading dimension, one entry per member) and runs the task's own loss
under ``torch.func.vmap`` of ``torch.func.functional_call``, so one set of larger kernels replaces
one small set per member. The gradient of the sum of the members' losses with respect to member i's
parameters is the gradient of member i's loss alone, so each member's optimizer sees what its solo
run would see, up to float summation order in the batched kernels.

    train_packed([(cfg, run_dir, loggers), ...]) -> [RunRecord or the exception of a failed member]

A member whose loss diverges (or whose own step raises) is closed as its solo run would be and leaves
the group; the others go on. A member that reaches its last step is evaluated and closed; members may
start at different steps (one resumed from a checkpoint) and train different numbers of steps. An
interrupt (Ctrl-C, SIGTERM) closes every member still training as interrupted, its checkpoint kept, and
raises ``Interrupted``. A group that cannot run batched (a layer without a vmap rule, such as
``nn.LSTM``; dropout, whose random draws a batched run cannot reproduce) trains its members one at a
time instead, with a warning.
"""

from __future__ import annotations

import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from lion_bench.plan import plan_run
from lion_bench.runs.checkpoint import CheckpointWriter
from lion_bench.runs.compile_cache import compile_failed_on_cache, set_aside_cache
from lion_bench.runs.errors import BadInput, Interrupted, RunFailed
from lion_bench.runs.record import RunRecord, Status
from lion_bench.runs.store import RUN_FILE, MetricsWriter
from lion_bench.trainer import (
    Diverged,
    LoopState,
    Logger,
    Run,
    close,
    final_evaluation,
    log_step,
    maybe_checkpoint,
    run_loop,
    start_run,
    sync,
)

Job = tuple[DictConfig, Path, list[Logger]]


@dataclass
class Member:
    run: Run
    state: LoopState
    index: int  # position in train_packed's list of jobs
    params: list[torch.Tensor] = field(default_factory=list)  # its leaf parameters, in the group's name order


@dataclass
class Group:
    """The members still training and what their batched loss needs."""

    members: list[Member]
    template: torch.nn.Module  # the module functional_call runs with each member's parameters
    names: list[str]  # parameter names, in the order of each member's ``params``
    loss: Callable[..., torch.Tensor]  # (members' parameter lists, *stacked batch) -> (members,) losses
    compile: bool
    results: dict[int, RunRecord | BaseException] = field(default_factory=dict)


class _Functional:
    """A callable that runs ``template`` with other parameters: what a task's ``loss(model, batch)``
    calls, inside vmap."""

    def __init__(self, template: torch.nn.Module, params: dict[str, torch.Tensor]):
        self.template, self.params = template, params

    def __call__(self, *args: Any) -> Any:
        return functional_call(self.template, self.params, args)


def packing_problem(runs: list[Run]) -> str | None:
    """Why these runs cannot train as one batched model (None when they can): each must have the
    same model (parameter names and shapes), no buffers, and the same batch shapes, precision, device
    and compilation; vmap must run the task's loss (tried forward only, on batches drawn and then
    put back)."""
    first = runs[0]
    shapes = [[(name, tuple(p.shape), p.dtype) for name, p in run.eval_model.named_parameters()] for run in runs]
    if any(shape != shapes[0] for shape in shapes[1:]):
        return "their models differ in parameter names, shapes or dtypes"
    if any(True for run in runs for _ in run.eval_model.buffers()):
        return "the model has buffers (vmap would not write their updates back)"
    settings = {(run.plan.device, run.plan.precision, run.plan.compile, run.plan.grad_accum_steps, type(run.task),
                 run.task.batch_size) for run in runs}
    if len(settings) > 1:
        return "they differ in device, precision, compilation, gradient accumulation, task or batch size"
    saved = [run.task.state_dict() for run in runs]
    try:
        batches = [run.task.train_batch() for run in runs]
        stacked = [torch.stack(parts) for parts in zip(*batches)]
        names = [name for name, _ in first.eval_model.named_parameters()]
        params = {name: torch.stack([dict(run.eval_model.named_parameters())[name] for run in runs]) for name in names}
        with torch.no_grad(), torch.autocast(first.device.type, dtype=torch.bfloat16,
                                             enabled=first.plan.precision == "bf16"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no batching rule for ...: a slower fallback": correct, only slower
            vmap(lambda p, *batch: first.task.loss(_Functional(first.eval_model, p), batch))(params, *stacked)
    except Exception as error:  # noqa: BLE001 - any reason vmap cannot run this loss
        return f"vmap cannot run the task's loss ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    finally:
        for run, state in zip(runs, saved):
            run.task.load_state_dict(state)
    return None


def _batched_loss(template: torch.nn.Module, names: list[str], task_loss: Callable) -> Callable[..., torch.Tensor]:
    def loss(member_params: list[list[torch.Tensor]], *stacked_batch: torch.Tensor) -> torch.Tensor:
        # (members, *shape) per parameter: a differentiable stack, so each member's own leaf tensors
        # get their gradients.
        params = {name: torch.stack([own[i] for own in member_params]) for i, name in enumerate(names)}
        return vmap(lambda p, *batch: task_loss(_Functional(template, p), batch))(params, *stacked_batch)

    return loss


def packed_train_step(group: Group) -> None:
    """One optimizer step of every member (and its micro-steps), forward and backward batched,
    queued without waiting for the GPU; as ``trainer.train_step`` does for one run."""
    members = group.members
    plan = members[0].run.plan
    accumulation = plan.grad_accum_steps
    member_params = [m.params for m in members]
    step_losses = None
    for _ in range(accumulation):
        batches = [m.run.task.train_batch() for m in members]
        stacked = [torch.stack(parts) for parts in zip(*batches)]
        with torch.autocast(plan.device.type, dtype=torch.bfloat16, enabled=plan.precision == "bf16"):
            losses = group.loss(member_params, *stacked)  # (members,)
        total = losses.sum()
        # d(sum)/d(loss_i) = 1: member i's gradients are those of its own loss (divided as in train_step).
        (total / accumulation if accumulation > 1 else total).backward()
        step_losses = losses.detach() if step_losses is None else step_losses + losses.detach()
        for member, batch in zip(members, batches):
            member.state.tokens += member.run.task.units_per_batch(batch)
    for index, member in enumerate(list(members)):
        run, state = member.run, member.state
        try:
            if run.plan.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(run.parameters, run.plan.grad_clip)
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=False)  # gradients keep their addresses (see train_step)
        except Exception as error:  # noqa: BLE001 - this member's own step failed: it alone fails
            group.results[member.index] = RunFailed(error)
            close(run, state, Status.FAILED)
            members.remove(member)
            continue
        state.step += 1
        loss = step_losses[index]
        run.pending.append((state.step, loss / accumulation if accumulation > 1 else loss))


def _first_compiled_step(group: Group) -> None:
    """``trainer.first_compiled_step`` for a pack: a compile that fails while a compile cache is in
    use is retried once with the cache set aside, from the same data positions."""
    positions = [member.run.task.state_dict() for member in group.members]
    try:
        packed_train_step(group)
    except Exception as error:
        first = group.members[0].run
        cache = first.record.environment.get("compile_cache")
        if not compile_failed_on_cache(error, cache):
            raise
        fresh = set_aside_cache(cache, error, first.device)
        torch._dynamo.reset()
        for member, position in zip(group.members, positions):
            member.run.record.environment["compile_cache"] = fresh
            member.run.optimizer.zero_grad(set_to_none=True)
            member.run.task.load_state_dict(position)
        packed_train_step(group)


def _after_step(group: Group) -> None:
    """Each member's log step (losses read, divergence guard, evaluation), checkpoint, and its end."""
    for member in list(group.members):
        run, state = member.run, member.state
        try:
            log_step(run, state)
            maybe_checkpoint(run, state)
            if state.step >= run.plan.num_steps:
                final = final_evaluation(run, state)
                group.results[member.index] = close(run, state, Status.FINISHED, final=final)
                group.members.remove(member)
        except Diverged as diverged:
            group.results[member.index] = close(run, state, Status.DIVERGED, diverged)
            group.members.remove(member)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # noqa: BLE001 - its evaluation or checkpoint failed: it alone fails
            group.results[member.index] = RunFailed(error)
            close(run, state, Status.FAILED)
            group.members.remove(member)


def _open(member: Member, group_size: int) -> None:
    """What ``trainer.run_loop`` opens before its first step, for one member."""
    run, state = member.run, member.state
    run.attempt_first_step = state.step
    run.metrics = MetricsWriter(run.run_dir, append=run.record.resumed_from_step is not None)
    run.checkpoints = CheckpointWriter(run.run_dir)
    run.progress = tqdm(total=run.plan.num_steps, initial=state.step, disable=True)  # one bar would be k
    run.record.environment["packed"] = {"mode": "batched", "members": group_size}
    run.model.train()
    run.last_checkpoint_at = time.perf_counter()


def _loop(group: Group) -> None:
    for member in group.members:
        _open(member, len(group.members))
    compiling = group.compile
    while group.members:
        if compiling:  # the first call compiles the batched loss: its time is every member's compile time
            device = group.members[0].run.device
            sync(device)
            start = time.perf_counter()
            _first_compiled_step(group)
            sync(device)
            for member in group.members:
                member.state.time_s["compile"] += time.perf_counter() - start
            compiling = False
        else:
            packed_train_step(group)
        _after_step(group)


def _start(jobs: list[Job], results: dict[int, RunRecord | BaseException]) -> list[Member]:
    """Build every member (``start_run``); a member whose setup fails is recorded as failed (bad
    input too: a sweep trial with a bad value fails, recorded) and left out."""
    members = []
    for index, (cfg, run_dir, loggers) in enumerate(jobs):
        try:
            run, state = start_run(cfg, run_dir, loggers, plan_run(cfg))
        except BadInput as error:
            results[index] = error  # nothing written yet: the launcher records it as a failed trial
            continue
        except Exception as error:  # noqa: BLE001 - RunFailed: start_run wrote the failure record
            results[index] = error
            continue
        members.append(Member(run, state, index))
    return members


def _interrupt(signum, frame):
    raise Interrupted(signum)


def train_packed(jobs: list[Job]) -> list[RunRecord | BaseException]:
    """Train the runs of ``jobs`` (config, run directory, loggers) together; see the module's doc.
    Returns, per job, its record (finished or diverged) or the exception that failed it: ``RunFailed``
    when its record (status failed) is written, ``BadInput`` for bad input found before setup."""
    results: dict[int, RunRecord | BaseException] = {}
    members = _start(jobs, results)
    if len(members) > 1:
        problem = packing_problem([member.run for member in members])
        if problem is not None:
            warnings.warn(f"{len(members)} trials cannot train as one batched model ({problem}); they train one "
                          "at a time", RuntimeWarning, stacklevel=2)
    else:
        problem = "one member"
    if problem is not None:
        for member in members:  # one at a time, each exactly as lion-bench trains it alone
            try:
                results[member.index] = run_loop(member.run, member.state)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:  # noqa: BLE001 - RunFailed: run_loop wrote the failure record
                results[member.index] = error
        return [results[index] for index in range(len(jobs))]
    first = members[0].run
    names = [name for name, _ in first.eval_model.named_parameters()]
    for member in members:
        own = dict(member.run.eval_model.named_parameters())
        member.params = [own[name] for name in names]
    loss = _batched_loss(first.eval_model, names, first.task.loss)
    group = Group(members, first.eval_model, names, torch.compile(loss) if first.plan.compile else loss,
                  first.plan.compile, results)
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _loop(group)
    except KeyboardInterrupt as stop:
        for member in group.members:
            close(member.run, member.state, Status.INTERRUPTED)
        where = group.members[0] if group.members else None
        raise Interrupted(getattr(stop, "signum", signal.SIGINT), where and where.state.step,
                          where and str(where.run.run_dir / RUN_FILE)) from None
    except Exception as error:  # noqa: BLE001 - the shared forward or backward: every member still training fails
        for member in group.members:
            group.results[member.index] = RunFailed(error)
            close(member.run, member.state, Status.FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    return [results[index] for index in range(len(jobs))]
