"""The statistics behind verdicts, on numbers with known answers."""

import math

import numpy as np
import pytest
from scipy import stats

from lion_bench.results.stats import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Comparison, Decision, combine_all, decide,
                                      decide_range, grid_optimum, holm, t_test)


def comparison(differences, diverged=(0, 0)):
    differences = np.array(differences, dtype=float)
    mean = differences.mean() if len(differences) else math.nan
    return Comparison(len(differences), mean, math.nan, math.nan, differences, diverged, (4, 4))


def test_holm_matches_the_step_down_rule():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, then max(0.06, 0.04*1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.02, math.nan, 0.9])
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.9)


def test_t_test_is_scipys_one_sample_test():
    values = [0.1, 0.3, 0.2, 0.4]
    assert t_test(values, 0.05) == pytest.approx(stats.ttest_1samp(values, 0.05).pvalue)
    assert math.isnan(t_test([0.1]))
    assert t_test([0.2, 0.2, 0.2]) == 0.0 and t_test([0.0, 0.0]) == 1.0


def test_decide_directions_and_divergence():
    below = comparison([-0.3, -0.25, -0.35, -0.3])
    assert decide(below, 0.0, a_better=True, names=("A", "B")).outcome == SUPPORTED
    assert decide(below, 0.0, a_better=False, names=("A", "B")).outcome == CONTRADICTED
    assert decide(comparison([-0.3, 0.3, 0.1, -0.1]), 0.0, a_better=True, names=("A", "B")).outcome == INCONCLUSIVE
    assert decide(comparison([-0.3]), 0.0, a_better=True, names=("A", "B")) is None
    # A diverged: it loses whatever the finished pairs say.
    lost = decide(comparison([-0.3, -0.3, -0.4], diverged=(1, 0)), 0.0, a_better=True, names=("Lion", "AdamW"))
    assert (lost.outcome, lost.p_value) == (CONTRADICTED, 0.0) and "Lion diverged (1 of 4 runs)" in lost.note
    both = decide(comparison([], diverged=(2, 1)), 0.0, a_better=True, names=("Lion", "AdamW"))
    assert both.outcome == INCONCLUSIVE and math.isnan(both.p_value)


def test_combine_all_is_intersection_union():
    yes, no, maybe = Decision(SUPPORTED, 0.01), Decision(CONTRADICTED, 0.004), Decision(INCONCLUSIVE, 0.3)
    assert combine_all([yes, Decision(SUPPORTED, 0.02)]) == Decision(SUPPORTED, 0.02)
    assert combine_all([yes, no]) == Decision(CONTRADICTED, 0.008)
    assert combine_all([yes, maybe]).outcome == INCONCLUSIVE


def test_grid_optimum_fits_a_parabola_between_grid_points():
    xs = np.log10([1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    losses = (xs - math.log10(2e-3)) ** 2
    estimate, at_edge = grid_optimum(xs, losses)
    assert 10 ** estimate == pytest.approx(2e-3) and not at_edge
    assert grid_optimum(xs, (xs - math.log10(1e-5)) ** 2)[1]  # best at the smallest value: the edge
    # The point above the best diverged: the best is inside the grid, but there is nothing to fit.
    diverged = losses.copy()
    diverged[4] = np.inf
    assert grid_optimum(xs, diverged) == (pytest.approx(math.log10(3e-3)), False)


def test_decide_range_from_bootstrap_samples():
    assert decide_range(np.linspace(4, 6, 100), 3, 10).outcome == SUPPORTED
    assert decide_range(np.linspace(1.5, 2.5, 100), 3, 10).outcome == CONTRADICTED
    assert decide_range(np.linspace(2, 5, 100), 3, 10).outcome == INCONCLUSIVE
