"""The training loop: steps, gradient accumulation and clipping, periodic evaluation, the
divergence guard, checkpoints and resume, a progress bar, and the run record written at the end
(atomically). A run that fails at any point, setup included, still leaves a run record saying so."""

from __future__ import annotations

import math
import random
import resource
import signal
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from lion_bench.optimizers.registry import build_optimizer, check_optimizer_name
from lion_bench.optimizers.schedules import build_scheduler, check_schedule
from lion_bench.results.environment import environment
from lion_bench.results.store import RUN_FILE, TRACEBACK_FILE, MetricsWriter, atomic_write_json
from lion_bench.sweeps.checkpoint import (
    load_checkpoint, remove_checkpoint, rng_states, save_checkpoint, set_rng_states, truncate_metrics,
)
from lion_bench.sweeps.ratio import resolve_hyperparameters
from lion_bench.sweeps.trial import trial_id
from lion_bench.tasks import Task, build_task, check_task_name

BUDGETS = ("steps", "tokens")


class Logger(Protocol):
    """Somewhere besides the local store that metrics go (W&B). Never affects the local record."""

    def log(self, row: dict[str, Any]) -> None: ...

    def finish(self, record: dict[str, Any]) -> None: ...


class Diverged(Exception):
    pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use device=cpu or device=auto")
    return device


def planned_steps(trainer: DictConfig) -> int:
    """Optimizer steps of this run. ``budget: steps`` trains ``max_steps``; ``budget: tokens`` trains
    on the data that ``max_steps`` steps see at ``reference_batch_size`` (rounded down, at least one
    step), so runs at different batch sizes see the same number of tokens."""
    budget = trainer.get("budget", "steps")
    if budget not in BUDGETS:
        raise ValueError(f"trainer.budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if budget == "steps":
        return int(trainer.max_steps)
    reference = int(trainer.get("reference_batch_size") or 0)
    if reference < 1:
        raise ValueError(f"trainer.reference_batch_size must be >= 1 with budget=tokens, got {reference}")
    batch = int(trainer.batch_size) * int(trainer.grad_accum_steps)
    return max(1, int(trainer.max_steps) * reference // batch)


def validate(cfg: DictConfig) -> tuple[dict[str, Any], int]:
    """Every check that needs no data or model, so bad input fails before anything runs.
    Returns the resolved hyperparameters and the number of steps to train."""
    check_optimizer_name(cfg.optimizer.name)
    check_task_name(cfg.task.name)
    hyperparameters = resolve_hyperparameters(cfg.base, cfg.optimizer)
    trainer = cfg.trainer
    if trainer.max_steps < 1:
        raise ValueError(f"trainer.max_steps must be >= 1, got {trainer.max_steps}")
    if trainer.grad_accum_steps < 1:
        raise ValueError(f"trainer.grad_accum_steps must be >= 1, got {trainer.grad_accum_steps}")
    if trainer.batch_size < 1:
        raise ValueError(f"trainer.batch_size must be >= 1, got {trainer.batch_size}")
    if trainer.precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"trainer.precision must be auto, fp32 or bf16, got {trainer.precision!r}")
    if trainer.get("checkpoint_every", 0) < 0:
        raise ValueError(f"trainer.checkpoint_every must be >= 0 (0: never), got {trainer.checkpoint_every}")
    num_steps = planned_steps(trainer)
    schedule = trainer.schedule
    check_schedule(schedule.name, num_steps, schedule.warmup_steps, schedule.final_fraction)
    return hyperparameters, num_steps


def seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )


def peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "peak_memory_kind": "cuda_allocated"}
    # ru_maxrss is in KiB on Linux.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_memory_bytes": rss, "peak_memory_kind": "process_max_rss"}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def first_record(cfg: DictConfig) -> dict[str, Any]:
    """What is known about a run before anything can fail: enough to file it as failed."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # a broken interpolation: record the config as written
        resolved = OmegaConf.to_container(cfg, resolve=False)
    sweep = resolved.get("sweep") or {}
    return {
        "status": "failed",
        "trial_id": trial_id(resolved),
        "sweep": sweep.get("name") if isinstance(sweep, dict) else None,
        "arm": resolved.get("arm"),
        "task": (resolved.get("task") or {}).get("name"),
        "optimizer": (resolved.get("optimizer") or {}).get("name"),
        "seed": resolved.get("seed"),
        "config": resolved,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def record_failure(run_dir: Path, record: dict[str, Any]) -> None:
    """Call inside ``except``: saves the traceback next to the record and marks it failed."""
    record["status"] = "failed"
    record["error"] = traceback.format_exc(limit=-3).strip().splitlines()[-1]
    (run_dir / TRACEBACK_FILE).write_text(traceback.format_exc())


def train(cfg: DictConfig, run_dir: Path, loggers: list[Logger] = ()) -> dict[str, Any]:
    """Train one run described by ``cfg``, writing its record under ``run_dir``. Returns the record.

    If ``run_dir`` holds a checkpoint of the same trial, the run continues from it. Bad input
    raises before anything is written; later failures leave a record with status failed."""
    run_dir = Path(run_dir)
    record = first_record(cfg)
    hyperparameters, num_steps = validate(cfg)
    device = resolve_device(cfg.device)
    trainer = cfg.trainer
    # Data and model: a missing file or an impossible shape is bad input too (no record).
    seed_everything(int(cfg.seed), device)
    task = build_task(cfg.task, batch_size=int(trainer.batch_size), seed=int(cfg.seed), device=device)
    try:
        model = task.build_model().to(device)
        optimizer = build_optimizer(
            cfg.optimizer, model, lr=hyperparameters["lr"], weight_decay=hyperparameters["weight_decay"],
            device_type=device.type,
        )
        schedule = trainer.schedule
        scheduler = build_scheduler(
            optimizer, schedule.name, total_steps=num_steps,
            warmup_steps=int(schedule.warmup_steps), final_fraction=float(schedule.final_fraction),
        )
        record.update({
            "seed": int(cfg.seed),
            "batch_size": int(trainer.batch_size) * int(trainer.grad_accum_steps),
            "budget": trainer.get("budget", "steps"),
            "planned_steps": num_steps,
            "hyperparameters": hyperparameters,
            "data": task.describe(),
            "num_params": sum(p.numel() for p in model.parameters()),
            "unit": task.unit,
            **environment(device),
        })
        checkpoint = load_checkpoint(run_dir)
        if checkpoint is not None and checkpoint["trial_id"] != record["trial_id"]:
            raise ValueError(
                f"{run_dir} holds a checkpoint of trial {checkpoint['trial_id']}, not {record['trial_id']}; "
                "remove it or use another output directory"
            )
    except Exception:
        run_dir.mkdir(parents=True, exist_ok=True)
        record_failure(run_dir, record)
        atomic_write_json(run_dir / RUN_FILE, record)
        raise
    parts = RunParts(task, model, optimizer, scheduler, device, num_steps, checkpoint)
    return _train_loop(cfg, run_dir, loggers, record, parts)


@dataclass
class RunParts:
    """What setup built for the loop."""

    task: Task
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    num_steps: int
    checkpoint: dict[str, Any] | None


def _checkpoint_state(trial: str, parts: RunParts, loop: dict[str, Any]) -> dict[str, Any]:
    """Everything the loop needs to go on from here (``loop``: its counters and best values)."""
    return {
        "trial_id": trial,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "task": parts.task.state_dict(),  # the data position
        "rng": rng_states(parts.device),
        "loop": loop,
    }


def _train_loop(cfg: DictConfig, run_dir: Path, loggers: list[Logger], record: dict[str, Any],
                parts: RunParts) -> dict[str, Any]:
    task, model, optimizer, scheduler = parts.task, parts.model, parts.optimizer, parts.scheduler
    device, num_steps, checkpoint = parts.device, parts.num_steps, parts.checkpoint
    trainer = cfg.trainer
    checkpoint_every = int(trainer.get("checkpoint_every", 0))
    use_bf16 = trainer.precision == "bf16" or (trainer.precision == "auto" and device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    loop: dict[str, Any] = {
        "step": 0, "tokens": 0, "initial_loss": None, "wall_time_s": 0.0, "last_eval": {},
        "best": {"best_val_loss": math.inf, "best_val_bpc": math.inf},
    }
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        task.load_state_dict(checkpoint["task"])
        set_rng_states(checkpoint["rng"])
        loop = checkpoint["loop"]
        truncate_metrics(run_dir, loop["step"])
        record["resumed_from_step"] = loop["step"]
    best, last_eval = loop["best"], loop["last_eval"]
    step, tokens, initial_loss = loop["step"], loop["tokens"], loop["initial_loss"]
    start = time.perf_counter() - loop["wall_time_s"]
    final: dict[str, float] = {}
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    progress = tqdm(total=num_steps, initial=step, desc=f"{cfg.optimizer.name} {cfg.task.name}",
                    disable=not trainer.progress, dynamic_ncols=True)
    metrics = MetricsWriter(run_dir, append=checkpoint is not None)

    def evaluate() -> dict[str, float]:
        result = task.evaluate(model)
        if not math.isfinite(result["val_loss"]):
            raise Diverged(f"non-finite validation loss {result['val_loss']} at step {step}")
        for key in ("val_loss", "val_bpc"):
            if key in result:
                best[f"best_{key}"] = min(best[f"best_{key}"], result[key])
        return result

    try:
        model.train()
        while step < num_steps:
            step_loss = 0.0
            for _ in range(trainer.grad_accum_steps):
                batch = task.to_device(task.train_batch())
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = task.loss(model, batch)
                (loss / trainer.grad_accum_steps).backward()
                step_loss += loss.item() / trainer.grad_accum_steps
                tokens += task.units_per_batch(batch)
            if initial_loss is None:
                initial_loss = step_loss
            if not math.isfinite(step_loss) or step_loss > trainer.divergence_factor * initial_loss:
                raise Diverged(f"train loss {step_loss:.4g} at step {step} (initial {initial_loss:.4g})")
            if trainer.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            elapsed = time.perf_counter() - start
            row = {"step": step, "tokens": tokens, "train_loss": step_loss, "lr": lr, "elapsed_s": elapsed}
            if step % trainer.eval_every == 0 or step == num_steps:
                last_eval = evaluate()
                row.update(last_eval)
            if step % trainer.log_every == 0 or "val_loss" in row or step == 1:
                metrics.write(row)
                for logger in loggers:
                    logger.log(row)
            if checkpoint_every and step % checkpoint_every == 0 and step < num_steps:
                loop = {"step": step, "tokens": tokens, "initial_loss": initial_loss, "wall_time_s": elapsed,
                        "last_eval": last_eval, "best": best}
                save_checkpoint(run_dir, _checkpoint_state(record["trial_id"], parts, loop))
            progress.update(1)
            progress.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{tokens / max(elapsed, 1e-9):.0f}", refresh=False)
        final = task.final_evaluate(model)
        if not math.isfinite(final.get("val_loss", 0.0)):
            raise Diverged(f"non-finite final validation loss {final['val_loss']}")
        record["status"] = "finished"
    except Diverged as reason:
        record["status"] = "diverged"
        record["divergence"] = str(reason)
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        raise
    except Exception:
        record_failure(run_dir, record)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        progress.close()
        metrics.close()
        wall = time.perf_counter() - start
        finished = record["status"] == "finished"
        # The final numbers: the task's final evaluation (default: the same as `evaluate`); a
        # fuller one (every validation byte) replaces the sampled val loss, a test split adds keys.
        final_val = {**last_eval, **final}
        if "full_val_loss" in final:
            final_val.update(val_loss=final["full_val_loss"], val_bpc=final.get("full_val_bpc", math.nan))
        record.update(
            steps=step,
            tokens=tokens,
            wall_time_s=wall,
            tokens_per_s=tokens / wall if wall > 0 else None,
            initial_train_loss=initial_loss,
            final_val_loss=final_val.get("val_loss", math.nan) if finished else math.nan,
            final_val_bpc=final_val.get("val_bpc", math.nan) if finished else math.nan,
            optimizer_state_bytes=optimizer_state_bytes(optimizer),
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **{f"final_{key}": value for key, value in final_val.items()
               if finished and key not in ("val_loss", "val_bpc")},
            **{key: value for key, value in best.items()},
            **peak_memory(device),
        )
        atomic_write_json(run_dir / RUN_FILE, record)
        if record["status"] in ("finished", "diverged"):
            remove_checkpoint(run_dir)
        for logger in loggers:
            logger.finish(record)
    return record
