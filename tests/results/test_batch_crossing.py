"""The batch-size answer: on a planted batch-scaling study (each batch size its own sweep, each optimizer tuned
on its own lr and weight-decay grid on selection seeds, answered on fresh seeds), the tuned rows open the report
in batch order, then where Lion stops losing (the crossing, with its interval), then update 7 judged on the
tuned answers; the study's verdicts do not move when another study is loaded beside it."""

import math
import re
import shutil

import numpy as np
import pytest
from synthetic_runs import judged, write_lr_ratio

from lion_bench.results.claims.base import CONTRADICTED, NOT_JUDGED, PRIMARY
from lion_bench.results.claims.batch import AHEAD_FROM_SMALLEST, NEVER_WITHIN
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY
from lion_bench.results.protocol import load_protocol
from lion_bench.results.stats import (AHEAD_THROUGHOUT, CROSSES, INCONCLUSIVE, NEVER_CROSSES, Crossing,
                                      stops_behind)

BATCHES = (16, 64, 256, 1024)
SELECTION, ANSWER = (0, 1), (2, 3, 4, 5, 6)
PROTOCOL = """\
study: planted_batch
written: "2026-12-07"
written_before_runs: true
questions:
""" + "".join(f"  - {{id: tuned_bs{b}, claim: tuned, runs: {{sweep: bs{b}}}, selection_seeds: [0, 1], "
              f"answer_seeds: [2, 3, 4, 5, 6]}}\n" for b in BATCHES) + "".join(
    f"  - {{id: {key}, claim: {claim}, runs: {{sweep: [bs16, bs64, bs256, bs1024]}}, selection_seeds: [0, 1], "
    f"answer_seeds: [2, 3, 4, 5, 6]}}\n" for key, claim in (("crossing", "batch_crossing"), ("update7", "update7")))


def write_arm(root, optimizer, batch, lr, wd, seeds, loss_of):
    from synthetic_runs import write_run

    for seed in seeds:
        write_run(root, optimizer, seed, loss_of(seed), base_lr=lr, base_wd=wd, batch_size=batch, budget="tokens",
                  reference_batch_size=16, warmup_fraction=0.1, max_steps=4096, eval_every=10 ** 6,
                  sweep=f"bs{batch}")


def write_batch_study(root, name, gaps, batches=BATCHES, answer_seeds=ANSWER):
    """Study 3's shape: per batch size b (sweep bs<b>) and optimizer, an lr grid at weight decay 0 and a
    weight-decay grid at its best lr on the selection seeds, then its best (lr, wd) on the answer seeds.
    ``gaps``: batch -> Lion - AdamW at the best arms (the same on every seed, plus a little zero-mean noise)."""
    study = root / name
    for batch in batches:
        runs = study / "runs" / f"bs{batch}"
        for optimizer, base, wds in (("adamw", 1e-3, (0.1, 0.3)), ("lion", 3e-4, (1.0, 3.0))):
            gap = gaps[batch] if optimizer == "lion" else 0.0

            def loss(extra, noise=0.0):
                return lambda seed: 3.0 + 0.01 * (seed % 2) + gap + extra + noise * ((seed * 7 + batch) % 3 - 1)

            for lr, extra in ((base / 2, 0.05), (base, 0.02), (base * 2, 0.06)):
                write_arm(runs, optimizer, batch, lr, 0.0, SELECTION, loss(extra))
            write_arm(runs, optimizer, batch, base, wds[0], SELECTION, loss(0.0))  # the best arm
            write_arm(runs, optimizer, batch, base, wds[1], SELECTION, loss(0.03))
            noise = 0.002 if optimizer == "lion" else 0.0
            write_arm(runs, optimizer, batch, base, wds[0], answer_seeds, loss(0.0, noise))
    (study / "README.md").write_text(f"# {name}\n")
    (study / "protocol.yaml").write_text(PROTOCOL.replace("planted_batch", name))
    return study


def protocols_of(*studies):
    return {str(study.resolve()): load_protocol(study, set(CLAIM_BY_KEY)) for study in studies}


def questions(families, name):
    (family,) = [family for family in families if family.name == f"study {name}"]
    return {cell.question: cell for cell in family.cells if cell.question}


