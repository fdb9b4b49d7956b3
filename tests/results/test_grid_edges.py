"""A best arm at the edge of its grid is never a verdict: an lr at either end of its grid, a weight decay at the
top of its grid (or at its bottom when above 0) makes every claim resting on that choice "not judged: extend the
grid", its effect still shown as exploratory; weight decay 0 is the parameter's bound, so a best arm there is
an optimum."""

import math

import pytest
from synthetic_runs import bowl, judged, only, write_run

from lion_bench.results.claims.base import NOT_JUDGED, PRIMARY
from lion_bench.results.claims.selection import grid_edge
from lion_bench.results.cli import main

ADAMW_LRS = [3e-4, 1e-3, 3e-3, 1e-2]  # AdamW's best 2e-3 inside
SEEDS = 4


def write_lr_grids(root, lion_lrs, lion_best=1e-4, task="synthetic"):
    """AdamW around 2e-3, Lion on ``lion_lrs`` around ``lion_best``, weight decay 0.1 for both."""
    for seed in range(SEEDS):
        shared = 0.01 * (seed % 2) + 0.002 * ((seed * 7) % 3 - 1)
        for lr in ADAMW_LRS:
            write_run(root, "adamw", seed, bowl(lr, 2e-3) + shared, base_lr=lr, task=task)
        for lr in lion_lrs:
            write_run(root, "lion", seed, bowl(lr, lion_best) + 0.1 + shared, base_lr=lr, task=task)


def test_a_best_lr_at_the_bottom_of_its_grid_is_not_judged(tmp_path):
    write_lr_grids(tmp_path, [3e-4, 1e-3, 3e-3, 1e-2])  # Lion's best (1e-4) lies below its grid
    families = judged(tmp_path)
    reason = "best Lion lr 3e-4 is the bottom of its grid: extend the grid"
    for key in ("tuned", "paper_lr"):
        cell = only(families, key, judged_only=False)
        assert cell.role == NOT_JUDGED and cell.verdict == NOT_JUDGED and cell.reason == reason, (key, cell.reason)
        assert math.isfinite(cell.effect) and cell.low <= cell.effect <= cell.high  # shown, as exploratory
        assert math.isnan(cell.p_decision)  # never in Holm's family
    assert only(families, "tuned", judged_only=False).effect > 0.1  # AdamW better, but no verdict


