"""Synthetic run records with planted results, written in the exact shape lion_bench.trainer writes.

Every run evaluates every ``eval_every`` steps and at the last step. Its val loss holds ``early`` over the
first quarter of the run, then moves linearly to the planted final ``loss``; by default ``early`` lies on the
straight line from the initial loss 5.0, so early and final results agree unless a test plants otherwise.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Callable

from lion_bench.runs.record import RunRecord, Status
from lion_bench.runs.store import MetricsWriter, write_record

BASE_LR = 1e-3
BASE_WD = 0.1
STEPS = 2000  # above the report's default toy-scale threshold
INITIAL = 5.0
SHA = "c04fb1a730640820636a3c44f911391255f274cee36be2db581aa9b4fba8a50c"


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_run(root: Path, optimizer: str, seed: int, loss: float, *, divisor: float = 1.0, wd_multiplier: float = 1.0,
              base_lr: float = BASE_LR, base_wd: float = BASE_WD, batch_size: int = 16, status: str = "finished",
              task: str = "synthetic", max_steps: int = STEPS, eval_every: int | None = None,
              early: float | None = None, budget: str = "steps", reference_batch_size: int = 16,
              warmup_fraction: float | None = None, schedule: str = "cosine", device_type: str = "cuda",
              data_sha: str = SHA, config: dict[str, Any] | None = None, name: str | None = None,
              betas: list[float] | None = None, options: dict[str, Any] | None = None, sweep: str | None = None,
              curve: Callable[[int], float] | None = None, train_curve: Callable[[int], float] | None = None,
              final_fraction: float = 0.1, state_bytes: int | None = None) -> Path:
    """One run's record and metrics. ``curve`` (step -> val loss) replaces the planted early/final shape;
    ``train_curve`` the train losses (default: the val curve); ``options`` are optimizer switches
    (cautious, decoupled_weight_decay); ``sweep`` names the sweep preset."""
    lr = base_lr / divisor
    weight_decay = base_wd * wd_multiplier
    betas = betas or ([0.9, 0.99] if optimizer == "lion" else [0.9, 0.999])
    flags = "".join(f"_{key}" for key, value in sorted((options or {}).items()) if value is True)
    name = name or (f"{task}_{optimizer}{flags}_lr{lr:g}_wd{weight_decay:g}_b{betas[0]:g},{betas[1]:g}_bs{batch_size}"
                    f"_{schedule}_ff{final_fraction:g}_s{seed}")
    run_dir = Path(root) / name
    optimizer_config = {"name": optimizer, "betas": betas, **(options or {})}
    if optimizer == "lion":
        optimizer_config.update(lr_divisor=divisor, wd_multiplier=wd_multiplier)
        optimizer_config.setdefault("cautious", False)
    steps = max_steps if budget == "steps" else max(1, max_steps * reference_batch_size // batch_size)
    eval_every = eval_every or max(1, steps // 8)
    full_config = {
        "task": {"name": task, "model": {"n_layer": 2, "d_model": 64, "seq_len": 64}},
        "optimizer": optimizer_config, "seed": seed, "base": {"lr": base_lr, "weight_decay": base_wd},
        "trainer": {"max_steps": max_steps, "batch_size": batch_size, "grad_accum_steps": 1, "grad_clip": 1.0,
                    "eval_every": eval_every, "budget": budget, "reference_batch_size": reference_batch_size,
                    "schedule": {"name": schedule, "warmup_steps": 20, "warmup_fraction": warmup_fraction,
                                 "final_fraction": final_fraction}},
    }
    if sweep:
        full_config["sweep"] = {"name": sweep}
    full_config = _merge(full_config, config or {})
    quarter = steps / 4
    curve_end = loss if status == "finished" else 6.0  # a diverged run's loss climbs until the guard stops it
    early = INITIAL + (curve_end - INITIAL) * 0.25 if early is None else early
    diverged_at = max(1, steps // 2)

    def val_loss(step: int) -> float:
        if curve is not None:
            return curve(step)
        if step <= quarter:
            return early
        return early + (curve_end - early) * (step - quarter) / (steps - quarter)

    train_loss = train_curve or val_loss

    eval_steps = sorted({*range(eval_every, steps + 1, eval_every), steps})
    with MetricsWriter(run_dir) as metrics:
        for step in sorted({1, *eval_steps}):
            if status == "diverged" and step > diverged_at:
                break
            row = {"step": step, "tokens": step * batch_size * 64, "train_loss": train_loss(step), "lr": lr,
                   "elapsed_s": step * 0.01}
            if step in eval_steps:
                row.update(val_loss=val_loss(step), val_bpc=val_loss(step) / math.log(2))
            metrics.write(row)
    record = RunRecord.begin(full_config, hashlib.sha256(str(run_dir).encode()).hexdigest()[:12])
    record.status = Status(status)
    record.hyperparameters = {"optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "base_lr": base_lr,
                              "base_weight_decay": base_wd, "lr_divisor": divisor, "wd_multiplier": wd_multiplier,
                              "betas": betas}
    record.batch_size, record.budget, record.planned_steps = batch_size, budget, steps
    record.steps = steps if status == "finished" else diverged_at
    record.tokens = record.steps * batch_size * 64
    record.data = {"name": task, "source": "python-stdlib:/usr/lib/python3.12", "sha256": data_sha}
    record.environment = {"device_type": device_type, "precision": "bf16" if device_type == "cuda" else "fp32",
                          "device_name": "synthetic"}
    if curve is not None and status == "finished":
        loss = curve(steps)
    final = loss if status == "finished" else math.nan
    record.final = {"val_loss": final, "val_bpc": final / math.log(2)} if status == "finished" else {}
    record.best = {"val_loss": final}
    record.initial_train_loss = INITIAL
    record.divergence = f"train loss 25 at step {diverged_at} (initial 5)" if status == "diverged" else None
    record.diverged_at_step = diverged_at if status == "diverged" else None
    record.time_s = {"total": 1.0, "train": 0.9}
    record.train_tokens_per_s = 1000.0
    record.optimizer_state_bytes = state_bytes
    record.unit = "tokens"
    write_record(run_dir, record)
    return run_dir


def write_lr_ratio(root: Path, adamw: list[float], lion: dict[float, list[float]], **kwargs) -> None:
    """AdamW at the base lr and Lion at base lr / divisor, one loss per seed (seed = list index)."""
    for seed, loss in enumerate(adamw):
        write_run(root, "adamw", seed, loss, **kwargs)
    for divisor, losses in lion.items():
        for seed, loss in enumerate(losses):
            write_run(root, "lion", seed, loss, divisor=divisor, wd_multiplier=3.0, **kwargs)


def bowl(lr: float, best: float, floor: float = 3.0, curvature: float = 0.3) -> float:
    """A loss that is a parabola in log10(lr) with its minimum ``floor`` at ``best``."""
    return floor + curvature * math.log10(lr / best) ** 2


def write_lr_grid(root: Path, optimizer: str, lrs: list[float], best: float, seeds: int = 4, **kwargs) -> None:
    """``optimizer`` at each absolute lr of ``lrs`` (as base.lr for AdamW, base.lr / 1 for Lion), losses on a
    parabola in log lr around ``best``, plus a seed effect shared by every lr and a little noise per run."""
    for index, lr in enumerate(lrs):
        for seed in range(seeds):
            noise = 0.002 * ((3 * seed + index) % 3 - 1)
            write_run(root, optimizer, seed, bowl(lr, best) + 0.01 * (seed % 2) + noise, base_lr=lr, **kwargs)


def judged(*roots, protocols=None, min_steps: int = 1000):
    """The families of every run under ``roots`` (imported here so the writers above stay free of the report)."""
    from lion_bench.results.claims.judge import judge
    from lion_bench.results.load import load_local

    runs, curves = load_local(list(roots))
    return judge(runs, curves, protocols or {}, min_steps)


def cells_of(families, key: str, judged_only: bool = True) -> list:
    return [cell for family in families for cell in family.cells if cell.claim.key == key
            and (cell.judged or not judged_only) and cell.context.setup != "-"]


def only(families, key: str, judged_only: bool = True):
    found = cells_of(families, key, judged_only)
    assert len(found) == 1, [(cell.label, cell.role, cell.reason) for cell in found]
    return found[0]
