"""Contexts: what runs are compared within, and the labels people read them by (what differs, never a hash)."""

from synthetic_runs import judged, write_lr_ratio

from lion_bench.results.contexts import describe, short_labels
from lion_bench.results.format import count, short_number

ADAMW = [3.00, 3.02, 2.98, 3.01]
BETTER = [2.80, 2.83, 2.78, 2.82]


def test_numbers_in_labels():
    assert [short_number(x) for x in (1e-3, 1 / 3 * 1e-3, 0.1, 0, 800, 2e-2, 3e-5)] == [
        "1e-3", "3.33e-4", "0.1", "0", "800", "0.02", "3e-5"]
    assert count(13107200) == "13.1M" and count(800) == "800"


def test_contexts_split_on_what_differs_and_are_named_by_it(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: BETTER})
    write_lr_ratio(tmp_path, ADAMW, {3.0: BETTER}, config={"trainer": {"grad_clip": 0.5}},
                   name=None, schedule="constant")
    families = judged(tmp_path)
    labels = {cell.label for cell in families[0].cells if cell.claim.key == "summary_lr3" and cell.judged}
    assert len(labels) == 2
    assert any("cosine" in label and "grad_clip=1" in label for label in labels), labels
    assert any("constant" in label and "grad_clip=0.5" in label for label in labels), labels
    for label in labels:
        assert len(label) < 80 and not any(setup in label for setup in families[0].legend)


def test_the_legend_holds_the_whole_setting():
    fields = {"task": "text", "task.model.n_layer": 6, "task.model.d_model": 512, "task.model.seq_len": 1024,
              "batch_size": 16, "steps": 1500, "trainer.schedule.name": "cosine", "warmup_steps": 75,
              "precision": "bf16", "device_type": "cuda", "data_source": "pydoc.txt", "data_sha": "255abf4d1234",
              "trainer.grad_clip": 0.5}
    assert describe(fields) == ("text 6x512 ctx1024 bs16 1500 steps cosine warmup 75 cuda bf16, pydoc.txt 255abf, "
                                "grad_clip=0.5")
    assert short_labels({"a": fields}) == {"a": "text 6x512 ctx1024"}
    other = {**fields, "batch_size": 64, "steps": 375}
    assert short_labels({"a": fields, "b": other}) == {"a": "bs16, 1500 steps", "b": "bs64, 375 steps"}