def test_the_grid_extended_past_the_optimum_is_judged(tmp_path):
    write_lr_grids(tmp_path, [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    families = judged(tmp_path)
    tuned = only(families, "tuned")
    assert tuned.role == PRIMARY and tuned.answer == "AdamW better" and not tuned.edge
    assert tuned.facts["picks"]["lion"] == [(1e-4, 0.1)]
    ratio = only(families, "paper_lr")
    assert ratio.role == PRIMARY and ratio.effect == pytest.approx(20.0, rel=0.15)


def write_wd_grids(root, lion_wd_slope, lion_wds=(0.0, 0.3, 1.0)):
    """Both optimizers on an lr grid at weight decay 0 and at each weight decay of their grid at their best lr;
    Lion's loss moves by ``lion_wd_slope`` per unit of weight decay (negative: more is better)."""
    for seed in range(SEEDS):
        shared = 0.01 * (seed % 2) + 0.002 * ((seed * 7) % 3 - 1)
        for lr in ADAMW_LRS:
            write_run(root, "adamw", seed, bowl(lr, 2e-3) + shared, base_lr=lr, base_wd=0.0)
        for wd in (0.03, 0.1, 0.3):  # AdamW's best weight decay 0.1, inside its grid
            loss = bowl(3e-3, 2e-3) - 0.02 + 0.05 * math.log10(wd / 0.1) ** 2 + shared
            write_run(root, "adamw", seed, loss, base_lr=3e-3, base_wd=wd)
        for lr in (1e-4, 3e-4, 1e-3, 3e-3):
            write_run(root, "lion", seed, bowl(lr, 3e-4) + shared, base_lr=lr, base_wd=0.0)
        for wd in lion_wds[1:]:
            write_run(root, "lion", seed, bowl(3e-4, 3e-4) + lion_wd_slope * wd + shared, base_lr=3e-4, base_wd=wd)


def test_a_best_weight_decay_at_the_top_of_its_grid_is_not_judged(tmp_path):
    write_wd_grids(tmp_path, -0.05)  # Lion keeps improving up to its largest weight decay
    families = judged(tmp_path)
    reason = "best Lion weight decay 1 is the top of its grid: extend the grid"
    for key in ("tuned", "paper_wd"):
        cell = only(families, key, judged_only=False)
        assert cell.role == NOT_JUDGED and cell.reason == reason, (key, cell.reason)
        assert math.isfinite(cell.effect)


def test_a_best_weight_decay_of_0_is_an_optimum(tmp_path):
    write_wd_grids(tmp_path, +0.05)  # Lion is best without weight decay: the parameter's bound, not an edge
    cell = only(judged(tmp_path), "tuned")
    assert cell.role == PRIMARY and not cell.edge and cell.facts["picks"]["lion"] == [(3e-4, 0.0)]


def test_a_lowest_weight_decay_above_0_is_an_edge():
    arms = [(1e-3, 0.1), (1e-3, 0.3), (1e-3, 1.0)]
    bottom = "best Lion weight decay 0.1 is the bottom of its grid: extend the grid"
    assert grid_edge("Lion", [(1e-3, 0.1)], arms) == bottom
    assert grid_edge("Lion", [(1e-3, 0.3)], arms) == ""
    assert grid_edge("Lion", [(1e-3, 0.0)], [(1e-3, 0.0), *arms]) == ""
    # Several edges make one line; one value swept nowhere is no edge.
    assert grid_edge("AdamW", [(1e-2, 0.3)], [(1e-3, 0.0), (3e-3, 0.0), (1e-2, 0.0), (1e-2, 0.3)]) == (
        "best AdamW lr 0.01 is the top of its grid; best AdamW weight decay 0.3 is the top of its grid: "
        "extend the grids")
    assert grid_edge("AdamW", [(1e-3, 0.1)], [(1e-3, 0.1)]) == ""


def test_update7_with_a_best_lr_at_its_grid_edge_is_not_judged(tmp_path):
    # At batch 256 AdamW's best lr (8e-3) is the grid's top point (1e-2); every other best lies inside.
    lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    for batch in (16, 64, 256):
        best = 2e-3 * (batch / 16) ** 0.5
        for index, lr in enumerate(lrs):
            for seed in range(SEEDS):
                common = dict(batch_size=batch, base_lr=lr, budget="tokens", reference_batch_size=32,
                              warmup_fraction=0.1, max_steps=4000)
                noise = 0.002 * ((seed + index + batch) % 3 - 1)
                write_run(tmp_path, "adamw", seed, bowl(lr, best) + noise, **common)
                write_run(tmp_path, "lion", seed, bowl(lr, best / 8) + noise, **common)
    cells = judged(tmp_path)
    cell = only(cells, "update7", judged_only=False)
    assert cell.role == NOT_JUDGED and math.isfinite(cell.effect)
    assert cell.reason == "bs256: best AdamW lr 0.01 is the top of its grid: extend the grid"
    crossing = only(cells, "batch_crossing", judged_only=False)  # rests on the same best arms
    assert crossing.role == NOT_JUDGED and crossing.reason == cell.reason


def test_the_report_shows_an_edge_answer_as_not_judged_with_its_effect(tmp_path, capsys):
    write_lr_grids(tmp_path / "runs", [3e-4, 1e-3, 3e-3, 1e-2], task="mlp")  # Lion's best below its grid
    write_lr_grids(tmp_path / "runs", [3e-5, 1e-4, 3e-4, 1e-3], task="text")  # inside
    assert main([str(tmp_path / "runs"), "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "not judged     best Lion lr 3e-4 is the bottom of its grid" in printed  # cut at 100 characters
    answer = (tmp_path / "out" / "report.md").read_text().split("## Verdicts")[0]
    rows = {line.split("|")[2].split()[0]: line for line in answer.splitlines() if "each at its best" in line}
    assert "not judged" in rows["mlp"] and "(95%, exploratory)" in rows["mlp"] and "extend the grid" in rows["mlp"]
    assert "**AdamW better**" in rows["text"]
