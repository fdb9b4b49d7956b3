"""The example plugin package (examples/diabetes, a task from another package): listed by lion-bench
--help and lion-bench-tasks, run through a 2-trial lr_ratio sweep by the real command, and reported.

CI installs it (.ci/run: pip install -e examples/diabetes); without it these tests skip."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from lion_bench import user_tasks
from lion_bench.user_tasks import task_rows

try:
    metadata.distribution("lion-bench-diabetes")
except metadata.PackageNotFoundError:
    pytest.skip("the example plugin is not installed: pip install -e examples/diabetes (CI installs it)",
                allow_module_level=True)

COMMAND = [sys.executable, "-m", "lion_bench.train"]


def test_the_example_task_is_listed(tmp_path):
    rows = {row[0]: row for row in task_rows()}
    assert rows["diabetes"][1:3] == ("lion-bench-diabetes", "0.1.0") and "diabetes table" in rows["diabetes"][3]
    shown = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    [task_line] = [line for line in shown.stdout.splitlines() if line.startswith("task: ")]
    assert "diabetes" in task_line.removeprefix("task: ").split(", ")


def test_the_example_task_keeps_the_contract(capsys):
    with pytest.raises(SystemExit) as stopped:
        user_tasks.main(["--check", "diabetes", "device=cpu"])
    assert stopped.value.code == 0 and capsys.readouterr().out.count("ok  ") == 6


def test_the_example_task_runs_a_sweep_and_the_report(tmp_path):
    report = pytest.importorskip("lion_bench.results.cli")
    sweep = subprocess.run([*COMMAND, "-m", "sweep=lr_ratio", "task=diabetes", "arm=adamw,lion_div3", "seed=0",
                            "trainer.max_steps=20", "trainer.eval_every=5", "trainer.schedule.warmup_steps=0",
                            "trainer.progress=false", "device=cpu", f"output_root={tmp_path}"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert sweep.returncode == 0, sweep.stderr
    assert "sweep lr_ratio: 2 trials: 2 finished" in sweep.stdout
    records = [json.loads(path.read_text()) for path in sorted((tmp_path / "sweeps" / "lr_ratio").glob("*/run.json"))]
    assert [record["arm"] for record in records] == ["adamw", "lion_div3"]
    for record in records:
        assert record["task"] == "diabetes" and record["status"] == "finished"
        assert record["data"]["plugin"] == {"package": "lion-bench-diabetes", "version": "0.1.0"}
        assert record["data"]["source"] == "sklearn:load_diabetes" and len(record["data"]["sha256"]) == 64
    # Lion at AdamW's lr / 3, weight decay off (the preset): resolved from the plugin's base_lr.
    assert records[1]["hyperparameters"]["lr"] == pytest.approx(records[0]["hyperparameters"]["lr"] / 3)
    assert report.main([str(tmp_path / "sweeps" / "lr_ratio"), "-o", str(tmp_path / "report")]) == 0
    runs = (tmp_path / "report" / "runs.csv").read_text()
    assert runs.count("diabetes") >= 2 and "update3" in (tmp_path / "report" / "claims.csv").read_text()
