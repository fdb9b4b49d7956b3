"""Trial checkpoints: everything a run needs to continue exactly where it stopped.

One file per run directory, ``checkpoint.pt``, replaced atomically (a reader sees the old file or
the new one) and removed when the run ends as finished or diverged. A checkpoint that does not
load (empty, truncated, not a checkpoint) is set aside as ``checkpoint.pt.damaged`` with a
DamagedFile warning, and the run starts from step 0. It holds only tensors,
numbers, strings, None and lists/tuples/dicts of them, so it loads with
``torch.load(weights_only=True)``: a checkpoint cannot run code when it is read.

Saving is off the training loop's hot path: ``CheckpointWriter.save`` copies the state to host
memory (asynchronously from a GPU, in stream order, so later steps cannot change what is saved)
and a background thread waits for the copy and writes the file while training goes on.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import torch

from lion_bench.runs.store import (
    METRICS_FILE,
    atomic_write,
    atomic_write_text,
    metrics_row_problem,
    read_json_lines,
    set_aside,
)

CHECKPOINT_FILE = "checkpoint.pt"
# What every checkpoint holds (see trainer.maybe_checkpoint), and the type of each part.
CHECKPOINT_PARTS = {"trial_id": str, "model": dict, "optimizer": dict, "scheduler": dict, "task": dict, "rng": dict,
                    "loop": dict}


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
    """Write ``state`` (on the host) to ``run_dir/checkpoint.pt`` atomically, now."""
    atomic_write(Path(run_dir) / CHECKPOINT_FILE, lambda handle: torch.save(state, handle), mode="wb")


def checkpoint_problem(checkpoint: Any) -> str | None:
    if not isinstance(checkpoint, dict):
        return f"it holds {type(checkpoint).__name__}, not a checkpoint"
    wrong = [name for name, kind in CHECKPOINT_PARTS.items() if not isinstance(checkpoint.get(name), kind)]
    if wrong or not isinstance(checkpoint["loop"].get("step"), int):
        return f"it lacks {', '.join(wrong) or 'loop.step'}"
    return None


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The run's checkpoint (tensors on CPU), or None when it has none. One that does not load or
    lacks a part is set aside (``checkpoint.pt.damaged``, with a DamagedFile warning): None."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists() and not path.is_symlink():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # EOFError, UnpicklingError, RuntimeError, IsADirectoryError, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "no message"
        set_aside(path, f"does not load as a checkpoint ({type(error).__name__}: {reason[:200]})",
                  "the run starts from step 0")
        return None
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        set_aside(path, f"is not a checkpoint of a run ({problem})", "the run starts from step 0")
        return None
    return checkpoint


def checkpoint_trial_id(run_dir: Path) -> str | None:
    """The trial id of the run directory's checkpoint, read without reading its tensors (memory-mapped);
    None when there is none or it does not load (``load_checkpoint`` sets such a file aside)."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - damaged, or not a zip-format file: load_checkpoint decides
        return None
    trial_id = checkpoint.get("trial_id") if isinstance(checkpoint, dict) else None
    return trial_id if isinstance(trial_id, str) else None


def remove_checkpoint(run_dir: Path) -> None:
    (Path(run_dir) / CHECKPOINT_FILE).unlink(missing_ok=True)


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics rows logged after ``step``: a resumed run logs them again from its checkpoint.
    A file with damaged lines is set aside first (``metrics.jsonl.damaged``); its good rows are kept."""
    path = Path(run_dir) / METRICS_FILE
    rows, skipped = read_json_lines(path, metrics_row_problem)
    if skipped:
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        set_aside(path, f"damaged line(s) ({skipped[0].removeprefix(f'{path}:')}{more})",
                  f"its good rows up to step {step} are kept in {METRICS_FILE}")
    rows = [row for row in rows if row["step"] <= step]
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def to_host(state: Any) -> Any:
    """A copy of ``state`` whose tensors live in host memory and no longer alias the live ones.
    CUDA tensors are copied into pinned memory without blocking the host (ordered on the current
    stream, so work queued after this cannot change what is copied); call ``torch.cuda.synchronize``
    or wait on an event before reading them."""
    if isinstance(state, torch.Tensor):
        if state.is_cuda:
            host = torch.empty(state.shape, dtype=state.dtype, pin_memory=True)
            return host.copy_(state.detach(), non_blocking=True)
        return state.detach().clone()
    if isinstance(state, dict):
        return {key: to_host(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(to_host(value) for value in state)
    return state


class CheckpointWriter:
    """Writes checkpoints of one run directory from a background thread, one at a time."""

    def __init__(self, run_dir: Path, saved_step: int | None = None):
        self.run_dir = Path(run_dir)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._step_in_flight: int | None = None
        # The step of the last checkpoint known to be on disk (a resumed run's: the one it resumed from).
        self.saved_step = saved_step

    def save(self, state: dict[str, Any], device: torch.device) -> None:
        """Snapshot ``state`` to host memory now and write it in the background. Waits first for the
        previous write, if one is still going (checkpoints are minutes apart, so it rarely is)."""
        self.wait()
        self._step_in_flight = state.get("loop", {}).get("step")
        host_state = to_host(state)
        ready = None
        if device.type == "cuda":
            ready = torch.cuda.Event()
            ready.record()
        self._thread = threading.Thread(target=self._write, args=(host_state, ready), daemon=True,
                                        name=f"checkpoint {self.run_dir.name}")
        self._thread.start()

    def _write(self, state: dict[str, Any], ready: torch.cuda.Event | None) -> None:
        try:
            if ready is not None:
                ready.synchronize()
            save_checkpoint(self.run_dir, state)
        except BaseException as error:  # re-raised in the training thread by wait()
            self._error = error

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise what it raised."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        step, self._step_in_flight = self._step_in_flight, None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if step is not None:
            self.saved_step = step
