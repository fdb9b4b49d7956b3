"""From a composed config to a run plan: the config checked (``checks.py``; bad input raises
``BadInput`` before any directory or record exists) and every setting the training loop reads
resolved once (device, precision, compile, steps, warmup, hyperparameters, the trial's identity),
so the loop reads the plan and never the config."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from lion_bench.checks import check_config
from lion_bench.devices import resolve_compile, resolve_device, resolve_precision
from lion_bench.estimates import SLOW_CPU_STEP_FLOPS, transformer_step_flops
from lion_bench.identity import config_trial_id, with_resolved_warmup
from lion_bench.runs.ratio import resolve_hyperparameters
from lion_bench.schema import planned_steps, resolve_warmup


@dataclass(frozen=True)
class RunPlan:
    """A run's settings, resolved once: the loop reads plain values, never the config."""

    hyperparameters: dict[str, Any]
    num_steps: int
    warmup_steps: int  # resolved: schedule.warmup_fraction of the run when set, else schedule.warmup_steps
    device: torch.device
    precision: str  # resolved: fp32 | bf16 (autocast)
    compile: bool
    grad_accum_steps: int = 1
    grad_clip: float = 0.0  # 0: no clipping
    eval_every: int = 50
    log_every: int = 10
    divergence_factor: float = 4.0
    checkpoint_every: int = 0  # steps; 0: never
    checkpoint_minutes: float = 0.0  # wall time; 0: never
    progress: bool | None = None  # None (auto): a bar when stderr is a terminal
    compile_cache: str | None = None  # directory of torch.compile's on-disk caches (runs.compile_cache); None: torch's
    seed: int = 0
    batch_size: int = 1  # sequences (or examples) per micro-batch
    budget: str = "steps"  # what trainer.max_steps counts (trainer.budget)
    schedule: str = "cosine"  # the lr schedule's name
    final_lr_fraction: float = 0.0  # the schedule's last lr as a fraction of the peak
    task: Mapping[str, Any] | None = None  # the task's config, as the task's class reads it
    optimizer: Mapping[str, Any] | None = None  # the optimizer's config, as the registry reads it
    trial_id: str = ""
    record_config: Mapping[str, Any] | None = None  # the resolved config run.json holds (warmup resolved)
    config_yaml: str = ""  # config.yaml beside the record: the resolved config as composed


def plan_run(cfg: DictConfig, trial_id: str | None = None) -> RunPlan:
    """Check ``cfg`` and resolve it; raises BadInput for anything that cannot train. ``trial_id``: the
    id already computed for it (``identity.trial_id_of``), else computed here."""
    config = check_config(cfg)
    trainer = cfg.trainer
    num_steps = planned_steps(trainer)
    device = resolve_device(cfg.device)
    flops = transformer_step_flops(config)
    if device.type == "cpu" and flops and flops > SLOW_CPU_STEP_FLOPS:
        warnings.warn(f"one training step is about {flops:.0e} floating-point operations (task.model.seq_len="
                      f"{config['task']['model']['seq_len']}, trainer.batch_size={trainer.batch_size}): minutes or more "
                      "per step on the CPU, before the first progress; lower them or use a GPU", RuntimeWarning,
                      stacklevel=2)
    composed = OmegaConf.to_container(cfg, resolve=True)
    return RunPlan(
        hyperparameters=resolve_hyperparameters(cfg.base, cfg.optimizer), num_steps=num_steps,
        warmup_steps=resolve_warmup(trainer.schedule, num_steps), device=device,
        precision=resolve_precision(trainer.precision, device),
        compile=resolve_compile(trainer.get("compile", "auto"), device),
        grad_accum_steps=int(trainer.grad_accum_steps), grad_clip=float(trainer.grad_clip),
        eval_every=int(trainer.eval_every), log_every=int(trainer.log_every),
        divergence_factor=float(trainer.divergence_factor), checkpoint_every=int(trainer.get("checkpoint_every") or 0),
        checkpoint_minutes=float(trainer.get("checkpoint_minutes") or 0),
        progress=None if trainer.progress == "auto" else bool(trainer.progress),
        compile_cache=trainer.get("compile_cache"),
        seed=int(cfg.seed), batch_size=int(trainer.batch_size), budget=trainer.get("budget", "steps"),
        schedule=trainer.schedule.name, final_lr_fraction=float(trainer.schedule.final_fraction),
        task=cfg.task, optimizer=cfg.optimizer,
        trial_id=trial_id or config_trial_id(composed), record_config=with_resolved_warmup(composed),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
    )
