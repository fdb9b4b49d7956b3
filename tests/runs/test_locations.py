"""Output locations are judged without making anything: the walk up to the first existing ancestor,
the mount table, the limits on names and paths."""

from __future__ import annotations

import os

import pytest

from lion_bench.runs import locations
from lion_bench.runs.locations import directory_problem, mount_of


def test_a_usable_location_is_accepted_and_nothing_is_made(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert directory_problem(target) is None and directory_problem(tmp_path) is None
    assert directory_problem(tmp_path / ("z" * 255)) is None  # at the name limit
    assert list(tmp_path.iterdir()) == []


def test_the_mount_table_is_read_with_its_escapes_and_the_last_mount_wins(tmp_path, monkeypatch):
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
        "23 22 0:22 / /mnt/my\\040disk rw - proc proc rw\n"
        "24 22 0:23 / /mnt/my\\040disk rw,nosuid shared:1 - tmpfs tmpfs rw\n"
        "25 22 0:24 / /mnt/kernel rw - sysfs sysfs rw\n")
    monkeypatch.setattr(locations, "MOUNT_TABLE", table)
    monkeypatch.setattr(os.path, "realpath", lambda path: path)
    assert mount_of("/mnt/my disk/x") == ("/mnt/my disk", "tmpfs")
    assert mount_of("/mnt/kernelx") == ("/", "ext4") and mount_of("/mnt/kernel/y") == ("/mnt/kernel", "sysfs")


@pytest.mark.parametrize("path, problem", [
    ("/proc/x", "is on /proc, a proc file system"),
    ("/dev/null", "exists and is a device, not a directory"),
    ("a\0b", "holds a NUL character"),
])
def test_locations_that_cannot_hold_a_run(path, problem):
    assert problem in directory_problem(path)
