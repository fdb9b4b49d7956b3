"""lion-pytorch update 7: Lion's advantage over AdamW needs batch size >= 64.

Batch sizes are compared within a *budget setup* (the setup without batch size and steps, with the token
budget and the warmup instead), so each batch size trains on the same data. At each batch size each
optimizer runs at its own best lr from a grid: for every seed, the best lr on the other seeds, judged by that
seed's run (leave one seed out), so no lr is picked on the losses it is judged by.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.claims import (CLAIM_BY_KEY, LARGE_BATCH, MIN_BATCH_GRID, Series, Verdict, optimizer_parts,
                                       series_of, wd_part)
from lion_bench.results.contexts import Context, short_number
from lion_bench.results.stats import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Comparison, Decision, decide,
                                      mean_losses, t_interval)


def held_out(runs: pd.DataFrame, seeds: list[int]) -> tuple[dict[int, float], dict[int, float], bool]:
    """For each seed: (its final loss at the lr that is best on the other seeds (+inf: that run diverged),
    the lr picked, whether a pick was at the edge of the grid)."""
    lrs = sorted(runs["lr_key"].unique())
    losses = np.full((len(seeds), len(lrs)), np.nan)
    for run in runs.sort_values("source").itertuples(index=False):
        if run.seed in seeds:
            losses[seeds.index(run.seed), lrs.index(run.lr_key)] = math.inf if run.status == "diverged" \
                else run.final_val_loss
    values, picks, at_edge = {}, {}, False
    for row, seed in enumerate(seeds):
        others = np.array([index for index in range(len(seeds)) if index != row])
        means = mean_losses(losses, others)
        if not np.isfinite(means).any():
            continue
        pick = int(np.nanargmin(np.where(np.isnan(means), np.inf, means)))
        if not np.isnan(losses[row, pick]):
            values[seed], picks[seed] = float(losses[row, pick]), float(lrs[pick])
            at_edge |= pick in (0, len(lrs) - 1)
    return values, picks, at_edge


def advantage(adamw: pd.DataFrame, lion: pd.DataFrame) -> tuple[Comparison, dict, bool] | str:
    """Paired AdamW - Lion at one batch size, each at its held-out best lr; or why it cannot be computed."""
    grids = {"AdamW": adamw["lr_key"].nunique(), "Lion": lion["lr_key"].nunique()}
    short = [who for who, size in grids.items() if size < MIN_BATCH_GRID]
    if short:
        return f"{' and '.join(short)} ran at fewer than {MIN_BATCH_GRID} lrs"
    seeds = sorted(set(adamw["seed"]) & set(lion["seed"]))
    if len(seeds) < 2:
        return "fewer than 2 seeds shared by both optimizers"
    adamw_values, adamw_picks, adamw_edge = held_out(adamw, seeds)
    lion_values, lion_picks, lion_edge = held_out(lion, seeds)
    paired = sorted(set(adamw_values) & set(lion_values))
    differences = np.array([adamw_values[s] - lion_values[s] for s in paired
                            if math.isfinite(adamw_values[s]) and math.isfinite(lion_values[s])])
    mean, low, high = t_interval(differences)
    diverged = (sum(math.isinf(adamw_values[s]) for s in paired), sum(math.isinf(lion_values[s]) for s in paired))
    sources = sorted(set(adamw["source"]) | set(lion["source"]))
    comparison = Comparison(len(differences), mean, low, high, differences, diverged, (len(paired), len(paired)),
                            sources)
    picks = {"AdamW": sorted(set(adamw_picks.values())), "Lion": sorted(set(lion_picks.values()))}
    edges = [who for who, edge in (("AdamW", adamw_edge), ("Lion", lion_edge)) if edge]
    return comparison, picks, edges


def batch_verdicts(runs: pd.DataFrame) -> list[Verdict]:
    claim = CLAIM_BY_KEY["update7"]
    verdicts = []
    for setup, setup_runs in runs.groupby("budget_setup", sort=True):
        batches = sorted(setup_runs["batch_size"].unique())
        reason = ""
        if len(batches) < 2:
            reason = f"one batch size ({batches[0]})"
        elif setup_runs["budget"].iloc[0] != "tokens":
            reason = "budget in steps: batch sizes see different data (set trainer.budget=tokens)"
        elif setup_runs["budget_fields"].iloc[0]["warmup"][0] != "fraction" and setup_runs["warmup_steps"].max() > 0:
            reason = "warmup in steps outlasts short large-batch runs (set trainer.schedule.warmup_fraction)"
        if reason:
            verdicts.append(Verdict(claim, Context(setup), reason=reason))
            continue
        adamw, lion = series_of(setup_runs, "adamw", "wd_key"), series_of(setup_runs, "lion", "wd_key")
        if not adamw or not lion:
            verdicts.append(Verdict(claim, Context(setup), reason=f"no {'AdamW' if not adamw else 'Lion'} runs"))
        for adamw_series, adamw_runs in adamw.items():
            for lion_series, lion_runs in lion.items():
                verdicts.append(judge(setup, adamw_series, adamw_runs, lion_series, lion_runs))
    return verdicts


def judge(setup: str, adamw: Series, adamw_runs: pd.DataFrame, lion: Series, lion_runs: pd.DataFrame) -> Verdict:
    batches = sorted(set(adamw_runs["batch_size"]) & set(lion_runs["batch_size"]))
    fixed = (f"batch {', '.join(map(str, batches))} (lr tuned per batch)", wd_part(adamw.fixed, lion.fixed))
    verdict = Verdict(CLAIM_BY_KEY["update7"], Context(setup, (*fixed, *optimizer_parts(adamw, lion))))
    per_batch, skipped = {}, []
    for batch in batches:
        result = advantage(adamw_runs[adamw_runs["batch_size"] == batch], lion_runs[lion_runs["batch_size"] == batch])
        if isinstance(result, str):
            skipped.append(f"bs{batch}: {result}")
            continue
        comparison, picks, edges = result
        decision = decide(comparison, 0.0, a_better=False, names=("AdamW", "Lion"))
        if decision is None:
            skipped.append(f"bs{batch}: fewer than 2 seeds where both finished")
            continue
        per_batch[batch] = (comparison, decision, picks, edges)
        verdict.sources += comparison.sources
    small = [batch for batch in per_batch if batch < LARGE_BATCH]
    large = [batch for batch in per_batch if batch >= LARGE_BATCH]
    verdict.detail = "; ".join([_describe(batch, *per_batch[batch]) for batch in sorted(per_batch)] + skipped)
    if not small or not large:
        verdict.reason = (f"needs judged batch sizes below and at/above {LARGE_BATCH} (judged: "
                          f"{', '.join(map(str, sorted(per_batch))) or 'none'}; {'; '.join(skipped) or 'no grid'})")
        return verdict
    # Decision per batch size is about "Lion wins here" (AdamW - Lion > 0).
    wins = {batch: per_batch[batch][1] for batch in per_batch}
    against = [wins[b] for b in small if wins[b].outcome == SUPPORTED] + \
              [wins[b] for b in large if wins[b].outcome == CONTRADICTED]
    if against:
        p = min(1.0, len(per_batch) * min(decision.p_value for decision in against))
        verdict.decision = Decision(CONTRADICTED, p, "; ".join(d.note for d in against if d.note))
    elif all(wins[b].outcome == SUPPORTED for b in large):
        verdict.decision = Decision(SUPPORTED, max(wins[b].p_value for b in large),
                                    "; ".join(wins[b].note for b in large if wins[b].note))
    else:
        finite = [wins[b].p_value for b in large if math.isfinite(wins[b].p_value)]
        verdict.decision = Decision(INCONCLUSIVE, max(finite) if finite else math.nan)
    binding = min(large, key=lambda b: per_batch[b][0].mean if math.isfinite(per_batch[b][0].mean) else -math.inf)
    comparison = per_batch[binding][0]
    verdict.effect, verdict.low, verdict.high = comparison.mean, comparison.low, comparison.high
    verdict.effect_name = f"advantage AdamW - Lion at bs{binding} (the smallest at >= {LARGE_BATCH})"
    verdict.num = min(per_batch[b][0].num_pairs for b in per_batch)
    verdict.sources = sorted(set(verdict.sources))
    return verdict


def _describe(batch: int, comparison: Comparison, decision: Decision, picks: dict, edges) -> str:
    def signed(value: float) -> str:
        return "-" if not math.isfinite(value) else f"{value:+.3g}"

    lrs = ", ".join(f"{who} lr {'/'.join(short_number(lr) for lr in found)}" for who, found in picks.items())
    edge = f", best lr at the grid's edge for {' and '.join(edges)}" if edges else ""
    note = f", {decision.note}" if decision.note else ""
    return (f"bs{batch}: {signed(comparison.mean)} [{signed(comparison.low)}, {signed(comparison.high)}] "
            f"n={comparison.num_pairs} ({lrs}{edge}{note})")
