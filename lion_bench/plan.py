"""From a composed config to a run plan: every check that needs no training (the schema of every
key in ``schema.py``, the device, the data files by their sizes), and every setting resolved
(device, precision, compile, steps, hyperparameters), so that bad input fails before any directory
or record exists. Raises ``BadInput`` with a message that says what to do.

It also says what identifies a trial besides its config (``trial_context``: the data's
fingerprint, the resolved precision and device type) and registers the ``${trial_dir:}`` resolver
that names each sweep trial's directory by it.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from lion_bench.runs.errors import BadInput
from lion_bench.runs.identity import trial_dir_name, trial_id
from lion_bench.runs.ratio import resolve_hyperparameters
from lion_bench.schema import Problem, config_problems, planned_steps, resolve_warmup
from lion_bench.tasks import check_task_data, data_identity

# Where a data problem lies: the keys that choose the data and the window that must fit it.
DATA_KEYS = ("task.data", "task.model.seq_len", "task.name")
# Floating-point operations per training step above which a CPU run gets a warning: minutes per step.
SLOW_CPU_STEP_FLOPS = 1e13


@dataclass(frozen=True)
class RunPlan:
    """A run's settings, resolved once: the loop reads plain values, never the config, on every step."""

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


def resolve_device(name: str) -> torch.device:
    """``device``: auto (CUDA if this machine has it, else the CPU), cpu, cuda, cuda:N, or mps where
    it exists; anything this machine cannot train on raises BadInput."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInput(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"device={name!r} but CUDA is not available here; use device=cpu or device=auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise BadInput(f"device={name!r} but this machine has {count} CUDA device(s): use cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise BadInput(f"device={name!r} but MPS is not available here; use device=cpu or device=auto")
    elif device.type != "cpu" or device.index not in (None, 0):
        raise BadInput(f"device={name!r} is not one lion-bench trains on; use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``trainer.precision``: auto is bf16 autocast on CUDA, fp32 elsewhere."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def resolve_compile(value: Any, device: torch.device) -> bool:
    """``trainer.compile``: auto compiles on CUDA (see the trainer config for why), never on the CPU."""
    return device.type == "cuda" if value == "auto" else bool(value)


def input_problems(config: Mapping[str, Any]) -> list[Problem]:
    """Everything wrong with a resolved config (without its ``hydra`` node): the schema's checks,
    then the device and the data (by file kinds and sizes; nothing is read)."""
    found = config_problems(config)
    if not any(problem.keys[0] == "device" for problem in found):
        try:
            device = resolve_device(config["device"])
        except BadInput as error:
            found.append(Problem(("device",), str(error)))
        else:
            if config["optimizer"].get("impl") == "triton" and importlib.util.find_spec("triton") is None:
                found.append(Problem(("optimizer.impl",), "optimizer.impl=triton needs Triton: pip install "
                                                          "'lion-bench[triton]' (GPU), or use optimizer.impl=foreach"))
            elif config["trainer"].get("precision") == "bf16" and device.type == "mps":
                found.append(Problem(("trainer.precision", "device"), "trainer.precision=bf16 is not supported on "
                                                                      "mps; use trainer.precision=fp32"))
    if not any(key.startswith("task") for problem in found for key in problem.keys):
        try:
            check_task_data(config["task"])
        except BadInput as error:
            found.append(Problem(DATA_KEYS, str(error)))
    return found


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` (without its ``hydra`` node) as plain, resolved containers; BadInput if it does not resolve."""
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]) if "hydra" in cfg else cfg
    try:
        return OmegaConf.to_container(job, resolve=True)
    except Exception as error:  # an interpolation that points nowhere: ${task.nope}
        first_line = str(error).strip().splitlines()[0]
        raise BadInput(f"the config does not resolve: {first_line}") from None


