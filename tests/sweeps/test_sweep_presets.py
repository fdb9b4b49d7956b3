"""Every preset in configs/sweep/ runs all its arms from the command line, on CPU, in a few steps."""

from __future__ import annotations

import math
from importlib.resources import files

import pytest

from sweep_cli import FAST, run_sweep, trial_records

SWEEP_DIR = files("lion_bench.configs").joinpath("sweep")
PRESETS = sorted(entry.name.removesuffix(".yaml") for entry in SWEEP_DIR.iterdir() if entry.name.endswith(".yaml"))

# preset -> (extra overrides that keep the test short, expected {arm: (optimizer, lr_divisor, wd_multiplier)})
EXPECTED = {
    "lr_ratio": ([], {"adamw": ("adamw", 1, 1), "lion_div1": ("lion", 1, 3), "lion_div3": ("lion", 3, 3),
                      "lion_div10": ("lion", 10, 3)}),
    "lr_ratio_fine": ([], {"adamw": ("adamw", 1, 1), **{f"lion_div{d}": ("lion", d, 3) for d in (1, 2, 3, 5, 10, 20, 30)}}),
    "wd_multiplier": (["sweep.lr_divisor=10"], {"adamw": ("adamw", 1, 1), "lion_wd1": ("lion", 10, 1),
                                                "lion_wd3": ("lion", 10, 3), "lion_wd10": ("lion", 10, 10)}),
    "betas": (["sweep.lr_divisor=2"], {"lion_grid": ("lion", 2, 3), "lion_stable_betas": ("lion", 2, 3)}),
    "tuned": (["sweep.point=p4"], {"adamw_grid": ("adamw", 1, 1), "lion_own_grid": ("lion", 5, 3)}),
    "wd_grid": (["base.weight_decay=0.1"], {"adamw": ("adamw", 1, 1), "lion_wd1": ("lion", 3, 1)}),
    "schedule": (["trainer.schedule.name=inverse_sqrt"], {"adamw": ("adamw", 1, 1), "lion_div3": ("lion", 3, 3)}),
    "schedule_ratio": (["trainer.schedule.final_fraction=0.3"], {"lion_div3": ("lion", 3, 3)}),
    "cautious": ([], {"lion_grid": ("lion", 3, 3), "lion_cautious": ("lion", 3, 3)}),
    "decoupled_wd": (["sweep.lr_divisor=10", "base.weight_decay=1e-3"], {"lion_decoupled": ("lion", 10, 1)}),
    "batch_size": (["trainer.batch_size=8,64"], {"adamw": ("adamw", 1, 1), "lion_div3": ("lion", 3, 3)}),
    "lr_grid": (["base.lr=0.01,0.03"], {"adamw": ("adamw", 1, 1), "lion_grid": ("lion", 3, 3)}),
    "batch_lr_grid": (["trainer.batch_size=8,64", "base.lr=0.01,0.03"],
                      {"adamw": ("adamw", 1, 1), "lion_grid": ("lion", 3, 3)}),
}
GRID_PRESETS = ("lr_grid", "batch_lr_grid")  # these sweep the AdamW reference base.lr itself