# --- the crossing statistic on its own ------------------------------------------------------------------
def test_stops_behind_interpolates_between_the_last_batch_behind_and_the_next():
    xs = np.log2([16, 64, 256, 1024])
    assert stops_behind(xs, [0.2, 0.1, -0.1, -0.2]) == pytest.approx(7.0)  # halfway from 64 to 256: 128
    assert stops_behind(xs, [-0.1, 0.1, 0.0, -0.2]) == pytest.approx(8.0)  # level at 256 counts as not behind
    assert stops_behind(xs, [-0.1, -0.1, -0.1, -0.1]) == -math.inf
    assert stops_behind(xs, [-0.1, -0.1, -0.1, 0.01]) == math.inf


@pytest.mark.parametrize("curve, answer", [
    ([0.2, 0.1, -0.1, -0.2], CROSSES),
    ([-0.2, -0.2, -0.3, -0.3], AHEAD_THROUGHOUT),
    ([0.3, 0.2, 0.1, 0.05], NEVER_CROSSES),
])
def test_the_crossing_answers(curve, answer):
    rng = np.random.default_rng(0)
    differences = np.array(curve) + rng.normal(0, 0.005, size=(5, 4))
    test = Crossing([16, 64, 256, 1024], differences)
    assert test.decide(0.01) == answer
    effect, low, high = test.interval(0.01)
    assert low <= effect <= high
    if answer == CROSSES:
        assert 64 < low <= effect <= high < 256 and effect == pytest.approx(128, rel=0.1)


def test_a_band_that_reaches_an_end_and_a_crossing_is_inconclusive_and_wider_at_stricter_levels():
    spread = np.array([[0.1, 0.1, 0.005, 0.005]]) * np.array([[-1], [1], [0.5], [-0.5], [0]])
    differences = np.array([0.0, -0.02, -0.2, -0.3]) + spread  # around 0 at 16, clearly ahead from 256
    test = Crossing([16, 64, 256, 1024], differences)
    _, low, high = test.interval(0.01)
    assert low == -math.inf and math.isfinite(high) and test.decide(0.01) == INCONCLUSIVE
    assert test.interval(0.001)[2] >= high  # a stricter level never narrows the interval
    assert not Crossing([16, 64], differences[:2, :2]).testable  # 2 seeds: no verdict


# --- the planted study -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crossing_study(tmp_path_factory):
    """(study, runs, curves, families): Lion behind at 16 and 64, level at 256 (inside the margin), ahead at 1024."""
    from lion_bench.results.claims.judge import judge
    from lion_bench.results.load import load_local

    study = write_batch_study(tmp_path_factory.mktemp("batch"), "crossing",
                              {16: 0.2, 64: 0.1, 256: -0.002, 1024: -0.1})
    runs, curves = load_local([study])
    return study, runs, curves, judge(runs, curves, protocols_of(study), 1)


def test_lion_level_at_256_and_ahead_at_1024_crosses_between_64_and_256(crossing_study):
    cells = questions(crossing_study[3], "crossing")
    assert {key: cell.role for key, cell in cells.items()} == dict.fromkeys(
        ["tuned_bs16", "tuned_bs64", "tuned_bs256", "tuned_bs1024", "crossing", "update7"], PRIMARY)
    assert [cells[f"tuned_bs{b}"].answer for b in BATCHES] == ["AdamW better", "AdamW better", "equivalent",
                                                             "Lion better"]
    assert all(cells[f"tuned_bs{b}"].n == 5 for b in BATCHES)  # answered on the 5 answer seeds only
    crossing = cells["crossing"]
    assert crossing.answer == CROSSES and crossing.verdict == CROSSES and crossing.n == 5
    assert 64 < crossing.low <= crossing.effect <= 256 and crossing.high < 1024
    assert crossing.alpha < 0.05  # shown at its Holm level
    assert "per seed: ~2" in crossing.aside  # the per-seed crossings' median, near 256
    # Update 7 on the tuned answers: the advantage grows, but AdamW is better at 64, where it recommends Lion.
    update7 = cells["update7"]
    assert update7.verdict == CONTRADICTED and update7.answer == "no"
    assert re.search(r"bs64: Lion - AdamW \+0\.(099|1)", update7.detail), update7.detail
    assert "AdamW lr 1e-3, wd 0.1; Lion lr 3e-4, wd 1" in update7.detail  # each at its tuned (lr, wd)


