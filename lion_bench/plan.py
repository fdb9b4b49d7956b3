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
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from lion_bench.runs.errors import BadInput
from lion_bench.runs.identity import trial_dir_name, trial_id
from lion_bench.runs.memory import available_memory_bytes
from lion_bench.runs.ratio import resolve_hyperparameters
from lion_bench.runs.store import prepare_run_dir
from lion_bench.schema import Problem, config_problems, planned_steps, resolve_warmup
from lion_bench.tasks import (broken_plugin_problem, check_task_data, data_identity, estimate_memory,
                              plugin_task_schemas)

# Where a data problem lies: the keys that choose the data and the model that must fit it.
DATA_KEYS = ("task.data", "task.model", "task.name")
# Where a memory problem lies (the optimizer's state is a small part: a sweep over optimizers is
# refused as a whole when the base config cannot fit).
MEMORY_KEYS = ("trainer.batch_size", "task.model", "task.data", "task.name", "trainer.precision")
# Bytes of optimizer state per parameter (fp32 state; Lion's bf16 momentum: 2).
OPTIMIZER_STATE_BYTES = {"adamw": 8, "lion": 4}
# The files Hydra writes in a job's .hydra directory.
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
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
    compile_cache: str | None = None  # directory of torch.compile's on-disk caches (runs.compile_cache); None: torch's


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
    then the device and the options it can run, the data (by file kinds and sizes; nothing is read),
    and whether the run fits in memory."""
    broken = broken_plugin_problem(config.get("task"))  # a plugin task that cannot load says why
    if broken:
        return [Problem(("task.name",), broken)]
    found = config_problems(config, plugin_task_schemas())
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
            else:
                found += device_option_problems(config, device)
    if not any(key.startswith("task") for problem in found for key in problem.keys):
        try:
            check_task_data(config["task"])
        except BadInput as error:
            found.append(Problem(DATA_KEYS, str(error)))
    if not found:
        problem = memory_problem(config, resolve_device(config["device"]))
        found += [problem] if problem else []
    return found


def device_option_problems(config: Mapping[str, Any], device: torch.device) -> list[Problem]:
    """Optimizer options this device cannot run: Lion's fused Triton kernel runs on CUDA (or, for
    tests, through Triton's interpreter, TRITON_INTERPRET=1), and bf16 momentum needs that kernel,
    which ``optimizer.impl=auto`` uses only on CUDA with Triton installed."""
    optimizer = config["optimizer"]
    if optimizer["name"] != "lion":
        return []
    triton = importlib.util.find_spec("triton") is not None
    impl = optimizer.get("impl", "auto")
    where = f"the device here is {device.type} (device={config['device']})"
    if impl == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return [Problem(("optimizer.impl", "device"), f"optimizer.impl=triton runs Lion's fused kernel on CUDA "
                                                      f"devices, and {where}; use optimizer.impl=foreach (or auto), "
                                                      "or a GPU")]
    if optimizer.get("state_dtype") == "bf16" and impl == "auto" and not (device.type == "cuda" and triton):
        reason = f"on {device.type}" if device.type != "cuda" else "Triton is not installed"
        return [Problem(("optimizer.state_dtype", "optimizer.impl", "device"),
                        f"optimizer.state_dtype=bf16 (bf16 momentum) needs Lion's fused Triton kernel, which "
                        f"optimizer.impl=auto does not use here ({reason}); drop optimizer.state_dtype, or run on "
                        "a GPU with Triton ('lion-bench[triton]')")]
    return []


def _size(num_bytes: float) -> str:
    """Bytes as people read them: 139 GB, 2.29 PB, 7.73 MB."""
    for scale, unit in ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.3g} {unit}"
    return f"{num_bytes:.0f} bytes"


@dataclass(frozen=True)
class MemoryUse:
    """What a run holds at once on its device, at least (``memory_use``), in bytes."""

    num_params: int
    model: int  # parameters, their gradients and the optimizer's state
    activations: int  # what one micro-batch keeps for the backward pass
    data: int  # the task's data (on the device's memory only on the CPU)

    @property
    def total(self) -> int:
        return self.model + self.activations + self.data


def memory_use(config: Mapping[str, Any], device: torch.device) -> MemoryUse | None:
    """What the task says the run holds at once (``Task.estimate_memory``: parameters, the values a
    micro-batch keeps, the data), in bytes on ``device``: 4 per parameter, 4 per gradient, the
    optimizer's state (``OPTIMIZER_STATE_BYTES``; 2 for Lion's bf16 momentum), 4 per kept value (2
    under bf16 autocast), and the data where it lives in the device's memory (the CPU). None when the
    task gives no estimate."""
    trainer, optimizer = config["trainer"], config["optimizer"]
    need = estimate_memory(config["task"], int(trainer["batch_size"]))
    if need is None:
        return None
    state = 2 if optimizer.get("state_dtype") == "bf16" else OPTIMIZER_STATE_BYTES.get(optimizer["name"], 0)
    value_bytes = 2 if resolve_precision(trainer["precision"], device) == "bf16" else 4
    return MemoryUse(need.num_params, need.num_params * (4 + 4 + state), need.activation_values * value_bytes,
                     need.data_bytes if device.type == "cpu" else 0)


def memory_need(config: Mapping[str, Any], device: torch.device) -> int | None:
    """Bytes a run holds at once on ``device``, at least (``memory_use``); None when unknown."""
    use = memory_use(config, device)
    return None if use is None else use.total


def memory_problem(config: Mapping[str, Any], device: torch.device) -> Problem | None:
    """A run that cannot fit in memory, found before anything is allocated: ``memory_use`` against
    what ``device`` has available (and, on a GPU, the data against the host's). The use counts only
    what is certainly held, so a run refused here could not have fit. None when it fits or the task
    gives no estimate."""
    use = memory_use(config, device)
    if use is None:
        return None
    available = available_memory_bytes(device)
    if available is not None and use.total > available:
        data = f", data {_size(use.data)}" if use.data else ""
        return Problem(MEMORY_KEYS, (
            f"this run needs at least {_size(use.total)} of {device.type} memory ({use.num_params:,} parameters "
            f"with their gradients and {config['optimizer']['name']} state {_size(use.model)}, the activations of a "
            f"batch of {config['trainer']['batch_size']} {_size(use.activations)}{data}), but {_size(available)} is "
            "available; lower trainer.batch_size or the model's size (task.model.*), or use a device with more memory"))
    if device.type != "cpu":
        data_bytes = estimate_memory(config["task"], int(config["trainer"]["batch_size"])).data_bytes
        host = available_memory_bytes(torch.device("cpu"))
        if host is not None and data_bytes > host:
            return Problem(MEMORY_KEYS, f"this run holds at least {_size(data_bytes)} of data in host memory, but "
                                        f"{_size(host)} is available; use less data (task.data.*)")
    return None


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
        compile_cache=trainer.get("compile_cache"),
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


def config_trial_dir_name(config: Mapping[str, Any]) -> str:
    """The directory name of a resolved config's trial on this machine (``runs.identity.trial_dir_name``)."""
    return trial_dir_name(with_resolved_warmup(config), trial_context(config))


def _trial_dir(*, _root_: DictConfig) -> str:
    """``${trial_dir:}``: the job's directory name from its config (the hydra node aside, as the task
    function sees it, so the name's id is the one in run.json). Never raises: a config that does not
    resolve is named by what it says, and the trial reports the problem.

    Hydra names the directory just before it creates it (and its ``.hydra``), so this is also where
    whatever stands in their way is set aside (``runs.store.prepare_run_dir``): a file or symbolic
    link at the trial's path would stop Hydra, and with it the whole sweep."""
    job = OmegaConf.masked_copy(_root_, [key for key in _root_ if key != "hydra"])
    try:
        config = OmegaConf.to_container(job, resolve=True)
    except Exception:  # noqa: BLE001
        config = OmegaConf.to_container(job, resolve=False)
    name = config_trial_dir_name(config)
    try:  # a sweep's trial only: a single run's directory is named by this resolver too
        multirun = str(OmegaConf.select(_root_, "hydra.mode", default="")) == "RunMode.MULTIRUN"
        sweep_dir = OmegaConf.select(_root_, "hydra.sweep.dir", default=None) if multirun else None
    except Exception:  # noqa: BLE001 - Hydra reports a sweep directory that does not resolve
        sweep_dir = None
    if sweep_dir is not None:
        prepare_run_dir(Path(str(sweep_dir)) / name, HYDRA_FILES)
    return name


# Registered on import of this module, which the trainer and the entry point import: Ray workers
# import it when they unpickle the task function, before they name the job's directory.
OmegaConf.register_new_resolver("trial_dir", _trial_dir, replace=True)
