"""Claims on synthetic records with planted answers: effect -> supported, reversal -> contradicted,
noise -> inconclusive, too few runs -> inconclusive with the sweep that supplies them."""

import math

import numpy as np
import pytest
from scipy import stats
from synthetic_runs import BASE_LR, BASE_WD, write_lr_ratio, write_run

from lion_bench.results.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED, check_claims, judge_interval
from lion_bench.results.load import load_local

ADAMW = [3.00, 3.02, 2.98, 3.01]
NOISE = [0.05, -0.04, 0.03, -0.05]  # mean -0.0025: no effect


def verdicts(root):
    runs, _ = load_local([root])
    return {verdict.claim.key: verdict for verdict in check_claims(runs)}


def shifted(losses, shift):
    return [loss + shift + 0.01 * (i % 2) for i, loss in enumerate(losses)]


def test_judge_interval_rule():
    assert judge_interval(-0.3, -0.1, 0.0, claim_below=True) == SUPPORTED
    assert judge_interval(0.1, 0.3, 0.0, claim_below=True) == CONTRADICTED
    assert judge_interval(-0.1, 0.3, 0.0, claim_below=True) == INCONCLUSIVE
    assert judge_interval(0.1, 0.3, 0.2, claim_below=False) == INCONCLUSIVE
    assert judge_interval(0.25, 0.3, 0.2, claim_below=False) == SUPPORTED
    assert judge_interval(math.nan, math.nan, 0.0, claim_below=True) == INCONCLUSIVE


def test_planted_effects_are_supported(tmp_path):
    # Lion at lr/1 much worse, lr/3 better than AdamW, lr/10 worst: the lion-pytorch README's story.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, 0.5), 3.0: shifted(ADAMW, -0.1), 10.0: shifted(ADAMW, 0.8)})
    found = verdicts(tmp_path)
    for key in ("update2", "update3", "update4"):
        assert found[key].verdict == SUPPORTED, (key, found[key].detail)
        assert found[key].num == len(ADAMW) and not found[key].missing
    update3 = found["update3"]
    differences = np.array(shifted(ADAMW, -0.1)) - np.array(ADAMW)
    half = stats.t.ppf(0.975, len(ADAMW) - 1) * differences.std(ddof=1) / math.sqrt(len(ADAMW))
    assert update3.effect == pytest.approx(differences.mean())
    assert (update3.low, update3.high) == pytest.approx((differences.mean() - half, differences.mean() + half))
    assert update3.verdict == SUPPORTED and len(update3.sources) == 2 * len(ADAMW)
    # Lion's best lr is lr/3 with lr/1 and lr/10 significantly worse: ratio exactly 3, inside [3, 10].
    assert found["paper_lr"].verdict == SUPPORTED
    assert found["paper_lr"].effect == pytest.approx(3.0)
    # No batch sizes >= 64 and no weight decay grid: could not judge, and the report names the sweep.
    assert found["update7"].verdict == INCONCLUSIVE and found["update7"].missing
    assert found["update7"].claim.sweep == "batch_size"
    assert found["paper_wd"].missing and found["paper_wd"].claim.sweep == "wd_multiplier"


def test_planted_reversals_are_contradicted(tmp_path):
    # Lion at AdamW's lr is the best Lion and beats AdamW; lr/3 loses; lr/10 beats lr/1 and lr/3.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, -0.3), 3.0: shifted(ADAMW, 0.2), 10.0: shifted(ADAMW, 0.1)})
    found = verdicts(tmp_path)
    for key in ("update2", "update3", "update4"):
        assert found[key].verdict == CONTRADICTED, (key, found[key].detail)
    # Lion's best lr is AdamW's own and the grid's edge: ratio <= 1, outside [3, 10].
    assert found["paper_lr"].verdict == CONTRADICTED
    assert found["paper_lr"].high == pytest.approx(1.0)


def test_noise_is_inconclusive(tmp_path):
    lion = [a + n for a, n in zip(ADAMW, NOISE)]
    write_lr_ratio(tmp_path, ADAMW, {1.0: lion, 3.0: lion, 10.0: [x + 0.01 for x in reversed(lion)]})
    found = verdicts(tmp_path)
    for key in ("update2", "update3", "update4", "paper_lr"):
        assert found[key].verdict == INCONCLUSIVE, (key, found[key].detail)
        assert not found[key].missing


def test_single_seed_is_inconclusive_and_names_the_sweep(tmp_path):
    write_lr_ratio(tmp_path, ADAMW[:1], {1.0: [9.0], 3.0: [1.0], 10.0: [5.0]})
    found = verdicts(tmp_path)
    for key in ("update2", "update3", "update4"):
        assert found[key].verdict == INCONCLUSIVE and found[key].missing
        assert found[key].claim.sweep == "lr_ratio"


