"""A short, stable hash of a config: trial ids (``lion_bench.identity``) and the report's context keys
(``results.contexts``) are both made by ``config_hash``."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping


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
