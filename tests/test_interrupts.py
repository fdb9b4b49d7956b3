"""Ctrl-C and SIGTERM keep their promise: the loop stops between two steps, writes a checkpoint of that
step and the record (interrupted), the command prints one line and exits 130 or 143 (a sweep prints its
count line first), and rerunning the same command resumes from that step to the result an
uninterrupted run reaches. A second signal stops at once, and during shutdown it prints nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from compose import TINY_TEXT, compose_config

from lion_bench.command_line import interrupted_line
from lion_bench.runs.checkpoint import CHECKPOINT_FILE, load_checkpoint
from lion_bench.runs.errors import Interrupted
from lion_bench.runs.store import read_metrics, read_record
from lion_bench.trainer import train

QUADRATIC = ["task=quadratic", "trainer.max_steps=1000000", "trainer.log_every=1", "trainer.eval_every=1000",
             "trainer.progress=false"]


def start(tmp_path, *arguments, overrides=QUADRATIC):
    tmp_path.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "lion_bench.train", *arguments, f"output_root={tmp_path}", *overrides],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def wait_for(condition, process, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("timed out")


def metrics_rows(tmp_path) -> int:
    metrics = list(tmp_path.rglob("metrics.jsonl"))
    return len(metrics[0].read_text().splitlines()) if metrics else 0


def interrupted_record(tmp_path) -> bool:
    return any(json.loads(path.read_text()).get("status") == "interrupted" for path in tmp_path.rglob("run.json"))


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("multirun", [False, True])
def test_an_interrupt_saves_its_step_and_ends_in_one_line(tmp_path, signum, status, multirun):
    process = start(tmp_path, *(["-m", "seed=0,1"] if multirun else []))
    wait_for(lambda: metrics_rows(tmp_path) >= 3, process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert "Traceback" not in out + err
    [run_file] = tmp_path.rglob("run.json")
    record = json.loads(run_file.read_text())
    assert record["status"] == "interrupted" and record["steps"] >= 3
    assert load_checkpoint(run_file.parent)["loop"]["step"] == record["steps"]  # saved at the step it stopped
    assert read_metrics(run_file.parent)[-1]["step"] == record["steps"]
    shown = run_file.parent.relative_to(tmp_path)
    assert err.splitlines() == [f"lion-bench: interrupted at step {record['steps']}, saved in {shown}; "
                                "rerun the same command to resume"]
    if multirun:  # the sweep's count line comes first
        assert out.splitlines()[-1] == ("sweep multirun: 0 finished, 0 diverged, 0 failed, 0 skipped, "
                                        "1 interrupted, 1 left of 2 trials")


@pytest.mark.parametrize("second_signal_at", ["within_the_step", "during_shutdown"])
def test_a_second_signal_prints_nothing_more(tmp_path, second_signal_at):
    """Two signals in quick succession: one line, the record stands, no 'Exception ignored' traceback.
    Within a step the second one stops at once (the step is not saved); during shutdown it is quiet."""
    overrides = [*TINY_TEXT, "trainer.max_steps=1000000", "trainer.log_every=1", "trainer.eval_every=1000"]
    process = start(tmp_path, overrides=overrides)
    wait_for(lambda: metrics_rows(tmp_path) >= 3, process)
    process.send_signal(signal.SIGINT)
    if second_signal_at == "during_shutdown":
        wait_for(lambda: interrupted_record(tmp_path), process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    # The first signal's status; a SIGTERM after Python has dropped its handlers, at the very end, kills the
    # process quietly (-15 here, 143 in a shell).
    assert process.returncode in (130, 143, -signal.SIGTERM), err
    assert "Traceback" not in out + err and "Exception ignored" not in err
    [line] = err.splitlines()
    [run_file] = tmp_path.rglob("run.json")
    record = json.loads(run_file.read_text())
    assert record["status"] == "interrupted"
    assert line.startswith(f"lion-bench: interrupted at step {record['steps']}, ")


def test_an_interrupted_run_resumes_with_the_same_command_to_the_same_result(tmp_path):
    """A single run's directory is named by its trial: the same command finds and resumes it, and the
    final record equals an uninterrupted run's (losses, metrics rows); run again, it says it is done."""
    overrides = ["task=quadratic", "trainer.max_steps=1500", "trainer.eval_every=500", "trainer.log_every=1",
                 "trainer.progress=false"]
    process = start(tmp_path / "stopped", overrides=overrides)
    wait_for(lambda: metrics_rows(tmp_path / "stopped") >= 20, process)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130
    assert_resumes_to_the_uninterrupted_result(tmp_path, overrides)


@pytest.mark.slow
def test_a_default_run_interrupted_midway_resumes_to_the_same_result(tmp_path):
    """``lion-bench`` with the default settings (the text task, 200 steps), Ctrl-C mid-way, run again."""
    overrides = ["trainer.progress=false"]
    process = start(tmp_path / "stopped", overrides=overrides)
    wait_for(lambda: metrics_rows(tmp_path / "stopped") >= 8, process, timeout=1200)  # step 70 (log_every 10)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=300)
    assert process.returncode == 130
    assert_resumes_to_the_uninterrupted_result(tmp_path, overrides)


def command(tmp_path, overrides):
    return subprocess.run([sys.executable, "-m", "lion_bench.train", f"output_root={tmp_path}", *overrides],
                          capture_output=True, text=True, cwd=tmp_path, timeout=1200)


