"""The run-record schema: what validates, what does not, old records, and the one-way layering."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

import lion_bench
from lion_bench.runs.errors import RecordError
from lion_bench.runs.record import RunRecord, Status
from lion_bench.runs.store import read_record, write_record

HYPER = {"optimizer": "lion", "lr": 1e-3, "weight_decay": 0.0, "base_lr": 3e-3, "base_weight_decay": 0.0,
         "lr_divisor": 3.0, "wd_multiplier": 1.0, "betas": [0.9, 0.99]}
CONFIG = {"task": {"name": "text"}, "optimizer": {"name": "lion"}, "seed": 2, "sweep": {"name": "lr_ratio"},
          "arm": "lion_div3"}


def finished_record() -> RunRecord:
    record = RunRecord.begin(CONFIG, "0123456789ab")
    record.status = Status.FINISHED
    record.hyperparameters, record.batch_size, record.steps, record.tokens = dict(HYPER), 16, 100, 16_000
    record.final = {"val_loss": 1.5, "val_bpc": 1.5 / math.log(2), "test_bytes": 1999}
    record.best = {"val_loss": 1.4}
    record.environment = {"device": "cpu", "device_type": "cpu", "precision": "fp32"}
    record.time_s = {"startup": 1.0, "train": 8.0, "total": 9.0}
    return record


def test_begin_takes_what_the_config_says():
    record = RunRecord.begin(CONFIG, "abc")
    assert (record.status, record.task, record.optimizer, record.seed, record.sweep, record.arm) == (
        Status.FAILED, "text", "lion", 2, "lr_ratio", "lion_div3")
    assert record.problems() == []  # a failed record needs no outcome


def test_round_trip_through_run_json(tmp_path):
    record = finished_record()
    write_record(tmp_path, record)
    data = json.loads((tmp_path / "run.json").read_text())
    # Flat where people grep: final_* and best_* keys; nested environment and time_s.
    assert data["final_val_loss"] == 1.5 and data["final_test_bytes"] == 1999 and data["best_val_loss"] == 1.4
    assert data["status"] == "finished" and data["schema_version"] == 2 and data["environment"]["device_type"] == "cpu"
    assert read_record(tmp_path) == record


def same(a, b) -> bool:
    """Equal, NaN equal to NaN, through dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("status", [Status.DIVERGED, Status.FINISHED])
