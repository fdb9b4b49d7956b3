"""Host and device memory of one run: its peak, not the process's (trials of a multirun share a process, so
the peak is reset when a run starts and read when it ends); the memory a run can still allocate
(``available_memory_bytes``, which ``plan.memory_problem`` compares with what the run needs); and freed
memory kept for reuse within a run, so a training step does not pay page faults for memory the step before
gave back (``reuse_freed_memory``)."""

from __future__ import annotations

import ctypes
import functools
import resource
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_MEMINFO = Path("/proc/meminfo")
# A container's memory limit (cgroup v2, v1); above 2**60 means none.
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def _meminfo_kib(text: str, key: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


def available_memory_bytes(device: torch.device) -> int | None:
    """Memory a run on ``device`` can still allocate, or None where unknown. A GPU: its free memory
    (``torch.cuda.mem_get_info``) plus what this process's caching allocator holds unused (an earlier
    trial's). The CPU: the kernel's MemAvailable plus free swap, capped by a cgroup memory limit (a
    container's); this counts what other processes of the cgroup use as available, erring towards
    running."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    try:
        text = _MEMINFO.read_text()
        available = _meminfo_kib(text, "MemAvailable")
        if available is None:
            return None
        available = (available + (_meminfo_kib(text, "SwapFree") or 0)) * 1024
    except (OSError, ValueError, IndexError):
        return None
    for path in _CGROUP_LIMITS:
        try:
            limit = int(path.read_text().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        if limit < 2**60:
            available = min(available, limit)
    return available


# glibc's mallopt parameters (malloc.h) and the values set: its dynamic mmap threshold's own upper
# bound, fixed; and freed memory kept up to 1 GiB at the top of the heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 2**30


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc's own symbol: another libc's mallopt means something else
        return libc
    except (OSError, AttributeError):
        return None


def reuse_freed_memory() -> bool:
    """Give the memory earlier runs of this process freed back to the system (so this run's peak
    resident set is its own), then have malloc keep what this run frees for reuse. Returns whether it
    applied (glibc on Linux; elsewhere nothing changes).

    Why: torch's CPU tensors come from malloc. glibc serves blocks above a threshold (128 KiB at
    first) with fresh mmaps and unmaps them on free, raising the threshold only as it sees larger
    blocks freed, so each step's activations were new pages, each a page fault on first touch, until
    the threshold caught up: about 1,000 faults per step for the first ~30 steps of a process's first
    trial of sweep=quickstart, none after. Where a first touch is dear (a fresh virtual machine) that
    made the first trial many times slower than the rest. With the threshold fixed and freed memory
    kept, only the first step touches new memory."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and
                libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def release_freed_memory() -> None:
    """Give what malloc keeps freed back to the system (a run's end): the next run's checks of the
    memory available, and other processes, see it free."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


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
