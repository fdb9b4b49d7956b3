"""Byte corpora: local files or directories, or the embedded default built from the running
Python's standard library sources (every install has them, so the default needs no download)."""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import sysconfig
import warnings
from pathlib import Path

from lion_bench.runs.errors import BadInput

# Directories of the stdlib tree that hold installed packages or generated files, not the stdlib.
_SKIPPED_STDLIB_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files in sorted path order (walked once per process: a sweep's
    trials each ask several times, and the tree does not change while Python runs)."""
    return list(_stdlib_files())


@functools.lru_cache(maxsize=1)
def _stdlib_files() -> tuple[Path, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for directory, subdirectories, names in os.walk(root):
        # Prune in place so os.walk never descends into installed packages.
        subdirectories[:] = [name for name in subdirectories if name not in _SKIPPED_STDLIB_DIRS]
        files.extend(Path(directory, name) for name in names if name.endswith(".py"))
    return tuple(sorted(files, key=lambda path: path.relative_to(root).as_posix()))


def read_files(files: list[Path], max_bytes: int | None) -> bytes:
    """The files' bytes one after another, at most ``max_bytes`` in all: no file is read past the cap."""
    chunks, total = [], 0
    for path in files:
        if max_bytes is not None and total >= max_bytes:
            break
        with open(path, "rb") as stream:
            # read(n) allocates n bytes up front: never ask for more than the file holds (a cap of
            # 10**15 is a cap, not a read size).
            size = os.fstat(stream.fileno()).st_size
            data = stream.read() if max_bytes is None else stream.read(min(max_bytes - total, size))
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def corpus_files(path: str | Path) -> list[Path]:
    """The regular files a corpus path names: the file itself, or every regular file under a
    directory in sorted order. Anything else (missing, a device, a FIFO, an empty directory) raises
    BadInput without opening it: reading /dev/zero never ends and opening a FIFO waits for a writer."""
    path = Path(path).expanduser()
    shown = f"task.data.path={str(path)!r}"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise BadInput(
            f"{shown} does not exist. Point it at a text file or a directory of "
            "files, or set task.data.path=null to use the embedded corpus (Python standard library sources)."
        ) from None
    except OSError as error:
        raise BadInput(f"{shown} cannot be read ({error.strerror}); point it at a readable file or directory") from None
    if stat.S_ISREG(mode):
        return [path]
    if not stat.S_ISDIR(mode):
        raise BadInput(f"{shown} is not a regular file or directory (a device, FIFO or socket); point it at a text "
                       "file or a directory of files")
    files = sorted(p for p in path.rglob("*") if p.is_file())  # is_file: regular files only
    if not files:
        raise BadInput(f"{shown} is a directory without regular files; point it at a directory that holds text files")
    return files


def corpus_size(files: list[Path], max_bytes: int | None) -> int:
    """Bytes a corpus of ``files`` yields under the cap, from file sizes alone."""
    total = sum(path.stat().st_size for path in files)
    return total if max_bytes is None else min(total, max_bytes)


def warn_if_binary(files: list[Path], data: bytes) -> None:
    """A byte LM trains on any bytes; NUL bytes usually mean a file that was not meant to be text."""
    offset = 0
    for path in files:
        size = min(path.stat().st_size, len(data) - offset)
        if size <= 0:
            break
        if b"\x00" in data[offset : offset + size]:
            warnings.warn(f"task.data.path: {path} looks like binary data (it holds NUL bytes); the model trains on "
                          "its bytes anyway", UserWarning, stacklevel=2)
        offset += size


def embedded_corpus(max_bytes: int) -> tuple[bytes, str]:
    """The standard library's ``.py`` sources in sorted path order, cut at ``max_bytes``."""
    root = sysconfig.get_paths()["stdlib"]
    return read_files(stdlib_files(), max_bytes), f"python-stdlib:{root}"


def local_corpus(path: str | Path, max_bytes: int | None) -> tuple[bytes, str]:
    """A file, or every regular file under a directory in sorted order (see ``corpus_files``)."""
    path = Path(path).expanduser()
    files = corpus_files(path)
    data = read_files(files, max_bytes)
    if not data:
        raise BadInput(f"task.data.path={str(path)!r} holds no bytes; point it at a non-empty file or directory")
    warn_if_binary(files, data)
    return data, f"local:{path.resolve()}"


@functools.lru_cache(maxsize=8)
def _digest(files: tuple[tuple[str, int, int], ...], max_bytes: int | None) -> str:
    return fingerprint(read_files([Path(name) for name, _, _ in files], max_bytes))


def corpus_digest(path: str | Path | None, max_bytes: int | None) -> str:
    """SHA-256 of the bytes a corpus yields (the embedded one when ``path`` is None), read once per
    process for each set of files, sizes and modification times: what a trial's identity holds."""
    files = stdlib_files() if path is None else corpus_files(path)
    stats = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _digest(stats, max_bytes)


def split_sizes(num_bytes: int, val_fraction: float, block_bytes: int = 65536) -> tuple[int, int]:
    """(train, validation) sizes that ``interleaved_split`` gives ``num_bytes`` bytes, without the bytes."""
    block_bytes = max(1, min(block_bytes, num_bytes // 20))
    val = 0
    for index, start in enumerate(range(0, num_bytes, block_bytes)):
        if int((index + 1) * val_fraction) > int(index * val_fraction):
            val += min(block_bytes, num_bytes - start)
    return num_bytes - val, val


def interleaved_split(data: bytes, val_fraction: float, block_bytes: int = 65536) -> tuple[bytes, bytes]:
    """(train, validation): the data cut into blocks, with every block whose index crosses a multiple
    of 1/val_fraction held out. A held-out tail would be one part of the corpus (in the embedded
    corpus, the ``encodings`` charmap tables, which are nearly free to predict); interleaved blocks
    draw validation from the whole corpus. Fixed: it depends on no seed."""
    if not 0.0 < val_fraction < 1.0:
        raise BadInput(f"task.data.val_fraction must be in (0, 1), got {val_fraction}")
    # Small corpora get smaller blocks: at least 20 of them, so the held-out share stays near val_fraction.
    block_bytes = max(1, min(block_bytes, len(data) // 20))
    train, val = [], []
    for index, start in enumerate(range(0, len(data), block_bytes)):
        held_out = int((index + 1) * val_fraction) > int(index * val_fraction)
        (val if held_out else train).append(data[start : start + block_bytes])
    return b"".join(train), b"".join(val)


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
