"""Update 7 as worded (a necessary condition): on planted batch-size x lr grids, a growing advantage with Lion
behind at batch 16 supports it; AdamW better at a batch >= 64 or a shrinking advantage contradicts it."""

import pytest
from synthetic_runs import bowl, judged, only, write_run

from lion_bench.results.claims.base import CONTRADICTED, SUPPORTED
from lion_bench.results.claims.selection import held_out_values

LRS = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]  # every best lr inside (AdamW's at batch 256 is 8e-3)
SEEDS = 4


def write_batch_grid(root, advantage, lrs=LRS, budget="tokens", warmup_fraction=0.1):
    """AdamW and Lion at every lr of ``lrs`` and batch size of ``advantage`` (batch -> AdamW - Lion loss)."""
    for batch, gain in advantage.items():
        best = 2e-3 * (batch / 16) ** 0.5  # the best lr grows with the batch size
        for index, lr in enumerate(lrs):
            for seed in range(SEEDS):
                shared = 3.0 + 0.01 * (seed % 2)
                noise = 0.002 * ((seed + index + batch) % 3 - 1)
                common = dict(batch_size=batch, base_lr=lr, budget=budget, reference_batch_size=32,
                              warmup_fraction=warmup_fraction, max_steps=4000)
                write_run(root, "adamw", seed, shared + bowl(lr, best) - 3.0 + noise, **common)
                write_run(root, "lion", seed, shared + bowl(lr, best / 3) - 3.0 - gain - noise, **common)


def test_a_growing_advantage_with_lion_behind_at_16_supports_it(tmp_path):
    write_batch_grid(tmp_path, {16: -0.2, 64: 0.0, 256: 0.2})
    cell = only(judged(tmp_path), "update7")
    assert cell.verdict == SUPPORTED, cell.detail
    assert cell.effect == pytest.approx(0.1, abs=0.01)  # +0.2 per two doublings
    assert "batch 16, 64, 256 (lr tuned per batch)" in cell.label
    assert "bs16: Lion - AdamW +0.2" in cell.detail  # Lion behind at 16: consistent with the claim


def test_adamw_better_at_a_large_batch_contradicts_it(tmp_path):
    write_batch_grid(tmp_path, {16: -0.4, 64: -0.2, 256: -0.1})  # growing, but Lion still behind at >= 64
    assert only(judged(tmp_path), "update7").verdict == CONTRADICTED


def test_a_shrinking_advantage_contradicts_it(tmp_path):
    write_batch_grid(tmp_path, {16: 0.4, 64: 0.2, 256: 0.01})
    assert only(judged(tmp_path), "update7").verdict == CONTRADICTED


@pytest.mark.parametrize("options, reason", [
    ({"budget": "steps"}, "budget in steps"),
    ({"warmup_fraction": None}, "warmup in steps outlasts"),
])
def test_not_judged_without_a_fair_batch_comparison(tmp_path, options, reason):
    write_batch_grid(tmp_path, {16: 0.0, 64: 0.2}, **options)
    cell = only(judged(tmp_path), "update7", judged_only=False)
    assert not cell.judged and reason in cell.reason


def test_each_seed_is_judged_at_the_lr_picked_on_the_other_seeds():
    import pandas as pd

    # Seed 0 alone prefers lr 1e-2; the other seeds prefer 1e-3, so seed 0 is judged at 1e-3 (and vice versa).
    rows = []
    for seed in range(3):
        for lr, loss in ((1e-3, 3.0), (1e-2, 2.5 if seed == 0 else 3.5)):
            rows.append({"seed": seed, "lr_key": lr, "wd_key": 0.0, "status": "finished", "final_val_loss": loss,
                         "source": f"s{seed}_{lr}"})
    values, picks, _ = held_out_values(pd.DataFrame(rows), "final_val_loss")
    assert values == {0: 3.0, 1: 3.0, 2: 3.0}
