"""lion-pytorch updates 2-4 on synthetic records with planted answers, judged per context: effect -> supported,
reversal -> contradicted, noise -> inconclusive, too few runs -> not judged with the sweep that supplies them."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic_runs import write_lr_ratio, write_run

from lion_bench.results.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED, check_claims
from lion_bench.results.load import load_local

ADAMW = [3.00, 3.02, 2.98, 3.01]
NOISE = [0.05, -0.04, 0.03, -0.05]  # mean -0.0025: no effect


def judge(root, **kwargs):
    runs, _ = load_local([root])
    return check_claims(runs, **kwargs)


def by_claim(verdicts, judged_only=True):
    found = {}
    for verdict in verdicts:
        if verdict.judged or not judged_only:
            assert verdict.claim.key not in found, f"two verdicts for {verdict.claim.key}: one context expected"
            found[verdict.claim.key] = verdict
    return found


def shifted(losses, shift):
    return [loss + shift + 0.01 * (i % 2) for i, loss in enumerate(losses)]


def test_planted_effects_are_supported(tmp_path):
    # Lion at lr/1 much worse, lr/3 better than AdamW, lr/10 worst: the lion-pytorch README's story.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, 0.5), 3.0: shifted(ADAMW, -0.1), 10.0: shifted(ADAMW, 0.8)})
    found = by_claim(judge(tmp_path))
    assert set(found) == {"update2", "update3", "update4_vs3", "update4_worst"}
    for verdict in found.values():
        assert verdict.outcome == SUPPORTED, (verdict.claim.key, verdict.detail)
        assert verdict.num == len(ADAMW) and not verdict.toy
    # Update 3 is judged on the early loss: the mean val loss over the evaluations in the first quarter.
    update3 = found["update3"]
    lion_early = 5.0 + (np.array(shifted(ADAMW, -0.1)) - 5.0) * 0.25
    differences = lion_early - (5.0 + (np.array(ADAMW) - 5.0) * 0.25)
    half = stats.t.ppf(0.975, len(ADAMW) - 1) * differences.std(ddof=1) / math.sqrt(len(ADAMW))
    assert update3.effect == pytest.approx(differences.mean())
    assert (update3.low, update3.high) == pytest.approx((differences.mean() - half, differences.mean() + half))
    assert update3.effect_name == "early loss Lion - AdamW" and "final -0.095 [" in update3.aside
    assert len(update3.sources) == 2 * len(ADAMW) and "steps 250,500" in update3.detail
    label = update3.label
    for part in ("synthetic 2x64 ctx64 bs16 2000 steps cosine", "cuda bf16", "AdamW lr 1e-3", "wd AdamW 0.1, Lion 0.3",
                 "stdlib c04fb1"):
        assert part in label, label


def test_planted_reversals_are_contradicted(tmp_path):
    # Lion at AdamW's lr beats AdamW; lr/3 loses (early and late); lr/10 beats lr/1 and lr/3.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, -0.3), 3.0: shifted(ADAMW, 0.2), 10.0: shifted(ADAMW, -0.4)})
    for verdict in by_claim(judge(tmp_path)).values():
        assert verdict.outcome == CONTRADICTED, (verdict.claim.key, verdict.detail)


def test_noise_is_inconclusive(tmp_path):
    lion = [a + n for a, n in zip(ADAMW, NOISE)]
    write_lr_ratio(tmp_path, ADAMW, {1.0: lion, 3.0: lion, 10.0: [x + 0.01 for x in reversed(lion)]})
    found = by_claim(judge(tmp_path))
    assert {key: verdict.outcome for key, verdict in found.items()} == dict.fromkeys(found, INCONCLUSIVE)
    assert set(found) == {"update2", "update3", "update4_vs3", "update4_worst"}


def test_single_seed_is_not_judged_and_names_the_sweep(tmp_path):
    write_lr_ratio(tmp_path, ADAMW[:1], {1.0: [9.0], 3.0: [1.0], 10.0: [5.0]})
    found = by_claim(judge(tmp_path), judged_only=False)
    for key in ("update2", "update3", "update4_vs3", "update4_worst"):
        assert not found[key].judged and "fewer than 2 seeds" in found[key].reason
        assert found[key].claim.sweep == "lr_ratio"


def test_curves_that_cross_support_early_and_show_the_final_contradiction(tmp_path):
    # Lion at lr/3 is ahead over the first quarter and behind at the end.
    for seed, loss in enumerate(ADAMW):
        write_run(tmp_path, "adamw", seed, loss, early=4.0 + 0.01 * seed)
        write_run(tmp_path, "lion", seed, loss + 0.2 + 0.01 * (seed % 2), divisor=3.0, early=3.6 + 0.01 * seed)
    update3 = by_claim(judge(tmp_path))["update3"]
    assert update3.outcome == SUPPORTED and update3.effect == pytest.approx(-0.4)
    assert update3.aside.startswith("at 25% -0.4 [") and "final +0.205 [" in update3.aside
    final_low = float(update3.aside.split("final +0.205 [")[1].split(",")[0])
    assert final_low > 0  # the final comparison, shown beside, contradicts it


def test_update3_needs_shared_evaluation_steps(tmp_path):
    for seed, loss in enumerate(ADAMW):
        write_run(tmp_path, "adamw", seed, loss, eval_every=250)
        write_run(tmp_path, "lion", seed, loss - 0.1, divisor=3.0, eval_every=100)
    update3 = by_claim(judge(tmp_path), judged_only=False)["update3"]
    assert not update3.judged and "not evaluated at the same steps" in update3.reason


def test_update4_has_both_readings(tmp_path):
    # The committed study's pattern: lr/1 is the worst, lr/10 is worse than lr/3.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, 1.5), 3.0: shifted(ADAMW, 0.5), 10.0: shifted(ADAMW, 0.7)})
    found = by_claim(judge(tmp_path))
    assert found["update4_vs3"].outcome == SUPPORTED and found["update4_vs3"].effect == pytest.approx(0.2)
    assert found["update4_worst"].outcome == CONTRADICTED and found["update4_worst"].effect == pytest.approx(-0.8)
    detail = found["update4_worst"].detail
    assert "lr/10 - lr/1: -0.8" in detail and "lr/10 - lr/3: +0.2" in detail


def test_a_diverged_arm_loses_and_never_averages(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: shifted(ADAMW, -0.3)})
    write_run(tmp_path, "lion", 9, math.nan, divisor=3.0, wd_multiplier=3.0, status="diverged")
    write_run(tmp_path, "adamw", 9, 3.0)
    for seed in range(len(ADAMW)):
        write_run(tmp_path, "lion", seed, math.nan, divisor=1.0, wd_multiplier=3.0, status="diverged")
    found = by_claim(judge(tmp_path))
    # Lion at lr/1 diverged every time: much worse, by the divergence rule, with no effect averaged.
    assert found["update2"].outcome == SUPPORTED and "Lion diverged (4 of 4 runs)" in found["update2"].decision.note
    assert math.isnan(found["update2"].effect) and found["update2"].num == 0
    # One diverged seed of lr/3 loses the comparison, although its finished seeds beat AdamW.
    assert found["update3"].outcome == CONTRADICTED and "Lion diverged (1 of 5 runs)" in found["update3"].decision.note
    assert found["update3"].num == len(ADAMW) and found["update3"].effect < 0


def test_holm_turns_a_weak_result_inconclusive_among_many(tmp_path):
    # Update 2 with a weak effect (0.0125 < p < 0.05) beside three strong verdicts: the largest p of the four,
    # so Holm multiplies it by 1 and it stands.
    weak = [a * 1.02 + d for a, d in zip(ADAMW, [0.05, 0.02, 0.08, 0.04])]
    write_lr_ratio(tmp_path, ADAMW, {1.0: weak, 3.0: shifted(ADAMW, -0.2), 10.0: shifted(ADAMW, 0.4)})
    alone = by_claim(judge(tmp_path))["update2"]
    raw = alone.decision.p_value
    assert alone.decision.outcome == SUPPORTED and 0.0125 < raw < 0.05
    assert alone.outcome == SUPPORTED and alone.p_adjusted == pytest.approx(raw)
    # A second context where nothing holds adds four tested verdicts with larger p: the weak one is now 4th of
    # 8, its adjusted p is 5 x p > 0.05, and it becomes inconclusive (the cell says what it was before Holm).
    noise = [a + n for a, n in zip(ADAMW, NOISE)]
    write_lr_ratio(tmp_path / "second", ADAMW, {1.0: noise, 3.0: noise, 10.0: [x + 0.01 for x in reversed(noise)]},
                   schedule="constant")
    verdicts = [v for v in judge(tmp_path) if v.judged]
    p_values = sorted(v.decision.p_value for v in verdicts)
    assert len(p_values) == 8 and p_values.index(raw) == 3
    update2 = next(v for v in verdicts if v.claim.key == "update2" and "cosine" in v.label)
    assert update2.p_adjusted == pytest.approx(5 * raw)
    assert update2.decision.outcome == SUPPORTED and update2.outcome == INCONCLUSIVE


def test_another_context_never_changes_a_contexts_verdict(tmp_path):
    # The bug this guards: adding one seed at another base lr flipped update 3's verdict.
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, 0.5), 3.0: shifted(ADAMW, -0.1), 10.0: shifted(ADAMW, 0.8)})
    before = {v.claim.key: v for v in judge(tmp_path) if v.judged}
    write_lr_ratio(tmp_path / "more", [2.0] * 5, {3.0: [2.9] * 5, 1.0: [1.0] * 5}, base_lr=1e-2)
    write_run(tmp_path / "more", "lion", 7, 9.0, divisor=3.0, wd_multiplier=3.0, base_lr=3e-3)
    write_lr_ratio(tmp_path / "cpu", ADAMW, {3.0: shifted(ADAMW, +0.4)}, device_type="cpu")
    write_lr_ratio(tmp_path / "corpus", ADAMW, {3.0: shifted(ADAMW, +0.4)}, data_sha="ffff" + "0" * 60)
    after = [v for v in judge(tmp_path) if v.judged]
    for key, verdict in before.items():
        (same,) = [v for v in after if v.claim.key == key and v.context == verdict.context]
        assert same.outcome == verdict.outcome and same.num == verdict.num
        assert (same.effect, same.low, same.high) == (verdict.effect, verdict.low, verdict.high)
        assert same.sources == verdict.sources
    labels = {v.label for v in after if v.claim.key == "update3"}
    assert len(labels) == 4  # base lr 1e-3 and 1e-2, CPU, another corpus: never pooled (3e-3: no AdamW run)
    assert any("cpu fp32" in label for label in labels) and any("stdlib ffff00" in label for label in labels)
    assert any("AdamW lr 0.01" in label for label in labels)


def test_a_grid_of_absolute_lrs_is_judged_like_a_ratio_sweep(tmp_path):
    # AdamW at base lrs {3e-4, 1e-3, 3e-3}, Lion at base lr / 3 for each (the lr_grid preset): Lion's 3.33e-4
    # is "AdamW's lr / 3" for AdamW at 1e-3 and (within a factor 1.2) "AdamW's lr / 1" for AdamW at 3e-4.
    for base in (3e-4, 1e-3, 3e-3):
        for seed, loss in enumerate(ADAMW):
            write_run(tmp_path, "adamw", seed, loss, base_lr=base)
            write_run(tmp_path, "lion", seed, loss - 0.2 + 0.01 * (seed % 2), base_lr=base, divisor=3.0)
    verdicts = [v for v in judge(tmp_path) if v.judged]
    update3 = sorted(v.label for v in verdicts if v.claim.key == "update3")
    assert len(update3) == 3 and all("wd 0.1" in label for label in update3)
    update2 = [v for v in verdicts if v.claim.key == "update2"]
    assert [v.label.split(", ")[2] for v in update2] == ["AdamW lr 1e-3", "AdamW lr 3e-4"]
    assert "AdamW's lr / 0.9" in next(v.detail for v in update2 if "3e-4" in v.label)


@pytest.mark.filterwarnings("ignore::lion_bench.results.load.SkippedRun")  # b/ is read twice: deduplicated
def test_verdicts_do_not_depend_on_the_order_runs_are_read_in(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {1.0: shifted(ADAMW, 0.5), 3.0: shifted(ADAMW, -0.1), 10.0: shifted(ADAMW, 0.8)})
    write_lr_ratio(tmp_path / "b", ADAMW, {3.0: shifted(ADAMW, 0.1)}, base_lr=3e-3)
    runs, _ = load_local([tmp_path])
    reference = pd.DataFrame([v.row() for v in check_claims(runs)])
    for seed in (1, 2):
        shuffled = runs.sample(frac=1, random_state=seed).reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.DataFrame([v.row() for v in check_claims(shuffled)]), reference)
    reversed_load, _ = load_local([tmp_path / "b", tmp_path])
    pd.testing.assert_frame_equal(pd.DataFrame([v.row() for v in check_claims(reversed_load)]), reference)


def test_short_runs_make_their_context_toy_scale(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: shifted(ADAMW, -0.1)}, max_steps=200)
    update3 = by_claim(judge(tmp_path))["update3"]
    assert update3.toy == "toy scale (200 steps < 1,000)" and update3.outcome == SUPPORTED
    assert not by_claim(judge(tmp_path, min_steps=100))["update3"].toy
