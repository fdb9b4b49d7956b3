"""Aggregates over seeds: one row per arm (an optimizer at one lr, weight decay and betas) within a setup."""

from __future__ import annotations

import math

import pandas as pd

from lion_bench.results.claims.selection import seed_list, shared_seeds
from lion_bench.results.stats import t_interval

ARM_KEYS = ["family", "setup", "optimizer", "lr_key", "wd_key", "betas"]
SERIES_KEYS = ["family", "setup", "optimizer", "betas"]  # an optimizer's grid: the arms compared with each other
# Per-arm values every run of the arm shares (the setup fixes them) or that describe it.
CARRIED = ["task", "optimizer_family", "lr", "weight_decay", "base_lr", "base_weight_decay", "lr_divisor",
           "wd_multiplier", "batch_size", "planned_steps", "warmup_steps", "budget", "schedule", "device_type",
           "precision", "unit", "sweep"]
METRICS = ["final_val_loss", "best_val_loss", "final_val_bpc"]
THROUGHPUT_SPREAD = 1.2  # an arm whose runs' throughputs differ by more than this factor is flagged


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: seeds, divergences, mean/std/95% CI of each loss over finished runs, tokens, and the steady
    training throughput (median of its runs, flagged when they differ by more than 20%: a first trial's
    start-up, a busy machine); and the mean final loss over the seeds every arm of its grid ran, the one arms
    are compared by (an arm with extra seeds is not a mean over more seeds than the others)."""
    shared = {key: shared_seeds(grid) for key, grid in runs.groupby(SERIES_KEYS, sort=True, dropna=False)}
    rows = []
    for key, arm in runs.groupby(ARM_KEYS, sort=True, dropna=False):
        finished = arm[arm["status"] == "finished"]
        first = arm.iloc[0]
        row = {**dict(zip(ARM_KEYS, key)), **{column: first[column] for column in CARRIED if column in arm}}
        row.update(num_seeds=int(arm["seed"].nunique()), num_diverged=int((arm["status"] == "diverged").sum()))
        for metric in METRICS:
            values = finished[metric].dropna()
            mean, low, high = t_interval(values.to_numpy())
            row.update({f"{metric}_mean": mean, f"{metric}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        row["tokens_mean"] = finished["tokens"].mean() if len(finished) else arm["tokens"].mean()
        speeds = arm["train_tokens_per_s"].dropna()
        speeds = speeds[speeds > 0]
        row["train_tokens_per_s"] = float(speeds.median()) if len(speeds) else math.nan
        row["throughput_spread"] = float(speeds.max() / speeds.min()) if len(speeds) > 1 else 1.0
        row["seeds"] = ",".join(str(seed) for seed in sorted(arm["seed"].unique()))
        seeds = shared[tuple(row[column] for column in SERIES_KEYS)]
        compared = finished[finished["seed"].isin(seeds)]["final_val_loss"].dropna()
        diverged = bool((arm["seed"].isin(seeds) & (arm["status"] == "diverged")).any())
        row["shared_seeds"] = seed_list(seeds)
        row["final_val_loss_shared_mean"] = (math.inf if diverged else float(compared.mean()) if len(compared)
                                             else math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def best_trials(runs: pd.DataFrame, per_optimizer: int = 3) -> pd.DataFrame:
    """The lowest final losses of each optimizer (a random or TPE search has no grid to tune on)."""
    finished = runs[runs["status"] == "finished"].sort_values("final_val_loss")
    return finished.groupby("optimizer", sort=True).head(per_optimizer)[
        ["family", "optimizer", "lr", "weight_decay", "betas", "seed", "final_val_loss", "source"]]
