"""The training loop: steps, gradient accumulation and clipping, periodic evaluation, the
divergence guard, a progress bar, and the run record written at the end (atomically)."""

from __future__ import annotations

import math
import random
import resource
import signal
import time
import traceback
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
from lion_bench.sweeps.ratio import resolve_hyperparameters
from lion_bench.sweeps.trial import trial_id
from lion_bench.tasks import build_task, check_task_name


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


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Every check that needs no data or model, so bad input fails before anything runs."""
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
    schedule = trainer.schedule
    check_schedule(schedule.name, trainer.max_steps, schedule.warmup_steps, schedule.final_fraction)
    return hyperparameters


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


def train(cfg: DictConfig, run_dir: Path, loggers: list[Logger] = ()) -> dict[str, Any]:
    """Train one run described by ``cfg``, writing its record under ``run_dir``. Returns the record."""
    hyperparameters = validate(cfg)
    device = resolve_device(cfg.device)
    seed_everything(int(cfg.seed), device)
    trainer = cfg.trainer
    task = build_task(cfg.task, batch_size=int(trainer.batch_size), seed=int(cfg.seed), device=device)
    model = task.build_model().to(device)
    optimizer = build_optimizer(
        cfg.optimizer, model, lr=hyperparameters["lr"], weight_decay=hyperparameters["weight_decay"],
        device_type=device.type,
    )
    schedule = trainer.schedule
    scheduler = build_scheduler(
        optimizer, schedule.name, total_steps=int(trainer.max_steps),
        warmup_steps=int(schedule.warmup_steps), final_fraction=float(schedule.final_fraction),
    )
    use_bf16 = trainer.precision == "bf16" or (trainer.precision == "auto" and device.type == "cuda")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    record: dict[str, Any] = {
        "status": "failed",
        "trial_id": trial_id(resolved),
        "task": cfg.task.name,
        "optimizer": cfg.optimizer.name,
        "seed": int(cfg.seed),
        "batch_size": int(trainer.batch_size) * int(trainer.grad_accum_steps),
        "hyperparameters": hyperparameters,
        "config": resolved,
        "data": task.describe(),
        "num_params": sum(p.numel() for p in model.parameters()),
        "unit": task.unit,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **environment(device),
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    step, tokens, initial_loss = 0, 0, None
    best = {"best_val_loss": math.inf, "best_val_bpc": math.inf}
    last_eval: dict[str, float] = {}
    start = time.perf_counter()
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    progress = tqdm(total=int(trainer.max_steps), desc=f"{cfg.optimizer.name} {cfg.task.name}",
                    disable=not trainer.progress, dynamic_ncols=True)
    metrics = MetricsWriter(run_dir)

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
        while step < trainer.max_steps:
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
            if step % trainer.eval_every == 0 or step == trainer.max_steps:
                last_eval = evaluate()
                row.update(last_eval)
            if step % trainer.log_every == 0 or "val_loss" in row or step == 1:
                metrics.write(row)
                for logger in loggers:
                    logger.log(row)
            progress.update(1)
            progress.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{tokens / elapsed:.0f}", refresh=False)
        record["status"] = "finished"
    except Diverged as reason:
        record["status"] = "diverged"
        record["divergence"] = str(reason)
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        raise
    except Exception:
        record["status"] = "failed"
        record["error"] = traceback.format_exc(limit=-3).strip().splitlines()[-1]
        (run_dir / TRACEBACK_FILE).write_text(traceback.format_exc())
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        progress.close()
        metrics.close()
        wall = time.perf_counter() - start
        record.update(
            steps=step,
            tokens=tokens,
            wall_time_s=wall,
            tokens_per_s=tokens / wall if wall > 0 else None,
            initial_train_loss=initial_loss,
            final_val_loss=last_eval.get("val_loss", math.nan) if record["status"] == "finished" else math.nan,
            final_val_bpc=last_eval.get("val_bpc", math.nan) if record["status"] == "finished" else math.nan,
            optimizer_state_bytes=optimizer_state_bytes(optimizer),
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **{key: value for key, value in best.items()},
            **peak_memory(device),
        )
        atomic_write_json(run_dir / RUN_FILE, record)
        for logger in loggers:
            logger.finish(record)
    return record
