"""Choosing an optimizer's best arm without the winner's curse: on named selection seeds, or for each seed
on the other seeds (leave one seed out), and reading each answer seed's value at the arm chosen."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def arm_grid(runs: pd.DataFrame, metric: str) -> tuple[list[tuple[float, float]], dict[int, dict]]:
    """(arms as (lr, wd), seed -> {arm: metric (+inf diverged)})."""
    arms = sorted({(float(lr), float(wd)) for lr, wd in zip(runs["lr_key"], runs["wd_key"])})
    values: dict[int, dict] = {}
    for run in runs.sort_values("source").itertuples(index=False):
        value = math.inf if run.status == "diverged" else float(getattr(run, metric))
        values.setdefault(int(run.seed), {}).setdefault((float(run.lr_key), float(run.wd_key)), value)
    return arms, values


def best_arm(arms, values, seeds) -> tuple[float, float] | None:
    """The arm with the lowest mean over ``seeds`` (each arm needs every one of them; +inf if any diverged)."""
    means = {}
    for arm in arms:
        found = [values.get(seed, {}).get(arm) for seed in seeds]
        if seeds and all(value is not None for value in found):
            means[arm] = math.inf if any(math.isinf(v) for v in found) else float(np.mean(found))
    finite = {arm: mean for arm, mean in means.items() if math.isfinite(mean)}
    pool = finite or means
    return min(pool, key=lambda arm: (pool[arm], arm)) if pool else None


def held_out_values(runs: pd.DataFrame, metric: str, selection_seeds=None, answer_seeds=None
                    ) -> tuple[dict[int, float], list[tuple[float, float]], str]:
    """Seed -> the answer value at the selected arm, the arms selected, and how they were selected."""
    arms, values = arm_grid(runs, metric)
    seeds = sorted(values)
    out, picks = {}, []
    if selection_seeds is not None:
        pick = best_arm(arms, values, list(selection_seeds))
        answer = list(answer_seeds) if answer_seeds else [s for s in seeds if s not in selection_seeds]
        if pick is not None:
            picks.append(pick)
            out = {seed: values[seed][pick] for seed in answer if pick in values.get(seed, {})}
        return out, picks, f"chosen on seeds {','.join(map(str, selection_seeds))}"
    for seed in seeds:
        pick = best_arm(arms, values, [other for other in seeds if other != seed])
        if pick is not None and pick in values[seed]:
            out[seed] = values[seed][pick]
            picks.append(pick)
    return out, picks, "each seed at the arm best on the other seeds"