def test_every_preset_is_tested_and_documented():
    assert set(PRESETS) == set(EXPECTED) | {"optuna", "quickstart", "readme_repro", "tuned_decisive"}
    for name in PRESETS:
        header = SWEEP_DIR.joinpath(f"{name}.yaml").read_text()
        assert header.startswith("# @package _global_\n# Claim:"), name
        assert "# Source:" in header and f"lion-bench -m sweep={name}" in header, name


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_runs_every_arm(tmp_path, preset):
    extra, arms = EXPECTED[preset]
    result = run_sweep(tmp_path, f"sweep={preset}", "seed=0", *FAST, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    records = trial_records(tmp_path / "sweeps" / preset)
    base_lr = 0.0
    for name, record in records.items():
        assert record["status"] == "finished", (name, record.get("error"))
        assert record["sweep"] == preset and record["seed"] == 0
        assert name == f"{record['arm']}_seed0_{record['trial_id']}"
        hyper = record["hyperparameters"]
        optimizer, divisor, multiplier = arms[record["arm"]]
        assert (record["optimizer"], hyper["lr_divisor"], hyper["wd_multiplier"]) == (optimizer, divisor, multiplier)
        assert hyper["lr"] == pytest.approx(hyper["base_lr"] / divisor)
        base_lr = base_lr or hyper["base_lr"]
        if preset not in GRID_PRESETS:
            assert hyper["base_lr"] == base_lr  # one AdamW reference for every arm
        assert math.isfinite(record["final_val_loss"])
    assert sorted({record["arm"] for record in records.values()}) == sorted(arms)
    num_trials = len(records)
    assert f"sweep {preset}: {num_trials} trials: {num_trials} finished, 0 diverged, 0 failed, 0 skipped" in result.stdout
    if preset in GRID_PRESETS:  # both optimizers at every grid lr; the command line replaces the preset's grid
        grid = sorted((r["optimizer"], r["hyperparameters"]["base_lr"], r["batch_size"]) for r in records.values())
        batches = (8, 64) if preset == "batch_lr_grid" else (records[next(iter(records))]["batch_size"],)
        assert grid == sorted((o, lr, b) for o in ("adamw", "lion") for lr in (0.01, 0.03) for b in batches)
    if preset == "batch_lr_grid":  # one token budget, warmup a share of each run: 2 steps at batch 32
        assert all(r["budget"] == "tokens" and r["config"]["trainer"]["schedule"]["warmup_fraction"] == 0.1
                   for r in records.values())
        assert {r["batch_size"]: r["steps"] for r in records.values()} == {8: 8, 64: 1}
    if preset.startswith("lr_ratio") or preset in GRID_PRESETS:  # weight decay off for both, as in lion-pytorch
        assert all(record["hyperparameters"]["weight_decay"] == 0 for record in records.values())
    if preset == "betas":
        betas = {record["arm"]: record["hyperparameters"]["betas"] for record in records.values()}
        assert betas["lion_stable_betas"] == [0.95, 0.98] and betas["lion_grid"] == [0.9, 0.99]
    if preset == "lr_ratio":
        assert_rerun_skips_every_trial(tmp_path, records, "sweep=lr_ratio", "seed=0", *FAST)
    if preset == "batch_size":  # 2 arms x 2 sizes x 2 budgets; tokens: max_steps * 16 / batch size steps
        assert num_trials == 8
        steps = {(r["arm"], r["batch_size"], r["budget"]): r["steps"] for r in records.values()}
        assert steps[("lion_div3", 8, "steps")] == 2 and steps[("lion_div3", 64, "steps")] == 2
        assert steps[("adamw", 8, "tokens")] == 4 and steps[("adamw", 64, "tokens")] == 1


def assert_rerun_skips_every_trial(tmp_path, records, *overrides):
    """The same command again skips every trial and leaves each run.json as it was."""
    run_files = sorted((tmp_path / "sweeps").glob("*/*/run.json"))
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in run_files}
    again = run_sweep(tmp_path, *overrides)
    assert again.returncode == 0, again.stderr[-3000:]
    for name in records:
        assert f"skipped {name}: already finished" in again.stdout
    assert f"{len(records)} trials: 0 finished, 0 diverged, 0 failed, {len(records)} skipped" in again.stdout
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in run_files} == before


