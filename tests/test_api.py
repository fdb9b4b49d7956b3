"""The Python API (lion_bench.run_sweep) is the command line: the same sweep gives the same records
(trial ids, final losses) as ``lion-bench -m``, a rerun skips what is done, bad input raises the
command's one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lion_bench import SweepResult, run_sweep

pytest.importorskip("scipy")  # the verdicts need the report extra

SWEEP = ["arm=adamw,lion_div3", "seed=0", "trainer.max_steps=3", "trainer.schedule.warmup_steps=0",
         "trainer.progress=false", "device=cpu"]


def test_the_api_returns_what_the_command_line_records(tmp_path):
    command = subprocess.run([sys.executable, "-m", "lion_bench.train", "-m", "sweep=lr_ratio", "task=quadratic",
                              f"output_root={tmp_path / 'cli'}", *SWEEP], capture_output=True, text=True, cwd=tmp_path,
                             timeout=600)
    assert command.returncode == 0, command.stderr
    expected = {}
    for path in (tmp_path / "cli" / "sweeps" / "lr_ratio").glob("*/run.json"):
        record = json.loads(path.read_text())
        expected[record["trial_id"]] = record["final_val_loss"]

    result = run_sweep("lr_ratio", task="quadratic", overrides=SWEEP, output_root=tmp_path / "api", verbose=False)
    assert isinstance(result, SweepResult) and result.exit_status == 0
    assert len(expected) == 2 and dict(zip(result.runs["trial_id"], result.runs["final_val_loss"])) == expected
    assert set(result.claims["claim"]) >= {"update2", "update3"}
    assert sum(len(family.cells) for family in result.families) == len(result.claims)
    assert len(result.trial_dirs) == 2 and "sweep lr_ratio: 2 trials: 2 finished" in result.output

    again = run_sweep("lr_ratio", task="quadratic", overrides=SWEEP, output_root=tmp_path / "api", verbose=False)
    assert "2 skipped" in again.output and again.runs["trial_id"].tolist() == result.runs["trial_id"].tolist()


def test_bad_input_raises_the_commands_line_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="lion-bench: trainer.max_steps must be a whole number >= 1, got 0"):
        run_sweep("lr_ratio", task="quadratic", overrides=["trainer.max_steps=0"], output_root=tmp_path / "out",
                  verbose=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(TypeError, match="overrides must be a list of 'key=value' strings"):
        run_sweep("lr_ratio", overrides="trainer.max_steps=3", output_root=tmp_path / "out")
    with pytest.raises(ValueError, match="sweep must be a preset or task name"):
        run_sweep("../lr_ratio", output_root=tmp_path / "out")
