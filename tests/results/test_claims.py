"""lion-pytorch updates 2-4 and their summary on synthetic records with planted answers, judged per context:
effect -> supported, reversal -> contradicted, noise -> inconclusive with the seeds that would decide it, too
few seeds -> no verdict; update 3 at an early budget in tokens, shown with the planted crossing."""

import math

import numpy as np
import pytest
from synthetic_runs import STEPS, judged, only, write_lr_ratio, write_run

from lion_bench.results.claims.base import CONTRADICTED, NOT_JUDGED, PRIMARY, SUPPORTED
from lion_bench.results.stats import INCONCLUSIVE

ADAMW = [3.00, 3.02, 2.98, 3.01]
NOISE = [0.05, -0.04, 0.03, -0.05]  # mean -0.0025: no effect
KEYS = ("update2", "update3", "summary_lr3", "update4_vs3", "update4_worst")


def shifted(losses, shift):
    return [loss + shift + 0.01 * (i % 2) for i, loss in enumerate(losses)]


def verdicts(root):
    families = judged(root)
    return {key: only(families, key, judged_only=False) for key in KEYS}


def test_planted_effects_are_supported(tmp_path):
    # Lion at lr/1 much worse, lr/3 better than AdamW (early and at the end), lr/10 worst: the README's story.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, 0.5), 3.0: shifted(ADAMW, -0.1), 10.0: shifted(ADAMW, 0.8)})
    found = verdicts(tmp_path)
    for key, cell in found.items():
        assert cell.role == PRIMARY and cell.verdict == SUPPORTED, (key, cell.detail, cell.answer)
        assert cell.n == len(ADAMW) and not cell.toy
    assert found["summary_lr3"].answer == "Lion better" and found["update2"].answer == "above"
    # Five tests in one ad-hoc family: each interval at its Holm level, never wider than alpha / 5.
    assert all(0.05 / 5 - 1e-12 <= cell.alpha <= 0.05 for cell in found.values())
    label = found["update2"].label
    assert "AdamW lr 1e-3" in label and "wd AdamW 0.1, Lion 0.3" in label


def test_planted_reversals_are_contradicted(tmp_path):
    # Lion at AdamW's lr beats AdamW; lr/3 loses (early and late); lr/10 beats lr/1 and lr/3.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, -0.3), 3.0: shifted(ADAMW, 0.2), 10.0: shifted(ADAMW, -0.4)})
    for key, cell in verdicts(tmp_path).items():
        assert cell.verdict == CONTRADICTED, (key, cell.detail, cell.answer)


def test_noise_is_inconclusive_and_says_how_many_seeds_would_decide(tmp_path):
    lion = [a + n for a, n in zip(ADAMW, NOISE)]
    write_lr_ratio(tmp_path, ADAMW, {1.0: lion, 3.0: lion, 10.0: [x + 0.01 for x in reversed(lion)]})
    found = verdicts(tmp_path)
    summary = found["summary_lr3"]
    assert summary.answer == INCONCLUSIVE and summary.verdict == INCONCLUSIVE
    assert summary.seeds_needed is not None and summary.seeds_needed > len(ADAMW)
    assert found["update2"].verdict == INCONCLUSIVE


def test_two_seeds_are_too_few_for_a_verdict(tmp_path):
    write_lr_ratio(tmp_path, ADAMW[:2], {1.0: [9.0, 9.1], 3.0: [1.0, 1.1], 10.0: [5.0, 5.2]})
    for key, cell in verdicts(tmp_path).items():
        assert cell.role == NOT_JUDGED and "too few seeds: n = 2" in cell.reason, (key, cell.reason)


def test_a_diverged_arm_loses_and_never_averages(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: shifted(ADAMW, -0.3)})
    write_run(tmp_path, "lion", 9, math.nan, divisor=3.0, wd_multiplier=3.0, status="diverged")
    write_run(tmp_path, "adamw", 9, 3.0)
    for seed in range(len(ADAMW)):
        write_run(tmp_path, "lion", seed, math.nan, divisor=1.0, wd_multiplier=3.0, status="diverged")
    found = verdicts(tmp_path)
    # Lion at lr/1 diverged every time: much worse, by the divergence rule, with no effect averaged.
    assert found["update2"].verdict == SUPPORTED and "Lion diverged (4 of 4 runs)" in found["update2"].test.note
    assert found["update2"].n == 0
    # One diverged seed of lr/3 loses the comparison, although its finished seeds beat AdamW.
    assert found["summary_lr3"].answer == "AdamW better" and "Lion diverged (1 of 5 runs)" in found["summary_lr3"].test.note


def crossing_curve(start, end, crosses_at=None, ahead_early=True):
    """A val-loss curve from ``start`` to ``end`` (linear in step)."""
    return lambda step: start + (end - start) * step / STEPS


