"""The training loop: steps, gradient accumulation and clipping, periodic evaluation, the
divergence guard, checkpoints and resume, a progress bar, and the run record written at the end.

    train(cfg, run_dir) -> plan_run     bad input raises BadInput; nothing is written
                        -> build_run    task, model, optimizer (a failure here is recorded)
                        -> train_step, log_step, maybe_checkpoint   until the last step
                        -> final_evaluation, close                  the record, checkpoint removed

No plain step waits for the GPU: losses stay on the device and are read at log steps (every
``trainer.log_every``, each evaluation and step 1), where the divergence guard checks every step's
loss since the last read. A diverged run therefore stops within ``log_every`` steps, and its record
names the step. Checkpoints are copied to host memory and written by a background thread.

Ctrl-C or SIGTERM (``runs.interrupts``) stops the loop between two steps: a checkpoint of that step is
written (and waited for), then the record (status interrupted), and Interrupted says where the rerun
resumes. A second signal stops it at once, keeping the last checkpoint written.
"""

from __future__ import annotations

import math
import random
import signal
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from lion_bench.optimizers.registry import build_optimizer
from lion_bench.optimizers.schedules import build_scheduler
from lion_bench.plan import RunPlan, plan_run
from lion_bench.runs import interrupts
from lion_bench.runs.checkpoint import (
    CHECKPOINT_FILE,
    CheckpointWriter,
    load_checkpoint,
    remove_checkpoint,
    rng_states,
    set_rng_states,
    truncate_metrics,
)
from lion_bench.runs.compile_cache import compile_failed_on_cache, set_aside_cache, use_compile_cache
from lion_bench.runs.environment import environment
from lion_bench.runs.errors import BadInput, Interrupted, RunFailed
from lion_bench.runs.memory import PeakMemory, release_freed_memory, reuse_freed_memory
from lion_bench.runs.record import RunRecord, Status, now
from lion_bench.runs.store import (
    RUN_FILE,
    MetricsWriter,
    set_aside,
    write_config,
    write_failure,
    write_record,
)
from lion_bench.tasks import Task, build_task

# Training steps of each attempt left out of the steady-state throughput (compilation, allocator warm-up).
WARMUP_STEPS = 10
PHASES = ("startup", "compile", "eval", "checkpoint")


class Logger(Protocol):
    """Somewhere besides the local store that metrics go (W&B). Never affects the local record."""

    def log(self, row: dict[str, Any]) -> None: ...

    def finish(self, record: RunRecord) -> None: ...


class Diverged(Exception):
    def __init__(self, reason: str, step: int):
        super().__init__(reason)
        self.step = step


@dataclass
class LoopState:
    """What the loop carries from step to step; a checkpoint saves it, so a resumed run goes on."""

    step: int = 0
    tokens: int = 0
    initial_loss: float | None = None
    last_eval: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    # Seconds per phase over every attempt; "total" is the wall time of the attempts before this one.
    time_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys((*PHASES, "total"), 0.0))
    # Steady-state training (steps after each attempt's warm-up, evaluation and checkpoints excluded).
    steady_tokens: int = 0
    steady_s: float = 0.0


@dataclass
class Run:
    """What setup built, and the bookkeeping of this attempt (not checkpointed)."""

    plan: RunPlan
    run_dir: Path
    record: RunRecord
    task: Task
    model: torch.nn.Module  # the module trained: compiled when trainer.compile is on
    eval_model: torch.nn.Module  # the plain module: evaluation shapes never recompile
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loggers: list[Logger]
    started: float  # perf_counter() when this attempt began
    memory: PeakMemory
    metrics: MetricsWriter | None = None
    checkpoints: CheckpointWriter | None = None
    pending: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, loss on the device)
    attempt_first_step: int = 0
    steady_mark: tuple[float, int, float] | None = None  # (time, tokens, eval + checkpoint seconds) at its start
    last_checkpoint_at: float = 0.0
    progress: Any = None

    @property
    def device(self) -> torch.device:
        return self.plan.device

    def elapsed(self, state: LoopState) -> float:
        """Wall seconds of the whole run so far, earlier attempts included."""
        return state.time_s["total"] + time.perf_counter() - self.started


def seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(value.numel() * value.element_size() for state in optimizer.state.values()
               for value in state.values() if isinstance(value, torch.Tensor))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(run: Run, state: LoopState, phase: str) -> Iterator[None]:
    """Add the seconds spent inside to ``state.time_s[phase]``. The GPU's queue is drained before and
    after, so training work queued earlier is not counted here, nor this phase's work elsewhere."""
    sync(run.device)
    start = time.perf_counter()
    try:
        yield
    finally:
        sync(run.device)
        state.time_s[phase] += time.perf_counter() - start


# --- setup ---------------------------------------------------------------------------------------
def build_run(plan: RunPlan, run_dir: Path, loggers: list[Logger], record: RunRecord, started: float) -> Run:
    """Task, model, optimizer and schedule, and what the record learns from them."""
    device = plan.device
    reuse_freed_memory()  # before the peak is reset: earlier runs' freed memory is not this run's
    memory = PeakMemory(device)
    seed_everything(plan.seed, device)
    task = build_task(plan.task, batch_size=plan.batch_size, seed=plan.seed, device=device)
    model = task.build_model().to(device)
    optimizer = build_optimizer(plan.optimizer, model, lr=plan.hyperparameters["lr"],
                                weight_decay=plan.hyperparameters["weight_decay"], device_type=device.type)
    scheduler = build_scheduler(optimizer, plan.schedule, total_steps=plan.num_steps,
                                warmup_steps=plan.warmup_steps, final_fraction=plan.final_lr_fraction)
    record.hyperparameters = plan.hyperparameters
    record.batch_size = plan.batch_size * plan.grad_accum_steps
    record.budget = plan.budget
    record.planned_steps = plan.num_steps
    record.data = task.describe()
    record.num_params = sum(p.numel() for p in model.parameters())
    record.unit = task.unit
    record.environment = {**environment(device), "precision": plan.precision, "compile": plan.compile}
    if plan.compile:
        record.environment["compile_cache"] = use_compile_cache(plan.compile_cache, device)
    trained = torch.compile(model) if plan.compile else model
    return Run(plan, run_dir, record, task, trained, model, list(model.parameters()), optimizer, scheduler,
               list(loggers), started, memory)


