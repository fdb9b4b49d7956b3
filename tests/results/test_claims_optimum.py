"""The paper's lr ratio and the first README's "typically 10x" from independent grids (fits over >= 4 points,
intervals holding the fit's uncertainty), tied grids refused, the weight-decay advice in the paper's terms, and
decoupled weight decay."""

import math

import pytest
from synthetic_runs import bowl, judged, only, write_run

from lion_bench.results.claims.base import CONTRADICTED, SUPPORTED

ADAMW_LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]


def write_grids(root, adamw_best, lion_best, lion_lrs, seeds=4, lion_divisor=1.0, adamw_lrs=ADAMW_LRS):
    """Both optimizers on lr grids; Lion's lrs written as base lr / ``lion_divisor`` (1: absolute lrs)."""
    for seed in range(seeds):
        shared = 0.01 * (seed % 2)
        for index, lr in enumerate(adamw_lrs):
            write_run(root, "adamw", seed, bowl(lr, adamw_best) + shared + 0.003 * ((seed + index) % 3 - 1), base_lr=lr)
        for index, lr in enumerate(lion_lrs):
            write_run(root, "lion", seed, bowl(lr, lion_best) + shared + 0.003 * ((seed + 2 * index) % 3 - 1),
                      base_lr=lr * lion_divisor, divisor=lion_divisor)


LION_LRS = [2e-5, 5e-5, 1.25e-4, 3.1e-4, 7.8e-4, 2e-3]  # its own grid (factor 2.5), not AdamW's / k


def test_a_ratio_inside_3_to_10_is_supported_and_10x_is_not(tmp_path):
    write_grids(tmp_path, 2e-3, 4e-4, LION_LRS)  # ratio 5
    families = judged(tmp_path)
    paper = only(families, "paper_lr")
    assert paper.verdict == SUPPORTED and paper.effect == pytest.approx(5.0, rel=0.1)
    assert paper.low < paper.effect < paper.high and 3 < paper.low and paper.high < 10
    assert only(families, "older_10x").verdict == CONTRADICTED  # 5 is nearer 3 than 10 (in log scale)


def test_a_ratio_near_10_supports_the_first_readme(tmp_path):
    write_grids(tmp_path, 2e-3, 2e-4, LION_LRS)
    families = judged(tmp_path)
    assert only(families, "older_10x").verdict == SUPPORTED
    assert only(families, "paper_lr").effect == pytest.approx(10.0, rel=0.1)


def test_a_ratio_outside_is_contradicted(tmp_path):
    write_grids(tmp_path, 2e-3, 1.2e-3, LION_LRS)  # ratio 1.7
    assert only(judged(tmp_path), "paper_lr").verdict == CONTRADICTED


def test_tied_grids_build_the_ratio_in_and_are_not_judged(tmp_path):
    # Ratio space (sweep=lr_grid): Lion at each of AdamW's grid lrs / 3, one divisor for every point.
    write_grids(tmp_path, 2e-3, 4e-4, [lr / 3 for lr in ADAMW_LRS], lion_divisor=3.0)
    cell = only(judged(tmp_path), "paper_lr", judged_only=False)
    assert not cell.judged and "Lion's grid is AdamW's / 3" in cell.reason


SHARED_LRS = [3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]  # one absolute grid holding both optima


@pytest.mark.parametrize("adamw_lrs, lion_lrs", [(SHARED_LRS, SHARED_LRS), (ADAMW_LRS, [lr / 3 for lr in ADAMW_LRS])],
                         ids=["the same lrs", "AdamW's lrs / 3"])
def test_absolute_grids_measure_the_ratio_even_when_alike(tmp_path, adamw_lrs, lion_lrs):
    # Absolute lrs for both (Lion at base lr / 1), independent of each other: whether Lion ran AdamW's own
    # lrs or lrs a factor 3 below them, nothing ties the two optima, so the ratio (5) is judged.
    write_grids(tmp_path, 2e-3, 4e-4, lion_lrs, adamw_lrs=adamw_lrs)
    cell = only(judged(tmp_path), "paper_lr")
    assert cell.verdict == SUPPORTED and cell.effect == pytest.approx(5.0, rel=0.1), cell.detail


def test_a_best_point_at_the_edge_is_not_an_optimum(tmp_path):
    write_grids(tmp_path, 2e-2, 4e-4, LION_LRS)  # AdamW keeps improving up to its largest lr
    cell = only(judged(tmp_path), "paper_lr", judged_only=False)
    assert not cell.judged and cell.reason == "best AdamW lr 0.01 is the top of its grid: extend the grid"
    assert cell.verdict == "not judged" and math.isfinite(cell.effect) and cell.low <= cell.effect <= cell.high


def test_three_seeds_give_a_rough_interval(tmp_path):
    write_grids(tmp_path, 2e-3, 4e-4, LION_LRS, seeds=3)
    assert "rough interval: 3 seeds (10 distinct resamples)" in only(judged(tmp_path), "paper_lr").test.note


def test_weight_decay_in_the_papers_terms(tmp_path):
    # Best lr x wd: AdamW 2e-3 x 0.1 = 2e-4; Lion 4e-4 x 0.5 = 2e-4: a similar strength (ratio 1).
    for seed in range(4):
        for lr in (1e-3, 2e-3, 4e-3):
            for wd in (0.03, 0.1, 0.3):
                loss = bowl(lr, 2e-3) + 0.5 * math.log10(wd / 0.1) ** 2 + 0.01 * (seed % 2)
                write_run(tmp_path, "adamw", seed, loss, base_lr=lr, base_wd=wd)
        for lr in (2e-4, 4e-4, 8e-4):
            for wd in (0.15, 0.5, 1.5):
                loss = bowl(lr, 4e-4) + 0.5 * math.log10(wd / 0.5) ** 2 + 0.01 * (seed % 2)
                write_run(tmp_path, "lion", seed, loss, base_lr=lr, base_wd=wd)
    cell = only(judged(tmp_path), "paper_wd")
    assert cell.verdict == SUPPORTED and cell.effect == pytest.approx(1.0)
    assert "best wd Lion / AdamW 5" in cell.detail


def test_decoupled_weight_decay_independent_of_the_lr(tmp_path):
    for seed in range(4):
        for lr in (1e-4, 1e-3):
            for wd in (0.01, 0.03, 0.1, 0.3, 1.0):
                loss = 3 + 0.5 * math.log10(wd / 0.1) ** 2 + 0.01 * (seed % 2) + 0.002 * ((seed + int(wd * 100)) % 3)
                write_run(tmp_path, "lion", seed, loss, base_lr=lr, base_wd=wd,
                          options={"decoupled_weight_decay": True})
    cell = only(judged(tmp_path), "decoupled_wd")
    assert cell.verdict == SUPPORTED and cell.effect == pytest.approx(1.0, rel=0.2)
