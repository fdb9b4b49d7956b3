"""Trial identity, in one place: a trial id is 12 hex digits of SHA-256 over the resolved config (seed
included, reporting keys left out) and what the config does not say (``trial_context``: the data's
fingerprint, the resolved precision and device type). The id names the trial's directory and is the
``trial_id`` of its record and checkpoint, so the same trial lands in the same place every time it runs
and a rerun finds what it left. A changed corpus, or a CPU rerun of a GPU sweep, is another trial."""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from lion_bench.devices import resolve_device, resolve_precision
from lion_bench.runs.hashing import config_hash
from lion_bench.schema import planned_steps, resolve_warmup
from lion_bench.tasks import data_identity

# Top-level config keys that say where or how a run is reported, not what it computes.
NON_RESULT_KEYS = ("logger", "output_root", "hydra", "sweep", "arm")
# checkpoint_every: a resumed run ends exactly where an uninterrupted one does.
NON_RESULT_TRAINER_KEYS = ("progress", "checkpoint_every", "checkpoint_minutes")


def trial_id(resolved_config: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the resolved config (seed included), minus reporting keys, and
    ``context`` (``trial_context``)."""
    return config_hash({**resolved_config, "context": dict(context)}, drop=NON_RESULT_KEYS,
                       drop_trainer=NON_RESULT_TRAINER_KEYS, num_hex=12)


def safe_part(value: Any, max_length: int = 40) -> str:
    """``value`` as a piece of a directory name: letters, digits, _ and - only (no separator, no
    dot, so never ``..``), at most ``max_length`` characters."""
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)).strip("_")
    return text[:max_length] or "x"


def trial_dir_name(resolved_config: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """``<arm or optimizer>_seed<seed>_<trial id>``: one safe path component, so a trial directory is
    always directly inside its sweep directory whatever the config holds."""
    optimizer = resolved_config.get("optimizer")
    label = resolved_config.get("arm") or (optimizer.get("name") if isinstance(optimizer, Mapping) else None)
    return f"{safe_part(label or 'trial')}_seed{safe_part(resolved_config.get('seed'), 20)}_" \
           f"{trial_id(resolved_config, context)}"


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
    """The trial id of a resolved config on this machine (``trial_id`` with its context)."""
    return trial_id(with_resolved_warmup(config), trial_context(config))


def config_trial_dir_name(config: Mapping[str, Any]) -> str:
    """The directory name of a resolved config's trial on this machine (``trial_dir_name``)."""
    return trial_dir_name(with_resolved_warmup(config), trial_context(config))


def trial_id_of(cfg: DictConfig) -> str:
    """The trial id of ``cfg`` as composed (its record's and checkpoint's ``trial_id``). Never raises: a
    config that does not resolve is identified by what it says, and its trial reports the problem."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - a broken interpolation: the trial fails and says so
        config = OmegaConf.to_container(cfg, resolve=False)
    return config_trial_id(config)
