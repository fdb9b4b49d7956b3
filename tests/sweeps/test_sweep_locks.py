"""Sweeps that cannot collide: two processes on one sweep directory train each trial once, and a
trial's directory is always inside the sweep directory whatever its config says."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from filelock import FileLock

from sweep_cli import FAST, run_sweep, trial_records

from lion_bench.runs.store import prepare_run_dir
from lion_bench.sweeps.resume import LOCK_FILE, read_attempts, run_trial
from lion_bench.trial_dir import HYDRA_FILES


def test_the_same_sweep_twice_at_once_trains_every_trial_once(tmp_path):
    overrides = ["optimizer=adamw,lion", "seed=0,1,2,3", "task=quadratic", "trainer.max_steps=400",
                 "trainer.log_every=1", "trainer.eval_every=100", "trainer.progress=false"]
    command = [sys.executable, "-m", "lion_bench.train", "-m", f"output_root={tmp_path}", *overrides]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err[-2000:] for _, err in outputs]

    sweep_dir = tmp_path / "sweeps" / "multirun"
    records = trial_records(sweep_dir)
    assert len(records) == 8 and all(record["status"] == "finished" for record in records.values())
    for name in records:
        outcomes = [attempt["outcome"] for attempt in read_attempts(sweep_dir / name)]
        assert outcomes.count("finished") == 1, (name, outcomes)  # trained once, by one process
        assert set(outcomes) <= {"finished", "busy", "skipped"}
        lines = (sweep_dir / name / "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]  # every line is valid JSON
        assert [row["step"] for row in rows] == list(range(1, 401))
    # Each process counts its own outcomes: together they trained the 8 trials once.
    counts = []
    for out, _ in outputs:
        [line] = [line for line in out.splitlines() if line.startswith("sweep multirun: 8 trials:")]
        counts.append({kind: int(number) for number, kind in re.findall(r"(\d+) (finished|busy|skipped)", line)})
    assert sum(count["finished"] for count in counts) == 8
    assert all(sum(count.values()) == 8 for count in counts)
    assert any("busy: " in out or "skipped " in out for out, _ in outputs)


def test_a_trial_whose_lock_is_held_is_skipped_as_busy(tmp_path, make_config, capsys):
    cfg = make_config(FAST)
    calls = []

    def run():
        calls.append(1)
        raise RuntimeError("ran")

    # The holder's .hydra files, kept when Hydra named the directory; Hydra then wrote this job's over them.
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text("- the holder's overrides\n")
    prepare_run_dir(tmp_path, HYDRA_FILES)
    (hydra / "overrides.yaml").write_text("- this job's overrides\n")
    # An OS file lock (flock) held through another open file, as another process holds it.
    with FileLock(str(tmp_path / LOCK_FILE)):
        value = run_trial(cfg, tmp_path, run)
    assert (hydra / "overrides.yaml").read_text() == "- the holder's overrides\n"
    assert value != value and calls == []  # NaN: no result from this process
    assert f"busy: {tmp_path.name} is trained by another process; skipped here" in capsys.readouterr().out
    assert [attempt["outcome"] for attempt in read_attempts(tmp_path)] == ["busy"]
    assert not (tmp_path / "run.json").exists()
    # Once the lock is free (its holder ended), the trial runs.
    run_trial(cfg, tmp_path, run)
    assert calls == [1] and read_attempts(tmp_path)[-1]["outcome"] == "failed"


def test_a_rerun_leaves_a_done_trial_s_hydra_files_as_they_were(tmp_path):
    """Hydra writes each job's .hydra files before the job runs; a trial the rerun skips keeps those of the
    attempt that trained it, though the rerun's differ (one more override, outside the trial's identity)."""
    assert run_sweep(tmp_path, "seed=0", *FAST).returncode == 0
    (trial,) = [path.parent for path in (tmp_path / "sweeps" / "multirun").glob("*/run.json")]
    before = {path.name: path.read_bytes() for path in (trial / ".hydra").iterdir()}
    assert sorted(before) == sorted(HYDRA_FILES)
    rerun = run_sweep(tmp_path, "seed=0", *FAST, "trainer.checkpoint_every=7")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"skipped {trial.name}: already finished" in rerun.stdout
    assert {path.name: path.read_bytes() for path in (trial / ".hydra").iterdir()} == before
    assert [attempt["outcome"] for attempt in read_attempts(trial)] == ["finished", "skipped"]


def test_names_that_would_escape_stay_inside_the_sweep_directory(tmp_path):
    result = run_sweep(tmp_path, "optimizer.name=../../../X,lion", "seed=0", *FAST)
    escaped = run_sweep(tmp_path, "seed=../../../Y,1", *FAST)
    sweep_dir = tmp_path / "sweeps" / "multirun"
    run_files = sorted(tmp_path.rglob("run.json"))
    assert run_files and all(path.parent.parent == sweep_dir for path in run_files), run_files
    assert not list(tmp_path.parent.glob("X*")) and not list(tmp_path.parent.glob("Y*"))
    for outcome in (result, escaped):
        assert outcome.returncode == 1, outcome.stderr[-2000:]
        assert "2 trials: 1 finished, 0 diverged, 1 failed, 0 skipped" in outcome.stdout
    names = sorted(path.parent.name for path in run_files)
    assert all(".." not in name and "/" not in name for name in names)
    failed = {name: record for name, record in trial_records(sweep_dir).items() if record["status"] == "failed"}
    assert len(failed) == 2
    assert any("unknown optimizer '../../../X'" in record["error"] for record in failed.values())
    assert any("seed must be a whole number >= 0, got '../../../Y'" in record["error"] for record in failed.values())


def test_progress_line_per_trial_with_count_eta_and_best_loss_per_arm(tmp_path):
    result = run_sweep(tmp_path, "sweep=lr_ratio", "seed=0,1", "arm=adamw,lion_div3", *FAST)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("trial ")]
    assert [line.split(" |")[0] for line in lines] == [
        "trial 1/4 adamw seed 0", "trial 2/4 adamw seed 1", "trial 3/4 lion_div3 seed 0", "trial 4/4 lion_div3 seed 1"]
    assert "ETA" not in lines[0] and "| ETA " in lines[1] and "| best val loss: adamw " in lines[1]
    assert re.search(r"best val loss: (adamw [\d.]+, lion_div3|lion_div3 [\d.]+, adamw) [\d.]+$", lines[3])
    # One line per run (no duplicate Hydra line) names the arm, its lr and seed; weight decay only when on.
    summaries = [line for line in result.stdout.splitlines() if line.startswith("[finished] ")]
    assert [line.split(":")[0].split(" lr=")[0] for line in summaries] == ["[finished] adamw"] * 2 + ["[finished] lion_div3"] * 2
    assert "HYDRA" not in result.stdout and " wd=" not in result.stdout  # the quadratic task has none
    assert all(len(line) <= 100 for line in result.stdout.splitlines() if "run record: " not in line)
