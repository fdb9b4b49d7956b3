"""A text column of a Hugging Face dataset as a byte corpus (``task.data.source=hf``; enwik8's ``hf`` source).

The dataset is a Hub id (``wikitext``, with ``hf_config`` ``wikitext-2-raw-v1``) or a local one, which
needs no network: a directory saved with ``save_to_disk`` (a Dataset, or a DatasetDict whose split
is chosen), a directory of data files, or one file (.txt, .json/.jsonl, .csv, .parquet, .arrow),
read by the ``datasets`` loaders. The rows of one column (``hf_column``, str or bytes) are joined by
newlines and read up to a cap: streamed (Hub and data files) or memory-mapped (saved datasets), so
no more rows are read than the cap needs. ``pip install 'lion-bench[data]'`` installs ``datasets``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Any, Iterator

from lion_bench.runs.errors import BadInput

INSTALL = "pip install 'lion-bench[data]'"
# Loaders of single data files, by suffix.
FILE_LOADERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet",
                ".arrow": "arrow"}
# Rows read per batch from the dataset.
ROWS_PER_BATCH = 256


def require_datasets(purpose: str) -> Any:
    """The ``datasets`` module; BadInput saying what to install when it is missing."""
    if importlib.util.find_spec("datasets") is None:
        raise BadInput(f"{purpose} needs Hugging Face datasets, which is not installed: {INSTALL}")
    import datasets  # noqa: PLC0415 - an optional dependency, imported when a dataset source is used

    return datasets


def local_path(dataset: str) -> Path | None:
    """The local dataset ``dataset`` names (a path that exists), or None (a Hub id)."""
    path = Path(dataset).expanduser()
    return path.resolve() if path.exists() else None


def looks_like_a_path(dataset: str) -> bool:
    return dataset.startswith(("/", "./", "../", "~")) or dataset.endswith(tuple(FILE_LOADERS))


def is_saved_dataset(path: Path) -> bool:
    """A directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def origin(dataset: str, config: str | None, split: str, column: str) -> str:
    """How a source is named in messages and records: ``wikitext (wikitext-2-raw-v1) train[text]``."""
    return f"{dataset}{f' ({config})' if config else ''} {split}[{column}]"


def _open(datasets: Any, dataset: str, config: str | None, split: str) -> Any:
    """The split as a Dataset (memory-mapped, saved datasets) or an IterableDataset (streamed)."""
    path = local_path(dataset)
    if path is not None and is_saved_dataset(path):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise BadInput(f"the dataset {path} has no split {split!r} (splits: {', '.join(loaded)}); "
                               "set task.data.hf_split")
            loaded = loaded[split]
        return loaded
    if path is not None and path.is_file():
        loader = FILE_LOADERS.get(path.suffix.lower())
        if loader is None:
            raise BadInput(f"task.data.hf_dataset={dataset!r} is a file datasets cannot read by its suffix; use one of "
                           f"{', '.join(FILE_LOADERS)}, or a directory saved with save_to_disk")
        return datasets.load_dataset(loader, data_files=str(path), split=split, streaming=True)
    if path is None and looks_like_a_path(dataset):
        raise BadInput(f"task.data.hf_dataset={dataset!r} does not exist; point it at a local dataset (a directory "
                       "saved with save_to_disk, data files) or give a Hugging Face Hub id")
    return datasets.load_dataset(str(path or dataset), name=config, split=split, streaming=True)


def _texts(table: Any, column: str, where: str) -> Iterator[bytes]:
    """Each row's ``column`` as bytes (str encoded as UTF-8); empty rows are kept (a blank line)."""
    names = table.column_names
    if names is not None and column not in names:
        raise BadInput(f"the dataset {where} has no column {column!r} (columns: {', '.join(names)}); "
                       "set task.data.hf_column")
    for batch in table.select_columns([column]).iter(batch_size=ROWS_PER_BATCH):
        if column not in batch:
            raise BadInput(f"the dataset {where} has no column {column!r} (columns: {', '.join(batch)}); "
                           "set task.data.hf_column")
        for value in batch[column]:
            if isinstance(value, str):
                yield value.encode("utf-8")
            elif isinstance(value, bytes):
                yield value
            elif value is not None:
                raise BadInput(f"the column {column!r} of {where} holds {type(value).__name__} values, not text; "
                               "set task.data.hf_column to a text column")


def dataset_text(dataset: str, config: str | None, split: str, column: str, max_bytes: int | None,
                 purpose: str = "task.data.source=hf") -> tuple[bytes, str]:
    """(the column's rows joined by newlines, at most ``max_bytes`` bytes; the source as
    ``hf:<dataset> (<config>) <split>[<column>]``). Reading stops at the cap."""
    datasets = require_datasets(purpose)
    where = origin(str(local_path(dataset) or dataset), config, split, column)
    chunks, total = [], 0
    try:
        for text in _texts(_open(datasets, dataset, config, split), column, where):
            piece = (b"\n" if chunks else b"") + text
            if max_bytes is not None and total + len(piece) >= max_bytes:
                chunks.append(piece[: max_bytes - total])
                total = max_bytes
                break
            chunks.append(piece)
            total += len(piece)
    except BadInput:
        raise
    except Exception as reason:  # noqa: BLE001 - datasets raises many kinds; all mean "could not read it"
        first_line = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        raise BadInput(f"could not read {where} through Hugging Face datasets: {first_line}") from reason
    data = b"".join(chunks)
    if not data:
        raise BadInput(f"the dataset {where} holds no text; choose another split, column or dataset")
    return data, f"hf:{where}"


def _signature(dataset: str) -> tuple:
    """What changes when a local dataset's files change (a Hub id: its name alone)."""
    path = local_path(dataset)
    if path is None:
        return ()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


@functools.lru_cache(maxsize=1)
def _cached_text(dataset: str, config: str | None, split: str, column: str, max_bytes: int | None,
                 signature: tuple) -> tuple[bytes, str, str]:
    data, source = dataset_text(dataset, config, split, column, max_bytes)
    return data, source, hashlib.sha256(data).hexdigest()


def cached_dataset_text(dataset: str, config: str | None, split: str, column: str,
                        max_bytes: int | None) -> tuple[bytes, str, str]:
    """(``dataset_text``'s bytes and source, their SHA-256), read once per process for the last source
    asked for: a trial's identity, its checks and its task read the same bytes once. A local dataset
    whose files changed is read again."""
    return _cached_text(dataset, config, split, column, max_bytes, _signature(dataset))
