"""Contexts: what runs are compared within, and the labels people read them by."""

from synthetic_runs import write_lr_ratio

from lion_bench.results.claims import check_claims
from lion_bench.results.contexts import count, short_number
from lion_bench.results.load import load_local

ADAMW = [3.00, 3.02, 2.98, 3.01]
BETTER = [2.80, 2.83, 2.78, 2.82]


def update3_labels(*roots):
    runs, _ = load_local(list(roots))
    verdicts = [v for v in check_claims(runs) if v.claim.key == "update3" and v.judged]
    return runs, {v.label: v for v in verdicts}


def test_numbers_in_labels():
    assert [short_number(x) for x in (1e-3, 1 / 3 * 1e-3, 0.1, 0, 800, 2e-2, 3e-5)] == [
        "1e-3", "3.33e-4", "0.1", "0", "800", "0.02", "3e-5"]
    assert count(13107200) == "13.1M" and count(800) == "800"


def test_a_committed_study_is_a_context_of_its_own(tmp_path):
    study = tmp_path / "results" / "my_study"
    (study / "runs").mkdir(parents=True)
    (study / "README.md").write_text("# a committed study\n")
    write_lr_ratio(study / "runs", ADAMW, {3.0: BETTER})
    write_lr_ratio(tmp_path / "results" / "sweeps" / "lr_ratio", ADAMW, {3.0: BETTER})
    runs, labels = update3_labels(tmp_path / "results")
    assert len(labels) == 2 and sum("study my_study" in label for label in labels) == 1
    for label, verdict in labels.items():
        assert verdict.num == len(ADAMW)  # never pooled into 8 pairs
        assert not any(setup in label for setup in runs["setup"])  # no bare hash


def test_contexts_split_on_what_differs_and_say_so(tmp_path):
    write_lr_ratio(tmp_path / "a", ADAMW, {3.0: BETTER})
    write_lr_ratio(tmp_path / "b", ADAMW, {3.0: BETTER}, config={"trainer": {"grad_clip": 0.5}})
    write_lr_ratio(tmp_path / "c", ADAMW, {3.0: BETTER}, batch_size=64, max_steps=500)
    _, labels = update3_labels(tmp_path)
    assert len(labels) == 3
    assert sum("grad_clip=0.5" in label for label in labels) == 1
    assert sum("grad_clip=1" in label for label in labels) == 2
    assert any(label.startswith("synthetic 2x64 ctx64 bs64 500 steps cosine") for label in labels)
    toy = [v for v in labels.values() if v.toy]
    assert len(toy) == 1 and "bs64 500 steps" in toy[0].label
