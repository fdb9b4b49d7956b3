"""Launcher configs: Ray runs a sweep's trials as parallel tasks; the SLURM config composes.

The Ray test needs hydra-ray-launcher, which lives in its own environment (its cloudpickle<3 pin
conflicts with joblib>=1.6): python -m venv /tmp/ray-venv, install CPU torch, then '.[ray,test]',
and run  /tmp/ray-venv/bin/python -m pytest tests/sweeps/test_launchers.py
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module

from sweep_cli import FAST, run_sweep, trial_records


def test_ray_launcher_runs_a_three_trial_sweep_on_cpu(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    overrides = ["optimizer=adamw,lion", "seed=0,1", "hydra/launcher=ray", "hydra.launcher.ray.remote.num_gpus=0",
                 "hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false", *FAST]
    # Run one trial first, so the Ray sweep has 3 to run and 1 to skip.
    first = run_sweep(tmp_path, "optimizer=adamw", "seed=0", *FAST)
    assert first.returncode == 0, first.stderr[-3000:]
    result = run_sweep(tmp_path, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Ray Launcher is launching 4 jobs" in result.stdout + result.stderr
    records = trial_records(tmp_path / "sweeps" / "multirun")
    assert len(records) == 4 and all(record["status"] == "finished" for record in records.values())
    assert {(r["optimizer"], r["seed"]) for r in records.values()} == {("adamw", 0), ("adamw", 1), ("lion", 0), ("lion", 1)}
    assert "sweep multirun: 4 trials: 3 finished, 0 diverged, 0 failed, 1 skipped" in result.stdout


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_module(config_module="lion_bench.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hydra/launcher=slurm", "sweep=lr_ratio"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.timeout_min > 0 and launcher.array_parallelism >= 1
