"""Failure isolation: one trial that raises is recorded, the others run, and the exit status says so."""

from __future__ import annotations

import json

from sweep_cli import FAST, run_sweep, trial_records


def test_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    # lr_divisor=-1 composes but is impossible (ValueError); 1e-6 makes Lion's lr 1e5 (diverges).
    overrides = ["optimizer.lr_divisor=1,-1,0.000001,3", *FAST]
    result = run_sweep(tmp_path, *overrides)
    assert result.returncode == 1
    sweep_dir = tmp_path / "sweeps" / "multirun"
    records = trial_records(sweep_dir)
    by_divisor = {record["config"]["optimizer"]["lr_divisor"]: (name, record) for name, record in records.items()}
    assert sorted(by_divisor) == [-1, 1e-6, 1, 3]
    failed_name, failed = by_divisor[-1]
    assert failed["status"] == "failed" and "lr_divisor must be a number > 0" in failed["error"]
    assert "BadInput: optimizer.lr_divisor must be a number > 0, got -1" in (sweep_dir / failed_name / "traceback.txt").read_text()
    assert by_divisor[1e-6][1]["status"] == "diverged"
    assert by_divisor[1][1]["status"] == by_divisor[3][1]["status"] == "finished"
    assert "sweep multirun: 4 trials: 2 finished, 1 diverged, 1 failed, 0 skipped" in result.stdout
    assert f"1 trial(s) did not finish: {failed_name}" in result.stderr

    # Rerun: the finished and diverged trials are skipped untouched, the failed one is tried again.
    done = {name: (sweep_dir / name / "run.json").read_bytes() for name, r in records.items() if r["status"] != "failed"}
    again = run_sweep(tmp_path, *overrides)
    assert again.returncode == 1
    assert "4 trials: 0 finished, 0 diverged, 1 failed, 3 skipped" in again.stdout
    assert {name: (sweep_dir / name / "run.json").read_bytes() for name in done} == done
    attempts = [json.loads(line)["outcome"] for line in (sweep_dir / failed_name / "attempts.jsonl").read_text().splitlines()]
    assert attempts == ["failed", "failed"]
