"""Trial ids computed before the run lifecycle moved into one owner (issue 26): records and sweep
directories on disk are found by these ids, so a change to how identity is computed must not move them."""

from __future__ import annotations

import pytest
from compose import compose_config
from omegaconf import OmegaConf

from lion_bench.checks import resolved_config
from lion_bench.identity import config_trial_dir_name, config_trial_id, trial_id_of

# (overrides, trial id, directory name), computed at commit bf7692f (plan.config_trial_id) on a CPU machine.
PINNED = [
    (["task=quadratic", "device=cpu"], "df8a15313cdc", "lion_seed0_df8a15313cdc"),
    (["task=quadratic", "device=cpu", "optimizer=adamw", "seed=3"], "de2b1e9219c2", "adamw_seed3_de2b1e9219c2"),
    (["task=mlp", "device=cpu", "trainer.max_steps=50"], "8ea74fe120b4", "lion_seed0_8ea74fe120b4"),
    (["task=mlp", "device=cpu", "optimizer.lr_divisor=10", "trainer.schedule.warmup_steps=20"], "0a14dc8360c9",
     "lion_seed0_0a14dc8360c9"),
    (["sweep=quickstart", "arm=adamw", "task=quadratic", "device=cpu"], "792227e4831b", "adamw_seed0_792227e4831b"),
    (["task=image", "device=cpu", "trainer.precision=auto"], "2f1e7dcf7d18", "lion_seed0_2f1e7dcf7d18"),
]


@pytest.mark.parametrize("overrides, trial_id, dir_name", PINNED)
def test_trial_ids_are_those_computed_before(overrides, trial_id, dir_name):
    cfg = compose_config(overrides)
    config = resolved_config(cfg)
    assert config_trial_id(config) == trial_id == trial_id_of(cfg)
    assert config_trial_dir_name(config) == dir_name


def test_a_config_with_a_bad_value_keeps_its_id():
    """A trial with bad input is still named (and its failure recorded) by the id it always had."""
    config = OmegaConf.to_container(compose_config(["task=quadratic", "device=cpu", "trainer.max_steps=1e999"]),
                                    resolve=True)
    assert config_trial_id(config) == "acf2871449f4"