def test_diverged_lion_runs_count_as_worse(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: shifted(ADAMW, -0.1)})
    for seed in range(len(ADAMW)):
        write_run(tmp_path, "lion", seed, math.nan, divisor=1.0, wd_multiplier=3.0, status="diverged")
    found = verdicts(tmp_path)
    assert found["update2"].verdict == SUPPORTED  # initial loss 5.0 vs ~3.0


def write_batch_sweep(root, advantage_by_batch):
    for batch_size, advantage in advantage_by_batch.items():
        for seed, loss in enumerate(ADAMW):
            write_run(root, "adamw", seed, loss, batch_size=batch_size)
            write_run(root, "lion", seed, loss - advantage - 0.01 * (seed % 2), divisor=3.0, wd_multiplier=3.0,
                      batch_size=batch_size)


def test_batch_size_claim(tmp_path):
    write_batch_sweep(tmp_path / "needs", {16: -0.05, 32: 0.0, 64: 0.1, 128: 0.2})
    assert verdicts(tmp_path / "needs")["update7"].verdict == SUPPORTED
    write_batch_sweep(tmp_path / "small_wins", {16: 0.2, 128: 0.2})
    assert verdicts(tmp_path / "small_wins")["update7"].verdict == CONTRADICTED
    write_batch_sweep(tmp_path / "flat", {16: 0.0, 128: 0.0})
    assert verdicts(tmp_path / "flat")["update7"].verdict == INCONCLUSIVE


def write_grid(root, optimizer, values, best, key):
    """Losses rising with log-distance from ``best`` over a grid of lrs or weight decays."""
    for value in values:
        for seed, loss in enumerate(ADAMW):
            penalty = 0.3 * abs(math.log10(value / best)) + 0.01 * (seed % 2)
            if key == "lr":
                write_run(root, optimizer, seed, loss + penalty, base_lr=value)
            else:
                write_run(root, optimizer, seed, loss + penalty, base_wd=value, wd_multiplier=1.0)


def test_lr_ratio_with_both_optimizers_swept(tmp_path):
    lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    write_grid(tmp_path / "paper", "adamw", lrs, best=3e-3, key="lr")
    write_grid(tmp_path / "paper", "lion", lrs, best=3e-4, key="lr")
    verdict = verdicts(tmp_path / "paper")["paper_lr"]
    assert verdict.verdict == SUPPORTED and verdict.effect == pytest.approx(10.0)
    write_grid(tmp_path / "same", "adamw", lrs, best=1e-3, key="lr")
    write_grid(tmp_path / "same", "lion", lrs, best=1e-3, key="lr")
    assert verdicts(tmp_path / "same")["paper_lr"].verdict == CONTRADICTED
    # Lion's optimum at the grid's small edge: the ratio could be anything from 10 up.
    write_grid(tmp_path / "edge", "adamw", lrs, best=1e-3, key="lr")
    write_grid(tmp_path / "edge", "lion", lrs, best=1e-4, key="lr")
    verdict = verdicts(tmp_path / "edge")["paper_lr"]
    assert verdict.verdict == INCONCLUSIVE and verdict.high == math.inf


def test_weight_decay_ratio(tmp_path):
    wds = [0.01, 0.03, 0.1, 0.3, 1.0]
    write_grid(tmp_path / "paper", "adamw", wds, best=0.03, key="wd")
    write_grid(tmp_path / "paper", "lion", wds, best=0.3, key="wd")
    verdict = verdicts(tmp_path / "paper")["paper_wd"]
    assert verdict.verdict == SUPPORTED and verdict.effect == pytest.approx(10.0)
    write_grid(tmp_path / "smaller", "adamw", wds, best=0.3, key="wd")
    write_grid(tmp_path / "smaller", "lion", wds, best=0.03, key="wd")
    assert verdicts(tmp_path / "smaller")["paper_wd"].verdict == CONTRADICTED


def test_wd_multiplier_sweep_against_the_reference(tmp_path):
    # The wd_multiplier preset: AdamW at the base wd only (taken as tuned), Lion at multipliers 1, 3, 10.
    for seed, loss in enumerate(ADAMW):
        write_run(tmp_path, "adamw", seed, loss)
        for multiplier, penalty in ((1.0, 0.4), (3.0, 0.0), (10.0, 0.3)):
            write_run(tmp_path, "lion", seed, loss + penalty + 0.01 * (seed % 2), divisor=3.0,
                      wd_multiplier=multiplier)
    verdict = verdicts(tmp_path)["paper_wd"]
    assert verdict.verdict == SUPPORTED and verdict.effect == pytest.approx(3.0)
    assert "tuned reference" in verdict.detail
    assert BASE_WD > 0 and BASE_LR > 0
