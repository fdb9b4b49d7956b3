"""Byte corpora: local files or directories, or the embedded default built from the running
Python's standard library sources (every install has them, so the default needs no download)."""

from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path

from lion_bench.runs.errors import BadInput

# Directories of the stdlib tree that hold installed packages or generated files, not the stdlib.
_SKIPPED_STDLIB_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for directory, subdirectories, names in os.walk(root):
        # Prune in place so os.walk never descends into installed packages.
        subdirectories[:] = [name for name in subdirectories if name not in _SKIPPED_STDLIB_DIRS]
        files.extend(Path(directory, name) for name in names if name.endswith(".py"))
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def read_files(files: list[Path], max_bytes: int | None) -> bytes:
    chunks, total = [], 0
    for path in files:
        data = path.read_bytes()
        if max_bytes is not None and total + len(data) > max_bytes:
            chunks.append(data[: max_bytes - total])
            total = max_bytes
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def embedded_corpus(max_bytes: int) -> tuple[bytes, str]:
    """The standard library's ``.py`` sources in sorted path order, cut at ``max_bytes``."""
    root = sysconfig.get_paths()["stdlib"]
    return read_files(stdlib_files(), max_bytes), f"python-stdlib:{root}"


def local_corpus(path: str | Path, max_bytes: int | None) -> tuple[bytes, str]:
    """A file, or every file under a directory in sorted order."""
    path = Path(path).expanduser()
    if not path.exists():
        raise BadInput(
            f"task.data.path={str(path)!r} does not exist. Point it at a text file or a directory of "
            "files, or set task.data.path=null to use the embedded corpus (Python standard library sources)."
        )
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    data = read_files(files, max_bytes)
    if not data:
        raise BadInput(f"task.data.path={str(path)!r} holds no bytes; point it at a non-empty file or directory")
    return data, f"local:{path.resolve()}"


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
