"""The training loop and the lion-bench command: smoke runs, run records, divergence, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from compose import TINY_TEXT, InterruptAt, compose_config

from lion_bench.runs.store import read_metrics, read_record
from lion_bench.runs.record import Status
from lion_bench.trainer import train

RECORD_KEYS = {
    "schema_version", "status", "trial_id", "optimizer", "hyperparameters", "final_val_loss", "best_val_loss",
    "steps", "tokens", "time_s", "train_tokens_per_s", "peak_memory_bytes", "optimizer_state_bytes", "environment",
    "config", "data", "seed",
}
ENVIRONMENT_KEYS = {"device", "device_type", "device_name", "precision", "compile", "torch_version", "triton_version",
                    "git_sha"}


@pytest.mark.parametrize("optimizer", ["adamw", "lion"])
def test_text_task_val_loss_drops(tmp_path, optimizer):
    cfg = compose_config([f"optimizer={optimizer}", "trainer.max_steps=40", "trainer.eval_every=20", *TINY_TEXT])
    record = train(cfg, tmp_path)
    assert record["status"] == "finished"
    assert RECORD_KEYS <= set(record.to_dict()) and ENVIRONMENT_KEYS <= set(record.environment)
    assert record.environment["precision"] == "fp32" and record.environment["compile"] is False
    rows = read_metrics(tmp_path)
    evals = [row["val_loss"] for row in rows if "val_loss" in row]
    assert len(evals) == 2
    assert evals[-1] < evals[0] and record["final_val_loss"] < math.log(256)
    assert record["final_val_bpc"] == pytest.approx(record["final_val_loss"] / math.log(2))
    assert record["data"]["source"].startswith("python-stdlib:") and len(record["data"]["sha256"]) == 64
    assert read_record(tmp_path)["trial_id"] == record["trial_id"]
    assert {"step", "tokens", "train_loss", "lr", "elapsed_s"} <= set(rows[0])


@pytest.mark.parametrize("optimizer", ["adamw", "lion"])
def test_quadratic_task_loss_drops(tmp_path, optimizer):
    cfg = compose_config([f"optimizer={optimizer}", "task=quadratic", "trainer.max_steps=100", "trainer.progress=false"])
    record = train(cfg, tmp_path)
    assert record["status"] == "finished"
    assert record["final_val_loss"] < 0.5 * record["initial_train_loss"]


def test_ratio_space_resolves_lion_lr_and_wd(tmp_path):
    cfg = compose_config(
        ["task=quadratic", "base.lr=0.03", "base.weight_decay=0.2", "optimizer.lr_divisor=10",
         "optimizer.wd_multiplier=5", "trainer.max_steps=2", "trainer.progress=false", "trainer.schedule.warmup_steps=0"]
    )
    hyper = train(cfg, tmp_path)["hyperparameters"]
    assert hyper["lr"] == pytest.approx(0.003) and hyper["weight_decay"] == pytest.approx(1.0)
    assert hyper["lr_divisor"] == 10 and hyper["wd_multiplier"] == 5 and hyper["base_lr"] == 0.03


def test_same_seed_same_result_on_cpu(tmp_path):
    overrides = ["trainer.max_steps=10", "trainer.eval_every=10", "trainer.schedule.warmup_steps=0", *TINY_TEXT]
    first = train(compose_config(overrides), tmp_path / "a")
    second = train(compose_config(overrides), tmp_path / "b")
    assert first["final_val_loss"] == second["final_val_loss"]
    assert first["trial_id"] == second["trial_id"]
    assert train(compose_config([*overrides, "seed=1"]), tmp_path / "c")["trial_id"] != first["trial_id"]


def test_gradient_accumulation_counts_tokens(tmp_path):
    cfg = compose_config(["trainer.max_steps=3", "trainer.grad_accum_steps=2", "trainer.schedule.warmup_steps=0", *TINY_TEXT])
    record = train(cfg, tmp_path)
    assert record["tokens"] == 3 * 2 * 8 * 32
    assert record["batch_size"] == 16


@pytest.mark.parametrize("log_every", [1, 10])
def test_divergence_is_a_result_found_within_log_every_steps(tmp_path, log_every):
    # Weight decay off: at lr 50 the decay factor 1 - lr * wd would flip signs, which is refused.
    cfg = compose_config(["optimizer=adamw", "base.lr=50", "base.weight_decay=0", "trainer.grad_clip=0",
                          "trainer.max_steps=60", f"trainer.log_every={log_every}", *TINY_TEXT])
    record = train(cfg, tmp_path)
    assert record.status is Status.DIVERGED
    # The losses are read every log_every steps: the run stops at the first read after the bad step,
    # and the record names the step where the loss went bad.
    assert f"at step {record.diverged_at_step}" in record.divergence
    assert record.diverged_at_step <= record.steps < record.diverged_at_step + log_every
    assert read_record(tmp_path)["status"] == "diverged" and read_record(tmp_path).diverged_at_step >= 1


def test_interrupt_flushes_record(tmp_path):
    cfg = compose_config(["task=quadratic", "trainer.max_steps=50", "trainer.log_every=1", "trainer.progress=false"])
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, loggers=[InterruptAt(3)])
    record = read_record(tmp_path)
    assert record["status"] == "interrupted" and record["steps"] == 3
    assert [row["step"] for row in read_metrics(tmp_path)] == [1, 2, 3]


def run_cli(tmp_path, *overrides):
    return subprocess.run(
        [sys.executable, "-m", "lion_bench.train", f"output_root={tmp_path}", "trainer.progress=false", *overrides],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )


@pytest.mark.parametrize("optimizer", ["lion", "adamw"])
def test_cli_default_task_writes_finished_record(tmp_path, optimizer):
    result = run_cli(tmp_path, f"optimizer={optimizer}", "trainer.max_steps=20", "trainer.schedule.warmup_steps=5")
    assert result.returncode == 0, result.stderr
    [run_file] = list(tmp_path.glob("**/run.json"))
    record = json.loads(run_file.read_text())
    assert record["status"] == "finished" and record["steps"] == 20
    assert math.isfinite(record["final_val_loss"]) and math.isfinite(record["final_val_bpc"])
    assert record["optimizer"] == optimizer
    [line] = [line for line in result.stdout.splitlines() if line.startswith("[finished] ")]
    assert line.startswith(f"[finished] {optimizer} lr=") and " bpc) | " in line and len(line) <= 100
    assert ("(base/3) wd=0.3 seed 0: val loss" in line) if optimizer == "lion" else ("wd=0.1 seed 0: val loss" in line)
    assert (run_file.parent / "config.yaml").exists()


def test_a_single_run_held_by_another_process_is_not_trained_twice(tmp_path):
    """Single runs are named by their trial and locked like sweep trials: the same command while the
    run is held elsewhere says so and exits 1, leaving the record as it was."""
    from filelock import FileLock

    overrides = ["task=quadratic", "trainer.max_steps=2", "seed=4"]
    assert run_cli(tmp_path, *overrides).returncode == 0
    [run_dir] = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("quadratic_lion_seed4_")
    before = (run_dir / "run.json").read_text()
    with FileLock(str(run_dir / ".lock")):
        held = run_cli(tmp_path, *overrides)
    assert held.returncode == 1 and f"busy: {run_dir.name} is trained by another process" in held.stdout
    assert (run_dir / "run.json").read_text() == before


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optimizer.name=sgd"], "unknown optimizer 'sgd'; valid optimizers: adamw, lion"),
        (["base.lr=0"], "base.lr must be a number > 0, got 0"),
        (["optimizer.betas=[1.2,0.9]"], "optimizer.betas must be a list whose items each are a number in [0, 1), got 1.2"),
        (["optimizer.lr_divisor=0"], "optimizer.lr_divisor must be a number > 0, got 0"),
        (["task.data.path=/nonexistent/corpus.txt"], "task.data.path='/nonexistent/corpus.txt' does not exist"),
        (["task.name=vision"], "unknown task 'vision'; valid tasks:"),
        (["trainer.schedule.name=step"], "trainer.schedule.name must be one of cosine, linear, constant, inverse_sqrt"),
    ],
)
def test_cli_bad_input_fails_before_training_with_clear_message(tmp_path, overrides, message):
    result = run_cli(tmp_path, *overrides)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not list(tmp_path.glob("**/run.json")) and not list(tmp_path.glob("**/metrics.jsonl"))


def test_unknown_config_group_option_lists_choices(tmp_path):
    result = run_cli(tmp_path, "optimizer=sgd")
    assert result.returncode != 0
    assert "optimizer=sgd is not an option of optimizer; its options: adamw, lion" in result.stderr


def test_run_record_is_readable_like_any_written_file(tmp_path):
    cfg = compose_config(["task=quadratic", "trainer.max_steps=2", "trainer.progress=false", "trainer.schedule.warmup_steps=0"])
    train(cfg, tmp_path)
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777


def test_record_breaks_time_down_and_measures_steady_throughput(tmp_path):
    cfg = compose_config(["trainer.max_steps=30", "trainer.eval_every=10", *TINY_TEXT])
    record = train(cfg, tmp_path)
    time_s = record.time_s
    assert set(time_s) == {"startup", "compile", "train", "eval", "checkpoint", "total"}
    assert time_s["compile"] == 0 and time_s["eval"] > 0 and time_s["train"] > 0
    assert time_s["total"] == pytest.approx(sum(value for key, value in time_s.items() if key != "total"))
    # Steady state: training steps after the first 10, evaluation excluded; a throughput, not tokens / total.
    assert record.train_tokens_per_s > record.tokens / time_s["total"]
    # CPU peak memory of this run, reset at its start (trials of a multirun share a process).
    assert record.peak_memory_kind == "rss_since_run_start" and record.peak_memory_bytes > 0


def test_batches_are_the_same_stream_for_a_seed(make_config):
    """Training windows come from the task's seeded host generator (the same on every device)."""
    from lion_bench.tasks import build_task

    cfg = make_config(TINY_TEXT)
    first, second = (build_task(cfg.task, batch_size=4, seed=3, device=torch.device("cpu")) for _ in range(2))
    for _ in range(3):
        assert all(torch.equal(a, b) for a, b in zip(first.train_batch(), second.train_batch()))
    inputs, targets = first.train_batch()
    assert inputs.shape == targets.shape == (4, 32) and torch.equal(inputs[:, 1:], targets[:, :-1])


