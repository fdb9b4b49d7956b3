"""Where each optimizer's optimum lies: the paper's lr ratio (and the first README's "typically 10x"), its
weight-decay advice in its own terms (a similar lr x weight decay), and decoupled weight decay (the best
weight decay no longer depends on the lr).

Each best lr comes from a quadratic in log lr fitted over >= 4 points of the optimizer's own grid around its
best point; the interval of a ratio from a bootstrap over seeds (one draw shared by both optimizers) with each
draw's vertex moved by the fit's own standard error. Grids tied to each other (ratio space: Lion at AdamW's grid
lrs / k, one k) build the ratio in: such a pair is not judged. Two grids of their own, absolute lrs (the
same ones or not) or each optimizer's own divisors of one base lr, measure it. Every grid point is a mean over
the seeds every point ran; a best point at the edge of its grid (``selection.grid_edge``) is no optimum.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.claims.base import (INSIDE_SUPPORTS, Cell, Series, Settings, not_judged, optimizer_parts,
                                            series_of, wd_part)
from lion_bench.results.claims.catalogue import (CLAIM_BY_KEY, RATIO_RANGE, STRENGTH_RANGE, TEN_NOT_THREE,
                                                 WD_INDEPENDENCE)
from lion_bench.results.claims.selection import edges_line, grid_edge, seed_list, shared_seeds
from lion_bench.results.contexts import Context
from lion_bench.results.format import short_number
from lion_bench.results.stats import (MIN_FIT, MIN_SEEDS, NUM_BOOTSTRAP, Bootstrap, bootstrap_optima, fit_optimum,
                                      mean_losses)

KEYS = ("paper_lr", "older_10x", "paper_wd", "decoupled_wd")
ROUGH_SEEDS = 5  # fewer seeds: the bootstrap interval is rough (3 seeds have 10 distinct resamples)


def grid(runs: pd.DataFrame, swept: str, seeds: list[int], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted log10 grid values > 0, losses: one row per seed in ``seeds``; +inf diverged, NaN not run)."""
    runs = runs[runs[swept] > 0]
    values = sorted(runs[swept].unique())
    losses = np.full((len(seeds), len(values)), np.nan)
    row_of = {seed: index for index, seed in enumerate(seeds)}
    column_of = {value: index for index, value in enumerate(values)}
    for run in runs.sort_values("source").itertuples(index=False):
        if run.seed in row_of:
            loss = math.inf if run.status == "diverged" else getattr(run, metric)
            losses[row_of[run.seed], column_of[getattr(run, swept)]] = loss
    return np.log10(np.array(values, dtype=float)), losses


def built_in(adamw_runs: pd.DataFrame, lion_runs: pd.DataFrame) -> float | None:
    """The divisor k when Lion's grid was defined from AdamW's, which ties the two optima to each other: every
    Lion arm at base lr / k for one k other than 1, its base lrs being AdamW's grid lrs (ratio space, sweeping
    base.lr moves both: sweep=lr_grid). None for grids of their own: absolute lrs (identical or not; k = 1 is
    that), or each optimizer's own divisors of one base lr (sweep=tuned)."""
    divisors = {float(f"{k:.6g}") for k in lion_runs["lr_divisor"]}
    bases = sorted({float(f"{lr:.6g}") for lr in lion_runs["base_lr"]})
    if len(divisors) != 1 or len(bases) < 2:
        return None
    k = divisors.pop()
    adamw_lrs = [float(lr) for lr in adamw_runs["lr_key"].unique()]
    if math.isclose(k, 1.0, rel_tol=1e-6):
        return None
    if all(any(math.isclose(base, lr, rel_tol=1e-5) for lr in adamw_lrs) for base in bases):
        return k
    return None


def rough(num_seeds: int) -> str:
    return (f"rough interval: {num_seeds} seeds ({math.comb(2 * num_seeds - 1, num_seeds)} distinct resamples)"
            if num_seeds < ROUGH_SEEDS else "")


