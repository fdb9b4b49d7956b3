"""Set-aside covers every entry a trial directory can hold: a ``.lock`` that is a directory, a
``.hydra`` that is a file, ``config.yaml`` / ``traceback.txt`` / ``metrics.jsonl`` that are
directories, symbolic links, the trial directory itself a file or a link. Each is set aside (kept
as ``<name>.damaged``, with a warning naming it) and the trial runs; no entry of one trial stops the
others."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import pytest
from compose import compose_config
from sweep_cli import FAST, run_sweep, trial_records

from lion_bench.runs.errors import DamagedFile
from lion_bench.runs.store import prepare_run_dir, read_record
from lion_bench.identity import trial_id_of
from lion_bench.sweeps.resume import LOCK_FILE, read_attempts, run_trial

from test_trial_resume import result_record


def test_odd_entries_in_every_trial_of_a_sweep_never_stop_it(tmp_path):
    """Four finished trials, each damaged in other ways; the rerun trains each again, with its own
    record, writes nothing outside the sweep directory, and exits 0."""
    command = ["seed=0,1,2,3", *FAST]
    assert run_sweep(tmp_path, *command).returncode == 0
    sweep_dir = tmp_path / "sweeps" / "multirun"
    first = trial_records(sweep_dir)
    trials = {int(record["seed"]): sweep_dir / name for name, record in first.items()}
    outside_file, outside_dir = tmp_path / "outside.txt", tmp_path / "elsewhere"
    outside_file.write_text("untouched")
    outside_dir.mkdir()
    for trial in trials.values():
        (trial / "run.json").rename(tmp_path / f"{trial.name}.json")  # so that every trial trains again
    zero, one, two, three = (trials[seed] for seed in range(4))
    (zero / LOCK_FILE).unlink()
    (zero / LOCK_FILE).mkdir()
    shutil.rmtree(zero / ".hydra")
    (zero / ".hydra").write_text("not a directory")
    (zero / "config.yaml").unlink()
    (zero / "config.yaml").mkdir()
    (zero / "traceback.txt").mkdir()
    (zero / "metrics.jsonl").unlink()
    (zero / "metrics.jsonl").symlink_to(outside_file)
    shutil.rmtree(one)
    one.write_text("a file where the trial's directory goes")
    shutil.rmtree(two)
    two.symlink_to(outside_dir)
    (three / "run.json").symlink_to(tmp_path / f"{one.name}.json")  # another trial's record
    shutil.rmtree(three / ".hydra" / "config.yaml", ignore_errors=True)
    (three / ".hydra" / "config.yaml").unlink(missing_ok=True)
    (three / ".hydra" / "config.yaml").mkdir()

    rerun = run_sweep(tmp_path, *command)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "sweep multirun: 4 trials: 4 finished, 0 diverged, 0 failed, 0 skipped" in rerun.stdout
    again = trial_records(sweep_dir)
    assert sorted(again) == sorted(first)
    for name, record in again.items():
        assert record["trial_id"] == name.rsplit("_", 1)[-1] and record["status"] == "finished"
        assert record["final_val_loss"] == first[name]["final_val_loss"]  # the same trial, trained again
    assert outside_file.read_text() == "untouched" and list(outside_dir.iterdir()) == []
    for kept in (zero / ".lock.damaged", zero / ".hydra.damaged", zero / "config.yaml.damaged",
                 zero / "traceback.txt.damaged", zero / "metrics.jsonl.damaged", three / ".hydra" / "config.yaml.damaged"):
        assert kept.exists() or kept.is_symlink(), kept
        assert str(kept.with_suffix("")) in rerun.stderr
    assert (sweep_dir / f"{one.name}.damaged").is_file() and (sweep_dir / f"{two.name}.damaged").is_symlink()
    assert (three / "run.json.damaged").is_symlink() and "is a symbolic link" in rerun.stderr


@pytest.mark.parametrize("name", [LOCK_FILE, "config.yaml", "traceback.txt", "attempts.jsonl", "checkpoint.pt"])
@pytest.mark.parametrize("kind", ["a directory", "a link to a file", "a dangling link"])
def test_each_entry_that_is_not_a_regular_file_is_set_aside_and_a_failing_trial_is_recorded(tmp_path, name, kind):
    """The trial fails (so traceback.txt and config.yaml are written too); it is recorded, not raised."""
    cfg = compose_config(["task=quadratic"])
    path = tmp_path / name
    if kind == "a directory":
        path.mkdir()
    else:
        target = tmp_path.parent / f"{tmp_path.name}_target"
        if kind == "a link to a file":
            target.write_text("elsewhere")
        path.symlink_to(target)

    def run():
        raise RuntimeError("the trial fails")

    with pytest.warns(DamagedFile, match=f"{name}: is (not a regular file|a symbolic link)"):
        assert math.isnan(run_trial(cfg, tmp_path, run))
    assert read_record(tmp_path).status.value == "failed" and (tmp_path / "traceback.txt").is_file()
    assert read_attempts(tmp_path)[-1]["outcome"] == "failed"
    assert (tmp_path / f"{name}.damaged").exists() or (tmp_path / f"{name}.damaged").is_symlink()
    if kind == "a link to a file":
        assert target.read_text() == "elsewhere"


@pytest.mark.parametrize("kind", ["file", "link", "fifo", "dangling link"])
def test_the_trial_directory_and_its_hydra_entries_are_made_usable_before_hydra_creates_them(tmp_path, kind):
    trial = tmp_path / "sweep" / "trial"
    trial.parent.mkdir()
    if kind == "file":
        trial.write_text("x")
    elif kind == "fifo":
        __import__("os").mkfifo(trial)
    else:
        trial.symlink_to(tmp_path / ("elsewhere" if kind == "link" else "nowhere"))
        (tmp_path / "elsewhere").mkdir()
    with pytest.warns(DamagedFile, match="trial: is"):
        prepare_run_dir(trial, ("config.yaml",))
    assert not trial.exists() and not trial.is_symlink()
    trial.mkdir()
    (trial / ".hydra").write_text("x")
    with pytest.warns(DamagedFile, match=r"\.hydra: is not a directory"):
        prepare_run_dir(trial, ("config.yaml",))
    (trial / ".hydra").mkdir()
    (trial / ".hydra" / "config.yaml").mkdir()
    with pytest.warns(DamagedFile, match="config.yaml: is not a regular file"):
        prepare_run_dir(trial, ("config.yaml",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_run_dir(trial, ("config.yaml",))  # nothing odd left: no warning
        prepare_run_dir(tmp_path / "absent" / "trial", ("config.yaml",))  # nothing there yet: nothing to do


def test_a_finished_trial_behind_a_lock_directory_is_still_skipped(tmp_path):
    cfg = compose_config(["task=quadratic"])
    from lion_bench.runs.store import write_record

    write_record(tmp_path, result_record("finished", 0.5, trial_id_of(cfg)))
    (tmp_path / LOCK_FILE).mkdir()
    with pytest.warns(DamagedFile, match=r"\.lock: is not a regular file; kept as \.lock\.damaged, a new lock is made"):
        assert run_trial(cfg, tmp_path, lambda: pytest.fail("a finished trial runs again")) == 0.5
    assert json.loads((tmp_path / "attempts.jsonl").read_text().splitlines()[-1])["outcome"] == "skipped"
