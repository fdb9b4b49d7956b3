"""Claims about Lion's settings on planted runs: betas (0.95, 0.98) and instability, cautious Lion, cosine vs
inverse-sqrt gains, scaling the whole schedule, and Lion's state half of AdamW's."""

import math

import pytest
from synthetic_runs import STEPS, judged, only, write_run

from lion_bench.results.claims.base import CONTRADICTED, SUPPORTED
from lion_bench.results.claims.base import MEASURED


def test_stable_betas_have_fewer_instabilities(tmp_path):
    spiky = lambda step: 3.0 + (2.0 if step == 1000 else 0.0) + 1.0 * (1 - step / STEPS)  # noqa: E731
    smooth = lambda step: 3.0 + 1.0 * (1 - step / STEPS)  # noqa: E731
    for seed in range(4):
        for lr in (1e-3, 3e-3):
            write_run(tmp_path, "lion", seed, 3.0, base_lr=lr, curve=smooth, train_curve=spiky,
                      eval_every=100)
            write_run(tmp_path, "lion", seed, 3.0, base_lr=lr, betas=[0.95, 0.98], curve=smooth, eval_every=100)
    cell = only(judged(tmp_path), "betas")
    assert cell.verdict == SUPPORTED and "(0.9, 0.99) 8 of 8 runs, (0.95, 0.98) 0 of 8" in cell.detail


def test_cautious_lion_better_or_not(tmp_path):
    for seed in range(4):
        write_run(tmp_path, "lion", seed, 3.0 + 0.01 * seed)
        write_run(tmp_path, "lion", seed, 2.9 + 0.01 * seed + 0.001 * (seed % 2), options={"cautious": True})
    cell = only(judged(tmp_path), "cautious")
    assert cell.verdict == SUPPORTED and cell.answer == "cautious better"


def test_cosine_gain_larger_than_inverse_sqrt(tmp_path):
    for seed in range(4):
        jitter = 0.002 * (seed % 2)
        for schedule, gain in (("cosine", 0.2), ("inverse_sqrt", 0.05)):
            write_run(tmp_path, "adamw", seed, 3.0 + jitter, schedule=schedule)
            write_run(tmp_path, "lion", seed, 3.0 - gain + 0.003 * seed, schedule=schedule, divisor=3.0)
    cell = only(judged(tmp_path), "schedule_cosine")
    assert cell.verdict == SUPPORTED and cell.effect == pytest.approx(0.15, abs=0.01)


def test_scaling_only_the_peak_of_the_schedule(tmp_path):
    # Lion at lr / 3 with its end lr scaled (final_fraction 0.1) or kept at AdamW's (0.3): scaled wins here.
    for seed in range(4):
        write_run(tmp_path, "lion", seed, 3.0 + 0.01 * seed, divisor=3.0, final_fraction=0.1)
        write_run(tmp_path, "lion", seed, 3.1 + 0.012 * seed, divisor=3.0, final_fraction=0.3)
    cell = only(judged(tmp_path), "schedule_ratio")
    assert cell.verdict == SUPPORTED and cell.effect == pytest.approx(-0.1, abs=0.01)


def test_scaled_schedule_equivalent_contradicts_should(tmp_path):
    for seed in range(4):
        write_run(tmp_path, "lion", seed, 3.0 + 0.01 * seed, divisor=3.0, final_fraction=0.1)
        write_run(tmp_path, "lion", seed, 3.0 + 0.01 * seed + 0.0001 * (seed % 2), divisor=3.0, final_fraction=0.3)
    cell = only(judged(tmp_path), "schedule_ratio")
    assert cell.answer == "equivalent" and cell.verdict == CONTRADICTED


def test_lion_state_is_half_of_adamws(tmp_path):
    write_run(tmp_path, "adamw", 0, 3.0, state_bytes=800)
    write_run(tmp_path, "lion", 0, 3.0, state_bytes=400)
    cell = only(judged(tmp_path), "state_half")
    assert cell.role == MEASURED and cell.verdict == SUPPORTED and cell.effect == 0.5
    assert math.isnan(cell.p_decision)  # a measurement never enters the Holm family
