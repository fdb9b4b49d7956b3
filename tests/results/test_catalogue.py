"""The catalogue lists every testable claim of the lion-pytorch README and the Lion paper it quotes, each with
its own words, a rule and the preset that supplies its runs; every preset it names exists."""

from pathlib import Path

from lion_bench.results.claims.catalogue import CLAIMS

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "sweep"
# Every claim issue 16 lists, the ones judged before it, and issue 24's batch crossing.
EXPECTED = {"batch_crossing", "tuned", "update2", "update3", "summary_lr3", "update4_vs3", "update4_worst", "update5", "update7",
            "paper_lr", "older_10x", "paper_wd", "schedule_ratio", "schedule_cosine", "betas", "state_half",
            "cautious", "decoupled_wd"}


def test_every_claim_is_in_the_catalogue_with_its_words_rule_and_preset():
    assert {claim.key for claim in CLAIMS} == EXPECTED
    assert CLAIMS[0].key == "tuned" and CLAIMS[0].headline
    for claim in CLAIMS:
        assert claim.words and claim.rule and claim.source and claim.needs, claim.key
        assert (PRESETS / f"{claim.preset}.yaml").is_file(), f"{claim.key}: no preset {claim.preset}"


def test_quoted_words_are_the_readmes():
    words = {claim.key: claim.words for claim in CLAIMS}
    assert words["update2"] == "seems much worse than Adam if learning rate held constant."
    assert words["update7"] == "would only recommend this optimizer in the setting of high batch sizes (64 or above)"
    assert words["summary_lr3"] == "Lion with a 3x smaller learning rate beats Adam."
    assert "typically 10x smaller than that for AdamW" in words["older_10x"]
