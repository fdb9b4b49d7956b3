"""The statistics behind every verdict, fixed before looking at runs.

A *test* answers one question at an error rate ``alpha``: ``decide(alpha)`` gives its answer (or
INCONCLUSIVE) and ``interval(alpha)`` the interval at that same rate, so an interval and its answer never
disagree. A family of tests is corrected with Holm's step-down rule (``holm_levels``): each test's
*decision p-value* is the smallest ``alpha`` at which it decides anything, found by bisection (every test
here decides at a rate if it decides at any smaller one); a test Holm lets through is answered at the
adjusted rate of its rank, one it stops is inconclusive and shown at the family's strictest rate.

Tests: ``ThreeWay`` (A better / B better / equivalent within a margin, two one-sided tests read from one
interval), ``Threshold`` (a paired difference above or below a value), ``Bootstrap`` (a quantity inside or
outside a range, from bootstrap samples), ``SignTest`` (paired events: which side has fewer), ``AllOf``
(claims with several parts), ``Crossing`` (where one arm stops being behind over batch sizes). Also: the optimum of a log grid (a quadratic fit over >= 4 points, with the fit's
own standard error) and where two curves cross.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

ALPHA = 0.05
MIN_SEEDS = 3  # paired seeds a test needs before it may decide anything
INCONCLUSIVE = "inconclusive"
EQUIVALENT = "equivalent"
ABOVE, BELOW = "above", "below"
INSIDE, OUTSIDE = "inside", "outside"
NUM_BOOTSTRAP = 2000
MAX_SEEDS = 10_000  # seeds_to_decide gives up beyond this


def t_quantile(alpha: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(1 - alpha / 2, dof))


def t_interval(values, alpha: float = ALPHA) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided Student-t interval of the mean at error rate ``alpha``; NaN bounds
    with fewer than 2 finite values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = t_quantile(alpha, len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, family-wise error); NaN entries are not tests and stay NaN."""
    tested = sorted((p, index) for index, p in enumerate(p_values) if math.isfinite(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running
    return adjusted


def holm_levels(p_values: Sequence[float], alpha: float = ALPHA) -> list[tuple[bool, float, float]]:
    """Per test: (decided, the error rate to answer and show its interval at, Holm-adjusted p). Decided
    tests are answered at alpha / (k - rank + 1), their rank's level; the others at alpha / k, the strictest,
    where their interval decides nothing either. NaN p-values are not tests: (False, alpha / k, NaN)."""
    adjusted = holm(p_values)
    order = sorted((p, index) for index, p in enumerate(p_values) if math.isfinite(p))
    k = len(order)
    rank_of = {index: rank for rank, (_, index) in enumerate(order)}
    out = []
    for index, p in enumerate(p_values):
        if index not in rank_of:
            out.append((False, alpha / max(k, 1), math.nan))
            continue
        decided = adjusted[index] <= alpha
        rate = alpha / (k - rank_of[index]) if decided else alpha / k
        out.append((decided, rate, adjusted[index]))
    return out


# --- tests -----------------------------------------------------------------------------------------
class Test:
    """One question's statistics. Subclasses give ``decide`` and ``interval``; ``n`` counts what it is
    based on (paired seeds, seeds, pairs of runs)."""

    n: int = 0
    note: str = ""  # said beside the answer (a divergence that decided it, a rough interval)
    effect_name: str = ""

    def decide(self, alpha: float) -> str:
        raise NotImplementedError

    def interval(self, alpha: float) -> tuple[float, float, float]:
        raise NotImplementedError

    def interval_alpha(self, alpha: float) -> float:
        """The error rate of ``interval(alpha)`` (a claim of several parts may show a part at a stricter one)."""
        return alpha

    @property
    def testable(self) -> bool:
        """False when nothing can be tested at all (both arms diverged, no finite value)."""
        return True

    def p_decision(self) -> float:
        """The smallest error rate at which this test decides anything (NaN when it cannot be tested)."""
        if not self.testable:
            return math.nan
        if self.decide(1.0 - 1e-12) == INCONCLUSIVE:
            return 1.0
        if self.decide(1e-15) != INCONCLUSIVE:
            return 0.0
        low, high = math.log(1e-15), math.log(1.0 - 1e-12)
        for _ in range(60):
            middle = (low + high) / 2
            if self.decide(math.exp(middle)) == INCONCLUSIVE:
                low = middle
            else:
                high = middle
        return math.exp(high)

    def seeds_to_decide(self, alpha: float) -> int | None:
        """Paired seeds that would decide the question at ``alpha`` if the observed effect and spread held;
        None when no number would (no spread measured, or an effect exactly on the boundary)."""
        return None


@dataclass
class Paired:
    """Arm A against arm B on one metric, paired by seed: d = metric(A) - metric(B), over the seeds where
    both finished. ``diverged`` counts each arm's diverged runs among the seeds both ran: an arm that
    diverged loses (a diverged run never averages with finished ones)."""

    differences: np.ndarray
    diverged: tuple[int, int] = (0, 0)
    num_runs: tuple[int, int] = (0, 0)
    sources: list[str] = field(default_factory=list)
    names: tuple[str, str] = ("A", "B")
    reference_mean: float = math.nan  # B's mean metric over the pairs (margins are fractions of it)
    seeds: tuple[int, ...] = ()  # the seed of each difference, where known

    @property
    def n(self) -> int:
        return int(np.isfinite(self.differences).sum())

    def values(self) -> np.ndarray:
        return self.differences[np.isfinite(self.differences)]

    def divergence_note(self) -> str:
        (a, b), (runs_a, runs_b) = self.diverged, self.num_runs
        parts = [f"{name} diverged ({count} of {runs} runs)" for name, count, runs in
                 ((self.names[0], a, runs_a), (self.names[1], b, runs_b)) if count]
        return "; ".join(parts)


class PairedTest(Test):
    """Shared by tests on a ``Paired``: the divergence rule, the interval, the seeds-needed estimate."""

    def __init__(self, paired: Paired, effect_name: str = ""):
        self.paired = paired
        self.effect_name = effect_name
        self.n = paired.n
        diverged_a, diverged_b = paired.diverged
        self.loser = None if bool(diverged_a) == bool(diverged_b) else (0 if diverged_a else 1)
        self.note = paired.divergence_note()
        if self.loser is not None:
            self.note += " and loses"
        elif diverged_a and diverged_b:
            self.note += ": both diverged, nothing to compare"

    @property
    def testable(self) -> bool:
        a, b = self.paired.diverged
        if a and b:
            return False
        return self.loser is not None or self.n >= MIN_SEEDS

    def interval(self, alpha: float) -> tuple[float, float, float]:
        return t_interval(self.paired.values(), alpha)

    def _distance(self) -> float:
        """How far the mean must be from the boundary for the interval to decide (the subclass's rule)."""
        raise NotImplementedError

    def seeds_to_decide(self, alpha: float) -> int | None:
        values = self.paired.values()
        if self.loser is not None or len(values) < 2:
            return None
        spread = float(values.std(ddof=1))
        distance = self._distance()
        if spread == 0 or distance <= 0:
            return None
        for n in range(max(2, len(values)), MAX_SEEDS + 1):
            if t_quantile(alpha, n - 1) * spread / math.sqrt(n) < distance:
                return n
        return None


class ThreeWay(PairedTest):
    """A against B with an equivalence margin ``margin`` (in the metric's units), read from one interval of
    d = A - B (Schuirmann's two one-sided tests; STATISTICS.md): inside (-margin, +margin): equivalent;
    wholly below 0 and reaching past -margin: A better; the mirror image: B better; else inconclusive.
    A real difference that stays inside the margin is "equivalent". Lower is better."""

    def __init__(self, paired: Paired, margin: float, effect_name: str = ""):
        super().__init__(paired, effect_name)
        self.margin = float(margin)

    def better(self, which: int) -> str:
        return f"{self.paired.names[which]} better"

    def decide(self, alpha: float) -> str:
        if self.loser is not None:
            return self.better(1 - self.loser)
        if not self.testable or not math.isfinite(self.margin):
            return INCONCLUSIVE
        _, low, high = self.interval(alpha)
        if not (math.isfinite(low) and math.isfinite(high)):
            return INCONCLUSIVE
        if -self.margin < low and high < self.margin:
            return EQUIVALENT
        if high < 0 and low <= -self.margin:
            return self.better(0)
        if low > 0 and high >= self.margin:
            return self.better(1)
        return INCONCLUSIVE

    def _distance(self) -> float:
        mean = abs(float(self.paired.values().mean()))
        return max(mean, self.margin - mean)


class Threshold(PairedTest):
    """d = A - B above or below ``threshold``: decided when the interval excludes it."""

    def __init__(self, paired: Paired, threshold: float = 0.0, effect_name: str = ""):
        super().__init__(paired, effect_name)
        self.threshold = float(threshold)

    def decide(self, alpha: float) -> str:
        if self.loser is not None:
            return ABOVE if self.loser == 0 else BELOW  # the diverged arm is worse: its loss is the larger
        if not self.testable or not math.isfinite(self.threshold):
            return INCONCLUSIVE
        _, low, high = self.interval(alpha)
        if math.isfinite(low) and low > self.threshold:
            return ABOVE
        if math.isfinite(high) and high < self.threshold:
            return BELOW
        return INCONCLUSIVE

    def _distance(self) -> float:
        return abs(float(self.paired.values().mean()) - self.threshold)


class Bootstrap(Test):
    """A quantity known through bootstrap samples (a ratio of optima), inside or outside ``[low, high]``
    (log-symmetric percentile intervals; the point estimate is ``estimate``)."""

    def __init__(self, samples: np.ndarray, estimate: float, bounds: tuple[float, float], n: int,
                 effect_name: str = "", note: str = ""):
        samples = np.asarray(samples, dtype=float)
        self.samples = np.sort(samples[np.isfinite(samples)])
        self.estimate, self.bounds, self.n = estimate, bounds, n
        self.effect_name, self.note = effect_name, note

    @property
    def testable(self) -> bool:
        return len(self.samples) > 0 and self.n >= MIN_SEEDS

    def interval(self, alpha: float) -> tuple[float, float, float]:
        if not len(self.samples):
            return self.estimate, math.nan, math.nan
        low, high = np.quantile(self.samples, [alpha / 2, 1 - alpha / 2])
        return self.estimate, float(low), float(high)

    def decide(self, alpha: float) -> str:
        if not self.testable:
            return INCONCLUSIVE
        _, low, high = self.interval(alpha)
        if self.bounds[0] <= low and high <= self.bounds[1]:
            return INSIDE
        if high < self.bounds[0] or low > self.bounds[1]:
            return OUTSIDE
        return INCONCLUSIVE


class SignTest(Test):
    """Paired yes/no events (a run diverged or spiked) of arms A and B: among the discordant pairs, the share
    where only B had the event, with its Clopper-Pearson interval. "A fewer" when it lies above 1/2."""

    def __init__(self, only_a: int, only_b: int, num_pairs: int, names: tuple[str, str], effect_name: str = ""):
        self.only_a, self.only_b, self.n, self.names = only_a, only_b, num_pairs, names
        self.effect_name = effect_name

    @property
    def testable(self) -> bool:
        return self.only_a + self.only_b > 0 and self.n >= MIN_SEEDS

    def interval(self, alpha: float) -> tuple[float, float, float]:
        from scipy import stats

        discordant = self.only_a + self.only_b
        if not discordant:
            return math.nan, math.nan, math.nan
        result = stats.binomtest(self.only_b, discordant).proportion_ci(confidence_level=1 - alpha)
        return self.only_b / discordant, float(result.low), float(result.high)

    def decide(self, alpha: float) -> str:
        if not self.testable:
            return INCONCLUSIVE
        _, low, high = self.interval(alpha)
        if low > 0.5:
            return f"{self.names[0]} fewer"
        if high < 0.5:
            return f"{self.names[1]} fewer"
        return INCONCLUSIVE


class AllOf(Test):
    """A claim of several parts, each a test with a reading of its answers into "yes" / "no" (else
    unsure): yes when every part says yes (intersection-union: each part at the claim's rate), no when any
    part says no at the rate divided by the number of parts (Bonferroni), else inconclusive. The interval
    is that of ``shown`` (the part the cell displays)."""

    def __init__(self, parts: list[tuple[Test, Callable[[str], str]]], shown: Test, effect_name: str = "",
                 note: str = ""):
        self.parts, self.shown = parts, shown
        self.n = min((part.n for part, _ in parts), default=0)
        self.effect_name, self.note = effect_name, note

    @property
    def testable(self) -> bool:
        return any(part.testable for part, _ in self.parts)

    def _saying_no(self, alpha: float) -> Test | None:
        for part, reading in self.parts:
            if reading(part.decide(alpha / len(self.parts))) == "no":
                return part
        return None

    def interval(self, alpha: float) -> tuple[float, float, float]:
        """The interval of the part that says "no" (at the rate that decided it), else of ``shown``."""
        part = self._saying_no(alpha)
        return part.interval(alpha / len(self.parts)) if part is not None else self.shown.interval(alpha)

    def interval_alpha(self, alpha: float) -> float:
        return alpha / len(self.parts) if self._saying_no(alpha) is not None else alpha

    def decide(self, alpha: float) -> str:
        if any(reading(part.decide(alpha / len(self.parts))) == "no" for part, reading in self.parts):
            return "no"
        if all(reading(part.decide(alpha)) == "yes" for part, reading in self.parts):
            return "yes"
        return INCONCLUSIVE


# --- grids -----------------------------------------------------------------------------------------
@dataclass
class Optimum:
    """Where a grid's loss is lowest, in log10 of the swept value: a quadratic fit over >= ``MIN_FIT``
    points around the best one (``fitted``), or the best grid point itself."""

    log_value: float
    se: float  # the fit's own standard error of the vertex (delta method); 0 for a grid point
    at_edge: bool
    fitted: bool
    reason: str = ""


MIN_FIT = 4  # grid points a quadratic fit of an optimum needs


def fit_optimum(log_values: np.ndarray, losses: np.ndarray, fit: bool = True) -> Optimum:
    """The optimum of a log grid. ``losses`` per point: +inf where a run diverged (worse than any finished
    point, never fitted), NaN where the point has no runs (left out). With ``fit``, a least-squares parabola
    in log value through the window of 4-5 finite points around the best one (the vertex kept inside the
    window; its standard error from the residuals); otherwise, or when that is impossible, the best point."""
    present = ~np.isnan(losses)
    xs, ys = np.asarray(log_values, float)[present], np.asarray(losses, float)[present]
    if not np.isfinite(ys).any():
        return Optimum(math.nan, math.nan, True, False, "no finished run")
    best = int(np.argmin(ys))
    at_edge = best in (0, len(xs) - 1)
    point = Optimum(float(xs[best]), 0.0, at_edge, False)
    if not fit or at_edge:
        point.reason = "best at the grid's edge" if at_edge else "grid point"
        return point
    finite = np.isfinite(ys)
    # The contiguous run of finite points holding the best one, then a window of up to 5 centred on it.
    start, stop = best, best
    while start > 0 and finite[start - 1]:
        start -= 1
    while stop < len(xs) - 1 and finite[stop + 1]:
        stop += 1
    width = min(5, stop - start + 1)
    if width < MIN_FIT:
        point.reason = f"fewer than {MIN_FIT} finished grid points around the best"
        return point
    first = min(max(best - width // 2, start), stop - width + 1)
    window_x, window_y = xs[first:first + width], ys[first:first + width]
    design = np.vstack([window_x ** 2, window_x, np.ones_like(window_x)]).T
    coefficients, residuals, _, _ = np.linalg.lstsq(design, window_y, rcond=None)
    a, b, _ = coefficients
    if a <= 0:
        point.reason = "the fit has no minimum"
        return point
    vertex = float(min(max(-b / (2 * a), window_x[0]), window_x[-1]))
    dof = width - 3
    rss = float(residuals[0]) if len(residuals) else float(((design @ coefficients - window_y) ** 2).sum())
    covariance = rss / dof * np.linalg.inv(design.T @ design)
    gradient = np.array([b / (2 * a * a), -1 / (2 * a), 0.0])  # d vertex / d (a, b, c)
    se = float(math.sqrt(max(gradient @ covariance @ gradient, 0.0)))
    return Optimum(vertex, se, False, True)


def mean_losses(losses: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per grid point (columns of ``losses``: one row per seed, +inf diverged, NaN not run), the mean over
    the seed ``rows`` drawn (repeats count); +inf where any of them diverged; NaN where none ran."""
    drawn = losses[rows]
    ran = ~np.isnan(drawn)
    counts = ran.sum(axis=0)
    with np.errstate(invalid="ignore"):
        means = np.where(ran & np.isfinite(drawn), drawn, 0.0).sum(axis=0) / np.maximum(counts, 1)
    means = np.where(counts > 0, means, np.nan)
    return np.where(np.isinf(drawn).any(axis=0), np.inf, means)


def bootstrap_optima(grids: list[tuple[np.ndarray, np.ndarray]], fit: bool, num: int = NUM_BOOTSTRAP,
                     seed: int = 0) -> np.ndarray:
    """Bootstrap draws of each grid's optimum (log10), one draw of seeds shared by every grid (the runs of a
    seed are paired across optimizers), each draw's vertex moved by a normal draw with the fit's own standard
    error, so the spread holds the fit's uncertainty as well as the seeds'. Returns (num, len(grids))."""
    rng = np.random.default_rng(seed)
    num_seeds = grids[0][1].shape[0]
    out = np.full((num, len(grids)), np.nan)
    for draw in range(num):
        rows = rng.integers(0, num_seeds, size=num_seeds)
        for column, (xs, losses) in enumerate(grids):
            optimum = fit_optimum(xs, mean_losses(losses, rows), fit)
            if math.isfinite(optimum.log_value):
                out[draw, column] = optimum.log_value + (rng.normal(0.0, optimum.se) if optimum.se > 0 else 0.0)
    return out


# --- curves ----------------------------------------------------------------------------------------
def interpolate(xs: np.ndarray, ys: np.ndarray, at: float) -> float:
    """``ys`` at ``at`` on the polyline through (xs, ys) (xs increasing); NaN outside the evaluated range."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if not len(xs) or at < xs[0] or at > xs[-1]:
        return math.nan
    return float(np.interp(at, xs, ys))


def last_crossing(xs: np.ndarray, differences: np.ndarray) -> tuple[float, int]:
    """Where ``differences`` (A - B at increasing ``xs``) changes sign for the last time, interpolated
    linearly: the point after which one arm stays ahead. Returns (x, the sign after it: -1 when A is ahead
    (lower) from there on, +1 when B is); (NaN, sign) when it never changes sign."""
    xs, differences = np.asarray(xs, float), np.asarray(differences, float)
    signs = np.sign(differences)
    final = int(signs[-1]) if len(signs) else 0
    for index in range(len(signs) - 1, 0, -1):
        if signs[index - 1] != signs[index] and signs[index] != 0:
            x0, x1, d0, d1 = xs[index - 1], xs[index], differences[index - 1], differences[index]
            return float(x0 + (x1 - x0) * d0 / (d0 - d1)) if d0 != d1 else float(x1), final
    return math.nan, final


def order_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of the finite values: the range over seeds people read a crossing by."""
    values = np.asarray([value for value in values if math.isfinite(value)], dtype=float)
    if not len(values):
        return math.nan, math.nan, math.nan
    return float(np.median(values)), float(values.min()), float(values.max())



AHEAD_THROUGHOUT, NEVER_CROSSES, CROSSES = "ahead from the first", "never crosses", "crosses"


def stops_behind(xs: np.ndarray, differences: np.ndarray) -> float:
    """The smallest x after which ``differences`` (A - B at increasing ``xs``) stay <= 0: interpolated linearly
    between the last x where A is behind (> 0) and the next one; -inf when A is never behind, +inf when it is
    behind at the last x. It only moves one way when the curve moves: a curve above another crosses no earlier."""
    xs, differences = np.asarray(xs, float), np.asarray(differences, float)
    behind = np.flatnonzero(differences > 0)
    if not len(behind):
        return -math.inf
    last = int(behind[-1])
    if last == len(xs) - 1:
        return math.inf
    x0, x1, d0, d1 = xs[last], xs[last + 1], differences[last], differences[last + 1]
    return float(x0 + (x1 - x0) * d0 / (d0 - d1))


class Crossing(Test):
    """Where A stops being behind B over an ordered variable (batch sizes), from paired differences d = A - B
    (one row per seed, one column per point), interpolated in log2 of the points (``log_scale``).

    The estimate is the crossing of the mean difference curve. Its interval comes from a band of Student-t
    intervals of the mean difference at every point, each at alpha / (number of points) (Bonferroni: the band
    holds the whole mean curve at 1 - alpha); since the crossing only moves one way when the curve moves, the
    crossings of the band's lower and upper edges bound the mean curve's at 1 - alpha. (A distribution-free
    interval for the median of per-seed crossings cannot reach that: with 5 seeds their range covers the median
    at 1 - 2 / 2^5 = 93.75%.) Answers: "ahead from the first" (the whole band is not behind anywhere), "never
    crosses" (the band is behind at the last point), "crosses" (both ends of the interval inside the points'
    range), else inconclusive (the interval holds more than one of these). -inf / +inf stand for ahead from the
    first point / never within the points."""

    def __init__(self, points, differences, effect_name: str = "", log_scale: bool = True, note: str = ""):
        self.points = np.asarray(points, dtype=float)
        self.differences = np.asarray(differences, dtype=float).reshape(-1, len(self.points))
        self.log_scale, self.effect_name, self.note = log_scale, effect_name, note
        self.n = len(self.differences)

    @property
    def testable(self) -> bool:
        return self.n >= MIN_SEEDS and len(self.points) >= 2 and bool(np.isfinite(self.differences).all())

    def _at(self, differences: np.ndarray) -> float:
        xs = np.log2(self.points) if self.log_scale else self.points
        x = stops_behind(xs, differences)
        return 2.0 ** x if self.log_scale and math.isfinite(x) else x

    def band(self, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, low, high) of the difference at each point, each at alpha / (number of points)."""
        rows = [t_interval(column, alpha / len(self.points)) for column in self.differences.T]
        return tuple(np.array(values) for values in zip(*rows)) if rows else (np.array([]),) * 3

    def per_seed(self) -> list[float]:
        return [self._at(row) for row in self.differences]

    def interval(self, alpha: float) -> tuple[float, float, float]:
        if not len(self.differences):
            return math.nan, math.nan, math.nan
        mean, low, high = self.band(alpha)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            return self._at(mean), math.nan, math.nan
        return self._at(mean), self._at(low), self._at(high)

    def decide(self, alpha: float) -> str:
        if not self.testable:
            return INCONCLUSIVE
        _, low, high = self.interval(alpha)
        if high == -math.inf:
            return AHEAD_THROUGHOUT
        if low == math.inf:
            return NEVER_CROSSES
        if math.isfinite(low) and math.isfinite(high):
            return CROSSES
        return INCONCLUSIVE


class Measured(Test):
    """A deterministic measurement (bytes of optimizer state): inside or outside ``[low, high]`` whatever the
    error rate; it never enters a Holm family."""

    def __init__(self, value: float, bounds: tuple[float, float], n: int, effect_name: str = ""):
        self.value, self.bounds, self.n, self.effect_name = value, bounds, n, effect_name

    @property
    def testable(self) -> bool:
        return math.isfinite(self.value)

    def interval(self, alpha: float) -> tuple[float, float, float]:
        return self.value, self.value, self.value

    def decide(self, alpha: float) -> str:
        if not self.testable:
            return INCONCLUSIVE
        return INSIDE if self.bounds[0] <= self.value <= self.bounds[1] else OUTSIDE
