"""The packed and workers launchers (hydra/launcher=packed|workers, lion_bench/sweeps/launcher.py): which
trials share a pack, and the sweep's rules kept: a pack never trains a trial another process holds
(busy) or one already done (skipped), reports only what it trained, and a failing trial fails alone.
That a packed trial records what it records alone is tests/sweeps/test_packed.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from filelock import FileLock
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sweep_cli import FAST, run_sweep, trial_records

from compose import compose_config
from lion_bench.identity import config_trial_dir_name
from lion_bench.sweeps.launcher import group_jobs, packing_key
from lion_bench.sweeps.resume import LOCK_FILE, read_attempts

PACKED = ["hydra/launcher=packed"]


def trial_name(*overrides: str) -> str:
    config = OmegaConf.to_container(compose_config(list(overrides)), resolve=True)
    return config_trial_dir_name(config)


def test_the_launcher_presets_compose():
    with initialize_config_module(config_module="lion_bench.configs", version_base="1.3"):
        packed = compose(config_name="train", overrides=["hydra/launcher=packed", "sweep=lr_grid"],
                         return_hydra_config=True).hydra.launcher
        workers = compose(config_name="train", overrides=["hydra/launcher=workers", "hydra.launcher.gpus=[0,1]"],
                          return_hydra_config=True).hydra.launcher
    assert packed._target_ == workers._target_ == "hydra_plugins.lion_bench_launcher.launcher.LionBenchLauncher"
    assert (packed.pack, packed.workers, packed.gpus) == (4, 1, None)
    assert (workers.pack, workers.workers, list(workers.gpus)) == (1, 4, [0, 1])


def test_trials_pack_with_others_of_the_same_model_and_batch_in_job_order():
    base = ["task=text", "task.model.d_model=32", "task.model.n_head=2"]
    configs = [compose_config([*base, *extra]) for extra in (
        ["optimizer=lion", "seed=0"],
        ["optimizer=adamw", "seed=0", "base.lr=1e-2", "trainer.max_steps=7"],  # other optimizer, lr, steps: packs
        ["task.model.d_model=64", "seed=1"],  # another width
        ["seed=2", "optimizer.betas=[0.95,0.98]", "trainer.grad_clip=0"],
        ["trainer.batch_size=4", "seed=3"],  # another micro-batch
        ["task.model.dropout=0.1", "seed=4"],  # dropout: trains alone
        ["seed=5"],
    )]
    assert packing_key(configs[5]) is None
    assert packing_key(configs[0]) == packing_key(configs[1]) != packing_key(configs[2])
    assert group_jobs(configs, pack=3) == [[0, 1, 3], [2], [4], [5], [6]]
    assert group_jobs(configs, pack=2) == [[0, 1], [2], [3, 6], [4], [5]]
    assert group_jobs(configs, pack=1) == [[index] for index in range(7)]


def test_a_packed_sweep_leaves_out_busy_and_done_trials_and_trains_the_rest_together(tmp_path):
    sweep = ["optimizer=adamw,lion", "seed=0,1", *FAST, *PACKED]
    sweep_dir = tmp_path / "sweeps" / "multirun"
    busy = trial_name("optimizer=lion", "seed=1", *FAST)
    (sweep_dir / busy).mkdir(parents=True)
    with FileLock(str(sweep_dir / busy / LOCK_FILE)):  # held as another process would hold it
        result = run_sweep(tmp_path, *sweep)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sweep multirun: 4 trials: 3 finished, 0 diverged, 0 failed, 0 skipped, 1 busy" in result.stdout
    records = trial_records(sweep_dir)
    assert busy not in records and len(records) == 3
    assert all(r["status"] == "finished" and r["environment"]["packed"] == {"mode": "batched", "members": 3}
               for r in records.values())
    assert [a["outcome"] for a in read_attempts(sweep_dir / busy)] == ["busy"]

    again = run_sweep(tmp_path, *sweep)  # the lock is free now: only that trial trains, the others are done
    assert again.returncode == 0, again.stderr[-3000:]
    assert "sweep multirun: 4 trials: 1 finished, 0 diverged, 0 failed, 3 skipped" in again.stdout
    record = json.loads((sweep_dir / busy / "run.json").read_text())
    assert record["status"] == "finished" and "packed" not in record["environment"]  # a pack of one trains alone
    for name in records:
        assert [a["outcome"] for a in read_attempts(sweep_dir / name)] == ["finished", "skipped"], name


def test_packs_over_worker_processes_train_every_trial_once_and_a_bad_one_fails_alone(tmp_path):
    result = run_sweep(tmp_path, "optimizer=adamw,lion", "seed=0,1,x", *FAST, *PACKED, "hydra.launcher.pack=2",
                       "hydra.launcher.workers=2", "hydra.launcher.gpus=[5,7]")
    assert result.returncode == 1, result.stderr[-3000:]  # a failed trial: exit status 1, after every trial ran
    assert "sweep multirun: 6 trials: 4 finished, 0 diverged, 2 failed, 0 skipped" in result.stdout
    records = trial_records(tmp_path / "sweeps" / "multirun")
    assert sorted((r["optimizer"], str(r["seed"]), r["status"]) for r in records.values()) == [
        ("adamw", "0", "finished"), ("adamw", "1", "finished"), ("adamw", "x", "failed"),
        ("lion", "0", "finished"), ("lion", "1", "finished"), ("lion", "x", "failed")]
    # Packs of 2 in job order: (adamw 0, adamw 1), (adamw x, lion 0), (lion 1, lion x); x fails its setup.
    packed = {(r["optimizer"], r["seed"]): r["environment"].get("packed") for r in records.values()
              if r["status"] == "finished"}
    assert packed == {("adamw", 0): {"mode": "batched", "members": 2}, ("adamw", 1): {"mode": "batched", "members": 2},
                      ("lion", 0): None, ("lion", 1): None}
    # Each worker saw one GPU of hydra.launcher.gpus (on the CPU only the variable shows it).
    assert {r["environment"]["cuda_visible_devices"] for r in records.values() if r["status"] == "finished"} <= {"5", "7"}


@pytest.mark.slow
def test_sigterm_stops_the_worker_processes_and_each_trial_records_it(tmp_path):
    """Slow: two spawned workers start torch before training (~20 s on 2 loaded cores)."""
    command = [sys.executable, "-m", "lion_bench.train", "-m", f"output_root={tmp_path}", "task=quadratic",
               "seed=0,1", "trainer.max_steps=1000000", "trainer.log_every=1", "trainer.eval_every=1000",
               "trainer.progress=false", "hydra/launcher=workers", "hydra.launcher.workers=2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline:
        metrics = list(tmp_path.rglob("metrics.jsonl"))
        if len(metrics) == 2 and all(len(path.read_text().splitlines()) >= 3 for path in metrics):
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "Traceback" not in out + err
    assert [line for line in err.splitlines() if line.strip()] == [
        "lion-bench: interrupted; rerun the same command to resume"]
    records = trial_records(tmp_path / "sweeps" / "multirun")
    assert len(records) == 2 and all(r["status"] == "interrupted" and r["steps"] >= 3 for r in records.values())
