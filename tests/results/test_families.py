"""Families and protocols: a study's verdicts never change when other runs or studies are loaded beside it;
without a protocol each sweep directory is its own family; protocol questions pick their runs and context, and
everything else in a study is exploratory."""

import math

import pytest
from synthetic_runs import judged, write_lr_ratio

from lion_bench.results.claims.base import EXPLORATORY, NOT_JUDGED, PRIMARY
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY
from lion_bench.results.protocol import ProtocolError, load_protocol, parse_protocol

ADAMW = [3.00, 3.02, 2.98, 3.01, 2.99]
WEAK = [a * 1.02 + d for a, d in zip(ADAMW, [0.05, 0.02, 0.08, 0.04, 0.06])]


def shifted(shift):
    return [a + shift + 0.01 * (i % 2) for i, a in enumerate(ADAMW)]


def write_study(root, name, protocol_text, **kwargs):
    study = root / name
    write_lr_ratio(study / "runs" / "lr_ratio", ADAMW, {1.0: WEAK, 3.0: shifted(-0.2), 10.0: shifted(0.4)}, **kwargs)
    (study / "README.md").write_text(f"# {name}\n")
    (study / "protocol.yaml").write_text(protocol_text)
    return study


PROTOCOL = """\
study: first
written: "2026-12-06"
written_before_runs: true
questions:
  - {id: u2, claim: update2, runs: {sweep: null}}
  - {id: u4, claim: update4_vs3}
"""


def protocols_of(*studies):
    return {str(study.resolve()): load_protocol(study, set(CLAIM_BY_KEY)) for study in studies}


def primary(families, name):
    (family,) = [family for family in families if family.name == name]
    return {cell.question: cell for cell in family.cells if cell.question}


def test_a_studys_verdicts_never_change_when_a_second_study_is_added(tmp_path):
    first = write_study(tmp_path, "first", PROTOCOL.replace("runs: {sweep: null}", "runs: {task: synthetic}"))
    alone = primary(judged(first, protocols=protocols_of(first)), "study first")
    assert {key: cell.role for key, cell in alone.items()} == {"u2": PRIMARY, "u4": PRIMARY}
    # A second study with many weak tests, and an ad-hoc sweep, loaded beside it.
    second = write_study(tmp_path, "second", "questions:\n" + "".join(
        f"  - {{id: q{i}, claim: {key}}}\n" for i, key in enumerate(["update2", "update3", "summary_lr3",
                                                                      "update4_vs3", "update4_worst"])),
        schedule="constant")
    write_lr_ratio(tmp_path / "sweeps" / "lr_ratio", ADAMW, {1.0: shifted(0.01), 3.0: shifted(0.0)})
    together = primary(judged(first, second, tmp_path / "sweeps", protocols=protocols_of(first, second)),
                       "study first")
    for key, cell in alone.items():
        same = together[key]
        assert (same.answer, same.verdict, same.alpha, same.p_adjusted) == (cell.answer, cell.verdict, cell.alpha,
                                                                          cell.p_adjusted)
        assert (same.effect, same.low, same.high) == (cell.effect, cell.low, cell.high)


def test_without_a_protocol_each_sweep_directory_is_its_own_family(tmp_path):
    write_lr_ratio(tmp_path / "quickstart", ADAMW, {1.0: WEAK, 3.0: shifted(-0.2), 10.0: shifted(0.4)})
    alone = judged(tmp_path / "quickstart")
    before = {(cell.claim.key, cell.label): (cell.answer, cell.alpha) for cell in alone[0].cells if cell.judged}
    write_lr_ratio(tmp_path / "lr_ratio", ADAMW, {1.0: shifted(0.001), 3.0: shifted(0.0), 10.0: shifted(0.002)},
                   schedule="constant")
    families = judged(tmp_path)
    assert [family.name for family in families] == [str(tmp_path / "lr_ratio"), str(tmp_path / "quickstart")] or \
        len(families) == 2
    (quickstart,) = [family for family in families if family.name.endswith("quickstart")]
    after = {(cell.claim.key, cell.label): (cell.answer, cell.alpha) for cell in quickstart.cells if cell.judged}
    assert after == before and quickstart.protocol is None


def test_cells_a_protocol_does_not_ask_about_are_exploratory(tmp_path):
    study = write_study(tmp_path, "first", PROTOCOL.replace("runs: {sweep: null}", ""))
    families = judged(study, protocols=protocols_of(study))
    roles = {cell.claim.key: cell.role for cell in families[0].cells if cell.judged}
    assert roles["update2"] == PRIMARY and roles["update4_vs3"] == PRIMARY
    assert roles["summary_lr3"] == EXPLORATORY and roles["update3"] == EXPLORATORY
    exploratory = [cell for cell in families[0].cells if cell.role == EXPLORATORY]
    assert all(cell.alpha == 0.05 and cell.verdict == EXPLORATORY and not cell.answer for cell in exploratory)
    assert families[0].num_tests == 2  # Holm over the protocol's questions only


def test_a_question_matching_several_contexts_is_not_judged_and_says_how_to_narrow_it(tmp_path):
    study = tmp_path / "grid"
    for base in (1e-3, 3e-3):
        write_lr_ratio(study / "runs", ADAMW, {1.0: shifted(0.5), 3.0: shifted(-0.1)}, base_lr=base)
    (study / "README.md").write_text("# grid\n")
    (study / "protocol.yaml").write_text("questions:\n  - {id: u2, claim: update2}\n"
                                         "  - {id: u2_at, claim: update2, at: {reference_lr: 3.0e-3}}\n")
    cells = primary(judged(study, protocols=protocols_of(study)), "study grid")
    assert cells["u2"].role == NOT_JUDGED and "2 contexts match" in cells["u2"].reason
    assert "reference_lr" in cells["u2"].reason
    assert cells["u2_at"].role == PRIMARY and "AdamW lr 3e-3" in cells["u2_at"].label


@pytest.mark.parametrize("data, message", [
    ([1, 2], "a protocol is a mapping"),
    ({"questions": [{"claim": "nope"}]}, "claim 'nope' is not in the catalogue"),
    ({"questions": [{"claim": "update2", "seeds": "all"}]}, "must be a list of seeds"),
    ({"alpha": 2}, "alpha must be a number in (0, 1)"),
    ({"questions": [{"claim": "update2", "colour": 1}]}, "unknown key(s) colour"),
])
def test_bad_protocols_are_refused_naming_the_file(data, message):
    with pytest.raises(ProtocolError, match=r"study/protocol.yaml") as raised:
        parse_protocol(data, "study/protocol.yaml", set(CLAIM_BY_KEY))
    assert message in str(raised.value)


def test_the_committed_study_keeps_its_verdicts_beside_another_study():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    claim_map, stdlib = root / "claim_map_h200x4", root / "stdlib_lr_ratio_h100"
    protocols = protocols_of(claim_map, stdlib)
    alone = primary(judged(claim_map / "runs", protocols=protocols), "study claim_map_h200x4")
    together = primary(judged(claim_map / "runs", stdlib / "runs", protocols=protocols), "study claim_map_h200x4")
    assert alone["tuned"].answer == "AdamW better" and alone["tuned"].n == 3
    for key, cell in alone.items():
        assert (together[key].answer, together[key].verdict, together[key].alpha) == (cell.answer, cell.verdict,
                                                                                     cell.alpha), key
        assert math.isclose(together[key].effect, cell.effect) or math.isnan(cell.effect)