@pytest.mark.parametrize("steps, fraction, warmup", [(100, 0.1, 10), (7, 0.1, 1), (40, 0.0, 0)])
def test_warmup_fraction_scales_with_the_run(steps, fraction, warmup):
    from lion_bench.plan import plan_run

    plan = plan_run(compose_config([f"trainer.max_steps={steps}", f"trainer.schedule.warmup_fraction={fraction}"]))
    assert plan.warmup_steps == warmup


@pytest.mark.parametrize("schedule, steps, warmup", [
    ({"warmup_steps": "auto", "warmup_fraction": None}, 1, 0),
    ({"warmup_steps": "auto", "warmup_fraction": None}, 9, 0),
    ({"warmup_steps": "auto", "warmup_fraction": None}, 50, 5),
    ({"warmup_steps": "auto", "warmup_fraction": None}, 199, 19),
    ({"warmup_steps": "auto", "warmup_fraction": None}, 5000, 20),
    ({"warmup_steps": "auto", "warmup_fraction": 0.25}, 40, 10),  # a fraction wins over auto
    ({"warmup_steps": 20, "warmup_fraction": None}, 200, 20),  # a record's config from before auto
    ({"warmup_steps": 7, "warmup_fraction": 0.5}, 10, 5),
    ({"warmup_steps": 0}, 3, 0),  # older still: no warmup_fraction key
])
def test_resolve_warmup_reads_the_default_and_old_configs(schedule, steps, warmup):
    from lion_bench.schema import resolve_warmup

    assert resolve_warmup(schedule, steps) == warmup


