"""Report figures (PNG, matplotlib's Agg backend): per setup with both optimizers, final loss against lr
(Lion's points labelled by their divisor of AdamW's best lr, each optimizer's best marked); per update-3
context, the two arms' loss curves over tokens with the early budget and the crossing; per update-7 context,
each optimizer's best loss against batch size."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lion_bench.results.claims.base import Cell
from lion_bench.results.claims.judge import Family
from lion_bench.results.format import count, short_number
from lion_bench.results.tables import summarize

MAX_TICKS = 12


@dataclass
class Figure:
    path: Path
    family: str
    kind: str  # loss_vs_lr | curves | batch
    caption: str
    setup: str = ""


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

    kept: list[float] = []
    for value in sorted(set(float(value) for value in values if value > 0)):
        if not kept or value / kept[-1] >= 1.5:  # closer values would print over each other
            kept.append(value)
    target = axis.xaxis if which == "x" else axis.yaxis
    if 0 < len(kept) <= MAX_TICKS:
        target.set_major_locator(FixedLocator(kept))
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


def loss_vs_lr(runs: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Final val loss (mean, each arm's 95% interval) against the resolved lr, one line per optimizer and weight
    decay; Lion's points labelled with their lr as AdamW's best lr / k; each optimizer's best point ringed; diverged: x."""
    if set(runs["optimizer_family"]) != {"adamw", "lion"}:
        return None
    plt = _pyplot()
    summary = summarize(runs)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    adamw = summary[summary["optimizer_family"] == "adamw"].sort_values("final_val_loss_shared_mean")
    reference = adamw["lr"].iloc[0] if len(adamw) else math.nan
    top = summary["final_val_loss_mean"].max()
    for (optimizer, weight_decay, betas), arms in summary.groupby(["optimizer", "wd_key", "betas"], sort=True):
        arms = arms.sort_values("lr")
        mean = arms["final_val_loss_mean"].to_numpy()
        errors = np.vstack([np.nan_to_num(mean - arms["final_val_loss_ci_low"], nan=0.0),
                            np.nan_to_num(arms["final_val_loss_ci_high"] - mean, nan=0.0)])
        name = f"{optimizer}, wd {short_number(weight_decay)}, betas {betas}"
        line = axis.errorbar(arms["lr"], mean, yerr=errors, marker="o", capsize=3, label=name)
        colour = line[0].get_color()
        compared = arms["final_val_loss_shared_mean"].to_numpy()  # on the seeds every arm of the line ran
        if np.isfinite(compared).any():
            best = int(np.nanargmin(np.where(np.isfinite(compared), compared, np.nan)))
            axis.scatter([arms["lr"].iloc[best]], [mean[best]], s=160, facecolors="none", edgecolors=colour)
        diverged = arms[arms["num_diverged"] > 0]
        if len(diverged):
            axis.scatter(diverged["lr"], np.full(len(diverged), top if math.isfinite(top) else 1.0), marker="x",
                         color=colour, label=f"{name}: a run diverged")
        if optimizer.startswith("lion") and math.isfinite(reference):
            for lr, loss in zip(arms["lr"], mean):
                if math.isfinite(loss):
                    axis.annotate(f"{short_number(reference)}/{reference / lr:.3g}", (lr, loss),
                                  textcoords="offset points", xytext=(4, 4),
                                  fontsize=8, color=colour)
    axis.set_xscale("log")
    _log_ticks(axis, summary["lr"])
    _loss_axis(axis, runs, "final val loss (mean, 95% bars)")
    note = (f" (Lion's points: AdamW's best lr {short_number(reference)} / k; rings: each line's best on the seeds "
            "every arm ran; bars: each arm's own 95% interval over seeds, as in the arms table; the answer's "
            "interval of Lion - AdamW is at its own level, in the table)")
    return _save(plt, figure, axis, path, "learning rate (resolved, log scale)", f"{title}{note}")


