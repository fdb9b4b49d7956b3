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

import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lion_bench import command_line, user_tasks
from lion_bench.command_line import shown_path
from lion_bench.plan import plan_run
from lion_bench.runs.errors import BadInput
from lion_bench.runs.loggers import build_loggers
from lion_bench.runs.record import RunRecord
from lion_bench.runs.store import RUN_FILE, remove_unused_run_dir
from lion_bench.sweeps.resume import (claim_trial, record_attempt, record_failure, record_result, run_record_mtime_ns,
                                      run_trial, skip_if_done, trial_id_of)
from lion_bench.trainer import train


LINE_WIDTH = 100  # terminal lines; everything else is in the run's directory
SHORT_UNITS = {"tokens": "tok"}


def _rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def summary_line(record: RunRecord) -> str:
    """The run's line, at most LINE_WIDTH characters: status, arm (or optimizer), lr, weight decay when
    on, the ratios where no arm names them, seed, the result, time and steady throughput. What does
    not fit is left out: the step count first, then the ratios (run.json has everything)."""
    hyper, options = record.hyperparameters, record.config.get("optimizer", {})
    by_name = not record.arm  # an arm's name says its ratios
    optional = {  # left out in this order when the line is too long
        "steps": f"{record.steps} steps, ",
        "wd_ratio": f" (base*{hyper['wd_multiplier']:g})" if by_name and hyper["wd_multiplier"] != 1 else "",
        "lr_ratio": f" (base/{hyper['lr_divisor']:g})" if by_name and hyper["lr_divisor"] != 1 else "",
        "speed": f", {_rate(record.train_tokens_per_s)} {SHORT_UNITS.get(record.unit, record.unit)}/s"
                 if record.train_tokens_per_s else "",
    }
    bpc = record.final.get("val_bpc")
    if record.status.value == "diverged":
        result = f"at step {record.diverged_at_step}"
    elif math.isfinite(record.final_val_loss):
        result = f"val loss {record.final_val_loss:.4f}"
        result += f" ({bpc:.3f} bpc)" if isinstance(bpc, float) and math.isfinite(bpc) else ""
    else:
        result = "no val loss"
    flags = "".join(f" {flag}" for flag in ("cautious", "decoupled_weight_decay", "decay_vectors") if options.get(flag))

    def line() -> str:
        decay = f" wd={hyper['weight_decay']:.3g}{optional['wd_ratio']}" if hyper["weight_decay"] else ""
        return (f"[{record.status.value}] {record.arm or record.optimizer} lr={hyper['lr']:.3g}{optional['lr_ratio']}"
                f"{decay}{flags} seed {record.seed}: {result} | {optional['steps']}{record.time_s['total']:.1f} s"
                f"{optional['speed']}")

    for part in optional:
        if len(line()) <= LINE_WIDTH:
            break
        optional[part] = ""
    return line()


def run_one(cfg: DictConfig, run_dir: Path) -> RunRecord:
    """Check the config (bad input raises BadInput before a logger opens or a file is written), open
    the loggers, train, and print the summary line."""
    plan = plan_run(cfg)
    loggers = build_loggers(cfg, run_dir)
    record = train(cfg, run_dir, loggers, plan)
    print(summary_line(record))
    print(f"run record: {shown_path(run_dir / RUN_FILE)}")
    return record


def run_task(cfg: DictConfig) -> float:
    """Hydra's task function: one run, or one trial of a sweep, each in the directory its trial id names. A
    plain module-level function (Hydra's decorator wraps it below), so launchers that run trials in other
    processes can pickle it."""
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    if hydra_config.mode == RunMode.MULTIRUN:
        # A sweep trial: skipped if done or busy, resumed if not, failures recorded, not raised.
        return run_trial(cfg, run_dir, lambda: run_one(cfg, run_dir))
    return run_single(cfg, run_dir)


def run_single(cfg: DictConfig, run_dir: Path) -> float:
    """A single run: like a sweep's trial (skipped if done, resumed if interrupted, its lock held), but a
    failure or another process holding it exits 1, and bad input found once the task is built (what a
    plugin's methods return) is one line, exit 2, with its directory removed."""
    lock = claim_trial(run_dir)
    if lock is None:
        raise SystemExit(1)  # its line is out: who holds the run
    try:
        done = skip_if_done(run_dir, trial_id_of(cfg))
        if done is not None:
            print(f"run record: {shown_path(run_dir / RUN_FILE)} (done; to train it again: another seed=, or "
                  "remove its directory)")
            return done
        before = run_record_mtime_ns(run_dir)
        try:
            record = run_one(cfg, run_dir)
        except BadInput as error:
            lock.release()
            remove_unused_run_dir(run_dir, Path(cfg.output_root))
            command_line.fail(str(error))
        except KeyboardInterrupt:
            record_attempt(run_dir, "interrupted")
            raise
        except Exception as error:
            record_failure(cfg, run_dir, error, before)
            raise SystemExit(1) from None  # its line is out: the error, and traceback.txt beside the record
        return record_result(run_dir, record)
    finally:
        lock.release()


hydra_main = hydra.main(config_path="pkg://lion_bench.configs", config_name="train", version_base="1.3")(run_task)


def main() -> None:
    """The console script: plugin tasks' configs registered and the command-line checks, then Hydra;
    bad input and interrupts end in one line."""
    problem = user_tasks.prepare(sys.argv[1:])  # your own tasks and config directories (docs/your_own_task.md)
    if problem:
        command_line.fail(problem)
    command_line.run(hydra_main)


if __name__ == "__main__":
    main()
