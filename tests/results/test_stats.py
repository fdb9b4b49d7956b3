"""The statistics behind verdicts, on numbers with known answers: Holm, three-way answers, thresholds, the
decision p-value, intervals that never disagree with answers, seeds that would decide, grid optima, crossings."""

import math

import numpy as np
import pytest
from scipy import stats

from lion_bench.results.stats import (ABOVE, BELOW, EQUIVALENT, INCONCLUSIVE, INSIDE, OUTSIDE, AllOf, Bootstrap,
                                      Paired, SignTest, ThreeWay, Threshold, fit_optimum, holm, holm_levels,
                                      last_crossing, t_interval)


def paired(differences, diverged=(0, 0), names=("Lion", "AdamW")):
    return Paired(np.array(differences, dtype=float), diverged, (len(differences), len(differences)), [], names, 3.0)


def test_holm_matches_the_step_down_rule():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, then max(0.06, 0.04*1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.02, math.nan, 0.9])
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.9)


def test_holm_levels_answer_decided_tests_at_their_rank_and_the_rest_at_the_strictest():
    levels = holm_levels([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    decided = [decision for decision, _, _ in levels]
    assert decided == [True, False, False, True]
    assert levels[3][1] == pytest.approx(0.05 / 4) and levels[0][1] == pytest.approx(0.05 / 3)
    assert levels[1][1] == levels[2][1] == pytest.approx(0.05 / 4)  # stopped: shown at alpha / k


def test_three_way_answers():
    margin = 0.05
    assert ThreeWay(paired([-0.30, -0.28, -0.31, -0.29]), margin).decide(0.05) == "Lion better"
    assert ThreeWay(paired([0.30, 0.28, 0.31, 0.29]), margin).decide(0.05) == "AdamW better"
    # A real difference inside the margin is "equivalent".
    assert ThreeWay(paired([-0.010, -0.011, -0.009, -0.010]), margin).decide(0.05) == EQUIVALENT
    assert ThreeWay(paired([0.001, -0.002, 0.002, -0.001]), margin).decide(0.05) == EQUIVALENT
    noisy = ThreeWay(paired([0.3, -0.2, 0.1, -0.25]), margin)
    assert noisy.decide(0.05) == INCONCLUSIVE
    # A diverged arm loses whatever the finished pairs say.
    lost = ThreeWay(paired([-0.3, -0.3, -0.4], diverged=(1, 0)), margin)
    assert lost.decide(1e-9) == "AdamW better" and lost.p_decision() == 0.0 and "Lion diverged" in lost.note
    assert not ThreeWay(paired([], diverged=(2, 1)), margin).testable


def test_fewer_than_three_seeds_decide_nothing():
    two = ThreeWay(paired([-0.5, -0.5001]), 0.01)
    assert not two.testable and math.isnan(two.p_decision())


def test_the_decision_p_value_of_a_threshold_is_the_t_test():
    values = [0.10, 0.30, 0.20, 0.40]
    test = Threshold(paired(values), 0.05)
    assert test.p_decision() == pytest.approx(stats.ttest_1samp(values, 0.05).pvalue, rel=1e-6)
    assert test.decide(0.06) == ABOVE and test.decide(0.05) == INCONCLUSIVE  # p = 0.053
    assert Threshold(paired([-v for v in values]), 0.0).decide(0.05) == BELOW


@pytest.mark.parametrize("seed", range(20))
def test_intervals_and_answers_never_disagree(seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(rng.uniform(-0.1, 0.1), rng.uniform(0.001, 0.1), size=rng.integers(3, 9))
    test = ThreeWay(paired(values), margin=0.03)
    for alpha in (0.05, 0.01, 0.05 / 7):
        _, low, high = test.interval(alpha)
        answer = test.decide(alpha)
        if answer == EQUIVALENT:
            assert -0.03 < low and high < 0.03
        elif answer == "Lion better":
            assert high < 0
        elif answer == "AdamW better":
            assert low > 0
        else:
            assert low <= 0 <= high and (low <= -0.03 or high >= 0.03)
    p = test.p_decision()
    if 1e-12 < p < 1:
        assert test.decide(p * 1.001) != INCONCLUSIVE and test.decide(p * 0.999) == INCONCLUSIVE


def test_seeds_that_would_decide_it():
    values = [0.02, -0.01, 0.04, 0.01]  # mean 0.015, sd 0.0208
    test = ThreeWay(paired(values), margin=0.005)
    assert test.decide(0.05) == INCONCLUSIVE
    needed = test.seeds_to_decide(0.05)
    spread = np.std(values, ddof=1)
    assert stats.t.ppf(0.975, needed - 1) * spread / math.sqrt(needed) < 0.015
    assert stats.t.ppf(0.975, needed - 2) * spread / math.sqrt(needed - 1) >= 0.015


def test_bootstrap_and_sign_tests():
    assert Bootstrap(np.linspace(4, 6, 100), 5.0, (3, 10), n=4).decide(0.05) == INSIDE
    assert Bootstrap(np.linspace(1.5, 2.5, 100), 2.0, (3, 10), n=4).decide(0.05) == OUTSIDE
    assert Bootstrap(np.linspace(2, 5, 100), 3.5, (3, 10), n=4).decide(0.05) == INCONCLUSIVE
    fewer = SignTest(only_a=0, only_b=9, num_pairs=10, names=("stable", "default"))
    assert fewer.decide(0.05) == "stable fewer" and SignTest(3, 4, 10, ("a", "b")).decide(0.05) == INCONCLUSIVE


def test_all_of_needs_every_part_and_shows_the_part_that_says_no():
    yes = Threshold(paired([0.3, 0.31, 0.29, 0.3]), 0.0)
    no = Threshold(paired([-0.5, -0.51, -0.49, -0.5]), 0.0)
    read = lambda answer: {ABOVE: "yes", BELOW: "no"}.get(answer, "unsure")  # noqa: E731
    assert AllOf([(yes, read), (yes, read)], yes).decide(0.05) == "yes"
    both = AllOf([(yes, read), (no, read)], yes)
    assert both.decide(0.05) == "no" and both.interval(0.05) == no.interval(0.025)


def test_a_quadratic_over_four_or_more_points_finds_the_optimum():
    xs = np.log10([1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2])
    losses = (xs - math.log10(2e-3)) ** 2 + 3.0
    found = fit_optimum(xs, losses)
    assert found.fitted and 10 ** found.log_value == pytest.approx(2e-3) and found.se < 1e-6
    assert fit_optimum(xs, (xs - math.log10(1e-5)) ** 2).at_edge  # best at the smallest value: the edge
    short = fit_optimum(xs[:3], losses[:3] * 0 + np.array([2.0, 1.0, 2.0]))
    assert not short.fitted and "fewer than 4" in short.reason
    noisy = losses + np.array([0.01, -0.02, 0.015, -0.01, 0.02, 0.0])
    assert fit_optimum(xs, noisy).se > 0


def test_last_crossing_is_interpolated():
    steps = np.array([100, 200, 300, 400, 500])
    differences = np.array([0.3, 0.2, 0.1, -0.1, -0.2])  # A behind, then ahead from 350
    assert last_crossing(steps, differences) == (pytest.approx(350.0), -1)
    never, sign = last_crossing(steps, np.full(5, 0.1))
    assert math.isnan(never) and sign == 1


def test_t_interval_at_a_given_error_rate():
    values = [1.0, 2.0, 3.0, 4.0]
    mean, low, high = t_interval(values, 0.01)
    half = stats.t.ppf(0.995, 3) * np.std(values, ddof=1) / 2
    assert (mean, low, high) == pytest.approx((2.5, 2.5 - half, 2.5 + half))
