"""Several trials of a sweep on one GPU: the ``packed`` and ``workers`` launchers.

    lion-bench -m sweep=lr_grid hydra/launcher=packed                          # 4 trials as one batched model
    lion-bench -m sweep=lr_grid hydra/launcher=workers                         # 4 processes share the GPU
    lion-bench -m sweep=lr_grid hydra/launcher=packed hydra.launcher.workers=2 # 2 processes, each packs 4

``pack`` (trials trained as one batched model by ``sweeps/packed.py``) and ``workers`` (processes, each
taking the next group of trials as it finishes one) combine; ``gpus`` spreads the workers over GPUs.
Trials can share a pack when the batched forward pass is the same for all: the same task, data and model
(``task`` but its AdamW reference and evaluation settings; no dropout), micro-batch (``trainer.batch_size``,
``trainer.grad_accum_steps``), precision, device and compilation; everything else may differ (seed,
optimizer and its lr, weight decay and betas, schedule, steps, clipping, evaluation). Trials are packed
in job order, each with the next ones of its kind.

Every trial keeps the sweep's rules: its lock is taken before it trains (a trial that another process
holds is ``busy`` and left out of the pack; one already finished or diverged is ``skipped``), it
resumes from its own checkpoint, its failure is recorded and the sweep goes on, and its record is
written to its own directory as if it ran alone. A pack never trains a trial whose lock it does not
hold, and reports only the trials it trained. Hydra's progress line, ``.hydra/`` files and callbacks
are those of the basic launcher, per trial.

Hydra finds launchers only under the ``hydra_plugins`` package: ``hydra_plugins/lion_bench_launcher``
holds the class Hydra instantiates, which calls ``launch`` here; the presets are
``configs/hydra/launcher/{packed,workers}.yaml``.
"""

from __future__ import annotations

import copy
import json
import logging
import multiprocessing
import os
import queue
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    _save_config,
    configure_log,
    env_override,
    run_job,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from lion_bench.sweeps.packed import train_packed
from lion_bench.runs.errors import BadInput, Interrupted
from lion_bench.runs.loggers import build_loggers
from lion_bench.runs.record import Outcome, RunRecord
from lion_bench.sweeps.resume import Attempt, record_attempt

log = logging.getLogger(__name__)


def packing_key(config: DictConfig) -> str | None:
    """What trials must share to be packed together (see the module's doc), as a string; None for a
    trial that trains alone (dropout, or a config that does not resolve: it fails on its own)."""
    try:
        job = OmegaConf.to_container(OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]), resolve=True)
        task, trainer = job["task"], job["trainer"]
        if float((task.get("model") or {}).get("dropout") or 0.0) > 0.0:
            return None
        # The task's own keys but its AdamW reference and evaluation: the same model, data and loss for all.
        shared_task = {key: value for key, value in task.items() if key not in ("base_lr", "base_weight_decay", "eval")}
        return json.dumps({"task": shared_task, "batch_size": trainer["batch_size"],
                           "grad_accum_steps": trainer["grad_accum_steps"], "precision": trainer["precision"],
                           "compile": trainer["compile"], "device": job["device"]}, sort_keys=True, default=str)
    except Exception:  # noqa: BLE001 - a config that does not resolve: its trial reports the problem alone
        return None


def group_jobs(configs: Sequence[DictConfig], pack: int) -> list[list[int]]:
    """Indices of ``configs`` in groups of at most ``pack`` trials with the same packing key, in job
    order (a group starts at the first job not yet placed); trials that cannot be packed alone."""
    if pack <= 1:
        return [[index] for index in range(len(configs))]
    open_groups: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for index, config in enumerate(configs):
        key = packing_key(config)
        group = open_groups.get(key) if key is not None else None
        if group is None or len(group) >= pack:
            group = [index]
            groups.append(group)
            if key is not None:
                open_groups[key] = group
        else:
            group.append(index)
    return groups


@dataclass
class PreparedJob:
    """One trial of a pack, set up as Hydra's ``run_job`` sets up a job before calling the task."""

    config: DictConfig  # with its hydra node
    task_cfg: DictConfig  # without it: what the task function would get
    run_dir: Path
    job_return: JobReturn