@pytest.mark.slow
def test_lion_behind_at_every_batch_never_crosses(tmp_path):
    study = write_batch_study(tmp_path, "behind", {16: 0.3, 64: 0.2, 256: 0.1, 1024: 0.05})
    cells = questions(judged(study, protocols=protocols_of(study), min_steps=1), "behind")
    assert cells["crossing"].verdict == NEVER_WITHIN and cells["crossing"].low == math.inf
    assert cells["update7"].verdict == CONTRADICTED


@pytest.mark.slow
def test_a_batch_without_its_answer_seeds_is_listed_and_update7_needs_one_at_64_or_above(tmp_path):
    study = write_batch_study(tmp_path, "partial", {16: -0.1, 64: -0.2, 256: -0.3, 1024: -0.4})
    for run in (study / "runs" / "bs1024").glob("*_s[2-6]"):  # bs1024's answer seeds have not run yet
        shutil.rmtree(run)
    for run in (study / "runs" / "bs256").glob("*lion*_s[4-6]"):  # bs256: Lion on 2 answer seeds so far
        shutil.rmtree(run)
    cells = questions(judged(study, protocols=protocols_of(study), min_steps=1), "partial")
    assert "bs1024: not run" in cells["update7"].detail and "bs256: too few seeds" in cells["update7"].detail
    assert cells["update7"].role == PRIMARY  # still judged on 16 and 64
    assert cells["crossing"].verdict == AHEAD_FROM_SMALLEST
    assert "bs1024: not run" in cells["crossing"].aside  # listed where the report shows it
    shutil.rmtree(study / "runs" / "bs1024")  # a batch size not started yet
    for run in (study / "runs" / "bs64").glob("*_s[2-6]"):
        shutil.rmtree(run)
    cells = questions(judged(study, protocols=protocols_of(study), min_steps=1), "partial")
    assert cells["update7"].role == NOT_JUDGED and "including one >= 64" in cells["update7"].reason
    assert "bs64: not run" in cells["update7"].reason and "no runs for sweep bs1024" in cells["update7"].aside
    assert cells["crossing"].role == NOT_JUDGED  # one judged batch size left


@pytest.mark.slow
def test_the_studys_verdicts_stay_when_another_study_is_loaded_beside_it(crossing_study, tmp_path):
    study = crossing_study[0]
    alone = questions(crossing_study[3], "crossing")
    other = tmp_path / "other"
    write_lr_ratio(other / "runs", [3.0, 3.02, 2.98], {1.0: [3.1, 3.12, 3.08], 3.0: [2.9, 2.91, 2.88]})
    (other / "README.md").write_text("# other\n")
    (other / "protocol.yaml").write_text("questions:\n  - {id: u2, claim: update2}\n  - {id: s3, claim: summary_lr3}\n")
    together = questions(judged(study, other, protocols=protocols_of(study, other), min_steps=1), "crossing")
    for key, cell in alone.items():
        same = together[key]
        assert (same.answer, same.verdict, same.alpha, same.p_adjusted) == (cell.answer, cell.verdict, cell.alpha,
                                                                          cell.p_adjusted), key
        assert (same.effect, same.low, same.high) == (cell.effect, cell.low, cell.high), key


def test_the_report_opens_with_the_rows_by_batch_then_the_crossing_then_update7(crossing_study, tmp_path):
    from lion_bench.results.report import build_report, terminal_summary

    study, runs, curves, families = crossing_study
    build_report(families, runs, curves, tmp_path / "report", [], [str(study)], 1)
    markdown = (tmp_path / "report" / "report.md").read_text()
    answer = markdown[markdown.index("## The answer"):markdown.index("## Verdicts")]
    table = [line for line in answer.splitlines() if line.startswith("|") and "study crossing" in line]
    assert [line.split("|")[2].strip() for line in table] == [f"**{b}**" for b in BATCHES]
    after = answer[answer.index(table[-1]):]
    assert after.index("Lion stops losing at batch ~") < after.index("Update 7 (")
    assert "**contradicted**" in after.split("Update 7 (")[1].splitlines()[0]
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.index("<strong>16</strong>") < html.index("<strong>1024</strong>") < html.index("Lion stops losing")
    lines = terminal_summary(families)
    names = [line.split()[0] + " " + line.split()[1] for line in lines[1::2]]
    assert names[:6] == ["ANSWER (tuned"] * 4 + ["Batch crossing", "Update 7"]
    contexts = lines[2:9:2]
    assert [int(context.split("bs")[1].split(",")[0].split()[0]) for context in contexts] == list(BATCHES)
