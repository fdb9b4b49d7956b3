"""What every benchmark result line carries: the device, the date, the command, versions and the commit."""

from __future__ import annotations

import datetime
import subprocess
import sys
from typing import Any

import torch


def run_metadata(device_name: str, **extra: Any) -> dict[str, Any]:
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "device": device_name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "torch": torch.__version__,
        "triton": triton_version,
        "git_sha": sha or "unknown",
        **extra,
    }
