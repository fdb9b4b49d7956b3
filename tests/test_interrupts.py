"""Ctrl-C and SIGTERM end a run cleanly: the record says interrupted, the command prints one line
("interrupted at step N; record at ...; rerun ... to resume") and exits 130 or 143, no traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest


def start(tmp_path, *arguments):
    return subprocess.Popen(
        [sys.executable, "-m", "lion_bench.train", *arguments, f"output_root={tmp_path}", "task=quadratic",
         "trainer.max_steps=1000000", "trainer.log_every=1", "trainer.eval_every=1000", "trainer.progress=false"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def wait_for_steps(tmp_path, process, steps: int = 3, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        metrics = list(tmp_path.rglob("metrics.jsonl"))
        if metrics and len(metrics[0].read_text().splitlines()) >= steps:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError("the run did not start training")


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("multirun", [False, True])
def test_an_interrupt_ends_in_one_line_and_the_signal_exit_status(tmp_path, signum, status, multirun):
    process = start(tmp_path, *(["-m", "seed=0,1"] if multirun else []))
    wait_for_steps(tmp_path, process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    [run_file] = tmp_path.rglob("run.json")
    record = json.loads(run_file.read_text())
    assert record["status"] == "interrupted" and record["steps"] >= 3
    assert lines == [f"lion-bench: interrupted at step {record['steps']}; record at {run_file}; "
                     "rerun the same command to resume"]