def lr_ratio_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    cells = []
    for setup, setup_runs in runs.groupby("setup", sort=True):
        adamw, lion = series_of(setup_runs, "adamw", "wd_key"), series_of(setup_runs, "lion", "wd_key")
        for adamw_series, adamw_runs in adamw.items():
            for lion_series, lion_runs in lion.items():
                if lion_series.optimizer != "lion" or adamw_series.optimizer != "adamw":
                    continue
                if adamw_runs["lr_key"].nunique() < 2 and lion_runs["lr_key"].nunique() < 2:
                    continue
                cells += judge_lr(setup, adamw_series, adamw_runs, lion_series, lion_runs, settings)
    return cells


def judge_lr(setup: str, adamw: Series, adamw_runs: pd.DataFrame, lion: Series, lion_runs: pd.DataFrame,
             settings: Settings) -> list[Cell]:
    context = Context(setup, ("lr swept", wd_part(adamw.fixed, lion.fixed), *optimizer_parts(adamw, lion)),
                      (("setup", setup), ("adamw_wd", adamw.fixed), ("lion_wd", lion.fixed)))
    sources = sorted(set(adamw_runs["source"]) | set(lion_runs["source"]))
    claims = [CLAIM_BY_KEY["paper_lr"], CLAIM_BY_KEY["older_10x"]]
    counts = {"AdamW": adamw_runs["lr_key"].nunique(), "Lion": lion_runs["lr_key"].nunique()}
    short = [who for who, size in counts.items() if size < MIN_FIT]
    if short:
        reason = f"{' and '.join(short)} ran at fewer than {MIN_FIT} lrs; needs both on a grid"
        return [not_judged(claim, context, reason, sources) for claim in claims]
    shift = built_in(adamw_runs, lion_runs)
    seeds = sorted(set(shared_seeds(adamw_runs, ("lr_key",))) & set(shared_seeds(lion_runs, ("lr_key",))))
    grids = {"AdamW": grid(adamw_runs, "lr_key", seeds, settings.metric),
             "Lion": grid(lion_runs, "lr_key", seeds, settings.metric)}
    estimates = {who: fit_optimum(xs, mean_losses(losses, np.arange(len(seeds)))) for who, (xs, losses) in
                 grids.items()}
    estimate = 10 ** (estimates["AdamW"].log_value - estimates["Lion"].log_value)
    detail = "; ".join(f"{who} best lr {short_number(10 ** found.log_value)} "
                       f"({'fitted' if found.fitted else found.reason}; {len(grids[who][0])} lrs "
                       f"{short_number(10 ** grids[who][0][0])}-{short_number(10 ** grids[who][0][-1])})"
                       for who, found in estimates.items() if len(grids[who][0])) + f"; seeds {seed_list(seeds)}"
    if shift is not None:
        reason = (f"Lion's grid is AdamW's / {shift:.3g} (ratio space: Lion at base lr / {shift:.3g} at AdamW's grid "
                  f"lrs): a ratio near {shift:.3g} is built in (fitted {estimate:.3g}); run Lion on a grid of its own "
                  "(`lion-bench -m sweep=tuned`, or absolute lrs for both)")
        return [not_judged(claim, context, reason, sources) for claim in claims]
    if not seeds:
        return [not_judged(claim, context, "no seed ran at every grid lr of both optimizers", sources)
                for claim in claims]
    edges = []
    for who, (xs, _) in grids.items():
        found = estimates[who]
        if found.at_edge and math.isfinite(found.log_value):
            best = xs[int(np.argmin(np.abs(xs - found.log_value)))]
            fixed = adamw.fixed if who == "AdamW" else lion.fixed
            edges.append(grid_edge(who, [(10 ** best, fixed)], [(10 ** x, fixed) for x in xs]))
    edge = edges_line(edges)
    unfitted = [who for who, found in estimates.items()
                if not found.fitted and not (found.at_edge and math.isfinite(found.log_value))]
    if unfitted and not edge:
        reason = f"no quadratic fit for {' and '.join(unfitted)} ({estimates[unfitted[0]].reason})"
        return [not_judged(claim, context, f"{reason} ({detail})", sources) for claim in claims]
    draws = bootstrap_optima([grids["AdamW"], grids["Lion"]], fit=True)
    ratios = 10 ** (draws[:, 0] - draws[:, 1])
    note = rough(len(seeds))
    out = []
    for claim, bounds in ((claims[0], RATIO_RANGE), (claims[1], (TEN_NOT_THREE, math.inf))):
        test = Bootstrap(ratios, estimate, bounds, len(seeds), "best lr AdamW / Lion", note)
        out.append(Cell(claim, context, test, INSIDE_SUPPORTS, detail=detail, sources=sources, edge=edge,
                        facts={"ratio": estimate, "estimates": estimates}))
    return out


