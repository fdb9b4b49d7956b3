"""lion-bench: train one model with Lion or AdamW and record the result.

    lion-bench                                       # Lion (lr = base.lr / 3) on the embedded corpus
    lion-bench optimizer=adamw trainer.max_steps=20  # the AdamW baseline, 20 steps
    lion-bench optimizer.lr_divisor=10 seed=1        # ratio space: Lion at AdamW's lr / 10
    lion-bench task=quadratic device=cpu             # another task, device override
    lion-bench -m optimizer=adamw,lion seed=0,1,2    # a Hydra multirun
    lion-bench -m sweep=lr_ratio                     # a preset sweep (configs/sweep/); rerun to resume it

Each run's directory holds config.yaml, metrics.jsonl and run.json (see README).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lion_bench.plan import plan_run
from lion_bench.runs.errors import BadInput
from lion_bench.runs.loggers import build_loggers
from lion_bench.runs.record import RunRecord
from lion_bench.runs.store import RUN_FILE
from lion_bench.sweeps.resume import objective, run_trial
from lion_bench.trainer import train

# Exit status of a command given bad input (as argparse uses).
BAD_INPUT_EXIT = 2


def summary_line(record: RunRecord) -> str:
    hyper = record.hyperparameters
    bpc = record.final.get("val_bpc")
    metric = f" val bpc {bpc:.4f}" if isinstance(bpc, float) and math.isfinite(bpc) else ""
    speed = f", {record.train_tokens_per_s:.0f} {record.unit}/s" if record.train_tokens_per_s else ""
    return (
        f"[{record.status.value}] {record.task} {record.optimizer} lr={hyper['lr']:.3g} "
        f"(base/{hyper['lr_divisor']:g}) wd={hyper['weight_decay']:.3g} seed={record.seed}: "
        f"val loss {record.final_val_loss:.4f}{metric} | {record.steps} steps, "
        f"{record.time_s['total']:.1f} s{speed}"
    )


def run_one(cfg: DictConfig, run_dir: Path) -> RunRecord:
    """Check the config (bad input raises BadInput before a logger opens or a file is written), open
    the loggers, train, and print the summary line."""
    plan = plan_run(cfg)
    loggers = build_loggers(cfg)
    record = train(cfg, run_dir, loggers, plan)
    print(summary_line(record))
    print(f"run record: {run_dir / RUN_FILE}")
    return record


@hydra.main(config_path="pkg://lion_bench.configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)

    def run() -> RunRecord:
        return run_one(cfg, run_dir)

    if hydra_config.mode == RunMode.MULTIRUN:
        # A sweep trial: skipped if done, resumed from its checkpoint if not, failures recorded, not raised.
        return run_trial(cfg, run_dir, run)
    try:
        return objective(run())
    except BadInput as error:
        # Found before anything ran: the message says what to do; a traceback would bury it.
        print(f"lion-bench: {error}", file=sys.stderr)
        raise SystemExit(BAD_INPUT_EXIT) from None


if __name__ == "__main__":
    main()
