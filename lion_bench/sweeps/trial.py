"""Trial identity: a short hash of everything that can change a run's result."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

# Top-level config keys that say where or how a run is reported, not what it computes.
NON_RESULT_KEYS = ("logger", "output_root", "hydra", "sweep")
NON_RESULT_TRAINER_KEYS = ("progress",)


def trial_id(resolved_config: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the resolved config (seed included), minus reporting keys."""
    config = {key: value for key, value in resolved_config.items() if key not in NON_RESULT_KEYS}
    trainer = config.get("trainer")
    if isinstance(trainer, Mapping):
        config["trainer"] = {k: v for k, v in trainer.items() if k not in NON_RESULT_TRAINER_KEYS}
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