def arm_matrix(runs: pd.DataFrame, seeds: list[int], metric: str) -> tuple[list[tuple[float, float]], np.ndarray]:
    """(arms as (lr, wd), losses: one row per seed, one column per arm; +inf diverged, NaN not run)."""
    arms = sorted({(float(lr), float(wd)) for lr, wd in zip(runs["lr_key"], runs["wd_key"])})
    losses = np.full((len(seeds), len(arms)), np.nan)
    column = {arm: index for index, arm in enumerate(arms)}
    row_of = {seed: row for row, seed in enumerate(seeds)}
    for run in runs.itertuples(index=False):
        if run.seed in row_of:
            losses[row_of[run.seed], column[(float(run.lr_key), float(run.wd_key))]] = (
                math.inf if run.status == "diverged" else getattr(run, metric))
    return arms, losses


def best_of(arms: list[tuple[float, float]], losses: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """The (lr, wd) arm with the lowest mean over the seed ``rows`` drawn; NaNs when none finished."""
    means = mean_losses(losses, rows)
    if not np.isfinite(means).any():
        return math.nan, math.nan
    return arms[int(np.nanargmin(np.where(np.isnan(means), np.inf, means)))]


def wd_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    claim = CLAIM_BY_KEY["paper_wd"]
    cells = []
    for setup, setup_runs in runs.groupby("setup", sort=True):
        adamw = setup_runs[setup_runs["optimizer"] == "adamw"]
        lion = setup_runs[setup_runs["optimizer"] == "lion"]
        if not len(adamw) or not len(lion) or (adamw["wd_key"].nunique() < 2 and lion["wd_key"].nunique() < 2):
            continue
        context = Context(setup, ("lr and wd swept",), (("setup", setup),))
        sources = sorted(set(adamw["source"]) | set(lion["source"]))
        short = [who for who, arms in (("AdamW", adamw), ("Lion", lion))
                 if arms.loc[arms["wd_key"] > 0, "wd_key"].nunique() < 2]
        if short:
            cells.append(not_judged(claim, context, f"{' and '.join(short)} ran at fewer than 2 weight decays > 0",
                                    sources))
            continue
        # Every arm of both grids on the same seeds (an arm that also ran the answer seeds is not a mean over
        # more seeds than the others), the selection seeds where a question names them.
        seeds = sorted(set(shared_seeds(adamw)) & set(shared_seeds(lion)))
        if settings.selection_seeds is not None:
            seeds = [seed for seed in seeds if seed in settings.selection_seeds]
        if not seeds:
            cells.append(not_judged(claim, context, "no seed ran at every arm of both grids", sources))
            continue
        grids = {who: arm_matrix(arms, seeds, settings.metric) for who, arms in (("AdamW", adamw), ("Lion", lion))}
        everything = np.arange(len(seeds))
        point = {who: best_of(*grid_of, everything) for who, grid_of in grids.items()}
        edge = edges_line(grid_edge(who, [point[who]], grids[who][0]) for who in grids)

        def product_ratio(lion_arm, adamw_arm) -> float:
            a, b = adamw_arm[0] * adamw_arm[1], lion_arm[0] * lion_arm[1]
            return b / a if a > 0 else math.inf

        rng = np.random.default_rng(0)
        samples = []
        for _ in range(NUM_BOOTSTRAP):
            rows = rng.integers(0, len(seeds), size=len(seeds))
            samples.append(product_ratio(best_of(*grids["Lion"], rows), best_of(*grids["AdamW"], rows)))
        estimate = product_ratio(point["Lion"], point["AdamW"])
        wd_ratio = point["Lion"][1] / point["AdamW"][1] if point["AdamW"][1] > 0 else math.inf
        detail = "; ".join(f"{who} best lr {short_number(lr)}, wd {short_number(wd)}" for who, (lr, wd) in
                           point.items()) + f"; best wd Lion / AdamW {short_number(wd_ratio)}; means over seeds " \
                                            f"{seed_list(seeds)} (every arm ran them)"
        test = Bootstrap(np.array(samples), estimate, STRENGTH_RANGE, len(seeds), "best lr x wd, Lion / AdamW",
                         rough(len(seeds)))
        cells.append(Cell(claim, context, test, INSIDE_SUPPORTS, detail=detail, sources=sources, edge=edge,
                          facts={"point": point}))
    return cells


def decoupled_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    claim = CLAIM_BY_KEY["decoupled_wd"]
    cells = []
    decoupled = runs[runs["optimizer"].str.contains("decoupled_weight_decay", regex=False)]
    for setup, setup_runs in decoupled.groupby("setup", sort=True):
        sources = sorted(set(setup_runs["source"]))
        by_lr = {lr: group[group["wd_key"] > 0] for lr, group in setup_runs.groupby("lr_key")}
        usable = sorted(lr for lr, group in by_lr.items() if group["wd_key"].nunique() >= 3)
        context = Context(setup, (f"{setup_runs['optimizer'].iloc[0]}, wd swept at each lr",), (("setup", setup),))
        if len(usable) < 2:
            cells.append(not_judged(claim, context, "needs weight-decay grids (>= 3 values > 0) at 2 lrs", sources))
            continue
        low_lr, high_lr = usable[0], usable[-1]
        seeds = sorted(set(shared_seeds(by_lr[low_lr])) & set(shared_seeds(by_lr[high_lr])))
        grids = [grid(by_lr[lr], "wd_key", seeds, settings.metric) for lr in (low_lr, high_lr)]
        fit = all(len(xs) >= 4 for xs, _ in grids)
        estimates = [fit_optimum(xs, mean_losses(losses, np.arange(len(seeds))), fit) for xs, losses in grids]
        edges = []
        for lr, (xs, _), found in zip((low_lr, high_lr), grids, estimates):
            if found.at_edge and math.isfinite(found.log_value):
                best = xs[int(np.argmin(np.abs(xs - found.log_value)))]
                edges.append(grid_edge(f"Lion (lr {short_number(lr)})", [(lr, 10 ** best)],
                                       [(lr, 10 ** x) for x in xs]))
        edge = edges_line(edges)
        draws = bootstrap_optima(grids, fit=fit)
        ratios = 10 ** (draws[:, 1] - draws[:, 0])
        estimate = 10 ** (estimates[1].log_value - estimates[0].log_value)
        test = Bootstrap(ratios, estimate, (1 / WD_INDEPENDENCE, WD_INDEPENDENCE), len(seeds),
                         f"best wd at lr {short_number(high_lr)} / at lr {short_number(low_lr)}", rough(len(seeds)))
        detail = "; ".join(f"lr {short_number(lr)}: best wd {short_number(10 ** found.log_value)}"
                           f"{' (edge)' if found.at_edge else ''}" for lr, found in zip((low_lr, high_lr), estimates))
        if len(seeds) < MIN_SEEDS:
            cells.append(not_judged(claim, context, f"too few seeds: n = {len(seeds)}", sources))
            continue
        cells.append(Cell(claim, context, test, INSIDE_SUPPORTS, detail=f"{detail}; seeds {seed_list(seeds)}",
                          sources=sources, edge=edge))
    return cells


def cells(runs: pd.DataFrame, curves: pd.DataFrame, settings: Settings) -> dict[str, list[Cell]]:
    lr = lr_ratio_cells(runs, settings)
    return {"paper_lr": [c for c in lr if c.claim.key == "paper_lr"],
            "older_10x": [c for c in lr if c.claim.key == "older_10x"],
            "paper_wd": wd_cells(runs, settings), "decoupled_wd": decoupled_cells(runs, settings)}
