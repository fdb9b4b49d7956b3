"""Damaged files never block a trial or lose a result: each kind is set aside with a warning naming
it (kept as ``<name>.damaged``) and the trial runs again; stale temp files are removed; the report's
reader skips bad metrics lines with a warning naming each."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from compose import InterruptAt, compose_config

from lion_bench.runs.checkpoint import CHECKPOINT_FILE
from lion_bench.runs.errors import DamagedFile
from lion_bench.runs.store import METRICS_FILE, RUN_FILE, read_metrics, read_record
from lion_bench.sweeps.callbacks import count_outcomes
from lion_bench.sweeps.resume import ATTEMPTS_FILE, read_attempts, run_trial
from lion_bench.trainer import train

OVERRIDES = ["task=quadratic", "trainer.max_steps=12", "trainer.log_every=1", "trainer.checkpoint_every=4",
             "trainer.schedule.warmup_steps=2", "trainer.progress=false"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A finished trial with no damage: the record every retry must reproduce, and its checkpoint at step 8."""
    directory = tmp_path_factory.mktemp("clean")
    record = train(compose_config(OVERRIDES), directory / "whole")

    with pytest.raises(KeyboardInterrupt):
        train(compose_config(OVERRIDES), directory / "stopped", loggers=[InterruptAt(9)])
    return record, (directory / "stopped" / CHECKPOINT_FILE).read_bytes()


def retry(run_dir: Path) -> tuple[float, str]:
    """Run the trial in ``run_dir``; its objective and the DamagedFile warnings it gave, joined."""
    cfg = compose_config(OVERRIDES)
    with pytest.warns(DamagedFile) as warned:
        value = run_trial(cfg, run_dir, lambda: train(cfg, run_dir))
    return value, " ".join(str(warning.message) for warning in warned if warning.category is DamagedFile)


RUN_JSON = {
    "a list": "[1, 2, 3]",
    "status alone": '{"status": "finished"}',
    "non-numeric final_val_loss": None,  # filled from a real record
    "torn": '{"status": "fini',
    "empty": "",
    "not UTF-8": b"\xff\xfe\x00run",
}


@pytest.mark.parametrize("kind", [*RUN_JSON, "a directory"])
def test_a_damaged_run_json_is_set_aside_and_the_trial_runs_again(tmp_path, clean, kind):
    path = tmp_path / RUN_FILE
    if kind == "a directory":
        path.mkdir()
        (path / "inside").write_text("x")
    elif kind == "non-numeric final_val_loss":
        data = clean[0].to_dict()
        data["final_val_loss"] = "low"
        path.write_text(json.dumps(data))
    else:
        content = RUN_JSON[kind]
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    original = path.read_bytes() if path.is_file() else None
    value, warned = retry(tmp_path)
    assert f"{path}" in warned and "kept as run.json.damaged" in warned
    assert (tmp_path / "run.json.damaged").exists()
    if original is not None:
        assert (tmp_path / "run.json.damaged").read_bytes() == original  # kept as it was
    record = read_record(tmp_path)
    assert record.status.value == "finished" and value == record.final_val_loss == clean[0].final_val_loss
    assert read_attempts(tmp_path)[-1]["outcome"] == "finished"


CHECKPOINTS = {
    "empty (0 bytes)": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "garbage": lambda good: b"not a checkpoint at all" * 10,
    "not a checkpoint of a run": None,  # a valid torch file of something else
    "of another shape": None,  # a checkpoint of this trial whose tensors do not fit the model
    "a directory": None,
}


@pytest.mark.parametrize("kind", CHECKPOINTS)
def test_a_damaged_checkpoint_is_set_aside_and_the_trial_starts_from_scratch(tmp_path, clean, kind):
    path = tmp_path / CHECKPOINT_FILE
    good = clean[1]
    if kind == "not a checkpoint of a run":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "of another shape":
        checkpoint = torch.load(__import__("io").BytesIO(good), weights_only=True)
        checkpoint["model"] = {key: torch.zeros(2, 2) for key in checkpoint["model"]}
        torch.save(checkpoint, path)
    elif kind == "a directory":
        path.mkdir()
    else:
        path.write_bytes(CHECKPOINTS[kind](good))
    value, warned = retry(tmp_path)
    assert str(path) in warned and "kept as checkpoint.pt.damaged" in warned
    assert (tmp_path / "checkpoint.pt.damaged").exists() and not path.exists()
    record = read_record(tmp_path)
    # From scratch: not resumed, and bit-identical to an undamaged run.
    assert record.status.value == "finished" and record.resumed_from_step is None
    assert value == record.final_val_loss == clean[0].final_val_loss
    assert [row["step"] for row in read_metrics(tmp_path)] == list(range(1, 13))


