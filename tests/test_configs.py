"""Every option of every config group composes and resolves."""

from __future__ import annotations

from importlib.resources import files

import pytest
from omegaconf import OmegaConf

from compose import compose_config

from lion_bench import schema
from lion_bench.optimizers.registry import OPTIMIZERS
from lion_bench.checks import input_problems, resolved_config
from lion_bench.runs.loggers import LOGGERS
from lion_bench.tasks import TASKS

CONFIG_ROOT = files("lion_bench.configs")
GROUPS = ("optimizer", "task", "trainer", "logger", "arm")


def options(group: str) -> list[str]:
    return sorted(entry.name.removesuffix(".yaml") for entry in CONFIG_ROOT.joinpath(group).iterdir()
                  if entry.name.endswith(".yaml"))


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_group_option_composes(group, option):
    # The grid arms read their lr divisor from a preset's sweep.grid (sweep=tuned, sweep=quickstart).
    needs_grid = group == "arm" and option in ("adamw_grid", "lion_own_grid")
    cfg = compose_config([f"{group}={option}", *(["sweep=tuned"] if needs_grid else [])])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if group == "trainer":
        assert resolved["trainer"]["max_steps"] >= 1
    elif group == "arm":
        assert resolved["arm"] == option and resolved["optimizer"]["name"] in ("adamw", "lion")
    else:
        assert resolved[group]["name"]
    assert resolved["base"]["lr"] > 0
    assert input_problems(resolved) == []  # the schema accepts every shipped option


@pytest.mark.parametrize("preset", options("sweep"))
def test_every_sweep_preset_passes_the_checks(preset):
    assert input_problems(resolved_config(compose_config([f"sweep={preset}"]))) == []


def test_the_schema_knows_every_registered_name():
    assert set(schema.OPTIMIZERS) == set(OPTIMIZERS)
    assert set(schema.TASKS) == set(TASKS)
    assert set(schema.LOGGERS) == set(LOGGERS)


def test_defaults_are_lion_on_text():
    cfg = compose_config()
    assert cfg.optimizer.name == "lion" and cfg.task.name == "text"
    assert cfg.base.lr == cfg.task.base_lr