def check_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config when nothing is wrong with it; else BadInput with the first problem."""
    config = resolved_config(cfg)
    problems = input_problems(config)
    if problems:
        raise BadInput(problems[0].message)
    return config


def transformer_step_flops(config: Mapping[str, Any]) -> float | None:
    """Rough floating-point operations of one training step of a byte transformer (6 per parameter
    and token, plus causal attention over the context), or None for tasks without one."""
    model, trainer = config["task"].get("model") or {}, config["trainer"]
    if not {"seq_len", "d_model", "n_layer", "n_head"} <= set(model):
        return None
    sequences = trainer["batch_size"] * trainer["grad_accum_steps"]
    seq_len, width, layers = model["seq_len"], model["d_model"], model["n_layer"]
    return 6.0 * 12 * layers * width**2 * sequences * seq_len + 6.0 * layers * sequences * seq_len**2 * width


def plan_run(cfg: DictConfig) -> RunPlan:
    """Check ``cfg`` and resolve it; raises BadInput for anything that cannot train."""
    config = check_config(cfg)
    hyperparameters = resolve_hyperparameters(cfg.base, cfg.optimizer)
    trainer = cfg.trainer
    num_steps = planned_steps(trainer)
    device = resolve_device(cfg.device)
    flops = transformer_step_flops(config)
    if device.type == "cpu" and flops and flops > SLOW_CPU_STEP_FLOPS:
        warnings.warn(f"one training step is about {flops:.0e} floating-point operations (task.model.seq_len="
                      f"{config['task']['model']['seq_len']}, trainer.batch_size={trainer.batch_size}): minutes or more "
                      "per step on the CPU, before the first progress; lower them or use a GPU", RuntimeWarning,
                      stacklevel=2)
    return RunPlan(
        hyperparameters=hyperparameters, num_steps=num_steps, warmup_steps=resolve_warmup(trainer.schedule, num_steps),
        device=device, precision=resolve_precision(trainer.precision, device),
        compile=resolve_compile(trainer.get("compile", "auto"), device),
        grad_accum_steps=int(trainer.grad_accum_steps), grad_clip=float(trainer.grad_clip),
        eval_every=int(trainer.eval_every), log_every=int(trainer.log_every),
        divergence_factor=float(trainer.divergence_factor), checkpoint_every=int(trainer.get("checkpoint_every") or 0),
        checkpoint_minutes=float(trainer.get("checkpoint_minutes") or 0),
        progress=None if trainer.progress == "auto" else bool(trainer.progress),
    )


# --- trial identity ------------------------------------------------------------------------------
def trial_context(config: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a trial besides its config: the data's fingerprint (``Task.data_identity``:
    a content hash of a byte corpus, read once per process; enwik8's checksum; a dataset's name),
    the precision and the device type it resolves to here. Never raises: a part that cannot be
    resolved (bad input, which the trial then reports) is marked so."""
    try:
        device_type = resolve_device(config["device"]).type
    except Exception:  # noqa: BLE001 - bad input is reported by the trial itself
        device_type = "unresolved"
    try:
        precision = config["trainer"]["precision"]
        precision = resolve_precision(precision, torch.device(device_type)) if device_type != "unresolved" else precision
    except Exception:  # noqa: BLE001
        precision = "unresolved"
    try:
        data = data_identity(config["task"])
    except Exception:  # noqa: BLE001
        data = "unresolved"
    return {"data": data, "precision": precision, "device_type": device_type}


def with_resolved_warmup(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``config`` with ``trainer.schedule.warmup_steps: auto`` replaced by the steps it resolves to:
    what a trial id hashes, so a run with the default warmup is the same trial as one that names those
    steps (sweep directories and records written before ``auto`` was the default keep their ids), and
    what a run record holds, so every reader of run.json sees the warmup the run had. Never raises."""
    try:
        trainer = config["trainer"]
        schedule = trainer["schedule"]
        if schedule.get("warmup_steps") != "auto":
            return config
        warmup = resolve_warmup(schedule, planned_steps(trainer))
    except Exception:  # noqa: BLE001 - a config with bad values: hashed as written, the trial reports it
        return config
    return {**config, "trainer": {**trainer, "schedule": {**schedule, "warmup_steps": warmup}}}


def config_trial_id(config: Mapping[str, Any]) -> str:
    """The trial id of a resolved config on this machine (``runs.identity.trial_id`` with its context)."""
    return trial_id(with_resolved_warmup(config), trial_context(config))


def _trial_dir(*, _root_: DictConfig) -> str:
    """``${trial_dir:}``: the job's directory name from its config (the hydra node aside, as the task
    function sees it, so the name's id is the one in run.json). Never raises: a config that does not
    resolve is named by what it says, and the trial reports the problem."""
    job = OmegaConf.masked_copy(_root_, [key for key in _root_ if key != "hydra"])
    try:
        config = OmegaConf.to_container(job, resolve=True)
    except Exception:  # noqa: BLE001
        config = OmegaConf.to_container(job, resolve=False)
    return trial_dir_name(with_resolved_warmup(config), trial_context(config))


# Registered on import of this module, which the trainer and the entry point import: Ray workers
# import it when they unpickle the task function, before they name the job's directory.
OmegaConf.register_new_resolver("trial_dir", _trial_dir, replace=True)
