"""Report figures (PNG, matplotlib's Agg backend): per setup, final loss against lr for each optimizer and
weight decay; per judged context, the loss curves of the arms compared (spread over seeds) and, for batch
size, each optimizer's best loss against batch size."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from lion_bench.results.claims import Verdict, label_map
from lion_bench.results.contexts import Context, short_number
from lion_bench.results.load import EARLY_FRACTION
from lion_bench.results.tables import summarize

MAX_TICKS = 12


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _byte_lm(runs: pd.DataFrame) -> bool:
    return bool(runs["final_val_bpc"].notna().any())


def _loss_axis(axis, runs: pd.DataFrame, what: str) -> None:
    """Units on the loss axis: nats/byte with a bpc axis on the right for byte LMs."""
    if _byte_lm(runs):
        axis.set_ylabel(f"{what} (nats/byte)")
        right = axis.secondary_yaxis("right", functions=(lambda x: x / math.log(2), lambda x: x * math.log(2)))
        right.set_ylabel("bpc (bits/byte)")
    else:
        axis.set_ylabel(f"{what} (the task's loss unit)")


def _log_ticks(axis, values, which: str = "x") -> None:
    """Ticks at the values run, written as 1e-3 / 3.3e-4, instead of decades only."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    values = sorted(set(float(value) for value in values if value > 0))
    kept: list[float] = []
    for value in values:  # values within a factor 1.5 of a kept tick would print over it (3e-4 and 3.33e-4)
        if not kept or value / kept[-1] >= 1.5:
            kept.append(value)
    values = kept
    target = axis.xaxis if which == "x" else axis.yaxis
    if 0 < len(values) <= MAX_TICKS:
        target.set_major_locator(FixedLocator(values))
        target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda value, _: short_number(float(f"{value:.3g}"))))


def _save(plt, figure, axis, path: Path, xlabel: str, title: str) -> Path:
    axis.set_xlabel(xlabel)
    axis.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def loss_vs_lr(runs: pd.DataFrame, label: str, path: Path) -> Path:
    """Final val loss (mean, 95% CI) against the resolved lr, one line per optimizer and weight decay; Lion's
    points labelled with their divisor of AdamW's lr (its best one when AdamW ran several); diverged: x."""
    plt = _pyplot()
    summary = summarize(runs)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    adamw = summary[summary["family"] == "adamw"].sort_values("final_val_loss_mean")
    reference = adamw["lr"].iloc[0] if len(adamw) else math.nan
    top = summary["final_val_loss_mean"].max()
    for (optimizer, weight_decay), arms in summary.groupby(["optimizer", "wd_key"], sort=True):
        arms = arms.sort_values("lr")
        mean = arms["final_val_loss_mean"].to_numpy()
        errors = np.vstack([np.nan_to_num(mean - arms["final_val_loss_ci_low"], nan=0.0),
                            np.nan_to_num(arms["final_val_loss_ci_high"] - mean, nan=0.0)])
        line = axis.errorbar(arms["lr"], mean, yerr=errors, marker="o", capsize=3,
                             label=f"{optimizer}, wd {short_number(weight_decay)}")
        colour = line[0].get_color()
        diverged = arms[arms["num_diverged"] > 0]
        if len(diverged):
            axis.scatter(diverged["lr"], np.full(len(diverged), top if math.isfinite(top) else 1.0), marker="x",
                         color=colour, label=f"{optimizer}, wd {short_number(weight_decay)}: a run diverged")
        if optimizer.startswith("lion") and math.isfinite(reference):
            for lr, loss in zip(arms["lr"], mean):
                if math.isfinite(loss):
                    axis.annotate(f"/{reference / lr:.3g}", (lr, loss), textcoords="offset points", xytext=(4, 4),
                                  fontsize=8, color=colour)
    axis.set_xscale("log")
    _log_ticks(axis, summary["lr"])
    _loss_axis(axis, runs, "final val loss, mean and 95% CI")
    note = " (Lion: /k = AdamW's best lr / k)" if adamw["lr"].nunique() > 1 else " (Lion: /k = AdamW's lr / k)"
    return _save(plt, figure, axis, path, "learning rate (resolved, log scale)", f"{label}{note if len(adamw) else ''}")


def curves_plot(runs: pd.DataFrame, curves: pd.DataFrame, label: str, path: Path) -> Path | None:
    """Mean val loss against step for each arm in ``runs``, shaded from the lowest to the highest seed; the
    early window (first quarter) marked."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for (optimizer, lr), arm in runs.groupby(["optimizer", "lr_key"], sort=True):
        rows = curves[curves["source"].isin(set(arm["source"])) & curves["val_loss"].notna()]
        if rows["step"].nunique() < 2:
            continue
        by_step = rows.groupby("step")["val_loss"]
        mean, low, high = by_step.mean(), by_step.min(), by_step.max()
        line = axis.plot(mean.index, mean.to_numpy(), marker=".",
                         label=f"{optimizer} lr {short_number(lr)} ({arm['seed'].nunique()} seeds)")
        axis.fill_between(mean.index, low.to_numpy(), high.to_numpy(), alpha=0.2, color=line[0].get_color())
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    axis.axvline(EARLY_FRACTION * runs["planned_steps"].max(), color="grey", linestyle=":",
                 label="end of the early window (25%)")
    _loss_axis(axis, runs, "val loss (mean; band: min-max over seeds)")
    return _save(plt, figure, axis, path, "step", label)


def loss_vs_batch(runs: pd.DataFrame, label: str, path: Path) -> Path | None:
    """Each optimizer's best mean final loss over its lr grid at each batch size (descriptive: the verdict
    picks lrs on held-out seeds)."""
    if runs["batch_size"].nunique() < 2:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    summary = summarize(runs)
    for optimizer, arms in summary.groupby("optimizer", sort=True):
        best = arms.sort_values("final_val_loss_mean").groupby("batch_size").head(1).sort_values("batch_size")
        axis.plot(best["batch_size"], best["final_val_loss_mean"], marker="o", label=f"{optimizer} (best lr per batch)")
    axis.set_xscale("log", base=2)
    _log_ticks(axis, summary["batch_size"])
    _loss_axis(axis, runs, "final val loss at the best lr")
    return _save(plt, figure, axis, path, "batch size (examples per step, log scale)", label)


def make_plots(runs: pd.DataFrame, curves: pd.DataFrame, verdicts: list[Verdict], out_dir: Path) -> list[Path]:
    """Every figure, written under ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = label_map(runs)
    paths = []
    for setup, setup_runs in runs.groupby("setup", sort=True):
        name = f"{setup_runs['task'].iloc[0]}_{setup[:6]}"
        paths.append(loss_vs_lr(setup_runs, Context(setup).label(labels), out_dir / f"{name}_loss_vs_lr.png"))
    sources_by_context: dict[tuple[str, str], set[str]] = {}
    for verdict in verdicts:
        if verdict.judged and verdict.claim.key in ("update2", "update3", "update4_vs3", "update4_worst", "update7"):
            kind = "batch" if verdict.claim.key == "update7" else "curves"
            sources_by_context.setdefault((kind, verdict.label), set()).update(verdict.sources)
    for index, ((kind, label), sources) in enumerate(sorted(sources_by_context.items())):
        chosen = runs[runs["source"].isin(sources)]
        name = f"{chosen['task'].iloc[0]}_context{index + 1}"
        if kind == "curves":
            paths.append(curves_plot(chosen, curves, label, out_dir / f"{name}_curves.png"))
        else:
            paths.append(loss_vs_batch(chosen, label, out_dir / f"{name}_loss_vs_batch.png"))
    return [path for path in paths if path is not None]