def curves_plot(cell: Cell, runs: pd.DataFrame, curves: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Mean val loss against tokens for the two arms of an update-3 cell (band: lowest to highest seed), the
    early budget and the median crossing marked."""
    plt = _pyplot()
    chosen = runs[runs["source"].isin(set(cell.sources))]
    reference = chosen.loc[chosen["optimizer_family"] == "adamw", "lr"]
    reference_lr = float(reference.iloc[0]) if len(reference) else math.nan
    figure, axis = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for (optimizer, lr), arm in chosen.groupby(["optimizer", "lr_key"], sort=True):
        rows = curves[curves["source"].isin(set(arm["source"])) & np.isfinite(curves["val_loss"])]
        if rows["step"].nunique() < 2:
            continue
        by_tokens = rows.groupby("tokens")["val_loss"]
        mean, low, high = by_tokens.mean(), by_tokens.min(), by_tokens.max()
        name = (f"Lion lr / {reference_lr / lr:.3g}" if optimizer.startswith("lion") and math.isfinite(reference_lr)
                else f"{optimizer} lr {short_number(lr)}")
        line = axis.plot(mean.index, mean.to_numpy(), marker=".", label=f"{name} ({arm['seed'].nunique()} seeds)")
        axis.fill_between(mean.index, low.to_numpy(), high.to_numpy(), alpha=0.2, color=line[0].get_color())
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    early = cell.facts.get("early_tokens")
    if early and math.isfinite(early):
        axis.axvline(early, color="grey", linestyle=":", label=f"early budget ({count(early)} tokens)")
    crossing = (cell.facts.get("crossing") or {}).get("token", (math.nan,))[0]
    if math.isfinite(crossing):
        axis.axvline(crossing, color="black", linestyle="--", label=f"curves cross ({count(crossing)} tokens, median)")
    _loss_axis(axis, chosen, "val loss (mean; band: min-max over seeds)")
    return _save(plt, figure, axis, path, "tokens trained", title)


def loss_vs_batch(cell: Cell, runs: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Each optimizer's best mean final loss over its lr grid at each batch size (descriptive: the verdict
    picks lrs on held-out seeds)."""
    chosen = runs[runs["source"].isin(set(cell.sources))]
    if chosen["batch_size"].nunique() < 2:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    summary = summarize(chosen)
    for optimizer, arms in summary.groupby("optimizer", sort=True):
        best = arms.sort_values("final_val_loss_mean").groupby("batch_size").head(1).sort_values("batch_size")
        axis.plot(best["batch_size"], best["final_val_loss_mean"], marker="o", label=f"{optimizer} (best lr per batch)")
    axis.set_xscale("log", base=2)
    _log_ticks(axis, summary["batch_size"])
    _loss_axis(axis, chosen, "final val loss at the best lr")
    return _save(plt, figure, axis, path, "batch size (examples per step, log scale)", title)


def make_plots(families: list[Family], runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path) -> list[Figure]:
    """Every figure, written under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for number, family in enumerate(families, start=1):
        family_runs = runs[runs["family"] == family.name]
        for setup, setup_runs in family_runs.groupby("setup", sort=True):
            title = f"{family.name}: {family.setup_labels.get(setup, setup)}"
            path = loss_vs_lr(setup_runs, title, out_dir / f"f{number}_{setup[:6]}_loss_vs_lr.png")
            if path is not None:
                figures.append(Figure(path, family.name, "loss_vs_lr", title, setup))
        for index, cell in enumerate(c for c in family.cells if c.judged and c.claim.key in ("update3", "update7")):
            title = f"{family.name}: {cell.claim.name}, {cell.label}"
            if cell.claim.key == "update3":
                path = curves_plot(cell, family_runs, curves, title, out_dir / f"f{number}_c{index + 1}_curves.png")
                kind = "curves"
            else:
                path = loss_vs_batch(cell, family_runs, title, out_dir / f"f{number}_c{index + 1}_batch.png")
                kind = "batch"
            if path is not None:
                figures.append(Figure(path, family.name, kind, title))
    return figures
