"""lion-bench: train one model with Lion or AdamW and record the result.

    lion-bench                                       # Lion (lr = base.lr / 3) on the embedded corpus
    lion-bench optimizer=adamw trainer.max_steps=50  # the AdamW baseline, 50 steps
    lion-bench optimizer.lr_divisor=10 seed=1        # ratio space: Lion at AdamW's lr / 10
    lion-bench task=quadratic device=cpu             # another task, device override
    lion-bench -m optimizer=adamw,lion seed=0,1,2    # a Hydra multirun
    lion-bench -m sweep=lr_ratio                     # a preset sweep (configs/sweep/); rerun to resume it
    lion-bench task=diabetes                         # a task from an installed package (lion-bench-tasks lists them)

Each run's directory (named by its trial id, so the same command finds it: resumed when interrupted,
reported when done) holds config.yaml, metrics.jsonl and run.json (see docs/runs.md). lion-bench --help
lists the config groups; bad input is refused with one line and exit status 2 before anything is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lion_bench import command_line, trial_dir, user_tasks  # noqa: F401 - trial_dir registers ${trial_dir:}
from lion_bench.plan import plan_run
from lion_bench.runs.errors import BadInput
from lion_bench.runs.lines import run_line
from lion_bench.runs.loggers import build_loggers
from lion_bench.runs.record import Outcome, RunRecord
from lion_bench.runs.store import RUN_FILE, remove_unused_run_dir
from lion_bench.sweeps.resume import run_attempt
from lion_bench.trainer import build_early, train_run


def run_one(cfg: DictConfig, run_dir: Path, prepared: tuple | None = None) -> RunRecord:
    """Plan (or take ``prepared``: the plan and the run ``build_early`` built), train, print the run's line."""
    plan, built = prepared or (plan_run(cfg), None)
    record = train_run(cfg, run_dir, build_loggers(cfg, run_dir), plan, built)
    print(run_line(record))
    print(f"run record: {command_line.shown_path(run_dir / RUN_FILE)}")
    return record


def run_task(cfg: DictConfig) -> float:
    """Hydra's task function (module-level: launchers pickle it): one attempt at the run or sweep trial in
    its trial's directory (``sweeps.resume.run_attempt``). A sweep goes on past a failed trial; a single
    run exits 1, or 2 with one line for bad input the task finds, its directory left as it was."""
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    if hydra_config.mode == RunMode.MULTIRUN:
        return run_attempt(cfg, run_dir, lambda: run_one(cfg, run_dir)).objective
    try:
        attempt = run_attempt(cfg, run_dir, lambda prepared: run_one(cfg, run_dir, prepared),
                              prepare=lambda: (plan := plan_run(cfg), build_early(plan, run_dir)))
    except BadInput as error:
        remove_unused_run_dir(run_dir, Path(cfg.output_root))
        command_line.fail(str(error))
    if attempt.outcome is Outcome.SKIPPED:
        print(f"run record: {command_line.shown_path(run_dir / RUN_FILE)} (done; to train it again: another "
              "seed=, or remove its directory)")
    elif attempt.outcome in (Outcome.BUSY, Outcome.FAILED):
        raise SystemExit(1)  # its line is out: who holds the run, or the error (traceback.txt beside the record)
    return attempt.objective


hydra_main = hydra.main(config_path="pkg://lion_bench.configs", config_name="train", version_base="1.3")(run_task)


def main() -> None:
    """The console script: plugin tasks' configs registered, the command-line checks, then Hydra."""
    problem = user_tasks.prepare(sys.argv[1:])  # your own tasks and config directories (docs/your_own_task.md)
    if problem:
        command_line.fail(problem)
    command_line.run(hydra_main)


if __name__ == "__main__":
    main()
