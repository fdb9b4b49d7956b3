"""Peak memory of one run, not of the process: trials of a multirun share a process, so the peak is
reset when a run starts and read when it ends."""

from __future__ import annotations

import resource
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _high_water_mark_bytes() -> int | None:
    """Linux's VmHWM: the peak resident set size since the process started or the mark was reset."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakMemory:
    """``read()`` -> (bytes, kind): the CUDA allocator's peak on a GPU; on the CPU the peak resident set
    size since construction (``rss_since_run_start``), or, where the kernel cannot reset the mark,
    the process's lifetime peak (``process_max_rss``)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda_allocated"
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            return
        try:
            _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.kind = "rss_since_run_start" if _high_water_mark_bytes() is not None else "process_max_rss"
        except OSError:
            self.kind = "process_max_rss"

    def read(self) -> tuple[int, str]:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device), self.kind
        if self.kind == "rss_since_run_start":
            peak = _high_water_mark_bytes()
            if peak is not None:
                return peak, self.kind
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process_max_rss"  # ru_maxrss: KiB
