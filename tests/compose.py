"""Helpers shared by the tests (imported as ``from compose import ...``): the real Hydra config tree composed
with overrides, tiny-model overrides, a logger that interrupts a run."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

CONFIG_MODULE = "lion_bench.configs"

# Overrides that make the text task train in a second or two on 2 CPU cores.
TINY_TEXT = [
    "task.data.max_bytes=200000",
    "task.model.seq_len=32",
    "task.model.d_model=32",
    "task.model.n_layer=1",
    "task.model.n_head=2",
    "task.eval.num_windows=16",
    "trainer.batch_size=8",
    "trainer.progress=false",
]


def compose_config(overrides: list[str] = ()) -> DictConfig:
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


class InterruptAt:
    """A logger that stops the run at ``step`` the way Ctrl-C or SLURM's SIGTERM would."""

    def __init__(self, step: int):
        self.step = step

    def log(self, row):
        if row["step"] == self.step:
            raise KeyboardInterrupt

    def finish(self, record):
        pass
