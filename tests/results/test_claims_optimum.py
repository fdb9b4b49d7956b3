"""The paper's lr and weight-decay ratios on planted grids: each optimizer's loss is a parabola in log lr (or log
weight decay) around a known best value, so the fitted optimum and the ratio are known."""

import pytest
from synthetic_runs import bowl, write_lr_grid, write_run

from lion_bench.results.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED, check_claims
from lion_bench.results.load import load_local

GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
WD_GRID = [0.01, 0.03, 0.1, 0.3, 1.0]


def verdict(root, key):
    runs, _ = load_local([root])
    (found,) = [v for v in check_claims(runs) if v.claim.key == key]
    return found


def test_grid_gap_is_never_supported(tmp_path):
    # Lion's true optimum is AdamW's lr / 2. The old check read the grid points as the interval: on divisors
    # {1, 3, 10} it said "supported, [3, 3]". With AdamW at one lr it is not judged at all.
    for name, divisors in (("coarse", [1, 3, 10]), ("fine", [1, 2, 3, 5, 10])):
        for seed in range(3):
            write_run(tmp_path / name, "adamw", seed, 3.0 + 0.01 * seed)
            for divisor in divisors:
                write_run(tmp_path / name, "lion", seed, bowl(1e-3 / divisor, 5e-4) + 0.01 * seed, divisor=divisor)
        found = verdict(tmp_path / name, "paper_lr")
        assert not found.judged and "ran at fewer than 4 lr values" in found.reason
        assert "AdamW lr: 1 value, 1e-3" in found.reason
        assert found.claim.sweep == "lr_grid"
    # Both swept: the fit finds the ratio 2 between grid points and contradicts the claim.
    write_lr_grid(tmp_path / "both", "adamw", GRID, best=2e-3)
    write_lr_grid(tmp_path / "both", "lion", GRID, best=1e-3)
    found = verdict(tmp_path / "both", "paper_lr")
    assert found.outcome == CONTRADICTED and found.effect == pytest.approx(2.0, rel=0.05)
    assert found.high < 3 and found.num == 4


def test_ratio_inside_the_range_is_supported(tmp_path):
    write_lr_grid(tmp_path, "adamw", GRID, best=3e-3)
    write_lr_grid(tmp_path, "lion", GRID, best=6e-4)
    found = verdict(tmp_path, "paper_lr")
    assert found.outcome == SUPPORTED and found.effect == pytest.approx(5.0, rel=0.05)
    assert 3 <= found.low <= found.effect <= found.high <= 10
    assert "lr swept, wd 0.1" in found.label and "AdamW best lr 3" in found.detail


def test_best_at_the_grid_edge_is_inconclusive(tmp_path):
    write_lr_grid(tmp_path, "adamw", GRID, best=3e-3)
    write_lr_grid(tmp_path, "lion", GRID, best=3e-5)
    found = verdict(tmp_path, "paper_lr")
    assert found.judged and found.outcome == INCONCLUSIVE
    assert "best lr at the edge of the grid for Lion" in found.decision.note


def test_diverged_grid_points_are_worse_never_fitted(tmp_path):
    write_lr_grid(tmp_path, "adamw", GRID, best=3e-3)
    write_lr_grid(tmp_path, "lion", GRID[:-1], best=6e-4)
    for seed in range(4):  # Lion at the largest lr diverges: the best (between 3e-4 and 1e-3) is still inside
        write_run(tmp_path, "lion", seed, float("nan"), base_lr=GRID[-1], status="diverged")
    found = verdict(tmp_path, "paper_lr")
    assert found.outcome == SUPPORTED and found.effect == pytest.approx(5.0, rel=0.05)


def test_lion_grid_from_divisors_is_judged_by_resolved_lrs(tmp_path):
    # Lion as lr_ratio_fine runs it (divisors of one base lr), AdamW on a grid of base lrs: same verdict.
    write_lr_grid(tmp_path, "adamw", GRID, best=3e-3)
    for divisor in (1, 2, 3, 5, 10, 20):
        for seed in range(4):
            write_run(tmp_path, "lion", seed, bowl(3e-3 / divisor, 7e-4) + 0.01 * (seed % 2), base_lr=3e-3,
                      divisor=divisor)
    found = verdict(tmp_path, "paper_lr")
    assert found.outcome == SUPPORTED and found.effect == pytest.approx(3e-3 / 7e-4, rel=0.05)


def write_wd_grid(root, optimizer, best, lr):
    for index, weight_decay in enumerate(WD_GRID):
        for seed in range(4):
            noise = 0.002 * ((3 * seed + index) % 3 - 1)
            write_run(root, optimizer, seed, bowl(weight_decay, best) + 0.01 * (seed % 2) + noise, base_lr=lr,
                      base_wd=weight_decay)


def test_weight_decay_ratio(tmp_path):
    write_wd_grid(tmp_path / "paper", "adamw", best=0.03, lr=1e-3)
    write_wd_grid(tmp_path / "paper", "lion", best=0.15, lr=3e-4)
    found = verdict(tmp_path / "paper", "paper_wd")
    assert found.outcome == SUPPORTED and found.effect == pytest.approx(5.0, rel=0.05)
    assert "wd swept, AdamW lr 1e-3, Lion lr 3e-4" in found.label
    write_wd_grid(tmp_path / "smaller", "adamw", best=0.3, lr=1e-3)
    write_wd_grid(tmp_path / "smaller", "lion", best=0.03, lr=3e-4)
    assert verdict(tmp_path / "smaller", "paper_wd").outcome == CONTRADICTED


def test_wd_multiplier_sweep_alone_is_not_judged(tmp_path):
    # The wd_multiplier preset: AdamW at one weight decay, Lion at x1, x3, x10. No tuned AdamW optimum: not judged.
    for seed in range(3):
        write_run(tmp_path, "adamw", seed, 3.0)
        for multiplier, penalty in ((1.0, 0.4), (3.0, 0.0), (10.0, 0.3)):
            write_run(tmp_path, "lion", seed, 3.0 + penalty, divisor=3.0, wd_multiplier=multiplier)
    found = verdict(tmp_path, "paper_wd")
    assert not found.judged and "fewer than 4 weight decay values" in found.reason
