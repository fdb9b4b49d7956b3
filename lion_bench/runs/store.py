"""The local run store: one directory per run holding ``config.yaml``, ``metrics.jsonl`` and
``run.json`` (and, while unfinished, ``checkpoint.pt``; after a failure, ``traceback.txt``).
``run.json`` is written atomically and is the source of truth for everything later: every reader
and writer of it goes through ``read_record`` / ``write_record``, which validate the schema.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import IO, Any, Callable, Mapping

from lion_bench.runs.errors import DamagedFile, RecordError
from lion_bench.runs.record import RunRecord, Status, decode_number, encode_number, now

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"
TRACEBACK_FILE = "traceback.txt"


def _json_safe(value: Any) -> Any:
    """NaN and inf are not JSON: store them as "NaN", "Infinity", "-Infinity" (``record.NON_FINITE``),
    which ``read_record`` and ``read_metrics`` read back as floats."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return encode_number(value)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[IO], None], mode: str = "w") -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then move it over ``path``: a reader
    sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file owner-only; give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text))


def atomic_write_json(path: Path, record: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_json_safe(record), indent=2, sort_keys=True) + "\n")


def write_config(run_dir: Path, yaml_text: str) -> None:
    """The run's resolved config, as ``config.yaml``."""
    atomic_write_text(Path(run_dir) / CONFIG_FILE, yaml_text)


def write_record(run_dir: Path, record: RunRecord) -> None:
    """Validate ``record`` and write it as ``run_dir/run.json`` (atomically)."""
    problems = record.problems()
    assert not problems, f"refusing to write an invalid run record: {problems}"
    atomic_write_json(Path(run_dir) / RUN_FILE, record.to_dict())


def read_record(run_dir: Path) -> RunRecord | None:
    """The run's record, or None when it has no ``run.json``. Raises RecordError when the file is
    unreadable or does not validate."""
    path = Path(run_dir) / RUN_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"{path} cannot be read ({error})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise RecordError(f"{path} is not JSON ({error})") from None
    try:
        return RunRecord.from_dict(data)
    except RecordError as error:
        raise RecordError(f"{path}: {str(error).removeprefix('run.json: ')}") from None


def write_failure(run_dir: Path, record: RunRecord) -> None:
    """Call inside ``except``: mark ``record`` failed with the exception's last line, keep the whole
    traceback in ``traceback.txt`` beside it, and write the record."""
    record.status = Status.FAILED
    record.error = traceback.format_exc(limit=-3).strip().splitlines()[-1]
    record.finished_at = now()
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / TRACEBACK_FILE).write_text(traceback.format_exc())
    write_record(run_dir, record)


def remove_unused_run_dir(run_dir: Path, root: Path) -> None:
    """Remove ``run_dir`` when it holds nothing but Hydra's copy of the config (``.hydra``) and the run's
    lock (``.lock``, released): a run
    refused as bad input after Hydra made its directory leaves nothing behind. Parents that become
    empty go too, up to ``root`` included."""
    run_dir, root = Path(run_dir).resolve(), Path(root).resolve()
    if not run_dir.is_dir() or not {path.name for path in run_dir.iterdir()} <= {".hydra", ".lock"}:
        return
    shutil.rmtree(run_dir)
    for parent in run_dir.parents:
        if not parent.is_relative_to(root) or any(parent.iterdir()):
            break
        parent.rmdir()


def set_aside(path: Path, reason: str, consequence: str = "the trial runs again", suffix: str = "damaged") -> Path:
    """Rename a damaged ``path`` (file, directory or link) to ``<name>.<suffix>`` (``.damaged``;
    ``.damaged.1``, ... if taken), keeping it for a person to look at, and warn (DamagedFile) naming
    both. Returns the new path."""
    path = Path(path)
    target = path.with_name(f"{path.name}.{suffix}")
    number = 0
    while target.exists() or target.is_symlink():
        number += 1
        target = path.with_name(f"{path.name}.{suffix}.{number}")
    os.replace(path, target)
    warnings.warn(f"{path}: {reason}; kept as {target.name}, {consequence}", DamagedFile, stacklevel=2)
    return target


def is_odd_entry(path: Path, directory: bool = False) -> bool:
    """Whether ``path`` exists as something a run cannot use in its place: a symbolic link (whose
    writes would land elsewhere), or not a regular file (``directory``: not a directory)."""
    path = Path(path)
    if path.is_symlink():
        return True
    return path.exists() and not (path.is_dir() if directory else path.is_file())


def _odd_entry_reason(path: Path) -> str:
    return "is a symbolic link" if path.is_symlink() else \
        "is not a directory" if not path.is_dir() else "is not a regular file"


def set_aside_odd_entries(run_dir: Path, files: tuple[str, ...] = (), directories: tuple[str, ...] = (),
                          consequence: str = "the trial runs again") -> None:
    """Set aside each of the names ``files`` (which must be regular files) and ``directories`` in
    ``run_dir`` that exists as something else (``is_odd_entry``), with a warning naming it. An entry
    another process moved first is left to it."""
    for name, directory in [*((name, False) for name in files), *((name, True) for name in directories)]:
        path = Path(run_dir) / name
        if is_odd_entry(path, directory):
            try:
                set_aside(path, _odd_entry_reason(path), consequence)
            except FileNotFoundError:
                pass


