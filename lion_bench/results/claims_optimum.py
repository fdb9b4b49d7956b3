"""The paper's ratios (Chen et al. 2023): Lion's best lr 3-10x smaller than AdamW's, its best weight decay
3-10x larger, judged only where both optimizers ran a grid around their optimum.

A context is a setup plus what both series keep fixed: each optimizer's weight decay for the lr ratio, each
optimizer's lr for the weight-decay ratio. Each optimizer's best log value comes from a parabola through its
best grid point and the two neighbours; the interval of the ratio from a bootstrap over seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.claims import (CLAIM_BY_KEY, MIN_GRID, RATIO_RANGE, Series, Verdict, optimizer_parts,
                                       series_of, wd_part)
from lion_bench.results.contexts import Context, short_number
from lion_bench.results.stats import (INCONCLUSIVE, Decision, bootstrap_difference, decide_range, grid_optimum,
                                      mean_losses)

# claim -> (swept column, fixed column, the swept quantity's name, whether the ratio is AdamW / Lion)
SWEPT = {"paper_lr": ("lr_key", "wd_key", "lr", True), "paper_wd": ("wd_key", "lr_key", "weight decay", False)}


def grid(runs: pd.DataFrame, swept: str, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted log10 grid values, losses: one row per seed in ``seeds``; +inf diverged, NaN not run)."""
    runs = runs[runs[swept] > 0]
    values = sorted(runs[swept].unique())
    losses = np.full((len(seeds), len(values)), np.nan)
    row_of = {seed: index for index, seed in enumerate(seeds)}
    column_of = {value: index for index, value in enumerate(values)}
    for run in runs.sort_values("source").itertuples(index=False):
        loss = math.inf if run.status == "diverged" else run.final_val_loss
        losses[row_of[run.seed], column_of[getattr(run, swept)]] = loss
    return np.log10(np.array(values, dtype=float)), losses


def optimum_verdicts(runs: pd.DataFrame) -> list[Verdict]:
    verdicts = []
    for key, (swept, fixed, _, _) in SWEPT.items():
        for setup, setup_runs in runs.groupby("setup", sort=True):
            adamw, lion = series_of(setup_runs, "adamw", fixed), series_of(setup_runs, "lion", fixed)
            pairs = [(adamw_series, lion_series) for adamw_series in adamw for lion_series in lion
                     if adamw[adamw_series][swept].nunique() > 1 or lion[lion_series][swept].nunique() > 1]
            if not pairs:
                verdicts.append(Verdict(CLAIM_BY_KEY[key], Context(setup), reason=_one_value(adamw, lion, swept)))
            for adamw_series, lion_series in pairs:
                verdicts.append(judge(key, setup, adamw_series, adamw[adamw_series], lion_series, lion[lion_series]))
    return verdicts


def _one_value(adamw: dict, lion: dict, swept: str) -> str:
    name = "lr" if swept == "lr_key" else "weight decay"
    if not adamw or not lion:
        return f"no {'AdamW' if not adamw else 'Lion'} runs"
    return f"each optimizer ran at one {name} for each setting of the other hyperparameters"


def _span(values) -> str:
    values = sorted(values)
    return f"{len(values)} values, {short_number(values[0])} to {short_number(values[-1])}" if len(values) > 1 \
        else f"1 value, {short_number(values[0])}"


def judge(key: str, setup: str, adamw: Series, adamw_runs: pd.DataFrame, lion: Series,
          lion_runs: pd.DataFrame) -> Verdict:
    swept, _, name, adamw_over_lion = SWEPT[key]
    if key == "paper_lr":
        fixed = ("lr swept", wd_part(adamw.fixed, lion.fixed))
    else:
        fixed = (f"wd swept, AdamW lr {short_number(adamw.fixed)}, Lion lr {short_number(lion.fixed)}",)
    verdict = Verdict(CLAIM_BY_KEY[key], Context(setup, (*fixed, *optimizer_parts(adamw, lion))))
    verdict.sources = sorted(set(adamw_runs["source"]) | set(lion_runs["source"]))
    values = {"AdamW": adamw_runs.loc[adamw_runs[swept] > 0, swept].unique(),
              "Lion": lion_runs.loc[lion_runs[swept] > 0, swept].unique()}
    verdict.detail = "; ".join(f"{who} {name}: {_span(found)}" for who, found in values.items() if len(found))
    short = [who for who, found in values.items() if len(found) < MIN_GRID]
    if short:
        verdict.reason = (f"{' and '.join(short)} ran at fewer than {MIN_GRID} {name} values > 0 "
                          f"({verdict.detail}); needs both on a grid")
        return verdict
    seeds = sorted(set(adamw_runs["seed"]) | set(lion_runs["seed"]))
    if len(seeds) < 2:
        verdict.reason = "needs >= 2 seeds for an interval"
        return verdict
    grids = {"AdamW": grid(adamw_runs, swept, seeds), "Lion": grid(lion_runs, swept, seeds)}
    estimates = {who: grid_optimum(xs, mean_losses(losses, np.arange(len(seeds)))) for who, (xs, losses) in
                 grids.items()}
    best = "; ".join(f"{who} best {name} {short_number(10 ** estimate)}" for who, (estimate, _) in estimates.items())
    verdict.detail = f"{best} ({verdict.detail})"
    verdict.num = len(seeds)
    verdict.effect_name = f"best {name} " + ("AdamW / Lion" if adamw_over_lion else "Lion / AdamW")
    edges = [who for who, (_, at_edge) in estimates.items() if at_edge]
    if edges:
        verdict.decision = Decision(INCONCLUSIVE, math.nan,
                                    f"best {name} at the edge of the grid for {' and '.join(edges)}: extend the grid")
        return verdict
    first, second = (grids["AdamW"], grids["Lion"]) if adamw_over_lion else (grids["Lion"], grids["AdamW"])
    ratios = 10 ** bootstrap_difference(first, second)
    sign = 1 if adamw_over_lion else -1
    verdict.effect = 10 ** (sign * (estimates["AdamW"][0] - estimates["Lion"][0]))
    verdict.low, verdict.high = (float(bound) for bound in np.percentile(ratios, [2.5, 97.5]))
    verdict.decision = decide_range(ratios, *RATIO_RANGE)
    return verdict
