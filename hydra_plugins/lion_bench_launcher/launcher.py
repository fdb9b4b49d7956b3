"""The class that ``configs/hydra/launcher/{packed,workers}.yaml`` name (see lion_bench.sweeps.launcher)."""

from __future__ import annotations

from typing import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from lion_bench.sweeps.launcher import check_launcher_settings, launch


class LionBenchLauncher(Launcher):
    """Runs a sweep's trials in packs of ``pack`` (one batched model per pack) over ``workers`` processes,
    spread over the GPUs ``gpus`` (None: every worker sees what this process sees)."""

    def __init__(self, pack: int = 1, workers: int = 1, gpus: Sequence[int] | None = None) -> None:
        self.pack, self.workers, self.gpus = pack, workers, gpus  # checked in setup
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Bad settings are refused here, before the sweeper writes anything (BadInput: one line, exit 2)."""
        check_launcher_settings(self.pack, self.workers, self.gpus)
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        return launch(self.hydra_context, self.task_function, self.config, job_overrides, initial_job_idx,
                      pack=self.pack, workers=self.workers, gpus=list(self.gpus) if self.gpus else None)
