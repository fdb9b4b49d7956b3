"""Tasks from other packages (entry-point group lion_bench.tasks): found, checked, registered by name;
a broken one is one line naming its package, exit status 2 and nothing written, and only when it is
selected; what a plugin's methods return is checked against the contract.

Each test makes its distributions on the fly (plugin_packages.py) in a directory put on sys.path."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from plugin_packages import LINE_TASK, add_distribution
from test_bad_input import assert_refused, run_entry_point

from compose import InterruptAt, compose_config
from lion_bench import user_tasks
from lion_bench.checks import input_problems, resolved_config
from lion_bench.runs.record import Status
from lion_bench.runs.store import read_record
from lion_bench.tasks import PluginError, check_task_data, plugins, task_class
from lion_bench.tasks.plugins import load_plugins
from lion_bench.trainer import train

CPU = torch.device("cpu")
FAST = ["trainer.max_steps=4", "trainer.schedule.warmup_steps=0", "trainer.progress=false", "trainer.eval_every=2",
        "device=cpu"]
_numbers = itertools.count()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path for distributions; plugins are loaded afresh in each test and the configs
    the test registered leave Hydra's ConfigStore afterwards."""
    directory = tmp_path / "site"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    load_plugins.cache_clear()
    before = set(ConfigStore.instance().repo.get("task", {}))
    yield directory
    load_plugins.cache_clear()
    for name in set(ConfigStore.instance().repo.get("task", {})) - before:
        del ConfigStore.instance().repo["task"][name]


def install(site: Path, name: str, source: str, distribution: str | None = None, attribute: str = "LineTask") -> str:
    """A distribution declaring task ``name`` = ``attribute`` of a new module holding ``source``."""
    module = f"plugin_module_{next(_numbers)}"
    add_distribution(site, distribution or f"plugin-{name}", {name: f"{module}:{attribute}"}, {module: source})
    return module


def subclass(body: str) -> str:
    """LINE_TASK plus a subclass ``Changed`` of LineTask with ``body``."""
    return LINE_TASK + "\n\nclass Changed(LineTask):\n" + "\n".join(f"    {line}" for line in body.splitlines())


