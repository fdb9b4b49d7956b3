"""Every check of a composed config that needs no training: the schema of every key (``schema.py``),
the device and the options it can run, the data files by their sizes and whether the run fits in memory
(``estimates.py``). Bad input is found here before any directory or record exists."""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from lion_bench.devices import resolve_device
from lion_bench.estimates import memory_problem
from lion_bench.runs.errors import BadInput
from lion_bench.schema import Problem, config_problems
from lion_bench.tasks import broken_plugin_problem, check_task_data, plugin_task_schemas

# Where a data problem lies: the keys that choose the data and the model that must fit it.
DATA_KEYS = ("task.data", "task.model", "task.name")


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
