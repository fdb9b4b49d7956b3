"""Trial checkpoints: everything a run needs to continue exactly where it stopped.

One file per run directory, ``checkpoint.pt``, replaced atomically every ``trainer.checkpoint_every``
steps and removed when the run ends as finished or diverged. It holds only tensors, numbers,
strings, None and lists/tuples/dicts of them, so it loads with ``torch.load(weights_only=True)``:
a checkpoint cannot run code when it is read.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from lion_bench.results.store import METRICS_FILE, atomic_write, atomic_write_text, read_metrics

CHECKPOINT_FILE = "checkpoint.pt"


def rng_states(device: torch.device) -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``run_dir/checkpoint.pt`` so a reader sees the old file or the new one."""
    atomic_write(Path(run_dir) / CHECKPOINT_FILE, lambda handle: torch.save(state, handle), mode="wb")


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The run's checkpoint (tensors on CPU), or None when it has none."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def remove_checkpoint(run_dir: Path) -> None:
    (Path(run_dir) / CHECKPOINT_FILE).unlink(missing_ok=True)


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics rows logged after ``step``: a resumed run logs them again from its checkpoint."""
    rows = [row for row in read_metrics(run_dir) if row.get("step", 0) <= step]
    atomic_write_text(Path(run_dir) / METRICS_FILE, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
