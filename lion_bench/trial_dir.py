"""The ``${trial_dir:}`` resolver (configs/train.yaml): each run's and sweep trial's directory is named by
its trial id (``identity.config_trial_dir_name``). Registered when this module is imported, which the
entry point does: Hydra resolves the name while composing, and a launcher's worker process imports the
entry point when it unpickles the task function, before it names the job's directory."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lion_bench.identity import config_trial_dir_name
from lion_bench.runs.store import prepare_run_dir

# The files Hydra writes in a job's .hydra directory.
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def _trial_dir(*, _root_: DictConfig) -> str:
    """``${trial_dir:}``: the job's directory name from its config (the hydra node aside, as the task
    function sees it, so the name's id is the one in run.json). Never raises: a config that does not
    resolve is named by what it says, and the trial reports the problem.

    Hydra names the directory just before it creates it (and its ``.hydra``), so this is also where
    whatever stands in their way is set aside (``runs.store.prepare_run_dir``): a file or symbolic
    link at the trial's path would stop Hydra, and with it the whole sweep."""
    job = OmegaConf.masked_copy(_root_, [key for key in _root_ if key != "hydra"])
    try:
        config = OmegaConf.to_container(job, resolve=True)
    except Exception:  # noqa: BLE001
        config = OmegaConf.to_container(job, resolve=False)
    name = config_trial_dir_name(config)
    try:  # a sweep's trial only: a single run's directory is named by this resolver too
        multirun = str(OmegaConf.select(_root_, "hydra.mode", default="")) == "RunMode.MULTIRUN"
        sweep_dir = OmegaConf.select(_root_, "hydra.sweep.dir", default=None) if multirun else None
    except Exception:  # noqa: BLE001 - Hydra reports a sweep directory that does not resolve
        sweep_dir = None
    if sweep_dir is not None:
        prepare_run_dir(Path(str(sweep_dir)) / name, HYDRA_FILES)
    return name


OmegaConf.register_new_resolver("trial_dir", _trial_dir, replace=True)