def prepare_job(hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> PreparedJob:
    """``hydra.core.utils.run_job`` up to the call of the task function: the job's directory, its
    ``.hydra/`` files and the ``on_job_start`` callbacks. (No ``hydra.job.chdir``: lion-bench's config
    turns it off.)"""
    HydraConfig.instance().set_config(config)
    output_dir = os.path.join(str(OmegaConf.select(config, "hydra.sweep.dir")),
                              str(OmegaConf.select(config, "hydra.sweep.subdir")))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    HydraConfig.instance().set_config(config)
    task_cfg = copy.deepcopy(config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    job_return = JobReturn()
    job_return.cfg = task_cfg
    job_return.hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)
    job_return.overrides = OmegaConf.to_container(config.hydra.overrides.task)
    job_return.working_dir = os.getcwd()
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    if config.hydra.output_subdir is not None:
        hydra_output = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
        _save_config(task_cfg, "config.yaml", hydra_output)
        _save_config(job_return.hydra_cfg, "hydra.yaml", hydra_output)
        _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)
    with env_override(job_return.hydra_cfg.hydra.job.env_set):
        hydra_context.callbacks.on_job_start(config=config, task_function=task_function)
    job_return.task_name = JobRuntime.instance().get("name")
    return PreparedJob(config, task_cfg, Path(output_dir), job_return)


def _summary(record: RunRecord, run_dir: Path) -> str:
    loss = record.final_val_loss
    speed = f", {record.train_tokens_per_s:.0f} {record.unit}/s" if record.train_tokens_per_s else ""
    return (f"[{record.status.value}] {run_dir.name}: val loss {loss:.4f} | {record.steps} steps, "
            f"{record.time_s.get('total', 0.0):.1f} s{speed} (packed)")


def run_packed(hydra_context: HydraContext, task_function: TaskFunction, configs: list[DictConfig]) -> list[JobReturn]:
    """Train the trials of ``configs`` as one pack: each one's lock is taken (busy and finished ones
    are left out as the basic launcher's trials would be), the rest train together, and each attempt
    is recorded in its own directory."""
    original_hydra_cfg = HydraConfig.instance().cfg
    jobs = [prepare_job(hydra_context, task_function, config) for config in configs]
    configure_log(configs[0].hydra.job_logging, configs[0].hydra.verbose)
    claimed: list[tuple[PreparedJob, Attempt]] = []
    try:
        for job in jobs:
            job.job_return.status = JobStatus.COMPLETED
            attempt = Attempt(job.task_cfg, job.run_dir)
            if attempt.claim():
                claimed.append((job, attempt))
            else:
                job.job_return.return_value = attempt.objective  # busy or skipped
        try:
            results = train_packed([(job.task_cfg, job.run_dir, build_loggers(job.task_cfg, job.run_dir))
                                    for job, _ in claimed])
        except KeyboardInterrupt:
            for _, attempt in claimed:
                attempt.interrupted()
            raise
        for (job, attempt), result in zip(claimed, results):
            if isinstance(result, RunRecord):
                attempt.finished(result)
                print(_summary(result, job.run_dir), flush=True)
            else:
                try:
                    raise result
                except Exception:  # noqa: BLE001 - raised so that its traceback is written beside the record
                    attempt.failed()
            job.job_return.return_value = attempt.objective
    finally:
        for _, attempt in claimed:
            attempt.release()
    for job in jobs:
        HydraConfig.instance().set_config(job.config)
        hydra_context.callbacks.on_job_end(config=job.config, job_return=job.job_return)
    HydraConfig.instance().cfg = original_hydra_cfg
    return [job.job_return for job in jobs]


