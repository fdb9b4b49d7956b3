"""An inconclusive answer says what would decide it: the seeds at the observed spread and, at toy scale, the
length, each timed by the runs' own wall time (the records' time_s)."""

from __future__ import annotations

import math

from lion_bench.results.format import would_decide
from lion_bench.results.report import advise, build_report, terminal_summary
from lion_bench.results.stats import INCONCLUSIVE

from synthetic_runs import bowl, judged, only, write_lr_grid, write_run


def test_the_words_and_the_times():
    text = would_decide(12, 3, 6, 0.01, 200, 1000, "lion-bench -m sweep=tuned_decisive")
    # 9 more seeds x 6 runs of 200 steps at 10 ms a step: 108 s; 18 runs of 1000 steps: 180 s
    assert "~12 seeds would decide it" in text and "9 more seeds x 6 runs = 54 runs, ~1m48s" in text
    assert "18 runs of 1,000 steps, ~3m00s (`lion-bench -m sweep=tuned_decisive`)" in text
    assert "2 s per 200-step run" in text
    assert would_decide(None, 5, 6, 0.01, 2000, 1000, "x") == ""  # long enough and no seed count: nothing
    untimed = would_decide(8, 5, 2, math.nan, 2000, 1000, "x")
    assert untimed == "~8 seeds would decide it at the observed spread (3 more seeds x 2 runs = 6 runs)"


def test_an_inconclusive_tuned_answer_at_toy_scale_names_the_preset_that_decides(tmp_path):
    # Lion and AdamW with the same bowl: no difference to find, and 200-step runs (toy scale).
    lrs = [3e-4, 1e-3, 3e-3]
    write_lr_grid(tmp_path / "sweep", "adamw", lrs, best=1e-3, seeds=4, max_steps=200)
    for index, lr in enumerate(lrs):  # Lion: the same bowl, each seed 0.04 above or below it (a wide spread)
        for seed in range(4):
            loss = bowl(lr, 1e-3) + 0.04 * (1 if seed in (0, 3) else -1) + 0.001 * index
            write_run(tmp_path / "sweep", "lion", seed, loss, base_lr=lr, max_steps=200)
    from lion_bench.results.load import load_local

    runs, curves = load_local([tmp_path])
    families = judged(tmp_path)
    cell = only(families, "tuned")
    assert cell.answer == INCONCLUSIVE
    advise(families, runs, 1000)
    advice = cell.facts["would_decide"]
    # synthetic records took 1.0 s for 200 steps: 24 runs of 1000 steps, 5 s each
    assert "24 runs of 1,000 steps, ~2m00s (`lion-bench -m sweep=tuned_decisive`)" in advice, advice
    lines = terminal_summary(families)
    assert any("what would decide it:" in line for line in lines) and all(len(line) <= 100 for line in lines)
    build_report(families, runs, curves, tmp_path / "report", [], [str(tmp_path)], 1000)
    assert "sweep=tuned_decisive" in (tmp_path / "report" / "report.md").read_text()
