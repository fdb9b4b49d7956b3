"""lion-bench: train one model with Lion or AdamW and record the result.

    lion-bench                                       # Lion (lr = base.lr / 3) on the embedded corpus
    lion-bench optimizer=adamw trainer.max_steps=50  # the AdamW baseline, 50 steps
    lion-bench optimizer.lr_divisor=10 seed=1        # ratio space: Lion at AdamW's lr / 10
    lion-bench task=quadratic device=cpu             # another task, device override
    lion-bench -m optimizer=adamw,lion seed=0,1,2    # a Hydra multirun
    lion-bench -m sweep=lr_ratio                     # a preset sweep (configs/sweep/); rerun to resume it

Each run's directory (named by its trial id, so the same command finds it: resumed when interrupted,
reported when done) holds config.yaml, metrics.jsonl and run.json (see docs/runs.md). lion-bench --help
lists the config groups; bad input is refused with one line and exit status 2 before anything is written.
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lion_bench import command_line
from lion_bench.command_line import shown_path
from lion_bench.plan import plan_run
from lion_bench.runs.loggers import build_loggers
from lion_bench.runs.record import RunRecord
from lion_bench.runs.store import RUN_FILE
from lion_bench.sweeps.resume import read_attempts, run_trial
from lion_bench.trainer import train


def summary_line(record: RunRecord) -> str:
    """One line per run naming every hyperparameter an arm can change (lr, weight decay, betas, batch)."""
    hyper = record.hyperparameters
    bpc = record.final.get("val_bpc")
    metric = f" val bpc {bpc:.4f}" if isinstance(bpc, float) and math.isfinite(bpc) else ""
    speed = f", {record.train_tokens_per_s:.0f} {record.unit}/s" if record.train_tokens_per_s else ""
    options = record.config.get("optimizer", {})
    flags = "".join(f" {flag}" for flag in ("cautious", "decoupled_weight_decay", "decay_vectors") if options.get(flag))
    return (
        f"[{record.status.value}] {record.task} {record.arm or record.optimizer} ({record.optimizer}) "
        f"lr={hyper['lr']:.3g} (base/{hyper['lr_divisor']:g}) wd={hyper['weight_decay']:.3g} "
        f"(base*{hyper['wd_multiplier']:g}) betas=({', '.join(f'{beta:g}' for beta in hyper['betas'])}){flags} "
        f"batch={record.batch_size} seed={record.seed}: val loss {record.final_val_loss:.4f}{metric} | "
        f"{record.steps} steps, {record.time_s['total']:.1f} s{speed}"
    )


def run_one(cfg: DictConfig, run_dir: Path) -> RunRecord:
    """Check the config (bad input raises BadInput before a logger opens or a file is written), open
    the loggers, train, and print the summary line."""
    plan = plan_run(cfg)
    loggers = build_loggers(cfg, run_dir)
    record = train(cfg, run_dir, loggers, plan)
    print(summary_line(record))
    print(f"run record: {shown_path(run_dir / RUN_FILE)}")
    return record


@hydra.main(config_path="pkg://lion_bench.configs", config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float:
    """A sweep trial or a single run, each in the directory its trial id names: skipped if done or
    busy, resumed if interrupted, failures recorded (a sweep goes on; a single run exits 1)."""
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    value = run_trial(cfg, run_dir, lambda: run_one(cfg, run_dir))
    if hydra_config.mode == RunMode.MULTIRUN:
        return value
    attempts = read_attempts(run_dir)
    outcome = attempts[-1]["outcome"] if attempts else None
    if outcome == "skipped":
        print(f"run record: {shown_path(run_dir / RUN_FILE)} (done; to train it again: another seed=, or remove its directory)")
    if outcome in ("failed", "busy"):
        raise SystemExit(1)  # its line is out (the error and traceback.txt, or who holds the run)
    return value


def main() -> None:
    """The console script: command-line checks, then Hydra; bad input and interrupts end in one line."""
    command_line.run(hydra_main)


if __name__ == "__main__":
    main()
