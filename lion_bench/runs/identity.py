"""Trial identity: a short hash of everything that can change a run's result.

In a sweep the trial id names the run's directory (``hydra.sweep.subdir: ${trial_dir:}``), so the
same trial lands in the same place every time the sweep runs, and a rerun finds what it left.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

# Top-level config keys that say where or how a run is reported, not what it computes.
NON_RESULT_KEYS = ("logger", "output_root", "hydra", "sweep", "arm")
# checkpoint_every: a resumed run ends exactly where an uninterrupted one does.
NON_RESULT_TRAINER_KEYS = ("progress", "checkpoint_every", "checkpoint_minutes")


def _numbers_as_floats(value: Any) -> Any:
    """3 and 3.0 are the same setting (``optimizer.lr_divisor=3`` vs lion.yaml's 3.0): one id."""
    if isinstance(value, Mapping):
        return {key: _numbers_as_floats(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers_as_floats(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def config_hash(
    config: Mapping[str, Any], *, drop: tuple[str, ...], drop_trainer: tuple[str, ...], num_hex: int
) -> str:
    """Hex digits of SHA-256 over ``config`` without the top-level keys ``drop`` and the
    ``trainer`` keys ``drop_trainer``."""
    kept = {key: value for key, value in config.items() if key not in drop}
    trainer = kept.get("trainer")
    if isinstance(trainer, Mapping):
        kept["trainer"] = {k: v for k, v in trainer.items() if k not in drop_trainer}
    text = json.dumps(_numbers_as_floats(kept), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:num_hex]


def trial_id(resolved_config: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the resolved config (seed included), minus reporting keys."""
    return config_hash(resolved_config, drop=NON_RESULT_KEYS, drop_trainer=NON_RESULT_TRAINER_KEYS, num_hex=12)


def trial_dir_name(_root_: DictConfig) -> str:
    """``<arm or optimizer>_seed<seed>_<trial id>``, from the job's config (the hydra node aside,
    as the task function sees it, so the name's id is the one in run.json)."""
    job = OmegaConf.masked_copy(_root_, [key for key in _root_ if key != "hydra"])
    resolved = OmegaConf.to_container(job, resolve=True)
    label = resolved.get("arm") or resolved["optimizer"]["name"]
    return f"{label}_seed{resolved['seed']}_{trial_id(resolved)}"


# Registered on import rather than in the entry point: Ray workers unpickle the task function and
# import the modules it uses (this one among them), never lion_bench.train itself.
OmegaConf.register_new_resolver("trial_dir", trial_dir_name, replace=True)
