"""Where run directories may go: whether a directory can be made (or used) and written at a path,
found without making or writing anything, so that a bad output location is refused before Hydra
creates a directory.

The path is walked up to its first existing ancestor, which must be a directory on a file system
that takes files (not /proc, /sys or another of the kernel's own, not mounted read-only) and that
this user may write; every name on the path must fit the file system's name limit, and the whole
path, with the names lion-bench puts below it, its path limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# File systems that hold the kernel's own entries: nothing a run writes can go there.
PSEUDO_FILE_SYSTEMS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs", "securityfs", "configfs", "bpf",
    "pstore", "efivarfs", "fusectl", "binfmt_misc", "mqueue", "nsfs", "rpc_pipefs", "autofs",
})
MOUNT_TABLE = Path("/proc/self/mountinfo")
# Bytes of the longest name a run directory gets inside it (".checkpoint.pt.<random>.tmp",
# "attempts.jsonl.damaged.<n>", ".hydra/overrides.yaml"), and of a sweep trial's directory name
# (identity.trial_dir_name: label, seed and trial id, at most 78, plus a set-aside suffix).
RUN_DIR_ROOM = 64
TRIAL_DIR_ROOM = 100 + 1 + RUN_DIR_ROOM


def _limit(path: str, name: str, default: int) -> int:
    try:
        return os.pathconf(path, name)
    except (OSError, ValueError):
        return default


def _unescape(field: str) -> str:
    """A mountinfo field: spaces, tabs, newlines and backslashes are written as octal escapes."""
    for escape, character in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escape, character)
    return field


def mount_of(path: str) -> tuple[str, str] | None:
    """(mount point, file system type) of the mount holding the existing ``path``, or None where the
    mount table cannot be read (not Linux)."""
    try:
        lines = MOUNT_TABLE.read_text().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    found = None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, kinds = left.split(), right.split()
        if len(fields) < 5 or not kinds:
            continue
        point = _unescape(fields[4])
        # A later mount on the same point hides an earlier one: ">=" keeps the last.
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (found is None or len(point) >= len(found[0])):
            found = (point, kinds[0])
    return found


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a directory"


def existing_ancestor(path: str) -> tuple[str, os.stat_result] | str:
    """The first existing entry at or above the absolute ``path`` and its stat, or why the walk stopped."""
    current = path
    while True:
        try:
            return current, os.stat(current)
        except FileNotFoundError:
            if os.path.islink(current):
                return f"{current} is a broken symbolic link"
        except NotADirectoryError:
            pass  # an entry above is not a directory: found further up
        except OSError as error:  # a symlink loop, a name too long, no permission to look
            return f"{current} cannot be looked up ({error.strerror or error})"
        parent = os.path.dirname(current)
        if parent == current:
            return f"no part of {path} exists"
        current = parent


def directory_problem(path: str | os.PathLike, room: int = RUN_DIR_ROOM) -> str | None:
    """Why a directory at ``path`` cannot be made (or, if it exists, used) and written, completing
    "the directory PATH ..."; None when nothing is wrong. ``room``: bytes of the names that go below it."""
    text = os.fspath(path)
    if "\0" in text:
        return "holds a NUL character"
    absolute = os.path.abspath(text)
    # Lengths first: a name or path over the limits cannot even be looked up.
    name_max = _limit("/", "PC_NAME_MAX", 255)
    for name in Path(absolute).parts[1:]:
        size = len(os.fsencode(name))
        if size > name_max:
            return f"has a name of {size} bytes ({name[:16]}...), more than the file system's limit of {name_max}"
    path_max = _limit("/", "PC_PATH_MAX", 4096)
    size = len(os.fsencode(absolute))
    if size + room >= path_max:
        return (f"is {size} bytes long: with the {room} bytes of names lion-bench puts inside it, its files' paths "
                f"would pass the system's limit of {path_max} bytes")
    found = existing_ancestor(absolute)
    if isinstance(found, str):
        return f"cannot be made: {found}"
    ancestor, status = found
    if not stat.S_ISDIR(status.st_mode):
        if ancestor == absolute:
            return f"exists and is {_kind(status.st_mode)}, not a directory"
        return f"cannot be made: {ancestor} is {_kind(status.st_mode)}, not a directory"
    name_max = _limit(ancestor, "PC_NAME_MAX", name_max)
    long_names = [name for name in Path(absolute).parts[1:] if len(os.fsencode(name)) > name_max]
    if long_names:
        return (f"has a name of {len(os.fsencode(long_names[0]))} bytes ({long_names[0][:16]}...), more than the "
                f"limit of {name_max} of the file system it would be on")
    mount = mount_of(ancestor)
    if mount is not None and mount[1] in PSEUDO_FILE_SYSTEMS:
        return f"is on {mount[0]}, a {mount[1]} file system of the kernel's own entries, where no file can be made"
    try:
        read_only = bool(os.statvfs(ancestor).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return f"is on a read-only file system ({mount[0] if mount else ancestor})"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return "is not writable by this user" if ancestor == absolute else \
            f"cannot be made: {ancestor} is not writable by this user"
    return None