def test_update3_at_the_early_budget_and_the_planted_crossing(tmp_path):
    # AdamW: 4.0 -> 3.0. Lion at lr/3: 3.6 -> 3.2 (ahead early, behind at the end); the curves cross where
    # 4.0 - 1.0 s = 3.6 - 0.4 s, s = 2/3 of the run: step 1333 of 2000.
    for seed in range(4):
        jitter = 0.002 * seed
        write_run(tmp_path, "adamw", seed, 3.0, curve=lambda step, j=jitter: 4.0 + j - 1.0 * step / STEPS)
        write_run(tmp_path, "lion", seed, 3.2, divisor=3.0, wd_multiplier=3.0,
                  curve=lambda step, j=jitter: 3.6 + 1.5 * j - 0.4 * step / STEPS)
    found = verdicts(tmp_path)
    update3 = found["update3"]
    # The early budget without a protocol: a quarter of AdamW's tokens (500 steps x 16 x 64), where Lion leads.
    assert update3.facts["early_tokens"] == pytest.approx(500 * 16 * 64)
    assert update3.verdict == SUPPORTED and update3.answer == "Lion better"
    assert update3.effect == pytest.approx((3.6 - 0.1) - (4.0 - 0.25), abs=0.01)
    crossing = update3.facts["crossing"]
    assert crossing["num_seeds"] == 4 and crossing["step"][0] == pytest.approx(4000 / 3, abs=15)
    assert "AdamW is behind Lion lr" in update3.aside  # AdamW trails early, leads after the crossing
    assert "until step 13" in update3.aside and "ahead after" in update3.aside
    # ... while the final comparison, shown beside it, goes the other way.
    assert found["summary_lr3"].answer == "AdamW better"


def test_update3_early_budget_from_the_protocol_decides_the_answer(tmp_path):
    from lion_bench.results.protocol import parse_protocol
    from lion_bench.results.claims.catalogue import CLAIM_BY_KEY

    study = tmp_path / "study"
    for seed in range(4):
        jitter = 0.002 * seed
        write_run(study / "runs", "adamw", seed, 3.0, curve=lambda step, j=jitter: 4.0 + j - 1.0 * step / STEPS)
        write_run(study / "runs", "lion", seed, 3.2, divisor=3.0, wd_multiplier=3.0,
                  curve=lambda step, j=jitter: 3.6 + 1.5 * j - 0.4 * step / STEPS)
    (study / "README.md").write_text("# study\n")
    late = 1800 * 16 * 64  # after the crossing: Lion is behind at this budget
    protocol = parse_protocol({"questions": [{"id": "u3", "claim": "update3", "early_tokens": late}]},
                              str(study / "protocol.yaml"), set(CLAIM_BY_KEY))
    families = judged(study, protocols={str(study.resolve()): protocol})
    cell = only(families, "update3")
    assert cell.question == "u3" and cell.facts["early_tokens"] == late and cell.verdict == CONTRADICTED


def test_update4_has_both_readings(tmp_path):
    # lr/1 is the worst, lr/10 is worse than lr/3.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, 1.5), 3.0: shifted(ADAMW, 0.5), 10.0: shifted(ADAMW, 0.7)})
    found = verdicts(tmp_path)
    assert found["update4_vs3"].verdict == SUPPORTED and found["update4_vs3"].effect == pytest.approx(0.2)
    worst = found["update4_worst"]
    assert worst.verdict == CONTRADICTED and worst.effect == pytest.approx(-0.8)
    assert "lr/10 - lr/1: -0.8" in worst.detail and "lr/10 - lr/3: +0.2" in worst.detail


def test_a_grid_of_absolute_lrs_is_judged_like_a_ratio_sweep(tmp_path):
    # AdamW at base lrs {3e-4, 1e-3, 3e-3}, Lion at base lr / 3 for each: Lion's 3.33e-4 is "AdamW's lr / 3"
    # for AdamW at 1e-3 and (within a factor 1.2) "AdamW's lr / 1" for AdamW at 3e-4.
    for base in (3e-4, 1e-3, 3e-3):
        for seed, loss in enumerate(ADAMW):
            write_run(tmp_path, "adamw", seed, loss, base_lr=base)
            write_run(tmp_path, "lion", seed, loss - 0.2 + 0.01 * (seed % 2), base_lr=base, divisor=3.0)
    families = judged(tmp_path)
    update3 = [cell for cell in families[0].cells if cell.claim.key == "update3" and cell.judged]
    assert len(update3) == 3
    update2 = sorted(cell.label for cell in families[0].cells if cell.claim.key == "update2" and cell.judged)
    assert [label.split(", ")[1] for label in update2] == ["AdamW lr 1e-3", "AdamW lr 3e-4"]


def test_verdicts_do_not_depend_on_the_order_runs_are_read_in(tmp_path):
    from lion_bench.results.claims.judge import judge
    from lion_bench.results.load import load_local
    import pandas as pd

    write_lr_ratio(tmp_path / "a", ADAMW, {1.0: shifted(ADAMW, 0.5), 3.0: shifted(ADAMW, -0.1),
                                           10.0: shifted(ADAMW, 0.8)})
    write_lr_ratio(tmp_path / "b", ADAMW, {3.0: shifted(ADAMW, 0.1)}, base_lr=3e-3)
    runs, curves = load_local([tmp_path])

    def table(frame):
        return pd.DataFrame([cell.row() for family in judge(frame, curves) for cell in family.cells])

    reference = table(runs)
    for seed in (1, 2):
        pd.testing.assert_frame_equal(table(runs.sample(frac=1, random_state=seed).reset_index(drop=True)), reference)


def test_short_runs_make_their_context_toy_scale(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: shifted(ADAMW, -0.1)}, max_steps=200)
    cell = only(judged(tmp_path), "summary_lr3")
    assert cell.toy == "toy scale (200 steps < 1,000)"
    assert not only(judged(tmp_path, min_steps=100), "summary_lr3").toy