def test_non_finite_numbers_in_every_number_field_round_trip(tmp_path, value, status):
    """Every number the trainer can write may be inf or NaN (a diverged loss, an lr that overflowed):
    the record it writes is one read_record accepts, with the same values."""
    record = finished_record()
    record.status = status
    record.hyperparameters = {key: (value if isinstance(number, float) else number) for key, number in HYPER.items()}
    record.hyperparameters["betas"] = [value, value]
    record.final = {"val_loss": 1.5 if status is Status.FINISHED else value, "val_bpc": value, "val_accuracy": value,
                    "test_loss": value}
    record.best = {"val_loss": value, "val_bpc": value}
    record.initial_train_loss, record.train_tokens_per_s = value, value
    record.time_s = {"startup": value, "compile": value, "train": value, "eval": value, "checkpoint": value,
                     "total": value}
    record.divergence = "train loss inf at step 3" if status is Status.DIVERGED else None
    write_record(tmp_path, record)
    # Strict JSON (no bare NaN or Infinity, which json.loads would hand to parse_constant).
    data = json.loads((tmp_path / "run.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert data["hyperparameters"]["lr"] == {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, "NaN")
    back = read_record(tmp_path)
    assert same(back.to_dict(), record.to_dict())
    assert read_record(tmp_path).status is status  # read again: what a sweep's rerun sees


def test_records_with_null_for_non_finite_numbers_still_read(tmp_path):
    """Records written before the encoding stored NaN and inf as null."""
    data = finished_record().to_dict()
    data.update(status="diverged", final_val_loss=None, best_val_loss=None, initial_train_loss=None,
                divergence="train loss nan at step 3")
    (tmp_path / "run.json").write_text(json.dumps(data))
    back = read_record(tmp_path)
    assert back.status is Status.DIVERGED and math.isnan(back.final_val_loss) and back.initial_train_loss is None


def test_a_string_that_is_not_a_spelling_of_inf_or_nan_is_still_refused(tmp_path):
    data = finished_record().to_dict()
    data["hyperparameters"]["lr"] = "inf"
    data["best_val_loss"] = "Infinity"
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(RecordError, match="hyperparameters.lr is missing or not a number"):
        read_record(tmp_path)


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.update(status="done"), "status 'done' is not one of"),
    (lambda d: d.pop("trial_id"), "lacks trial_id"),
    (lambda d: d.update(final_val_loss="1.5"), "final_val_loss is '1.5', not a number"),
    (lambda d: d.update(final_val_loss=None), "without a finite final_val_loss"),
    (lambda d: d["hyperparameters"].pop("lr"), "hyperparameters.lr is missing"),
    (lambda d: d["hyperparameters"].update(betas=[0.9]), "betas is [0.9], not two numbers"),
    (lambda d: d.update(seed="0"), "seed is '0', not an integer"),
    (lambda d: d.update(steps=-1), "steps is -1, not a count"),
    (lambda d: d.update(schema_version=7), "schema_version 7"),
])
def test_records_that_do_not_validate_name_the_problem(tmp_path, edit, problem):
    data = finished_record().to_dict()
    edit(data)
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(RecordError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        read_record(tmp_path)


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"status": "finished"}', '{"status": "fini', "\x00\xff"])
def test_damaged_or_partial_files_raise_record_error(tmp_path, content):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(RecordError):
        read_record(tmp_path)
    assert read_record(tmp_path / "elsewhere") is None  # no run.json: no record, not an error


def test_first_schema_records_are_converted():
    """The committed study's records were written before schema_version existed."""
    [old] = sorted(Path(__file__).parents[2].glob("results/stdlib_lr_ratio_h100/runs/adamw_seed0_*/run.json"))
    data = json.loads(old.read_text())
    assert "schema_version" not in data and "wall_time_s" in data
    record = RunRecord.from_dict(data)
    assert record.status is Status.FINISHED and record.final_val_loss == data["final_val_loss"]
    assert record.environment["device_type"] == "cuda" and record.environment["precision"] == "bf16"
    assert record.time_s == {"total": data["wall_time_s"]} and record.train_tokens_per_s is None
    assert record.environment["device_name"] == data["device_name"]


def test_nothing_below_the_trainer_imports_it():
    """Data flows one way (../shared/DESIGN.md's layers): the run-record layer, tasks, optimizers and the
    report never import the trainer (or the entry point); the trainer never imports sweeps, which sit above
    it (skips, resume, launchers, packed trials); sweeps never import the entry point or the report; the
    report side and the run-record layer never import sweeps."""
    package = Path(lion_bench.__file__).parent
    forbidden = {"runs/*.py": ("lion_bench.trainer", "lion_bench.train", "lion_bench.sweeps", "lion_bench.results",
                               "lion_bench.plan", "lion_bench.schema", "lion_bench.command_line"),
                 "trainer.py": ("lion_bench.train", "lion_bench.sweeps", "lion_bench.results",
                                "lion_bench.command_line"),
                 "sweeps/*.py": ("lion_bench.train", "lion_bench.results", "lion_bench.command_line"),
                 "results/**/*.py": ("lion_bench.trainer", "lion_bench.train", "lion_bench.sweeps", "lion_bench.plan",
                                     "lion_bench.command_line"),
                 "tasks/*.py": ("lion_bench.trainer", "lion_bench.sweeps", "lion_bench.results"),
                 "optimizers/*.py": ("lion_bench.trainer", "lion_bench.sweeps", "lion_bench.results",
                                     "lion_bench.runs")}
    found = []
    for pattern, names in forbidden.items():
        for path in sorted(package.glob(pattern)):
            for node in ast.walk(ast.parse(path.read_text())):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                found += [f"{path.relative_to(package)} imports {module}" for module in modules
                          if any(module == name or module.startswith(f"{name}.") for name in names)]
    assert found == []