def resume(run: Run) -> LoopState | None:
    """The loop state to start from: the run directory's checkpoint of this trial, else a new one.
    None when the checkpoint did not fit this run (it is set aside, the run half-loaded: build anew)."""
    checkpoint = load_checkpoint(run.run_dir)
    if checkpoint is None:
        return LoopState()
    if checkpoint["trial_id"] != run.record.trial_id:
        raise BadInput(f"{run.run_dir} holds a checkpoint of trial {checkpoint['trial_id']}, not "
                       f"{run.record.trial_id}; remove it or use another output directory")
    try:
        run.eval_model.load_state_dict(checkpoint["model"])
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        run.scheduler.load_state_dict(checkpoint["scheduler"])
        run.task.load_state_dict(checkpoint["task"])
        set_rng_states(checkpoint["rng"])
        state = LoopState(**checkpoint["loop"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
        set_aside(run.run_dir / CHECKPOINT_FILE, f"does not fit this run ({type(error).__name__}: "
                  f"{str(error).splitlines()[0][:200] if str(error) else ''})", "the run starts from step 0")
        return None
    truncate_metrics(run.run_dir, state.step)
    run.record.resumed_from_step = state.step
    print(resumed_line(run, state), flush=True)
    return state


def resumed_line(run: Run, state: LoopState) -> str:
    """``resumed from step 40 of 200 (checkpoint of 2026-12-07 13:05)``: what a resumed run says first."""
    try:
        written = time.strftime("%Y-%m-%d %H:%M", time.localtime((run.run_dir / CHECKPOINT_FILE).stat().st_mtime))
    except OSError:  # the checkpoint read, then removed by another hand: the line says the step alone
        return f"resumed from step {state.step} of {run.plan.num_steps}"
    return f"resumed from step {state.step} of {run.plan.num_steps} (checkpoint of {written})"


# --- the loop's pieces ---------------------------------------------------------------------------
def train_step(run: Run, state: LoopState) -> None:
    """One optimizer step (and its micro-steps), queued without waiting for the GPU."""
    plan = run.plan
    accumulation = plan.grad_accum_steps
    step_loss = None
    for _ in range(accumulation):
        batch = run.task.train_batch()
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=plan.precision == "bf16"):
            loss = run.task.loss(run.model, batch)
        (loss / accumulation if accumulation > 1 else loss).backward()
        step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
        state.tokens += run.task.units_per_batch(batch)
    if plan.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.parameters, plan.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    # Zeroed in place, not freed: the gradients keep their addresses from step to step, so an
    # optimizer that caches device tables of its tensors (Lion's fused kernel) never rebuilds them.
    run.optimizer.zero_grad(set_to_none=False)
    state.step += 1
    run.pending.append((state.step, step_loss / accumulation if accumulation > 1 else step_loss))


def first_compiled_step(run: Run, state: LoopState) -> None:
    """The step that compiles the model. If the compiler fails while a compile cache is in use, the
    cache is set aside and the step runs again from the same data position (nothing else changed:
    the failure came before any gradient or step), so a damaged cache never fails a run."""
    position = run.task.state_dict()
    try:
        train_step(run, state)
    except Exception as error:
        cache = run.record.environment.get("compile_cache")
        if not compile_failed_on_cache(error, cache):
            raise
        run.record.environment["compile_cache"] = set_aside_cache(cache, error, run.device)
        torch._dynamo.reset()
        run.optimizer.zero_grad(set_to_none=True)
        run.task.load_state_dict(position)
        train_step(run, state)


def read_losses(run: Run, state: LoopState) -> float:
    """Read every pending step loss in one host sync and apply the divergence guard to each, and to
    the optimizer's non-finite-gradient flag where it keeps one. Returns the current step's loss."""
    flag = getattr(run.optimizer, "nonfinite_grad_flag", None)
    tensors = [loss.float() for _, loss in run.pending]
    if isinstance(flag, torch.Tensor):
        tensors.append(flag.float().reshape(()))
    values = torch.stack(tensors).tolist() if tensors else []
    nonfinite_gradient = bool(values.pop()) if isinstance(flag, torch.Tensor) else False
    steps = [step for step, _ in run.pending]
    run.pending.clear()
    factor = run.plan.divergence_factor
    for step, value in zip(steps, values):
        if state.initial_loss is None:
            state.initial_loss = value
        if not math.isfinite(value) or value > factor * state.initial_loss:
            raise Diverged(f"train loss {value:.4g} at step {step} (initial {state.initial_loss:.4g})", step)
    if nonfinite_gradient:
        since = steps[0] if steps else state.step
        raise Diverged(f"non-finite gradient in a step from {since} to {state.step}", since)
    return values[-1] if values else math.nan


def evaluate(run: Run, state: LoopState) -> dict[str, float]:
    with timed(run, state, "eval"):
        result = run.task.evaluate(run.eval_model)
    if not math.isfinite(result["val_loss"]):
        raise Diverged(f"non-finite validation loss {result['val_loss']} at step {state.step}", state.step)
    for key in ("val_loss", "val_bpc"):
        if key in result:
            state.best[key] = min(state.best.get(key, math.inf), result[key])
    state.last_eval = result
    return result


def due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def log_step(run: Run, state: LoopState) -> None:
    """At log and evaluation steps: read the losses, evaluate when due, write the metrics row."""
    plan = run.plan
    at_eval = due(state.step, plan.eval_every) or state.step == plan.num_steps
    if not (at_eval or due(state.step, plan.log_every) or state.step == 1):
        return
    train_loss = read_losses(run, state)
    mark_steady_state(run, state)
    row = {"step": state.step, "tokens": state.tokens, "train_loss": train_loss,
           "lr": run.optimizer.param_groups[0]["lr"], "elapsed_s": run.elapsed(state)}
    if at_eval:
        row.update(evaluate(run, state))
    run.metrics.write(row)
    for logger in run.loggers:
        logger.log(row)
    if run.progress is not None:
        run.progress.set_postfix(loss=f"{train_loss:.3f}", refresh=False)


def mark_steady_state(run: Run, state: LoopState) -> None:
    """At the first read (a sync point) after this attempt's warm-up steps, start counting steady state."""
    if run.steady_mark is None and state.step - run.attempt_first_step >= WARMUP_STEPS:
        run.steady_mark = (time.perf_counter(), state.tokens, state.time_s["eval"] + state.time_s["checkpoint"])


def maybe_checkpoint(run: Run, state: LoopState) -> None:
    """Save a resume point every ``checkpoint_every`` steps and every ``checkpoint_minutes``."""
    plan = run.plan
    by_time = plan.checkpoint_minutes > 0 and time.perf_counter() - run.last_checkpoint_at >= 60 * plan.checkpoint_minutes
    if state.step >= plan.num_steps or not (due(state.step, plan.checkpoint_every) or by_time):
        return
    save_resume_point(run, state)
    run.last_checkpoint_at = time.perf_counter()


def save_resume_point(run: Run, state: LoopState) -> None:
    """Start writing a checkpoint of this step (copied now, written in the background)."""
    if run.pending:  # every step before a resume point has passed the divergence guard
        read_losses(run, state)
    with timed(run, state, "checkpoint"):
        run.checkpoints.save({
            "trial_id": run.record.trial_id,
            "model": run.eval_model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "task": run.task.state_dict(),  # the data position
            "rng": rng_states(run.device),
            "loop": {**asdict(state), "time_s": {**state.time_s, "total": run.elapsed(state)}},
        }, run.device)


def final_evaluation(run: Run, state: LoopState) -> dict[str, Any]:
    """The last step's evaluation plus what the task's fuller final evaluation replaces or adds."""
    with timed(run, state, "eval"):
        final = {**state.last_eval, **run.task.final_evaluate(run.eval_model)}
    if not math.isfinite(final.get("val_loss", math.nan)):
        raise Diverged(f"non-finite final validation loss {final.get('val_loss')}", state.step)
    return final


def close(run: Run, state: LoopState, status: Status, reason: Diverged | None = None,
          final: dict[str, Any] | None = None) -> RunRecord:
    """Fill in and write the record (inside ``except`` for a failure: the traceback goes beside it),
    remove the checkpoint of a result, and tell the loggers."""
    run.progress.close()
    run.metrics.close()
    try:
        run.checkpoints.wait()
    except Exception as error:  # a failed checkpoint write loses a resume point, not the run
        warnings.warn(f"{run.run_dir}: the last checkpoint could not be written ({error})", RuntimeWarning)
    record = run.record
    sync(run.device)
    record.status = status
    if reason is not None:
        record.divergence, record.diverged_at_step = str(reason), reason.step
    record.steps, record.tokens, record.initial_train_loss = state.step, state.tokens, state.initial_loss
    record.final = final or {}
    record.best = dict(state.best)
    total = run.elapsed(state)
    record.time_s = {**{phase: state.time_s[phase] for phase in PHASES},
                     "train": total - sum(state.time_s[phase] for phase in PHASES), "total": total}
    if run.steady_mark is not None:
        mark_time, mark_tokens, mark_excluded = run.steady_mark
        excluded = state.time_s["eval"] + state.time_s["checkpoint"] - mark_excluded
        state.steady_s += time.perf_counter() - mark_time - excluded
        state.steady_tokens += state.tokens - mark_tokens
    record.train_tokens_per_s = state.steady_tokens / state.steady_s if state.steady_s > 0 else None
    record.optimizer_state_bytes = optimizer_state_bytes(run.optimizer)
    record.peak_memory_bytes, record.peak_memory_kind = run.memory.read()
    record.finished_at = now()
    if status is Status.FAILED:
        write_failure(run.run_dir, record)
    else:
        write_record(run.run_dir, record)
    if status.is_result:
        remove_checkpoint(run.run_dir)
    for logger in run.loggers:
        logger.finish(record)
    return record


# --- the whole run -------------------------------------------------------------------------------
def train(cfg: DictConfig, run_dir: Path, loggers: list[Logger] = (), plan: RunPlan | None = None,
          built: Run | None = None) -> RunRecord:
    """Train one run described by ``cfg``, writing its record under ``run_dir``. Returns the record.

    Bad input raises BadInput before anything is written. If ``run_dir`` holds a checkpoint of the
    same trial, the run continues from it. A failure after setup began leaves a record saying so and
    raises the error that failed it; Ctrl-C or SIGTERM leaves one with status interrupted and a
    checkpoint of the step it stopped at, and raises Interrupted. ``built``: from ``build_early``."""
    try:
        return train_run(cfg, run_dir, loggers, plan, built)
    except RunFailed as failed:
        raise failed.error from None


def train_run(cfg: DictConfig, run_dir: Path, loggers: list[Logger] = (), plan: RunPlan | None = None,
              built: Run | None = None) -> RunRecord:
    """``train``, but a failure after its record was written raises ``RunFailed`` (the error inside), so
    whoever records the attempt (``sweeps.resume.Attempt``) knows the trainer wrote the failed record."""
    run, state = start_run(cfg, run_dir, loggers, plan, built)
    try:
        return run_loop(run, state)
    finally:
        del run  # the model, optimizer and data: freed now, so the memory they held goes back to the system
        release_freed_memory()


def build_early(plan: RunPlan, run_dir: Path) -> Run | None:
    """The run built before anything in ``run_dir`` is read or changed, so that bad input the task finds
    (BadInput, raised) leaves the directory as it was. None when setup fails otherwise: ``start_run``
    builds it again and records that failure."""
    record = RunRecord.begin(plan.record_config, plan.trial_id)
    try:
        return build_run(plan, Path(run_dir), [], record, time.perf_counter())
    except BadInput:
        raise
    except Exception:  # noqa: BLE001 - recorded by start_run, which meets it again
        return None


def start_run(cfg: DictConfig, run_dir: Path, loggers: list[Logger] = (), plan: RunPlan | None = None,
              built: Run | None = None) -> tuple[Run, LoopState]:
    """Setup of ``train``: the run built (or ``built``, from ``build_early``) and resumed from its
    checkpoint, if any, and its config written; the loop is not started. Packed trials
    (``sweeps/packed.py``) start each member this way."""
    started = built.started if built is not None else time.perf_counter()
    run_dir = Path(run_dir)
    plan = plan or plan_run(cfg)
    record = built.record if built is not None else RunRecord.begin(plan.record_config, plan.trial_id)
    try:
        if built is not None:
            run, built.loggers = built, list(loggers)
        else:
            run = build_run(plan, run_dir, loggers, record, started)
        state = resume(run)
        if state is None:  # a damaged checkpoint was set aside: start again from a fresh build
            run, state = build_run(plan, run_dir, loggers, record, started), LoopState()
    except BadInput:
        raise
    except Exception as error:
        write_config(run_dir, plan.config_yaml)
        write_failure(run_dir, record)
        raise RunFailed(error) from error
    write_config(run_dir, plan.config_yaml)
    state.time_s["startup"] += time.perf_counter() - started
    return run, state


def run_loop(run: Run, state: LoopState) -> RunRecord:
    """Train from ``state`` to the last step and close the run. Ctrl-C or SIGTERM (``runs.interrupts``)
    stops it between two steps, saved there; a second signal stops it at once."""
    run.attempt_first_step = state.step
    run.metrics = MetricsWriter(run.run_dir, append=run.record.resumed_from_step is not None)
    run.checkpoints = CheckpointWriter(run.run_dir, saved_step=run.record.resumed_from_step)
    run.progress = tqdm(total=run.plan.num_steps, initial=state.step, dynamic_ncols=True,
                        desc=f"{run.plan.optimizer['name']} {run.plan.task['name']}",
                        disable=None if run.plan.progress is None else not run.plan.progress)  # None: if not a tty
    with interrupts.deferred():
        try:
            signum = train_steps(run, state)
            final = final_evaluation(run, state) if signum is None else None
        except Diverged as diverged:
            return result_or_stop(run, state, close(run, state, Status.DIVERGED, diverged))
        except KeyboardInterrupt as cut:
            raise cut_short(run, state, cut) from None
        except Exception as error:
            close(run, state, Status.FAILED)
            raise RunFailed(error) from error
        if signum is not None:
            raise stop_at_step(run, state, signum)
        return result_or_stop(run, state, close(run, state, Status.FINISHED, final=final))


def train_steps(run: Run, state: LoopState) -> int | None:
    """Steps until the last, or until a signal asks to stop: then its number, at that step's end."""
    run.model.train()
    run.last_checkpoint_at = time.perf_counter()
    while state.step < run.plan.num_steps:
        if state.step == run.attempt_first_step and run.plan.compile:
            with timed(run, state, "compile"):  # the first call compiles the model
                first_compiled_step(run, state)
        else:
            train_step(run, state)
        log_step(run, state)
        maybe_checkpoint(run, state)
        run.progress.update(1)
        if interrupts.requested() is not None:
            return interrupts.requested()
    return None


def _record_path(run: Run) -> str:
    return str(run.run_dir / RUN_FILE)


def stop_at_step(run: Run, state: LoopState, signum: int) -> Interrupted:
    """A signal asked to stop and the loop is between two steps: write a checkpoint of this step now
    (waiting for it) and the record (interrupted). What to raise says where the rerun resumes."""
    interrupts.stopping()
    try:
        save_resume_point(run, state)
        run.checkpoints.wait()
        note = None
    except Diverged as diverged:  # a step since the last read failed the divergence guard: a result
        close(run, state, Status.DIVERGED, diverged)
        return Interrupted(signum, state.step, _record_path(run), result=Status.DIVERGED.value)
    except Exception as error:  # noqa: BLE001 - a full disk, a read-only directory: the line says so
        note = f"the checkpoint could not be written ({type(error).__name__}: {error})"
    close(run, state, Status.INTERRUPTED)
    return Interrupted(signum, state.step, _record_path(run), resume_step=run.checkpoints.saved_step, note=note)


def cut_short(run: Run, state: LoopState, cut: KeyboardInterrupt) -> Interrupted:
    """A stop that did not wait for the step to end (a second signal, or a KeyboardInterrupt raised
    by other code): the record says interrupted, and the resume point is the last checkpoint written."""
    interrupts.stopping()
    close(run, state, Status.INTERRUPTED)
    signum = interrupts.requested() or getattr(cut, "signum", signal.SIGINT)  # the first signal's
    return Interrupted(signum, state.step, _record_path(run),
                       resume_step=run.checkpoints.saved_step, note="stopped at once, within a step")


def result_or_stop(run: Run, state: LoopState, record: RunRecord) -> RunRecord:
    """The run's record; if a signal came while it was closing, the result stands and the command stops."""
    signum = interrupts.requested()
    if signum is None:
        return record
    interrupts.stopping()
    raise Interrupted(signum, state.step, _record_path(run), result=record.status.value)
