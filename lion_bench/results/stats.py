"""The statistics behind every verdict, fixed before looking at runs: paired comparisons by seed with
the divergence rule, t-intervals and p-values, Holm's correction, and the optimum of a log grid with a
bootstrap over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ALPHA = 0.05
CONFIDENCE = 1 - ALPHA
NUM_BOOTSTRAP = 2000
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
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


def t_test(values, margin: float = 0.0) -> float:
    """Two-sided p-value of the one-sample t-test of mean = ``margin``; NaN with fewer than 2 values."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2 or not math.isfinite(margin):
        return math.nan
    spread = values.std(ddof=1)
    if spread <= 1e-12 * max(1.0, abs(values.mean())):  # identical differences: no doubt either way
        return 1.0 if math.isclose(values.mean(), margin, rel_tol=1e-12, abs_tol=1e-15) else 0.0
    t = (values.mean() - margin) / (spread / math.sqrt(len(values)))
    return float(2 * stats.t.sf(abs(t), len(values) - 1))


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, family-wise error); NaN entries are not tests and stay NaN."""
    tested = sorted((p, index) for index, p in enumerate(p_values) if math.isfinite(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running
    return adjusted


@dataclass
class Comparison:
    """Arm A against arm B on one metric, paired by seed: d = metric(A) - metric(B)."""

    num_pairs: int  # seeds where both runs finished with a finite metric
    mean: float
    low: float
    high: float
    differences: np.ndarray
    diverged: tuple[int, int]  # diverged runs of A and of B
    num_runs: tuple[int, int]
    sources: list[str] = field(default_factory=list)

    def p_value(self, margin: float = 0.0) -> float:
        return t_test(self.differences, margin)


def one_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.sort_values(["seed", "source"], kind="stable").drop_duplicates("seed").set_index("seed")


def compare(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> Comparison:
    """Paired comparison of two arms' runs. Only seeds where both finished count as pairs: a diverged
    run never averages with finished ones (``decide`` lets the arm with divergences lose instead)."""
    a, b = one_per_seed(a), one_per_seed(b)
    seeds = sorted(set(a.index) & set(b.index))
    finished = [seed for seed in seeds if a.at[seed, "status"] == "finished" and b.at[seed, "status"] == "finished"]
    differences = np.array([a.at[seed, metric] - b.at[seed, metric] for seed in finished], dtype=float)
    differences = differences[np.isfinite(differences)]
    mean, low, high = t_interval(differences)
    diverged = (int((a["status"] == "diverged").sum()), int((b["status"] == "diverged").sum()))
    sources = sorted(list(a.loc[seeds, "source"]) + list(b.loc[seeds, "source"]))
    return Comparison(len(differences), mean, low, high, differences, diverged, (len(a), len(b)), sources)


@dataclass
class Decision:
    """A verdict before the multiple-comparison correction, with the p-value that decided it (NaN:
    nothing was tested) or None when the runs do not allow a judgement at all."""

    outcome: str
    p_value: float
    note: str = ""


def decide(comparison: Comparison, margin: float, a_better: bool, names: tuple[str, str]) -> Decision | None:
    """Judge a claim about d = A - B: "d < margin" (``a_better``) or "d > margin".

    An arm with a diverged run loses the comparison outright (p = 0); when both have one, inconclusive.
    Otherwise a two-sided t-test of d = margin over the finished pairs: significant at ALPHA in the
    claimed direction is supported, in the other contradicted, else inconclusive. Fewer than 2 finished
    pairs: None (not judged).
    """
    (diverged_a, diverged_b), (runs_a, runs_b) = comparison.diverged, comparison.num_runs
    if diverged_a and diverged_b:
        return Decision(INCONCLUSIVE, math.nan, f"both diverged ({names[0]} {diverged_a}/{runs_a}, "
                                                f"{names[1]} {diverged_b}/{runs_b} runs)")
    if diverged_a or diverged_b:
        a_lost = bool(diverged_a)
        loser, diverged, runs = (names[0], diverged_a, runs_a) if a_lost else (names[1], diverged_b, runs_b)
        outcome = CONTRADICTED if a_lost == a_better else SUPPORTED
        return Decision(outcome, 0.0, f"{loser} diverged ({diverged} of {runs} runs) and loses")
    if comparison.num_pairs < 2:
        return None
    p = comparison.p_value(margin)
    if not p < ALPHA:
        return Decision(INCONCLUSIVE, p)
    return Decision(SUPPORTED if (comparison.mean < margin) == a_better else CONTRADICTED, p)


def combine_all(decisions: list[Decision]) -> Decision:
    """A claim that needs every part (intersection-union): supported when every part is, with the largest
    p; contradicted when any part is, with Bonferroni over the parts; else inconclusive."""
    supported = [d for d in decisions if d.outcome == SUPPORTED]
    contradicted = [d for d in decisions if d.outcome == CONTRADICTED]
    if contradicted:
        return Decision(CONTRADICTED, min(1.0, len(decisions) * min(d.p_value for d in contradicted)))
    if len(supported) == len(decisions):
        return Decision(SUPPORTED, max(d.p_value for d in supported))
    finite = [d.p_value for d in decisions if math.isfinite(d.p_value)]
    return Decision(INCONCLUSIVE, max(finite) if finite else math.nan)


# --- optimum of a grid --------------------------------------------------------------------------------

def grid_optimum(log_values: np.ndarray, losses: np.ndarray) -> tuple[float, bool]:
    """(estimated log-location of the minimum, whether the best grid point is at the grid's edge).

    ``log_values`` sorted; ``losses`` per point: +inf where a run diverged (worse than any finished
    point, never fitted), NaN where the point has no runs (left out). The estimate is the vertex of the
    parabola through the best point and its two neighbours, kept between those neighbours; the best
    point itself when a neighbour diverged or the parabola has no minimum.
    """
    present = ~np.isnan(losses)
    xs, ys = log_values[present], losses[present]
    if not np.isfinite(ys).any():
        return math.nan, True
    best = int(np.argmin(ys))
    if best == 0 or best == len(xs) - 1:
        return float(xs[best]), True
    (x0, x1, x2), (y0, y1, y2) = xs[best - 1: best + 2], ys[best - 1: best + 2]
    if not (math.isfinite(y0) and math.isfinite(y2)):
        return float(x1), False
    denominator = (x0 - x1) * (x0 - x2) * (x1 - x2)
    curvature = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denominator
    slope = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / denominator
    if curvature <= 0:
        return float(x1), False
    return float(min(max(-slope / (2 * curvature), x0), x2)), False


def mean_losses(losses: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per grid point (columns of ``losses``: one row per seed, +inf diverged, NaN not run), the mean over
    the seed ``rows`` drawn (repeats count); +inf where any of them diverged; NaN where none ran."""
    drawn = losses[rows]
    ran = ~np.isnan(drawn)
    counts = ran.sum(axis=0)
    with np.errstate(invalid="ignore"):
        means = np.where(ran, drawn, 0.0).sum(axis=0) / np.maximum(counts, 1)
    means = np.where(counts > 0, means, np.nan)
    return np.where(np.isinf(drawn).any(axis=0), np.inf, means)


def bootstrap_difference(grid_a: tuple[np.ndarray, np.ndarray], grid_b: tuple[np.ndarray, np.ndarray],
                         num: int = NUM_BOOTSTRAP) -> np.ndarray:
    """Bootstrap over seeds of optimum(A) - optimum(B) in log10 units, one draw of seeds for both (paired).
    A grid is (sorted log10 values, losses with one row per seed, the same seeds in the same order)."""
    (xa, la), (xb, lb) = grid_a, grid_b
    rng = np.random.default_rng(0)
    num_seeds = la.shape[0]
    out = np.empty(num)
    for index in range(num):
        rows = rng.integers(0, num_seeds, size=num_seeds)
        out[index] = grid_optimum(xa, mean_losses(la, rows))[0] - grid_optimum(xb, mean_losses(lb, rows))[0]
    return out


def decide_range(samples: np.ndarray, low: float, high: float) -> Decision:
    """A claim "value in [low, high]" from bootstrap samples of the value: supported when the 95%
    percentile interval lies inside, contradicted when it lies wholly outside, else inconclusive;
    p-values are twice the bootstrap tail share on the wrong side."""
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return Decision(INCONCLUSIVE, math.nan)
    p_support = min(1.0, 2 * max(np.mean(samples < low), np.mean(samples > high)))
    p_contradict = min(1.0, 2 * min(np.mean(samples >= low), np.mean(samples <= high)))
    if p_support < ALPHA:
        return Decision(SUPPORTED, float(p_support))
    if p_contradict < ALPHA:
        return Decision(CONTRADICTED, float(p_contradict))
    return Decision(INCONCLUSIVE, float(min(p_support, p_contradict)))