def test_an_undamaged_checkpoint_still_resumes(tmp_path, clean):
    (tmp_path / CHECKPOINT_FILE).write_bytes(clean[1])
    cfg = compose_config(OVERRIDES)
    run_trial(cfg, tmp_path, lambda: train(cfg, tmp_path))
    record = read_record(tmp_path)
    assert record.resumed_from_step == 8 and record.final_val_loss == clean[0].final_val_loss


@pytest.mark.parametrize("line", [b"not json", b"null", b'{"outcome": "exploded", "at": 1}', b'{"outcome": "finished"}',
                                  b"\xff\xfe", b"[1, 2]"])
def test_a_damaged_attempts_file_is_set_aside_and_the_summary_still_counts(tmp_path, clean, line):
    trial = tmp_path / "sweep" / "trial"
    trial.mkdir(parents=True)
    (trial / ATTEMPTS_FILE).write_bytes(b'{"outcome": "failed", "at": 1.0}\n' + line + b"\n")
    counts, failed = count_outcomes(tmp_path / "sweep", since=0.0, sweep_run=None)  # never raises
    assert counts["failed"] == 1 and failed == ["trial"]
    value, warned = retry(trial)
    assert str(trial / ATTEMPTS_FILE) in warned and "kept as attempts.jsonl.damaged" in warned
    assert [attempt["outcome"] for attempt in read_attempts(trial)] == ["finished"]
    assert (trial / "attempts.jsonl.damaged").read_bytes().endswith(line + b"\n")
    counts, failed = count_outcomes(tmp_path / "sweep", since=0.0, sweep_run=None)
    assert counts["finished"] == 1 and failed == []


def test_metrics_that_are_not_a_file_are_set_aside(tmp_path, clean):
    (tmp_path / METRICS_FILE).mkdir()
    value, warned = retry(tmp_path)
    assert str(tmp_path / METRICS_FILE) in warned and (tmp_path / "metrics.jsonl.damaged").is_dir()
    assert value == clean[0].final_val_loss


def test_damaged_metrics_lines_are_set_aside_on_resume_and_the_good_rows_kept(tmp_path, clean):
    (tmp_path / CHECKPOINT_FILE).write_bytes(clean[1])
    rows = [json.dumps({"step": step, "train_loss": 1.0}) for step in range(1, 10)]
    rows[2] = '{"step": 3, "train_lo'  # merged by a second writer
    (tmp_path / METRICS_FILE).write_text("\n".join(rows) + "\n")
    value, warned = retry(tmp_path)
    assert f"{tmp_path / METRICS_FILE}" in warned and "3: not JSON" in warned
    assert (tmp_path / "metrics.jsonl.damaged").read_text().splitlines()[2] == rows[2]
    assert [row["step"] for row in read_metrics(tmp_path)] == [1, 2, *range(4, 13)]
    assert value == clean[0].final_val_loss


def test_stale_temp_files_of_killed_writes_are_removed(tmp_path, clean):
    stale = [tmp_path / ".checkpoint.pt.k1ll3d.tmp", tmp_path / ".run.json.abc123.tmp"]
    for path in stale:
        path.write_bytes(b"half a write")
    cfg = compose_config(OVERRIDES)
    assert run_trial(cfg, tmp_path, lambda: train(cfg, tmp_path)) == clean[0].final_val_loss
    assert not any(path.exists() for path in stale)


def test_the_report_reader_skips_bad_metrics_lines_with_a_warning_naming_each(tmp_path):
    lines = ['{"step": 1, "train_loss": 2.0}', "not json", "null", "[1, 2]", '{"train_loss": 1.0}', '{"step": "3"}',
             '{"step": 2.5}', '{"step": true}', '{"step": 2, "train_loss": 1.5}', '{"step": 3, "tra']
    (tmp_path / METRICS_FILE).write_text("\n".join(lines))
    with pytest.warns(DamagedFile) as warned:
        rows = read_metrics(tmp_path)
    assert [row["step"] for row in rows] == [1, 2]
    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 8
    for number in (2, 3, 4, 5, 6, 7, 8, 10):
        assert any(message.startswith(f"{tmp_path / METRICS_FILE}:{number}: ") for message in messages), number
    assert any("torn last line" in message for message in messages)
    assert not math.isnan(rows[1]["train_loss"])
