"""A trial is skipped only on its own record: a run.json or checkpoint of another trial in its
directory (a copied file, a directory another sweep used) is set aside with a warning naming both
ids, and the trial trains; a sweep never reports another trial's numbers as its own."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from compose import InterruptAt, compose_config
from sweep_cli import FAST, run_sweep, trial_records

from lion_bench.checks import resolved_config
from lion_bench.identity import config_trial_dir_name
from lion_bench.runs.checkpoint import CHECKPOINT_FILE
from lion_bench.runs.errors import DamagedFile
from lion_bench.runs.store import METRICS_FILE, RUN_FILE, read_record, write_record
from lion_bench.identity import trial_id_of
from lion_bench.sweeps.resume import read_attempts, run_trial
from lion_bench.trainer import train

from test_trial_resume import result_record

OVERRIDES = ["task=quadratic", "trainer.max_steps=6", "trainer.log_every=1", "trainer.checkpoint_every=2",
             "trainer.schedule.warmup_steps=0", "trainer.progress=false"]


@pytest.mark.parametrize("status", ["finished", "diverged", "interrupted", "failed"])
def test_a_record_of_another_trial_is_set_aside_and_the_trial_runs(tmp_path, status):
    cfg = compose_config(["task=quadratic"])
    write_record(tmp_path, result_record(status, 0.5, trial_id="0123456789ab"))
    (tmp_path / METRICS_FILE).write_text('{"step": 1, "train_loss": 0.5}\n')
    calls = []

    def run():
        calls.append(1)
        return result_record("finished", 0.25, trial_id_of(cfg))

    with pytest.warns(DamagedFile) as warned:
        value = run_trial(cfg, tmp_path, run)
    assert calls == [1] and value == 0.25
    message = " ".join(str(warning.message) for warning in warned)
    assert "belongs to trial '0123456789ab', not to this trial" in message and trial_id_of(cfg) in message
    kept = tmp_path / f"{RUN_FILE}.trial_0123456789ab"
    assert json.loads(kept.read_text())["trial_id"] == "0123456789ab"
    assert (tmp_path / f"{METRICS_FILE}.trial_0123456789ab").exists()
    assert read_attempts(tmp_path)[-1]["outcome"] == "finished"


def test_an_id_that_is_not_a_name_is_kept_under_a_safe_name(tmp_path):
    cfg = compose_config(["task=quadratic"])
    write_record(tmp_path, result_record("finished", 0.5, trial_id="../../x/y"))
    with pytest.warns(DamagedFile):
        run_trial(cfg, tmp_path, lambda: result_record("finished", 0.25, trial_id_of(cfg)))
    assert [path.name for path in tmp_path.glob("run.json.*")] == ["run.json.trial_x_y"]


def test_a_checkpoint_of_another_trial_is_set_aside_and_the_trial_starts_from_step_0(tmp_path):
    """Before: the trainer refused it (BadInput) and the trial failed on every rerun."""
    other, own = [*OVERRIDES, "seed=1"], [*OVERRIDES, "seed=2"]
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(other), tmp_path / "trial", loggers=[InterruptAt(5)])
    (tmp_path / "trial" / RUN_FILE).unlink()
    clean = train(compose_config(own), tmp_path / "clean")
    cfg = compose_config(own)
    with pytest.warns(DamagedFile, match="checkpoint.pt: belongs to trial"):
        value = run_trial(cfg, tmp_path / "trial", lambda: train(cfg, tmp_path / "trial"))
    record = read_record(tmp_path / "trial")
    assert record.resumed_from_step is None and value == record.final_val_loss == clean.final_val_loss
    assert record.trial_id == trial_id_of(cfg) and not (tmp_path / "trial" / CHECKPOINT_FILE).exists()
    assert len(list((tmp_path / "trial").glob(f"{CHECKPOINT_FILE}.trial_*"))) == 1


def trial_dir_of(overrides: list[str]) -> str:
    config = resolved_config(compose_config(overrides))
    return config_trial_dir_name(config)


def test_a_sweep_into_directories_of_another_sweep_trains_its_own_trials(tmp_path):
    """The issue's case: with hydra.sweep.subdir=${hydra.job.num} (refused now), a second sweep with
    optimizer=adamw found Lion's finished run.json in its directories, "skipped" its trials and reported
    Lion's losses as AdamW's. Reproduced by copying each Lion record (and metrics) into the directory
    the AdamW trial of the same seed uses."""
    first = run_sweep(tmp_path, "optimizer=lion", "seed=0,1", *FAST)
    assert first.returncode == 0, first.stderr
    sweep_dir = tmp_path / "sweeps" / "multirun"
    lion = trial_records(sweep_dir)
    for seed in (0, 1):
        [lion_dir] = [name for name in lion if name.startswith(f"lion_seed{seed}_")]
        adamw_dir = sweep_dir / trial_dir_of(["optimizer=adamw", f"seed={seed}", *FAST])
        adamw_dir.mkdir()
        for name in (RUN_FILE, METRICS_FILE):
            shutil.copy(sweep_dir / lion_dir / name, adamw_dir / name)

    second = run_sweep(tmp_path, "optimizer=adamw", "seed=0,1", *FAST)
    assert second.returncode == 0, second.stderr
    assert "skipped" not in second.stdout.replace("0 skipped", "")
    assert "sweep multirun: 2 trials: 2 finished, 0 diverged, 0 failed, 0 skipped" in second.stdout
    records = trial_records(sweep_dir)
    lion_losses = {record["final_val_loss"] for name, record in lion.items()}
    for name, record in records.items():
        assert record["trial_id"] == name.rsplit("_", 1)[-1]  # each directory holds its own trial's record
        if name.startswith("adamw"):
            assert record["optimizer"] == "adamw" and record["final_val_loss"] not in lion_losses
            kept = list((sweep_dir / name).glob(f"{RUN_FILE}.trial_*"))
            assert len(kept) == 1 and json.loads(kept[0].read_text())["optimizer"] == "lion"
            assert f"belongs to trial '{json.loads(kept[0].read_text())['trial_id']}', not to this trial " \
                   f"({record['trial_id']})" in second.stderr
        else:
            assert records[name] == lion[name]  # Lion's own trials untouched
    assert sum(name.startswith("adamw") for name in records) == 2 and all(math.isfinite(r["final_val_loss"])
                                                                            for r in records.values())


def test_a_diverged_record_with_non_finite_numbers_is_a_result_and_never_trained_again(tmp_path):
    """Before: NaN and inf were written as null, which read_record rejects (hyperparameters.lr): every
    rerun set the record aside and trained the trial again."""
    cfg = compose_config(["task=quadratic"])
    record = result_record("diverged", 0.0, trial_id_of(cfg))
    record.hyperparameters["lr"], record.initial_train_loss = math.inf, math.nan
    record.best, record.train_tokens_per_s = {"val_loss": math.nan}, math.inf
    write_record(tmp_path, record)
    for _ in range(2):
        assert run_trial(cfg, tmp_path, lambda: pytest.fail("a diverged trial trains again")) == math.inf
    assert sorted(path.name for path in tmp_path.iterdir()) == [".lock", "attempts.jsonl", "run.json"]  # nothing set aside
