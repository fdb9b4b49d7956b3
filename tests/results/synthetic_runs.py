"""Synthetic run records with planted results, written in the exact shape lion_bench.trainer writes."""

from __future__ import annotations

import math
from pathlib import Path

from lion_bench.runs.record import RunRecord, Status
from lion_bench.runs.store import MetricsWriter, write_record

BASE_LR = 1e-3
BASE_WD = 0.1


def write_run(root: Path, optimizer: str, seed: int, loss: float, *, divisor: float = 1.0, wd_multiplier: float = 1.0,
              base_lr: float = BASE_LR, base_wd: float = BASE_WD, batch_size: int = 16, status: str = "finished",
              task: str = "synthetic", max_steps: int = 100) -> Path:
    lr = base_lr / divisor
    weight_decay = base_wd * wd_multiplier
    name = f"{task}_{optimizer}_lr{lr:g}_wd{weight_decay:g}_bs{batch_size}_s{seed}"
    run_dir = Path(root) / name
    betas = [0.9, 0.99] if optimizer == "lion" else [0.9, 0.999]
    optimizer_config = {"name": optimizer, "betas": betas}
    if optimizer == "lion":
        optimizer_config.update(lr_divisor=divisor, wd_multiplier=wd_multiplier, cautious=False)
    config = {
        "task": {"name": task}, "optimizer": optimizer_config, "seed": seed,
        "base": {"lr": base_lr, "weight_decay": base_wd},
        "trainer": {"max_steps": max_steps, "batch_size": batch_size, "grad_accum_steps": 1},
    }
    initial = 5.0
    final = loss if status == "finished" else math.nan
    with MetricsWriter(run_dir) as metrics:
        for step in (1, max_steps // 2, max_steps):
            fraction = step / max_steps
            value = initial + (loss - initial) * fraction if status == "finished" else initial * (1 + fraction * 4)
            metrics.write({"step": step, "tokens": step * batch_size, "train_loss": value, "lr": lr,
                           "elapsed_s": step * 0.01, **({"val_loss": value} if step > 1 else {})})
    record = RunRecord.begin(config, name)
    record.status = Status(status)
    record.hyperparameters = {"optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "base_lr": base_lr,
                              "base_weight_decay": base_wd, "lr_divisor": divisor, "wd_multiplier": wd_multiplier,
                              "betas": betas}
    record.batch_size, record.steps, record.tokens = batch_size, max_steps, max_steps * batch_size
    record.final = {"val_loss": final, "val_bpc": final / math.log(2)} if status == "finished" else {}
    record.best = {"val_loss": final, "val_bpc": final / math.log(2)}
    record.initial_train_loss = initial
    record.divergence = "train loss 25 at step 3 (initial 5)" if status == "diverged" else None
    record.time_s = {"total": 1.0, "train": 0.9}
    record.train_tokens_per_s = 1000.0
    record.unit = "bytes"
    write_record(run_dir, record)
    return run_dir


def write_lr_ratio(root: Path, adamw: list[float], lion: dict[float, list[float]], **kwargs) -> None:
    """AdamW at the base lr and Lion at base lr / divisor, one loss per seed (seed = list index)."""
    for seed, loss in enumerate(adamw):
        write_run(root, "adamw", seed, loss, **kwargs)
    for divisor, losses in lion.items():
        for seed, loss in enumerate(losses):
            write_run(root, "lion", seed, loss, divisor=divisor, wd_multiplier=3.0, **kwargs)
