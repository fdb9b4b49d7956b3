"""Aggregates over seeds: one row per arm, paired differences between arms, and each optimizer's best arm.

An *arm* is one configuration run over several seeds; arms are compared only within one setup
(same task, model, data, steps and schedule; see ``load.setup_id``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

ARM_KEYS = ["task", "setup", "optimizer", "lr_divisor", "wd_multiplier", "betas", "batch_size", "lr",
            "weight_decay"]
METRICS = ["final_val_loss", "best_val_loss", "final_val_bpc", "best_val_bpc"]
CONFIDENCE = 0.95


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided Student-t interval of the mean; NaN bounds with fewer than 2."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: seeds, divergences, mean/std/95% CI of each loss over finished runs, tokens/s, mean score."""
    rows = []
    for key, arm in runs.groupby(ARM_KEYS, sort=True, dropna=False):
        finished = arm[arm["status"] == "finished"]
        row = dict(zip(ARM_KEYS, key))
        row.update(num_seeds=int(arm["seed"].nunique()), num_diverged=int((arm["status"] == "diverged").sum()))
        for metric in METRICS:
            mean, low, high = t_interval(finished[metric].to_numpy())
            values = finished[metric].dropna()
            row.update({f"{metric}_mean": mean, f"{metric}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        row["train_tokens_per_s"] = arm["train_tokens_per_s"].mean()
        row["wall_tokens_per_s"] = arm["wall_tokens_per_s"].mean()
        row["score_mean"] = arm["score"].mean()
        row["seeds"] = ",".join(str(seed) for seed in sorted(arm["seed"].unique()))
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Paired:
    """Paired-by-seed difference ``a - b`` of the comparison score (lower is better)."""

    num_pairs: int
    mean: float
    low: float
    high: float
    sources: list[str]


def paired_difference(runs: pd.DataFrame, arm_a: pd.Series, arm_b: pd.Series) -> Paired:
    a = arm_runs(runs, arm_a).set_index("seed")
    b = arm_runs(runs, arm_b).set_index("seed")
    seeds = sorted(set(a.index) & set(b.index))
    differences = (a.loc[seeds, "score"] - b.loc[seeds, "score"]).to_numpy() if seeds else np.array([])
    mean, low, high = t_interval(differences)
    sources = list(a.loc[seeds, "source"]) + list(b.loc[seeds, "source"])
    return Paired(len(seeds), mean, low, high, sources)


def arm_runs(runs: pd.DataFrame, arm: pd.Series) -> pd.DataFrame:
    mask = np.ones(len(runs), dtype=bool)
    for key in ARM_KEYS:
        mask &= (runs[key] == arm[key]).to_numpy()
    return runs[mask]


def setup_labels(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(task, setup) -> the task's name, with the setup id appended when a task has several setups."""
    pairs = runs[["task", "setup"]].drop_duplicates()
    counts = pairs["task"].value_counts()
    return {(task, setup): task if counts[task] == 1 else f"{task}[{setup}]"
            for task, setup in pairs.itertuples(index=False)}


def best_arms(summary: pd.DataFrame) -> pd.DataFrame:
    """Each (task, setup, batch size, optimizer)'s arm with the lowest mean score."""
    ordered = summary.sort_values("score_mean", kind="stable")
    return ordered.groupby(["task", "setup", "batch_size", "optimizer"], sort=True).head(1)


def lion_vs_adamw(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Best Lion arm against best AdamW arm per (task, setup, batch size): lr ratio and loss difference."""
    best = best_arms(summary)
    rows = []
    for (task, setup, batch_size), group in best.groupby(["task", "setup", "batch_size"], sort=True):
        lion = group[group["optimizer"] == "lion"]
        adamw = group[group["optimizer"] == "adamw"]
        if lion.empty or adamw.empty:
            continue
        lion, adamw = lion.iloc[0], adamw.iloc[0]
        paired = paired_difference(runs, lion, adamw)
        rows.append({
            "task": task, "setup": setup, "batch_size": batch_size,
            "lion_lr": lion["lr"], "lion_lr_divisor": lion["lr_divisor"], "lion_weight_decay": lion["weight_decay"],
            "adamw_lr": adamw["lr"], "adamw_weight_decay": adamw["weight_decay"],
            "lr_ratio_adamw_over_lion": adamw["lr"] / lion["lr"],
            "lion_mean": lion["score_mean"], "adamw_mean": adamw["score_mean"],
            "difference_lion_minus_adamw": paired.mean, "ci_low": paired.low, "ci_high": paired.high,
            "num_pairs": paired.num_pairs,
        })
    return pd.DataFrame(rows)