def assert_resumes_to_the_uninterrupted_result(tmp_path, overrides):
    (tmp_path / "whole").mkdir()
    [stopped_dir] = (tmp_path / "stopped" / "runs").iterdir()
    stopped_at = read_record(stopped_dir)["steps"]
    assert (stopped_dir / CHECKPOINT_FILE).exists() and stopped_at > 0
    resumed = command(tmp_path / "stopped", overrides)
    assert resumed.returncode == 0, resumed.stderr
    whole = command(tmp_path / "whole", overrides)
    assert whole.returncode == 0, whole.stderr
    [whole_dir] = (tmp_path / "whole" / "runs").iterdir()
    assert whole_dir.name == stopped_dir.name  # the same trial, the same name
    first, second = read_record(stopped_dir), read_record(whole_dir)
    assert first.resumed_from_step == stopped_at and second.resumed_from_step is None
    assert f"resumed from step {stopped_at} of {first.planned_steps} (checkpoint of " in resumed.stdout
    assert "resumed from" not in whole.stdout
    for field in ("status", "steps", "tokens", "final", "best", "initial_train_loss", "trial_id"):
        assert getattr(first, field) == getattr(second, field), field
    assert first.final_val_loss == second.final_val_loss
    assert ([{k: v for k, v in row.items() if k != "elapsed_s"} for row in read_metrics(stopped_dir)]
            == [{k: v for k, v in row.items() if k != "elapsed_s"} for row in read_metrics(whole_dir)])
    assert not (stopped_dir / CHECKPOINT_FILE).exists()
    again = command(tmp_path / "stopped", overrides)
    assert again.returncode == 0 and read_record(stopped_dir).resumed_from_step == stopped_at  # not retrained
    assert f"runs/{stopped_dir.name}/run.json (done; to train it again: another seed=, or remove its directory)" \
        in again.stdout


# --- in this process: the loop's side ------------------------------------------------------------
class SignalAt:
    """A logger that sends this process ``signals`` while step ``step`` is logged, as a user would."""

    def __init__(self, step: int, *signals: int):
        self.step, self.signals = step, signals

    def log(self, row):
        if row["step"] == self.step:
            for signum in self.signals:
                os.kill(os.getpid(), signum)

    def finish(self, record):
        pass


QUICK = ["task=quadratic", "trainer.max_steps=40", "trainer.log_every=1", "trainer.progress=false"]


def test_a_signal_stops_the_loop_at_the_end_of_its_step_saved_there(tmp_path):
    with pytest.raises(Interrupted) as stopped:
        train(compose_config(QUICK), tmp_path, loggers=[SignalAt(7, signal.SIGTERM)])
    stop = stopped.value
    assert (stop.signum, stop.step, stop.resume_step, stop.note, stop.exit_status) == (signal.SIGTERM, 7, 7, None, 143)
    assert read_record(tmp_path).status.value == "interrupted" and read_record(tmp_path).steps == 7
    assert load_checkpoint(tmp_path)["loop"]["step"] == 7
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the loop's handlers are gone with it


def test_a_second_signal_stops_within_the_step_keeping_the_last_checkpoint(tmp_path):
    overrides = [*QUICK, "trainer.checkpoint_every=4"]
    with pytest.raises(Interrupted) as stopped:
        train(compose_config(overrides), tmp_path, loggers=[SignalAt(7, signal.SIGINT, signal.SIGINT)])
    stop = stopped.value
    assert (stop.step, stop.resume_step, stop.note) == (7, 4, "stopped at once, within a step")
    assert load_checkpoint(tmp_path)["loop"]["step"] == 4
    assert interrupted_line(stop) == (f"interrupted at step 7, not saved: stopped at once, within a step; the same "
                                      f"command resumes from step 4, its last checkpoint ({tmp_path})")


def test_a_stop_that_cannot_be_saved_says_the_trial_restarts(tmp_path, monkeypatch):
    def no_space(path, state):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("lion_bench.runs.checkpoint.save_checkpoint", no_space)
    with pytest.raises(Interrupted) as stopped:
        train(compose_config(QUICK), tmp_path, loggers=[SignalAt(5, signal.SIGINT)])
    stop = stopped.value
    assert (stop.step, stop.resume_step) == (5, None) and not (tmp_path / CHECKPOINT_FILE).exists()
    assert read_record(tmp_path).status.value == "interrupted"
    assert interrupted_line(stop) == (
        "interrupted at step 5, not saved: the checkpoint could not be written (OSError: [Errno 28] No space left on "
        f"device); the same command restarts the trial from step 0 ({tmp_path})")


def test_a_signal_during_the_final_evaluation_keeps_the_result(tmp_path, monkeypatch):
    from lion_bench.tasks.quadratic import QuadraticTask

    final_evaluate = QuadraticTask.final_evaluate

    def interrupted_evaluation(self, model):
        os.kill(os.getpid(), signal.SIGINT)
        return final_evaluate(self, model)

    monkeypatch.setattr(QuadraticTask, "final_evaluate", interrupted_evaluation)
    with pytest.raises(Interrupted) as stopped:
        train(compose_config(QUICK), tmp_path)
    assert stopped.value.result == "finished" and read_record(tmp_path).status.value == "finished"
    assert interrupted_line(stopped.value) == f"interrupted after the run finished (step 40); its record is in {tmp_path}"
