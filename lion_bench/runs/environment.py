"""Facts about the machine and code a run executed on, recorded in every ``run.json``."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def git_sha() -> str | None:
    """The commit of the lion_bench checkout, when it is one (None for a wheel install)."""
    try:
        output = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return output.stdout.strip() or None if output.returncode == 0 else None


def triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def environment(device: torch.device) -> dict:
    from lion_bench import __version__

    return {
        "device": str(device),
        "device_type": device.type,
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "triton_version": triton_version(),
        "python_version": platform.python_version(),
        "lion_bench_version": __version__,
        "git_sha": git_sha(),
        "num_threads": torch.get_num_threads(),
        # Which GPUs a launcher (Ray, SLURM) gave this process, if it narrowed them.
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
