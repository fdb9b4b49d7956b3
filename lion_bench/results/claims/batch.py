"""lion-pytorch update 7: "would only recommend this optimizer in the setting of high batch sizes (64 or
above)", read as what it says: a necessary condition. Lion's advantage (AdamW - Lion) grows with batch size,
and at batch sizes >= 64 Lion is not worse; Lion losing below 64 is consistent with it.

Batch sizes are compared within a *budget setup* (the setup without batch size and steps, with the token
budget and the warmup instead), so each batch size trains on the same data. At each batch size each
optimizer runs at its own best lr of a grid, chosen for each seed on the other seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.claims.base import (ADAMW, ADAMW_BETTER, EQUIVALENT, LION, LION_BETTER, YES_SUPPORTS, Cell,
                                            Series, Settings, not_judged, optimizer_parts, pair, series_of, wd_part)
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY, LARGE_BATCH
from lion_bench.results.claims.selection import arm_grid, edges_line, grid_edge, held_out_values
from lion_bench.results.contexts import Context
from lion_bench.results.format import interval, short_number
from lion_bench.results.stats import ABOVE, BELOW, MIN_SEEDS, AllOf, Paired, ThreeWay, Threshold, t_interval

MIN_BATCH_GRID = 3  # lrs per optimizer and batch size
KEYS = ("update7",)


def not_worse(answer: str) -> str:
    return "yes" if answer in (LION_BETTER, EQUIVALENT) else "no" if answer == ADAMW_BETTER else "unsure"


def grows(answer: str) -> str:
    return "yes" if answer == ABOVE else "no" if answer == BELOW else "unsure"


def batch_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    claim = CLAIM_BY_KEY["update7"]
    cells = []
    for setup, setup_runs in runs.groupby("budget_setup", sort=True):
        batches = sorted(setup_runs["batch_size"].unique())
        if len(batches) < 2:
            continue  # one batch size: nothing to say about batch size (listed as not judged if nowhere judged)
        context = Context(setup, (f"batch {', '.join(map(str, batches))} (lr tuned per batch)",),
                          (("budget_setup", setup),))
        reason = ""
        if setup_runs["budget"].iloc[0] != "tokens":
            reason = "budget in steps: batch sizes see different data (set trainer.budget=tokens)"
        elif setup_runs["budget_fields"].iloc[0]["warmup"][0] != "fraction" and setup_runs["warmup_steps"].max() > 0:
            reason = "warmup in steps outlasts short large-batch runs (set trainer.schedule.warmup_fraction)"
        if reason:
            cells.append(not_judged(claim, context, reason, setup_runs["source"]))
            continue
        adamw = {s: g for s, g in series_of(setup_runs, "adamw", "wd_key").items() if s.optimizer == "adamw"}
        lion = {s: g for s, g in series_of(setup_runs, "lion", "wd_key").items() if s.optimizer == "lion"}
        for adamw_series, adamw_runs in adamw.items():
            for lion_series, lion_runs in lion.items():
                cells.append(judge(setup, batches, adamw_series, adamw_runs, lion_series, lion_runs, settings))
    return cells


def judge(setup: str, batches: list[int], adamw: Series, adamw_runs: pd.DataFrame, lion: Series,
          lion_runs: pd.DataFrame, settings: Settings) -> Cell:
    claim = CLAIM_BY_KEY["update7"]
    context = Context(setup, (f"batch {', '.join(map(str, batches))} (lr tuned per batch)",
                              wd_part(adamw.fixed, lion.fixed), *optimizer_parts(adamw, lion)),
                      (("budget_setup", setup), ("adamw_wd", adamw.fixed), ("lion_wd", lion.fixed)))
    sources = sorted(set(adamw_runs["source"]) | set(lion_runs["source"]))
    per_batch, skipped, advantages, edges = {}, [], {}, []
    for batch in batches:
        a, b = adamw_runs[adamw_runs["batch_size"] == batch], lion_runs[lion_runs["batch_size"] == batch]
        short = [name for name, arms in ((ADAMW, a), (LION, b)) if arms["lr_key"].nunique() < MIN_BATCH_GRID]
        if short:
            skipped.append(f"bs{batch}: {' and '.join(short)} at fewer than {MIN_BATCH_GRID} lrs")
            continue
        adamw_values, adamw_picks, _ = held_out_values(a, settings.metric)
        lion_values, lion_picks, _ = held_out_values(b, settings.metric)
        paired = pair(lion_values, adamw_values, (LION, ADAMW), list(a["source"]) + list(b["source"]))
        if paired.n < MIN_SEEDS and not any(paired.diverged):
            skipped.append(f"bs{batch}: too few seeds (n = {paired.n})")
            continue
        for name, picks, arms in ((ADAMW, adamw_picks, a), (LION, lion_picks, b)):
            edge = grid_edge(name, picks, arm_grid(arms, settings.metric)[0])
            edges += [f"bs{batch}: {edge}"] if edge else []
        per_batch[batch] = (ThreeWay(paired, settings.margin * paired.reference_mean, f"Lion - AdamW at bs{batch}"),
                            sorted({lr for lr, _ in adamw_picks}), sorted({lr for lr, _ in lion_picks}))
        advantages[batch] = {seed: adamw_values[seed] - lion_values[seed] for seed in
                             set(adamw_values) & set(lion_values)}
    large = [batch for batch in per_batch if batch >= LARGE_BATCH]
    detail = "; ".join([describe(batch, *per_batch[batch]) for batch in sorted(per_batch)] + skipped)
    if len(per_batch) < 2 or not large:
        return not_judged(claim, context, f"needs judged batch sizes including one >= {LARGE_BATCH} (judged: "
                                          f"{', '.join(map(str, sorted(per_batch))) or 'none'}; "
                                          f"{'; '.join(skipped) or 'no grid'})", sources)
    slope = Threshold(Paired(slopes(advantages), names=("slope", "0")), 0.0,
                      "advantage (AdamW - Lion) per doubling of the batch, per seed")
    parts = [(slope, grows)] + [(per_batch[batch][0], not_worse) for batch in sorted(large)]
    test = AllOf(parts, slope, slope.effect_name)
    return Cell(claim, context, test, YES_SUPPORTS, detail=detail, sources=sources, edge=edges_line(edges),
                facts={"batches": sorted(per_batch), "advantages": advantages})


def slopes(advantages: dict[int, dict[int, float]]) -> np.ndarray:
    """Per seed with a finite advantage at every judged batch size: the least-squares slope over log2 batch."""
    batches = sorted(advantages)
    seeds = set.intersection(*(set(values) for values in advantages.values()))
    x = np.log2(np.array(batches, dtype=float))
    out = []
    for seed in sorted(seeds):
        y = np.array([advantages[batch][seed] for batch in batches])
        if np.isfinite(y).all():
            out.append(float(np.polyfit(x, y, 1)[0]))
    return np.array(out)


def describe(batch: int, test: ThreeWay, adamw_lrs: list[float], lion_lrs: list[float]) -> str:
    mean, low, high = t_interval(test.paired.values())
    lrs = f"AdamW lr {'/'.join(map(short_number, adamw_lrs))}, Lion lr {'/'.join(map(short_number, lion_lrs))}"
    note = f", {test.note}" if test.note else ""
    return f"bs{batch}: Lion - AdamW {interval(mean, low, high)} (95%) n={test.n} ({lrs}{note})"


def cells(runs: pd.DataFrame, curves: pd.DataFrame, settings: Settings) -> dict[str, list[Cell]]:
    return {"update7": batch_cells(runs, settings)}
