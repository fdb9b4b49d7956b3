"""Aggregates over seeds: one row per arm (an optimizer at one lr, weight decay and betas) within a setup."""

from __future__ import annotations

import math

import pandas as pd

from lion_bench.results.stats import t_interval

ARM_KEYS = ["setup", "optimizer", "lr_key", "wd_key", "betas"]
# Per-arm values every run of the arm shares (the setup fixes them) or that describe it.
CARRIED = ["task", "family", "lr", "weight_decay", "base_lr", "base_weight_decay", "lr_divisor", "wd_multiplier",
           "batch_size", "planned_steps", "warmup_steps", "budget", "schedule", "device_type", "precision", "unit"]
METRICS = ["final_val_loss", "best_val_loss", "final_val_bpc", "early_val_loss"]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: seeds, divergences, mean/std/95% CI of each loss over finished runs, tokens, throughput."""
    rows = []
    for key, arm in runs.groupby(ARM_KEYS, sort=True, dropna=False):
        finished = arm[arm["status"] == "finished"]
        first = arm.iloc[0]
        row = {**dict(zip(ARM_KEYS, key)), **{column: first[column] for column in CARRIED}}
        row.update(num_seeds=int(arm["seed"].nunique()), num_diverged=int((arm["status"] == "diverged").sum()))
        for metric in METRICS:
            values = finished[metric].dropna()
            mean, low, high = t_interval(values.to_numpy())
            row.update({f"{metric}_mean": mean, f"{metric}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        row["tokens_mean"] = finished["tokens"].mean() if len(finished) else arm["tokens"].mean()
        row["train_tokens_per_s"] = arm["train_tokens_per_s"].mean()
        row["wall_tokens_per_s"] = arm["wall_tokens_per_s"].mean()
        row["seeds"] = ",".join(str(seed) for seed in sorted(arm["seed"].unique()))
        rows.append(row)
    return pd.DataFrame(rows)
