"""Choosing an optimizer's best arm without the winner's curse: on named selection seeds, or for each seed
on the other seeds (leave one seed out), and reading each answer seed's value at the arm chosen.

Arms are compared on the same seeds only: on the selection seeds (an arm that lacks one does not compete),
or, without them, on the seeds every arm ran (``shared_seeds``), so an arm with extra seeds (the chosen arm
that also ran the answer seeds) is never a mean over more seeds set against means over fewer.

A best arm at the edge of its grid is no optimum (``grid_edge``): every claim that rests on a chosen arm is
then not judged, whatever its effect. An edge is a grid end that can be extended: either end of the lr grid,
the top of the weight-decay grid, and its bottom when that is above 0. Weight decay 0 is the bound of the
parameter space, not an edge: a best arm at weight decay 0 is a valid optimum.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.format import short_number

Arm = tuple[float, float]  # (lr, weight decay)


def arm_grid(runs: pd.DataFrame, metric: str) -> tuple[list[Arm], dict[int, dict]]:
    """(arms as (lr, wd), seed -> {arm: metric (+inf diverged)})."""
    arms = sorted({(float(lr), float(wd)) for lr, wd in zip(runs["lr_key"], runs["wd_key"])})
    values: dict[int, dict] = {}
    for run in runs.sort_values("source").itertuples(index=False):
        value = math.inf if run.status == "diverged" else float(getattr(run, metric))
        values.setdefault(int(run.seed), {}).setdefault((float(run.lr_key), float(run.wd_key)), value)
    return arms, values


def shared_seeds(runs: pd.DataFrame, keys=("lr_key", "wd_key")) -> list[int]:
    """The seeds every arm (every group of ``keys``) ran: the seeds arms can be compared on."""
    if not len(runs):
        return []
    groups = [set(map(int, group["seed"])) for _, group in runs.groupby(list(keys), sort=True)]
    return sorted(set.intersection(*groups))


def seed_list(seeds) -> str:
    return ",".join(map(str, sorted(seeds))) or "none"


def best_arm(arms, values, seeds) -> Arm | None:
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
                    ) -> tuple[dict[int, float], list[Arm], str]:
    """Seed -> the answer value at the selected arm, the arms selected, and how (on which seeds) they were
    selected."""
    arms, values = arm_grid(runs, metric)
    seeds = sorted(values)
    out, picks = {}, []
    if selection_seeds is not None:
        pick = best_arm(arms, values, list(selection_seeds))
        answer = list(answer_seeds) if answer_seeds else [s for s in seeds if s not in selection_seeds]
        if pick is not None:
            picks.append(pick)
            out = {seed: values[seed][pick] for seed in answer if pick in values.get(seed, {})}
        return out, picks, f"chosen on seeds {seed_list(selection_seeds)}"
    common = shared_seeds(runs)
    for seed in seeds:
        pick = best_arm(arms, values, [other for other in common if other != seed])
        if pick is not None and pick in values[seed]:
            out[seed] = values[seed][pick]
            picks.append(pick)
    return out, picks, f"each seed at the arm best on the other seeds of {seed_list(common)} (those every arm ran)"


def _at(value: float, grid: list[float]) -> int | None:
    """-1 for the bottom of ``grid``, +1 for its top, None inside (or a grid of one value: nothing swept)."""
    if len(grid) < 2:
        return None
    if math.isclose(value, grid[0], rel_tol=1e-6):
        return -1
    if math.isclose(value, grid[-1], rel_tol=1e-6):
        return 1
    return None


def grid_edge(name: str, picks, arms) -> str:
    """Why a best arm ``picks`` chose from ``arms`` ((lr, wd) pairs) is no optimum, in one line ("" when every
    pick lies inside its grid); weight decay 0 at the bottom is the parameter's bound, not an edge."""
    lrs = sorted({float(lr) for lr, _ in arms})
    wds = sorted({float(wd) for _, wd in arms})
    found = []
    for lr, wd in sorted(set(picks)):
        side = _at(lr, lrs)
        if side is not None:
            found.append(f"best {name} lr {short_number(lr)} is the {'top' if side > 0 else 'bottom'} of its grid")
        side = _at(wd, wds)
        if side is not None and (side > 0 or wd > 0):
            found.append(f"best {name} weight decay {short_number(wd)} is the {'top' if side > 0 else 'bottom'} of "
                         "its grid")
    return edges_line(found)


def edges_line(edges) -> str:
    """Edges found, as one line that says what to do."""
    edges = list(dict.fromkeys(edge.removesuffix(": extend the grids").removesuffix(": extend the grid")
                               for edge in edges if edge))
    return f"{'; '.join(edges)}: extend the grid{'s' if len(edges) > 1 else ''}" if edges else ""