# --- broken plugins: each is refused with what is wrong, naming its package -------------------------
BROKEN = [
    ("import_error", "import not_a_module_anywhere\n" + LINE_TASK, "LineTask",
     "failed: ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    ("missing_method", LINE_TASK.replace("    def loss(self", "    def not_loss(self"), "LineTask",
     "LineTask lacks the method(s) loss of the Task contract"),
    ("not_a_task", "class LineTask:\n    pass\n", "LineTask", "is not a subclass of lion_bench.tasks.base.Task"),
    ("no_version", LINE_TASK.replace("    api_version = 1\n", ""), "LineTask",
     "does not declare the contract version it implements: set api_version = 1"),
    ("newer_version", LINE_TASK.replace("api_version = 1", "api_version = 99"), "LineTask",
     "Task contract version 99, newer than this lion-bench's 1"),
    ("no_config", LINE_TASK.replace("    default_config = {", "    _unused = {"), "LineTask",
     "LineTask.default_config must be a dict"),
    ("no_base_lr", LINE_TASK.replace('"base_lr": 0.05, ', ""), "LineTask",
     "does not pass its config_schema: task.base_lr is missing"),
    ("null_default", LINE_TASK.replace('"noise": 0.1', '"noise": None'), "LineTask",
     "default_config's task.noise is None: declare its type in config_schema"),
    ("bad_default", subclass('config_schema = {"noise": Float(1)}').replace("import torch\n",
     "import torch\nfrom lion_bench.schema import Float\n", 1), "Changed",
     "does not pass its config_schema: task.noise must be a number >= 1, got 0.1"),
    ("bad_declaration", subclass('config_schema = {"noise": "float"}'), "Changed",
     "config_schema for task.noise must be a lion_bench.schema spec"),
    ("target_in_config", subclass('default_config = {**LineTask.default_config, "_target_": "os.system"}'), "Changed",
     "never instantiates a class from the config"),
]


@pytest.mark.parametrize("case, source, attribute, problem", BROKEN, ids=[case[0] for case in BROKEN])
def test_a_broken_plugin_says_what_is_wrong(site, case, source, attribute, problem):
    install(site, case, source, attribute=attribute)
    plugin = plugins()[case]
    assert plugin.task_class is None and problem in plugin.problem
    with pytest.raises(PluginError) as error:
        task_class(case)
    message = str(error.value)
    assert f"package plugin-{case} 0.1" in message and problem in message and "\n" not in message


def test_names_of_built_in_tasks_and_configs_are_taken(site):
    for name in ("text", "enwik8_12l"):
        install(site, name, LINE_TASK)
    assert "clashes with lion-bench's own task 'text'" in plugins()["text"].problem
    assert "clashes with lion-bench's own task 'enwik8_12l'" in plugins()["enwik8_12l"].problem
    assert task_class("text").__name__ == "TextTask"  # the built-in task stays what it was


def test_one_name_from_two_packages_is_refused_for_both(site):
    install(site, "line", LINE_TASK, distribution="first-line")
    install(site, "line", LINE_TASK, distribution="second-line")
    with pytest.raises(PluginError, match=r"declared by several packages \(first-line, second-line\)"):
        task_class("line")


def test_a_broken_plugin_does_not_break_the_others(site):
    install(site, "broken", "raise RuntimeError('boom')\n")
    install(site, "line", LINE_TASK)
    assert plugins()["broken"].problem.endswith(":LineTask failed: RuntimeError: boom")
    assert task_class("line").__name__ == "LineTask" and task_class("quadratic").__name__ == "QuadraticTask"


# --- a working plugin gets what a built-in task gets ---------------------------------------------
def plugin_config(overrides=()):
    user_tasks.register_task_configs()
    return compose_config(["task=line", *FAST, *overrides])


def test_a_plugin_task_trains_and_records_its_package(site, tmp_path):
    install(site, "line", LINE_TASK, distribution="line-plugin")
    cfg = plugin_config()
    assert input_problems(resolved_config(cfg)) == []
    record = train(cfg, tmp_path / "run")
    assert record.status is Status.FINISHED and record.task == "line" and record.final_val_loss < 10
    assert record.data["plugin"] == {"package": "line-plugin", "version": "0.1"}
    assert read_record(tmp_path / "run").trial_id == record.trial_id


def test_an_interrupted_plugin_run_resumes_to_the_same_result(site, tmp_path):
    install(site, "line", LINE_TASK)
    overrides = ["trainer.max_steps=8", "trainer.log_every=1", "trainer.checkpoint_every=3", "trainer.eval_every=4"]
    whole = train(plugin_config(overrides), tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(plugin_config(overrides), tmp_path / "resumed", loggers=[InterruptAt(5)])
    resumed = train(plugin_config(overrides), tmp_path / "resumed")
    assert resumed.resumed_from_step == 3 and resumed.trial_id == whole.trial_id
    assert resumed.final_val_loss == whole.final_val_loss and resumed.steps == whole.steps == 8


@pytest.mark.parametrize("override, message", [
    ("+task.nosuch=1", "unknown config key task.nosuch; remove it (valid keys of task: base_lr, base_weight_decay, "
                       "model, name, noise)"),
    ("task.noise=abc", "task.noise must be a finite number, got 'abc'"),
    ("task.model.bias=maybe", "task.model.bias must be true or false, got 'maybe'"),
    ("task.base_lr=0", "task.base_lr must be a number > 0, got 0"),
    ("+task._target_=os.system", "task._target_: lion_bench builds optimizers, tasks and loggers by name"),
])
def test_the_schema_covers_a_plugin_tasks_keys(site, override, message):
    install(site, "line", LINE_TASK)
    problems = input_problems(resolved_config(plugin_config([override])))
    assert any(problem.message.startswith(message) for problem in problems), problems


WRONG_RETURNS = [
    ("loss", "def loss(self, model, batch):\n    return 1.5", "Changed.loss returned float, not a scalar tensor"),
    ("loss_shape", "def loss(self, model, batch):\n    x, y = batch\n    return (model(x) - y) ** 2",
     "Changed.loss returned a (8, 1) torch.float32 tensor, not a scalar"),
    ("evaluate", "def evaluate(self, model):\n    return {'loss': 1.0}", "Changed.evaluate returned no 'val_loss'"),
    ("evaluate_type", "def evaluate(self, model):\n    return {'val_loss': torch.tensor(1.0)}",
     "Changed.evaluate returned 'val_loss': tensor(1.); metrics are numbers"),
    ("build_model", "def build_model(self):\n    return 'a model'", "Changed.build_model returned str, not a torch.nn.Module"),
    ("describe", "def describe(self):\n    return {'source': object()}", "Changed.describe returned what run.json cannot"),
    ("units", "def units_per_batch(self, batch):\n    return 2.5", "Changed.units_per_batch returned 2.5"),
]


@pytest.mark.parametrize("case, body, message", WRONG_RETURNS, ids=[case[0] for case in WRONG_RETURNS])
def test_what_a_plugins_methods_return_is_checked(site, case, body, message):
    install(site, "line", subclass(body), attribute="Changed")
    task = task_class("line")(OmegaConf.create(plugins()["line"].config), batch_size=8, seed=0, device=CPU)
    with pytest.raises(PluginError) as error:
        model = task.build_model()
        batch = task.train_batch()
        task.units_per_batch(batch)
        task.loss(model, batch)
        task.evaluate(model)
        task.describe()
    assert str(error.value).startswith(f"task 'line' of package plugin-line 0.1: {message}")


def test_a_data_identity_that_is_not_text_is_refused_before_anything_runs(site):
    install(site, "line", subclass("@classmethod\ndef data_identity(cls, cfg):\n    return 3"), attribute="Changed")
    with pytest.raises(PluginError, match="Changed.data_identity returned 3, not a non-empty string"):
        check_task_data(plugins()["line"].config)


def test_a_wrong_loss_fails_the_run_in_one_line(site, tmp_path):
    install(site, "line", subclass("def loss(self, model, batch):\n    return 1.5"), attribute="Changed")
    with pytest.raises(PluginError, match="Changed.loss returned float"):
        train(plugin_config(), tmp_path / "run")
    assert read_record(tmp_path / "run").status is Status.FAILED


# --- the command line ----------------------------------------------------------------------------
def test_selecting_a_broken_plugin_is_one_line_and_exit_2(site, tmp_path, monkeypatch, capsys):
    install(site, "line", LINE_TASK.replace("    def loss(self", "    def not_loss(self"))
    for arguments in (["task=line"], ["task.name=line"], ["-m", "task=quadratic,line"]):
        code, out, err = run_entry_point(arguments, tmp_path / "out", monkeypatch, capsys)
        assert_refused(code, out, err, "task 'line' of package plugin-line 0.1 cannot be used: LineTask lacks the "
                                       "method(s) loss of the Task contract", tmp_path / "out")


def test_a_wrong_model_type_is_one_line_and_leaves_nothing(site, tmp_path, monkeypatch, capsys):
    install(site, "line", subclass("def build_model(self):\n    return 'a model'"), attribute="Changed")
    code, out, err = run_entry_point(["task=line", *FAST], tmp_path / "out", monkeypatch, capsys)
    assert_refused(code, out, err, "task 'line' of package plugin-line 0.1: Changed.build_model returned str, not a "
                                   "torch.nn.Module", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_real_command_refuses_a_plugin_with_a_missing_method(tmp_path):
    site = tmp_path / "site"
    add_distribution(site, "broken-plugin", {"broken": "broken_module:LineTask"},
                     {"broken_module": LINE_TASK.replace("    def loss(self", "    def not_loss(self")})
    environment = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "lion_bench.train", f"output_root={tmp_path / 'out'}", *FAST]
    refused = subprocess.run([*command, "task=broken"], capture_output=True, text=True, cwd=tmp_path, env=environment,
                             timeout=300)
    assert_refused(refused.returncode, refused.stdout, refused.stderr,
                   "task 'broken' of package broken-plugin 0.1 cannot be used: LineTask lacks the method(s) loss",
                   tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site"]


def test_a_broken_plugin_is_silent_until_selected_and_listed_as_broken(site, tmp_path, recwarn, capsys):
    install(site, "broken", LINE_TASK.replace("    def loss(self", "    def not_loss(self"))
    assert user_tasks.prepare(["task=quadratic", "-m", "seed=0,1"]) is None
    record = train(compose_config(["task=quadratic", *FAST]), tmp_path / "run")
    assert record.status is Status.FINISHED and not recwarn.list
    with pytest.raises(SystemExit) as listing:
        user_tasks.main([])
    assert listing.value.code == 1
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("broken ")]
    assert "plugin-broken" in line and "BROKEN: LineTask lacks the method(s) loss" in line


def test_an_unknown_task_says_how_tasks_of_your_own_are_installed():
    from lion_bench.config_names import option_problem
    from lion_bench.runs.errors import BadInput
    from lion_bench.tasks import task_class

    with pytest.raises(BadInput, match=r"unknown task 'vision'; valid tasks: .*pip install -e examples/diabetes"):
        task_class("vision")
    line = option_problem("task", "diabetes", ["image", "mlp", "text"])
    assert line.startswith("task=diabetes is not an option of task;") and "pip install -e examples/diabetes" in line
    assert "pip install" not in option_problem("optimizer", "adam", ["adamw", "lion"])