def run_group(hydra_context: HydraContext, task_function: TaskFunction, configs: list[DictConfig]) -> list[JobReturn]:
    """One trial as the basic launcher runs it, or several as a pack."""
    if len(configs) == 1:
        return [run_job(hydra_context=hydra_context, task_function=task_function, config=configs[0],
                        job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")]
    return run_packed(hydra_context, task_function, configs)


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _worker(job_name: str, hydra_context: HydraContext, task_function: TaskFunction, tasks: Any, results: Any,
            gpu: int | None) -> None:
    """A worker process: takes groups from ``tasks`` until it gets None and puts ``(index, job returns)``
    on ``results``. It sets up what Hydra's main process set up that ``run_job`` reads (the resolvers,
    the job's name); the sweep configs were composed there. An interrupt (Ctrl-C reaches every process
    of the terminal; the launcher sends SIGTERM) is recorded by the trial it stops and ends this worker."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before anything here starts CUDA
    signal.signal(signal.SIGTERM, _interrupt)
    setup_globals()
    JobRuntime.instance().set("name", job_name)
    try:
        while (task := tasks.get()) is not None:
            index, configs = task
            try:
                results.put((index, run_group(hydra_context, task_function, configs)))
            except KeyboardInterrupt:
                results.put((index, None))
                return
    except KeyboardInterrupt:  # between trials: nothing to record
        return


def _run_in_workers(hydra_context: HydraContext, task_function: TaskFunction, configs: list[DictConfig],
                    groups: list[list[int]], workers: int, gpus: list[int]) -> list[list[JobReturn] | None]:
    """The groups over ``workers`` spawned processes (spawn, not fork: each starts CUDA itself; they
    inherit the environment, with the sweep run's tag that the summary counts attempts by), each taking
    the next group when done with one. Ctrl-C or SIGTERM here stops the workers (SIGTERM: each trial in
    training is closed as interrupted, its checkpoint kept) and is raised. A group whose worker died or
    was interrupted has None."""
    context = multiprocessing.get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    num_workers = min(workers, len(groups))
    for index, group in enumerate(groups):
        tasks.put((index, [configs[i] for i in group]))
    for _ in range(num_workers):
        tasks.put(None)
    job_name = JobRuntime.instance().get("name")
    processes = [context.Process(target=_worker, name=f"lion-bench worker {number}",
                                 args=(job_name, hydra_context, task_function, tasks, results,
                                       gpus[number % len(gpus)] if gpus else None))
                 for number in range(num_workers)]
    for process in processes:
        process.start()
    returns: dict[int, list[JobReturn] | None] = {}
    try:
        while len(returns) < len(groups):
            try:
                index, group_returns = results.get(timeout=1.0)
            except queue.Empty:
                if not any(process.is_alive() for process in processes):
                    break  # every worker is gone: the groups left have no result
                continue
            returns[index] = group_returns
    except KeyboardInterrupt:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
        raise
    for process in processes:
        process.join()
    return [returns.get(index) for index in range(len(groups))]


def _lost(config: DictConfig) -> JobReturn:
    """The job return of a trial whose worker process died (or was interrupted) before reporting it:
    recorded as a failed attempt, so the summary exits 1; the next run of the command resumes it."""
    HydraConfig.instance().set_config(config)
    sweep_dir, subdir = (str(OmegaConf.select(config, f"hydra.sweep.{key}")) for key in ("dir", "subdir"))
    run_dir = Path(sweep_dir) / subdir
    run_dir.mkdir(parents=True, exist_ok=True)
    record_attempt(run_dir, Outcome.FAILED)
    log.error(f"trial {run_dir.name}: its worker process ended without reporting it; rerun the same command to "
              "resume it")
    job_return = JobReturn()
    job_return.status, job_return.return_value = JobStatus.COMPLETED, float("nan")
    return job_return


def check_launcher_settings(pack: Any, workers: Any, gpus: Any) -> None:
    """``hydra.launcher.{pack,workers,gpus}``; BadInput saying what to set."""
    for key, value in (("pack", pack), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadInput(f"hydra.launcher.{key} must be a whole number >= 1, got {value!r}")
    if gpus is not None and (not isinstance(gpus, Sequence) or isinstance(gpus, str) or not gpus
                             or not all(isinstance(gpu, int) and not isinstance(gpu, bool) and gpu >= 0 for gpu in gpus)):
        raise BadInput(f"hydra.launcher.gpus must be null or a list of GPU indices such as [0,1], got {gpus!r}")
    if gpus and workers == 1:
        raise BadInput("hydra.launcher.gpus spreads worker processes over GPUs: set hydra.launcher.workers >= 2 "
                       "(one process on one GPU: CUDA_VISIBLE_DEVICES=N lion-bench ...)")


def launch(hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig,
           job_overrides: Sequence[Sequence[str]], initial_job_idx: int, *, pack: int = 1, workers: int = 1,
           gpus: Sequence[int] | None = None) -> list[JobReturn]:
    """Run every job of ``job_overrides``: in groups of up to ``pack`` (see ``group_jobs``), over
    ``workers`` processes (each takes the next group when it is done with one; 1: this process). With
    ``gpus`` (GPU indices), worker i sees only GPU ``gpus[i % len(gpus)]`` (CUDA_VISIBLE_DEVICES)."""
    check_launcher_settings(pack, workers, gpus)
    gpus = list(gpus) if gpus else []
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    configs = []
    for offset, overrides in enumerate(job_overrides):
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = sweep_config.hydra.job.num = initial_job_idx + offset
        configs.append(sweep_config)
    groups = group_jobs(configs, pack)
    log.info(f"Launching {len(configs)} jobs in {len(groups)} group(s) of up to {pack}, {workers} worker process(es)")
    if workers == 1 or (len(groups) == 1 and not gpus):
        returns = [run_group(hydra_context, task_function, [configs[i] for i in group]) for group in groups]
    else:
        returns = _run_in_workers(hydra_context, task_function, configs, groups, workers, gpus)
        original_hydra_cfg = HydraConfig.instance().cfg
        returns = [group_returns if group_returns is not None else [_lost(configs[i]) for i in group]
                   for group, group_returns in zip(groups, returns)]
        HydraConfig.instance().cfg = original_hydra_cfg
    by_index = {index: job_return for group, group_returns in zip(groups, returns)
                for index, job_return in zip(group, group_returns)}
    return [by_index[index] for index in range(len(configs))]
