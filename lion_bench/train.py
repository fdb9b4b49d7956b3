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
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lion_bench.results.loggers import build_loggers
from lion_bench.results.store import CONFIG_FILE, RUN_FILE, atomic_write_text
from lion_bench.sweeps.resume import objective, run_trial
from lion_bench.trainer import train


def summary_line(record: dict) -> str:
    hyper = record["hyperparameters"]
    bpc = record.get("final_val_bpc")
    metric = f"val bpc {bpc:.4f}" if isinstance(bpc, float) and math.isfinite(bpc) else ""
    return (
        f"[{record['status']}] {record['task']} {record['optimizer']} lr={hyper['lr']:.3g} "
        f"(base/{hyper['lr_divisor']:g}) wd={hyper['weight_decay']:.3g} seed={record['seed']}: "
        f"val loss {record['final_val_loss']:.4f} {metric} | {record['steps']} steps, "
        f"{record['wall_time_s']:.1f} s, {record['tokens_per_s']:.0f} {record['unit']}/s"
    )


@hydra.main(config_path="pkg://lion_bench.configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)

    def run() -> dict:
        atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
        record = train(cfg, run_dir, build_loggers(cfg))
        print(summary_line(record))
        print(f"run record: {run_dir / 'run.json'}")
        return record

    if hydra_config.mode == RunMode.MULTIRUN:
        # A sweep trial: skipped if done, resumed from its checkpoint if not, failures recorded, not raised.
        return run_trial(cfg, run_dir, run)
    try:
        return objective(run())
    except (ValueError, FileNotFoundError) as error:
        if (run_dir / RUN_FILE).exists():  # it failed while training: keep the traceback
            raise
        # Bad input, found before anything ran: the message says what to do; a traceback would bury it.
        raise SystemExit(f"lion-bench: {error}") from None


if __name__ == "__main__":
    main()