def test_optuna_preset_searches_adamw_lr_and_lion_divisor_on_log_scale(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    common = ["sweep=optuna", "hydra.sweeper.n_trials=2", *FAST]
    adamw = run_sweep(tmp_path, "optimizer=adamw", *common)
    assert adamw.returncode == 0, adamw.stderr[-3000:]
    lion = run_sweep(tmp_path, "optimizer=lion", "base.lr=0.01", *common)
    assert lion.returncode == 0, lion.stderr[-3000:]
    records = list(trial_records(tmp_path / "sweeps" / "optuna").values())
    adamw_runs = [r["hyperparameters"] for r in records if r["optimizer"] == "adamw"]
    lion_runs = [r["hyperparameters"] for r in records if r["optimizer"] == "lion"]
    assert len(adamw_runs) == 2 and len(lion_runs) == 2
    task_lr = records[0]["config"]["task"]["base_lr"]
    assert all(0.1 * task_lr <= h["base_lr"] <= 10 * task_lr and h["lr_divisor"] == 1 for h in adamw_runs)
    assert len({h["base_lr"] for h in adamw_runs}) == 2
    assert all(h["base_lr"] == 0.01 and 1 <= h["lr_divisor"] <= 30 for h in lion_runs)
    assert len({h["lr_divisor"] for h in lion_runs}) == 2


def test_quickstart_runs_each_optimizers_grid_on_the_text_task(tmp_path):
    # The default warmup (auto) fits any run: no warmup override needed for a 4-step try.
    result = run_sweep(tmp_path, "sweep=quickstart", "seed=0", "trainer.max_steps=4", "task.data.max_bytes=200000",
                       "task.eval.num_windows=4")
    assert result.returncode == 0, result.stderr[-3000:]
    records = trial_records(tmp_path / "sweeps" / "quickstart")
    assert sorted(record["arm"] for record in records.values()) == ["adamw_grid"] * 3 + ["lion_own_grid"] * 3
    assert all(record["task"] == "text" and record["status"] == "finished" and record["steps"] == 4
               for record in records.values())
    lrs = {(record["optimizer"], record["hyperparameters"]["lr"]) for record in records.values()}
    # AdamW at base.lr x {1/4, 1/2, 1}; Lion at base.lr / {1, 3, 10}: updates 2-4 at AdamW's base lr, a grid each.
    assert sorted(lr for name, lr in lrs if name == "adamw") == pytest.approx([1.25e-3, 2.5e-3, 5e-3])
    assert sorted(lr for name, lr in lrs if name == "lion") == pytest.approx([5e-4, 5e-3 / 3, 5e-3])


def test_tuned_decisive_runs_both_grids_on_mlp_at_1000_steps(tmp_path):
    """The preset that decides on CPU: mlp, 1000 steps, batch 16, 7 seeds, sweep=tuned's grids; composed and run
    here at 2 steps on one seed and two grid points (its length and seeds are read from the composed config)."""
    from compose import compose_config

    config = compose_config(["sweep=tuned_decisive"])
    assert config.task.name == "mlp" and config.trainer.max_steps == 1000 and config.trainer.batch_size == 16
    assert config.device == "cpu" and config.base.weight_decay == 0
    assert config.sweep.grid == compose_config(["sweep=tuned"]).sweep.grid
    result = run_sweep(tmp_path, "sweep=tuned_decisive", "seed=0", "sweep.point=p3,p4", "trainer.max_steps=2",
                       "trainer.progress=false")
    assert result.returncode == 0, result.stderr[-3000:]
    records = trial_records(tmp_path / "sweeps" / "tuned_decisive")
    lrs = sorted((r["optimizer"], r["hyperparameters"]["lr_divisor"]) for r in records.values())
    assert lrs == [("adamw", 1), ("adamw", 2), ("lion", 5), ("lion", 10)]
    assert all(r["task"] == "mlp" and r["status"] == "finished" and r["steps"] == 2 for r in records.values())
    preset = SWEEP_DIR.joinpath("tuned_decisive.yaml").read_text()
    assert "seed: 0,1,2,3,4,5,6" in preset  # 7 seeds: each judged at the arm best on the other 6


def test_readme_repro_is_the_readme_setting(tmp_path):
    """lion-pytorch's enwik8 recipe: Adam at 1e-4, constant, no warmup, batch 4 x 4, clip 0.5, no weight decay,
    Lion at 1e-4 / {1, 3, 10}; shrunk here to a tiny model and 2 steps."""
    result = run_sweep(tmp_path, "sweep=readme_repro", "seed=0", "trainer.max_steps=2", "trainer.eval_every=1",
                       "task.data.max_bytes=200000", "task.model.seq_len=32", "task.model.d_model=32",
                       "task.model.n_layer=1", "task.model.n_head=2", "task.eval.num_windows=4", "trainer.progress=false")
    assert result.returncode == 0, result.stderr[-3000:]
    records = list(trial_records(tmp_path / "sweeps" / "readme_repro").values())
    assert sorted(r["arm"] for r in records) == ["adamw", "lion_div1", "lion_div10", "lion_div3"]
    assert sorted(r["hyperparameters"]["lr"] for r in records) == pytest.approx([1e-5, 1e-4 / 3, 1e-4, 1e-4])
    for record in records:
        trainer = record["config"]["trainer"]
        assert record["batch_size"] == 16 and trainer["grad_accum_steps"] == 4 and trainer["grad_clip"] == 0.5
        assert trainer["schedule"]["name"] == "constant" and trainer["schedule"]["warmup_steps"] == 0
        assert record["hyperparameters"]["weight_decay"] == 0 and record["status"] == "finished"
        assert record["config"]["task"]["eval"]["final"] == "full_valid" and record["final_val_bytes"] > 0
