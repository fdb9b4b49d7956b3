"""Report figures (PNG, matplotlib's Agg backend): loss vs effective lr, curves of the best arms, loss vs batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lion_bench.results.tables import arm_runs, best_arms, setup_labels


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in text).strip("_")


def _error_bars(frame: pd.DataFrame) -> np.ndarray:
    mean = frame["final_val_loss_mean"].to_numpy()
    low = np.nan_to_num(mean - frame["final_val_loss_ci_low"].to_numpy(), nan=0.0)
    high = np.nan_to_num(frame["final_val_loss_ci_high"].to_numpy() - mean, nan=0.0)
    return np.vstack([low, high])


def loss_vs_lr(summary: pd.DataFrame, label: str, path: Path) -> Path:
    """Final val loss (mean, 95% CI) against the effective lr; the best arm per lr for each optimizer."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for optimizer, arms in summary.groupby("optimizer", sort=True):
        best = arms.sort_values("score_mean").drop_duplicates("lr").sort_values("lr")
        line = axis.errorbar(best["lr"], best["final_val_loss_mean"], yerr=_error_bars(best), marker="o",
                             capsize=3, label=optimizer)
        diverged = best[best["num_diverged"] > 0]
        if len(diverged):
            top = np.nanmax(summary["final_val_loss_mean"]) if summary["final_val_loss_mean"].notna().any() else 1.0
            axis.scatter(diverged["lr"], np.full(len(diverged), top), marker="x", color=line[0].get_color(),
                         label=f"{optimizer}: runs diverged")
    axis.set_xscale("log")
    _log_scale_if_wide(axis)
    return _save(plt, figure, axis, path, "effective learning rate", "final val loss (mean, 95% CI)",
                 f"{label}: val loss vs learning rate")


def best_curves(runs: pd.DataFrame, curves: pd.DataFrame, arms: pd.DataFrame, label: str, path: Path) -> Path | None:
    """Mean loss against step for each optimizer's best arm (val loss where evaluated more than once)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    drawn = False
    for _, arm in arms.iterrows():
        sources = set(arm_runs(runs, arm)["source"])
        rows = curves[curves["source"].isin(sources)]
        metric = "val_loss" if rows["val_loss"].notna().groupby(rows["source"]).sum().min() > 1 else "train_loss"
        mean = rows.dropna(subset=[metric]).groupby("step")[metric].mean()
        if mean.empty:
            continue
        axis.plot(mean.index, mean.to_numpy(), marker="." if metric == "val_loss" else None,
                  label=f"{arm['optimizer']} lr {arm['lr']:.3g} ({metric}, {arm['num_seeds']} seeds)")
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    _log_scale_if_wide(axis)
    return _save(plt, figure, axis, path, "step", "loss (mean over seeds)", f"{label}: best arms")


def loss_vs_batch(summary: pd.DataFrame, label: str, path: Path) -> Path | None:
    """Final val loss of each optimizer's best arm at each batch size; None with one batch size."""
    if summary["batch_size"].nunique() < 2:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for optimizer, arms in best_arms(summary).groupby("optimizer", sort=True):
        arms = arms.sort_values("batch_size")
        axis.errorbar(arms["batch_size"], arms["final_val_loss_mean"], yerr=_error_bars(arms), marker="o",
                      capsize=3, label=optimizer)
    axis.set_xscale("log", base=2)
    return _save(plt, figure, axis, path, "batch size", "final val loss of the best arm (mean, 95% CI)",
                 f"{label}: val loss vs batch size")


def _save(plt, figure, axis, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _log_scale_if_wide(axis) -> None:
    low, high = axis.get_ylim()
    if low > 0 and high / low > 20:
        axis.set_yscale("log")


def make_plots(runs: pd.DataFrame, curves: pd.DataFrame, summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Every figure for every setup, written under ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = setup_labels(runs)
    paths = []
    for (task, setup), arms in summary.groupby(["task", "setup"], sort=True):
        label = labels[(task, setup)]
        slug = _slug(label)
        paths.append(loss_vs_lr(arms, label, out_dir / f"{slug}_loss_vs_lr.png"))
        batch = arms["batch_size"].value_counts().idxmax()
        best = best_arms(arms[arms["batch_size"] == batch])
        paths.append(best_curves(runs, curves, best, f"{label} (batch {batch})", out_dir / f"{slug}_best_curves.png"))
        paths.append(loss_vs_batch(arms, label, out_dir / f"{slug}_loss_vs_batch.png"))
    return [path for path in paths if path is not None]
