"""torch.compile's on-disk caches under trainer.compile_cache (lion_bench/runs/compile_cache.py): keyed by
the software stack, warned about and left out when unusable, set aside when a compile fails with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings

import pytest
import torch
import torch._dynamo.exc

import lion_bench.trainer
from compose import compose_config
from lion_bench.runs.compile_cache import (
    CACHE_VARIABLE,
    compile_failed_on_cache,
    set_aside_cache,
    stack_key,
    use_compile_cache,
)
from lion_bench.runs.errors import DamagedFile
from lion_bench.trainer import first_compiled_step, start_run

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def keep_cache_variable(monkeypatch):
    # use_compile_cache sets the variable for the process: put it back after each test.
    monkeypatch.setenv(CACHE_VARIABLE, os.environ.get(CACHE_VARIABLE, tempfile.gettempdir()))


def test_the_cache_directory_is_keyed_by_versions_and_device(tmp_path):
    key = stack_key(CPU)
    assert key.startswith(f"torch{torch.__version__}") and key.endswith("-cpu") and "/" not in key
    path = use_compile_cache(str(tmp_path / "cache"), CPU)
    assert path == str(tmp_path / "cache" / key) and os.path.isdir(path)
    assert os.environ[CACHE_VARIABLE] == path  # what torch reads for its FX graph, AOTAutograd and Triton caches
    assert use_compile_cache(None, CPU) is None and os.environ[CACHE_VARIABLE] == path  # null: left as it was


def test_an_unusable_cache_directory_is_warned_about_and_left_out(tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("not a directory")
    with pytest.warns(RuntimeWarning, match="trainer.compile_cache: .* cannot be used"):
        assert use_compile_cache(str(blocked), CPU) is None


def test_only_a_compiler_failure_with_a_cache_in_use_is_blamed_on_the_cache(tmp_path):
    failure = torch._dynamo.exc.BackendCompilerFailed(lambda: None, SyntaxError("unterminated string"), None)
    assert compile_failed_on_cache(failure, str(tmp_path))
    assert not compile_failed_on_cache(failure, None)
    assert not compile_failed_on_cache(RuntimeError("out of memory"), str(tmp_path))


def test_a_compile_failing_on_the_cache_sets_it_aside_and_the_step_runs_again_from_the_same_batch(
        tmp_path, monkeypatch):
    cfg = compose_config(["task=quadratic", "device=cpu", "trainer.compile=true", "trainer.max_steps=3",
                          "trainer.schedule.warmup_steps=0", "trainer.progress=false",
                          f"trainer.compile_cache={tmp_path / 'cache'}"])
    run, state = start_run(cfg, tmp_path / "run")
    cache = run.record.environment["compile_cache"]
    (tmp_path / "cache" / stack_key(CPU) / "entry").write_text("cut short")
    batches = []

    def step(run, state):  # the first call fails as a compile from a damaged entry does; the second "trains"
        batches.append(run.task.train_batch()[0].clone())
        if len(batches) == 1:
            raise torch._dynamo.exc.BackendCompilerFailed(lambda: None, SyntaxError("unterminated string"), None)

    monkeypatch.setattr(lion_bench.trainer, "train_step", step)
    with pytest.warns(DamagedFile, match="compiling failed with this compile cache"):
        first_compiled_step(run, state)
    assert len(batches) == 2 and torch.equal(batches[0], batches[1])  # the same data position both times
    assert (tmp_path / "cache" / f"{stack_key(CPU)}.damaged" / "entry").read_text() == "cut short"
    assert run.record.environment["compile_cache"] == cache and os.listdir(cache) == []  # an empty one in its place


def test_other_failures_of_the_first_compiled_step_are_not_retried(tmp_path, monkeypatch):
    cfg = compose_config(["task=quadratic", "device=cpu", "trainer.compile=true", "trainer.progress=false",
                          f"trainer.compile_cache={tmp_path / 'cache'}"])
    run, state = start_run(cfg, tmp_path / "run")

    def step(run, state):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(lion_bench.trainer, "train_step", step)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedFile)
        with pytest.raises(RuntimeError, match="out of memory"):
            first_compiled_step(run, state)
    assert os.listdir(tmp_path / "cache") == [stack_key(CPU)]


@pytest.mark.slow
def test_a_damaged_cache_never_fails_a_compiled_run(tmp_path):
    """Compiles on the CPU three times, each in a fresh process as trials of a sweep do (minutes): with an
    empty cache, a warm one, and one whose generated files were cut short (a process that loaded them
    would crash if they were cut under it: a killed writer never does that, its writes are atomic)."""
    overrides = ["task=text", "task.data.max_bytes=200000", "task.model.seq_len=32", "task.model.d_model=32",
                 "task.model.n_layer=1", "task.model.n_head=2", "task.eval.num_windows=8", "trainer.batch_size=4",
                 "device=cpu", "trainer.compile=true", "trainer.max_steps=4", "trainer.schedule.warmup_steps=0",
                 "trainer.progress=false", f"trainer.compile_cache={tmp_path / 'cache'}"]

    def run(name: str) -> dict:
        result = subprocess.run([sys.executable, "-m", "lion_bench.train", *overrides,
                                 f"hydra.run.dir={tmp_path / name}"], capture_output=True, text=True, cwd=tmp_path,
                                timeout=1200)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((tmp_path / name / "run.json").read_text())

    records = [run("cold"), run("warm")]
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".so", ".cpp"):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    records.append(run("damaged"))
    assert [record["status"] for record in records] == ["finished"] * 3
    assert records[0]["final_val_loss"] == records[1]["final_val_loss"] == records[2]["final_val_loss"]
    assert records[1]["time_s"]["compile"] < records[0]["time_s"]["compile"]
    assert (tmp_path / "cache" / f"{stack_key(CPU)}.damaged").is_dir()
