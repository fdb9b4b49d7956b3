"""Trial identity: a short hash of everything that can change a run's result.

In a sweep the trial id names the run's directory (``hydra.sweep.subdir: ${trial_dir:}``, the
resolver registered by ``lion_bench.plan``, which knows the data and the device), so the same trial
lands in the same place every time the sweep runs, and a rerun finds what it left.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping

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


def trial_id(resolved_config: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the resolved config (seed included), minus reporting keys, and
    the ``context`` the config does not say: the data's fingerprint, the resolved precision and the
    device type (``plan.trial_context``). A changed corpus, or a CPU rerun of a GPU sweep, is
    another trial."""
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