def prepare_run_dir(run_dir: Path, hydra_files: tuple[str, ...] = ()) -> None:
    """Make ``run_dir`` usable as a directory before anything creates it: whatever is at its path
    and is not a directory (a file, a symbolic link, a FIFO), and, inside it, a ``.hydra`` that is not
    a directory or ``hydra_files`` there that are not regular files, is set aside with a warning; the
    ``hydra_files`` that are there are kept (``keep_hydra_files``). Never raises: what it cannot fix, the
    run reports."""
    run_dir = Path(run_dir)
    try:
        set_aside_odd_entries(run_dir.parent, directories=(run_dir.name,))
        set_aside_odd_entries(run_dir, directories=(".hydra",))
        set_aside_odd_entries(run_dir / ".hydra", files=hydra_files)
    except OSError:
        pass
    keep_hydra_files(run_dir, hydra_files)


# Hydra writes its copy of a job's config (.hydra/config.yaml, hydra.yaml, overrides.yaml) before the job
# function runs, so also for a trial the attempt then skips (done, or busy in another process). What was
# there is kept in memory when Hydra names the directory (``keep_hydra_files``, from prepare_run_dir) and put
# back when the attempt does not train (``put_back_hydra_files``): a rerun leaves a done trial as it was.
# Exact for one process per sweep directory; where several share one and reach the same trial within
# milliseconds, one of them may keep another's copy and the trial ends with a rerun's copy (as before).
_KEPT_HYDRA_FILES: dict[str, dict[str, bytes]] = {}


def keep_hydra_files(run_dir: Path, names: tuple[str, ...]) -> None:
    """Keep the contents of ``run_dir/.hydra/<name>`` (the regular files among ``names``) until the
    attempt at the trial says whether it trains. The first call for a directory counts: Hydra may resolve
    the directory's name again after it has written there."""
    key = os.path.abspath(run_dir)
    if key in _KEPT_HYDRA_FILES:
        return
    kept = {}
    for name in names:
        path = Path(run_dir) / ".hydra" / name
        try:
            if path.is_file() and not path.is_symlink():
                kept[name] = path.read_bytes()
        except OSError:
            pass
    _KEPT_HYDRA_FILES[key] = kept


def put_back_hydra_files(run_dir: Path) -> None:
    """The attempt does not train: the .hydra files kept for ``run_dir`` go back (atomically) in place of
    the ones Hydra wrote for this attempt. A file that was not there before stays: another process may
    have written it since (the trial's first attempt), so nothing is deleted."""
    for name, content in _KEPT_HYDRA_FILES.pop(os.path.abspath(run_dir), {}).items():
        path = Path(run_dir) / ".hydra" / name
        try:
            if not path.is_symlink() and (not path.exists() or path.read_bytes() != content):
                atomic_write(path, lambda handle, content=content: handle.write(content), mode="wb")
        except OSError as error:
            warnings.warn(f"{path}: Hydra's copy of this attempt's config could not be replaced by the trial's "
                          f"own ({error.strerror or error})", stacklevel=2)


def forget_hydra_files(run_dir: Path) -> None:
    """The attempt trains: the .hydra files Hydra wrote for it are the trial's now."""
    _KEPT_HYDRA_FILES.pop(os.path.abspath(run_dir), None)


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Remove the temporary files of atomic writes that a killed process left in ``run_dir``. Call
    only while no other process writes there (a sweep holds the trial's lock)."""
    removed = []
    for path in Path(run_dir).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_json_lines(path: Path, problem: Callable[[Any], str | None]) -> tuple[list[dict[str, Any]], list[str]]:
    """The objects of a JSON-lines file that ``problem`` finds nothing wrong with (it returns why an
    object is not usable, or None), and ``"<path>:<line>: <why>"`` for each line skipped. A missing
    file has no lines."""
    path = Path(path)
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return [], []
    except OSError as error:  # a directory, no permission
        return [], [f"{path}: cannot be read ({error.strerror or error})"]
    rows, skipped = [], []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is a ValueError too
            why = "not JSON (a torn last line of a killed run?)" if number >= len(lines) - 1 else "not JSON"
        else:
            why = problem(value) if isinstance(value, dict) else f"{type(value).__name__}, not an object"
            if why is None:
                rows.append(value)
                continue
        skipped.append(f"{path}:{number}: {why}")
    return rows, skipped


def metrics_row_problem(row: dict[str, Any]) -> str | None:
    step = row.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"step is {step!r}, not a step number"
    return None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl``. A line that is not a row (not JSON, not an object, no integer
    ``step``; a torn last line of a killed run) is skipped with a DamagedFile warning naming the
    file and line."""
    rows, skipped = read_json_lines(Path(run_dir) / METRICS_FILE, metrics_row_problem)
    for where in skipped:
        warnings.warn(f"{where}; line skipped", DamagedFile, stacklevel=2)
    return [{key: decode_number(value) for key, value in row.items()} for row in rows]


class MetricsWriter:
    """Appends one JSON line per logged step and flushes it, so a crash loses at most one row."""

    def __init__(self, run_dir: Path, append: bool = False):
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a" if append else "w")

    def write(self, row: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps(_json_safe(row), sort_keys=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
