"""Where ``torch.compile`` keeps what it compiled, so that a trial after the first compiles in seconds.

``trainer.compile_cache`` (default ``~/.cache/lion_bench/compile``) names a directory; a compiled
run points torch's on-disk compile caches at ``<directory>/<stack>`` through
``TORCHINDUCTOR_CACHE_DIR``, the variable torch itself reads for them: Inductor's FX graph cache,
the AOTAutograd cache (the joint forward and backward graph), the Triton kernels Inductor generated
and their autotuning results. ``<stack>`` names the torch, Triton and Python versions and the device
(GPU name and compute capability, or cpu), so one directory serves several machines and versions
without mixing them; torch's own keys (hashes of the graph, the versions, the device and the
relevant config) decide each hit within it.

What this gives: trials of one sweep that run in separate processes (``hydra/launcher=workers``,
Ray, SLURM, several commands), and every rerun, find the graphs the first trial compiled; trials
in one process (the basic launcher) already reuse the compiled model in memory. Copy the directory,
or point the key at a shared filesystem, to reuse it on another machine with the same stack
(``torch.compiler.save_cache_artifacts`` would pack the same caches into one blob; a directory needs
no code on either side). null leaves torch's default (``/tmp/torchinductor_<user>``).

A stale or damaged cache never breaks a run: entries of other versions never match (their keys
differ), torch treats an index entry it cannot unpickle as a miss (it logs a warning and compiles),
a directory that cannot be created or written is warned about and left out (torch's default is
used), and a compile that fails while a cache is in use (torch imports the generated source and
libraries an entry names without checking them: one cut short fails the compile) is retried once
with the directory set aside as ``<stack>.damaged`` and an empty one in its place
(``compile_failed_on_cache``, ``set_aside_cache``; the trainer's first compiled step). The compile time stays in every
record (``time_s.compile``), with the cache directory used (``environment.compile_cache``).
"""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from lion_bench.runs.store import set_aside

# The variable torch reads for the directory of its on-disk compile caches
# (torch._inductor.runtime.cache_dir_utils.cache_dir).
CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"


def stack_key(device: torch.device) -> str:
    """A directory name for this software stack and device kind: versions, then the GPU and its
    compute capability (or cpu)."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "none"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        where = f"{torch.cuda.get_device_name(device)}-sm{major}{minor}"
    else:
        where = device.type
    key = f"torch{torch.__version__}-triton{triton_version}-py{platform.python_version()}-{where}"
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", key)


def use_compile_cache(directory: str | None, device: torch.device) -> str | None:
    """Point torch's compile caches at ``directory``/``stack_key(device)`` for this process; returns
    that path, or None when ``directory`` is None or unusable (warned: torch's default is used)."""
    if directory is None:
        return None
    path = Path(directory).expanduser().absolute() / stack_key(device)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # writable, not only present
            pass
    except OSError as error:
        warnings.warn(f"trainer.compile_cache: {path} cannot be used ({error.strerror or error}); compiling with "
                      "torch's default cache directory", RuntimeWarning, stacklevel=2)
        return None
    if os.environ.get(CACHE_VARIABLE) != str(path):
        os.environ[CACHE_VARIABLE] = str(path)
        if "torch._inductor.utils" in sys.modules:  # something compiled already: forget the old directory
            sys.modules["torch._inductor.utils"].clear_caches()
    return str(path)


def compile_failed_on_cache(error: BaseException, cache: str | None) -> bool:
    """Whether ``error``, raised by a compiled run's first step, may come from a damaged cache entry
    (a generated source file or library cut short by a killed writer or a full disk, which torch loads
    without checking): the compiler failed while a cache directory was in use."""
    exceptions = sys.modules.get("torch._dynamo.exc")  # loaded by whatever raised it; importing it costs seconds
    return cache is not None and exceptions is not None and isinstance(error, exceptions.BackendCompilerFailed)


def set_aside_cache(cache: str, error: BaseException, device: torch.device) -> str | None:
    """Move a cache directory that failed a compile aside (``<stack>.damaged``, warned; kept for a
    person to look at) and start an empty one in its place; returns its path (None if unusable).
    Call ``torch._dynamo.reset()`` before compiling again."""
    path = Path(cache)
    first_line = str(error).strip().splitlines()[-1][:200] if str(error).strip() else type(error).__name__
    set_aside(path, f"compiling failed with this compile cache ({first_line})",
              "the run compiles again with an empty one")
    return use_compile_cache(str(path.parent), device)