def test_the_default_warmup_is_the_same_trial_as_its_steps_named():
    """auto resolves to 20 steps at 200 steps: sweep directories from before auto keep their trial ids."""
    from lion_bench.checks import resolved_config
    from lion_bench.identity import config_trial_id

    def trial(*overrides):
        return config_trial_id(resolved_config(compose_config(["sweep=quickstart", "arm=adamw", *overrides])))

    assert trial() == trial("trainer.schedule.warmup_steps=20") != trial("trainer.schedule.warmup_steps=19")
    assert trial("trainer.max_steps=50") == trial("trainer.max_steps=50", "trainer.schedule.warmup_steps=5")


def test_a_record_holds_the_warmup_its_run_had(tmp_path):
    """run.json's config says the steps auto resolved to, so any reader of records sees the warmup."""
    record = train(compose_config(["task=quadratic", "trainer.max_steps=30", "trainer.progress=false"]), tmp_path)
    assert record.config["trainer"]["schedule"]["warmup_steps"] == 3
    assert read_record(tmp_path).config["trainer"]["schedule"]["warmup_steps"] == 3


def test_text_task_final_numbers_over_the_whole_validation_split(tmp_path):
    cfg = compose_config(["trainer.max_steps=4", "task.eval.final=full_valid", "trainer.schedule.warmup_steps=0", *TINY_TEXT])
    record = train(cfg, tmp_path)
    sampled = [row["val_loss"] for row in read_metrics(tmp_path) if "val_loss" in row][-1]
    assert record.final["val_bytes"] == record.data["val_bytes"] - 1
    assert record.final_val_loss != sampled and abs(record.final_val_loss - sampled) < 0.5
