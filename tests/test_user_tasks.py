"""Your own configs and tasks on the command line: a config directory of your own
(hydra.searchpath, --config-dir) adds task, sweep and arm configs but nothing Hydra would import and
call; plugin tasks are listed by lion-bench --help and lion-bench-tasks."""

from __future__ import annotations

import signal
import sys
import textwrap
import warnings

import pytest
from hydra.core.global_hydra import GlobalHydra
from test_bad_input import assert_refused, run_entry_point

from lion_bench.runs.store import read_record
from lion_bench.train import main
from lion_bench.user_tasks import config_directory_problem, task_rows

FAST = ["trainer.max_steps=2", "trainer.schedule.warmup_steps=0", "trainer.progress=false", "device=cpu"]
MY_QUADRATIC = """\
# A variant of a task that ships with lion-bench: its defaults, then my changes.
defaults:
  - quadratic
  - _self_
noise: 0.2
"""


def write_configs(directory, files: dict[str, str]):
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


def run_main(arguments, monkeypatch):
    """``lion-bench ARGUMENTS`` through the console script's function, in this process, for a run that works."""
    monkeypatch.setattr(sys, "argv", ["lion-bench", *arguments])
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets its own
    previous = signal.getsignal(signal.SIGTERM)
    GlobalHydra.instance().clear()
    try:
        main()
    finally:
        GlobalHydra.instance().clear()
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("how", ["searchpath", "config_dir"])
def test_a_task_config_of_your_own_directory_runs(tmp_path, monkeypatch, how):
    configs = write_configs(tmp_path / "my_configs", {"task/my_quadratic.yaml": MY_QUADRATIC})
    where = f"hydra.searchpath=[file://{configs}]" if how == "searchpath" else f"--config-dir={configs}"
    run_main([where, "task=my_quadratic", f"output_root={tmp_path / 'out'}", *FAST], monkeypatch)
    [run_dir] = (tmp_path / "out" / "runs").iterdir()
    record = read_record(run_dir)
    assert record.task == "quadratic" and record.config["task"]["noise"] == 0.2 and record.status.value == "finished"


EVIL = {
    "callback": ("sweep/evil.yaml", "# @package _global_\nhydra:\n  callbacks:\n    evil:\n      _target_: os.system\n",
                 "sets hydra.callbacks"),
    "target": ("task/evil.yaml", "defaults:\n  - quadratic\n  - _self_\nthing:\n  _target_: os.system\n",
               "sets thing._target_"),
    "launcher": ("hydra/launcher/evil.yaml", "_target_: os.system\n", "sets _target_"),
    "logging": ("hydra/job_logging/evil.yaml", "handlers:\n  h:\n    (): os.system\n", "sets handlers.h.()"),
}


@pytest.mark.parametrize("case", sorted(EVIL))
@pytest.mark.parametrize("how", ["searchpath", "config_dir"])
def test_your_config_directory_may_not_name_code_to_import(tmp_path, monkeypatch, capsys, case, how):
    name, text, message = EVIL[case]
    configs = write_configs(tmp_path / "my_configs", {"task/my_quadratic.yaml": MY_QUADRATIC, name: text})
    where = [f"hydra.searchpath=[file://{configs}]"] if how == "searchpath" else [f"--config-dir={configs}"]
    code, out, err = run_entry_point([*where, "task=my_quadratic"], tmp_path / "out", monkeypatch, capsys)
    assert_refused(code, out, err, f"{configs / name} {message}: Hydra would import and call what it names", tmp_path / "out")


def test_installed_packages_and_missing_directories_are_not_scanned(tmp_path):
    assert config_directory_problem("pkg://lion_bench.configs") is None
    assert config_directory_problem(str(tmp_path / "nowhere")) is None  # Hydra reports it


def test_lion_bench_tasks_lists_the_built_in_tasks():
    rows = {row[0]: row for row in task_rows()}
    assert {"text", "enwik8", "image", "mlp", "lstm_conv", "quadratic"} <= set(rows)
    assert rows["text"][1] == "lion-bench (built-in)" and rows["text"][3].startswith("byte-level LM")
