"""Checkpoints and resume: an interrupted trial continues from its checkpoint to the same result."""

from __future__ import annotations

import math

import pytest
import torch
from compose import TINY_TEXT, InterruptAt, compose_config

from lion_bench.runs.checkpoint import CHECKPOINT_FILE
from lion_bench.runs.errors import DamagedFile
from lion_bench.runs.record import RunRecord, Status
from lion_bench.runs.store import RUN_FILE, read_metrics, read_record, write_record
from lion_bench.identity import trial_id_of
from lion_bench.sweeps.resume import read_attempts, run_trial
from lion_bench.trainer import train



@pytest.mark.parametrize("optimizer", ["lion", "adamw"])
def test_interrupted_run_resumes_to_the_same_final_loss(tmp_path, optimizer):
    overrides = [f"optimizer={optimizer}", "trainer.max_steps=12", "trainer.eval_every=4", "trainer.log_every=1",
                 "trainer.checkpoint_every=3", "trainer.schedule.warmup_steps=2", *TINY_TEXT]
    whole = train(compose_config(overrides), tmp_path / "whole")
    assert not (tmp_path / "whole" / CHECKPOINT_FILE).exists()

    resumed_dir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(overrides), resumed_dir, loggers=[InterruptAt(8)])
    assert read_record(resumed_dir)["status"] == "interrupted"
    # Everything in a checkpoint loads without unpickling code.
    checkpoint = torch.load(resumed_dir / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["loop"]["step"] == 6

    resumed = train(compose_config(overrides), resumed_dir)
    assert resumed["status"] == "finished" and resumed["resumed_from_step"] == 6
    assert resumed["final_val_loss"] == whole["final_val_loss"]
    assert resumed["steps"] == whole["steps"] == 12 and resumed["tokens"] == whole["tokens"]
    # metrics.jsonl continues: rows 7-8 of the interrupted attempt are replaced, none repeated.
    rows, whole_rows = read_metrics(resumed_dir), read_metrics(tmp_path / "whole")
    assert [row["step"] for row in rows] == list(range(1, 13))
    assert [row["train_loss"] for row in rows] == [row["train_loss"] for row in whole_rows]
    assert not (resumed_dir / CHECKPOINT_FILE).exists()


def test_checkpoint_of_another_trial_is_refused(tmp_path):
    overrides = ["task=quadratic", "trainer.max_steps=6", "trainer.checkpoint_every=2", "trainer.progress=false", "trainer.schedule.warmup_steps=0",
                 "trainer.log_every=1"]
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(overrides), tmp_path, loggers=[InterruptAt(5)])
    with pytest.raises(ValueError, match="holds a checkpoint of trial"):
        train(compose_config([*overrides, "seed=1"]), tmp_path)


def result_record(status: str, final_val_loss: float, trial_id: str = "abc123") -> RunRecord:
    """A valid record of trial ``trial_id`` that ended with ``status``."""
    record = RunRecord.begin({"task": {"name": "quadratic"}, "optimizer": {"name": "lion"}, "seed": 0}, trial_id)
    record.status = Status(status)
    record.hyperparameters = {"optimizer": "lion", "lr": 0.1, "weight_decay": 0.0, "base_lr": 0.3,
                              "base_weight_decay": 0.0, "lr_divisor": 3.0, "wd_multiplier": 1.0, "betas": [0.9, 0.99]}
    record.batch_size, record.steps = 16, 10
    record.final = {"val_loss": final_val_loss} if status == "finished" else {}
    record.divergence = "train loss 1e9 at step 3" if status == "diverged" else None
    return record


@pytest.mark.parametrize("status, runs", [("finished", False), ("diverged", False), ("failed", True),
                                          ("interrupted", True), (None, True)])
def test_run_trial_skips_only_results(tmp_path, status, runs):
    cfg = compose_config(["task=quadratic"])
    if status is not None:
        write_record(tmp_path, result_record(status, 0.5, trial_id_of(cfg)))
    calls = []

    def run():
        calls.append(1)
        return result_record("finished", 0.25)

    value = run_trial(cfg, tmp_path, run)
    assert bool(calls) == runs
    expected = 0.25 if runs else (math.inf if status == "diverged" else 0.5)
    assert value == expected
    assert read_attempts(tmp_path)[-1]["outcome"] == ("finished" if runs else "skipped")


@pytest.mark.parametrize("content", ['{"status": "finished", "final_val_loss": 0.5}', '[1, 2, 3]', '{"status": "fini',
                                     ""])
def test_run_trial_reruns_a_record_that_does_not_validate(tmp_path, content):
    (tmp_path / RUN_FILE).write_text(content)
    with pytest.warns(DamagedFile, match="kept as run.json.damaged, the trial runs again"):
        value = run_trial(compose_config(["task=quadratic"]), tmp_path, lambda: result_record("finished", 0.25))
    assert value == 0.25 and read_attempts(tmp_path)[-1]["outcome"] == "finished"


def test_run_trial_records_a_failure_before_training(tmp_path):
    cfg = compose_config(["task=quadratic", "arm=lion_div3", "sweep=lr_ratio"])

    def run():
        raise RuntimeError("no data here")

    assert math.isnan(run_trial(cfg, tmp_path, run))
    record = read_record(tmp_path)
    assert record["status"] == "failed" and record["error"] == "RuntimeError: no data here"
    assert record["sweep"] == "lr_ratio" and record["arm"] == "lion_div3" and len(record["trial_id"]) == 12
    assert "RuntimeError: no data here" in (tmp_path / "traceback.txt").read_text()


def test_checkpoints_by_wall_time_resume_to_the_same_result(tmp_path):
    """checkpoint_minutes: a resume point whenever that much wall time passed (here: every step)."""
    overrides = ["task=quadratic", "trainer.max_steps=12", "trainer.log_every=1", "trainer.checkpoint_every=0", "trainer.schedule.warmup_steps=0",
                 "trainer.checkpoint_minutes=1e-9", "trainer.progress=false"]
    whole = train(compose_config(overrides), tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(overrides), tmp_path / "resumed", loggers=[InterruptAt(8)])
    # The interrupt comes while step 8 is logged, before its checkpoint: step 7 is the resume point.
    assert torch.load(tmp_path / "resumed" / CHECKPOINT_FILE, weights_only=True)["loop"]["step"] == 7
    resumed = train(compose_config(overrides), tmp_path / "resumed")
    assert resumed.resumed_from_step == 7 and resumed.final_val_loss == whole.final_val_loss
    assert resumed.time_s["checkpoint"] > 0 and resumed.time_s["total"] >= resumed.time_s["checkpoint"]
