"""lion-bench-report end to end on synthetic records and on the committed studies: the answer first, each
family's verdicts, the catalogue, files written, skipped records (unreadable, partial, or with values no
comparison can use), streaming metrics, and the command's errors (one line, exit status 2)."""

import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import bowl, write_lr_ratio, write_run

from lion_bench.results.cli import main
from lion_bench.results.load import SkippedRun, iter_metrics, load_local
from lion_bench.results.report import TERMINAL_WIDTH, arms_frame
from lion_bench.results.tables import summarize

ADAMW = [3.00, 3.02, 2.98, 3.01]
RESULTS = Path(__file__).resolve().parents[2] / "results"


def write_partial_runs(root):
    (root / "killed").mkdir(parents=True)
    (root / "killed" / "metrics.jsonl").write_text('{"step": 1, "train_loss": 5.0}\n{"step": 2, "tr')
    interrupted = write_run(root, "lion", 7, 3.0, divisor=3.0)
    record = json.loads((interrupted / "run.json").read_text())
    (interrupted / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    (root / "torn").mkdir()
    (root / "torn" / "run.json").write_text('{"status": "finished", "trial_')
    (root / "old").mkdir()
    (root / "old" / "run.json").write_text(json.dumps({"status": "finished", "task": "text"}))
    # Valid by the schema, but a trainer config that is a list: the report cannot read it.
    odd = write_run(root, "adamw", 8, 3.0, name="odd")
    record = json.loads((odd / "run.json").read_text())
    record["config"]["trainer"] = ["not", "a", "mapping"]
    (odd / "run.json").write_text(json.dumps(record))


def write_bad_values(root):
    """Records that validate but hold an lr no comparison can use (issue 18: each crashed the report)."""
    for name, lr in (("zero_lr", 0.0), ("negative_lr", -1e-3), ("infinite_lr", 1e309)):
        run = write_run(root, "lion", 11, 3.0, divisor=3.0, name=name)
        record = json.loads((run / "run.json").read_text())
        record["hyperparameters"]["lr"] = lr
        (run / "run.json").write_text(json.dumps(record).replace("Infinity", "1e309"))


def write_quick_grid(root):
    """AdamW and Lion each on an lr grid of its own, 3 seeds: the answer and updates 2-4 at AdamW's base lr."""
    for seed in range(3):
        shared = 0.01 * seed
        for lr in (5e-4, 1e-3, 2e-3):
            write_run(root, "adamw", seed, bowl(lr, 1e-3) + shared, base_lr=lr)
        for divisor in (1.0, 3.0, 10.0):
            write_run(root, "lion", seed, bowl(1e-3 / divisor, 3e-4) + 0.05 + shared + 0.002 * seed * divisor,
                      divisor=divisor)


def test_partial_unreadable_and_unusable_runs_are_skipped_with_a_warning_naming_them(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: [loss - 0.1 for loss in ADAMW]})
    write_partial_runs(tmp_path)
    write_bad_values(tmp_path)
    with pytest.warns(SkippedRun) as caught:
        runs, curves = load_local([tmp_path])
    caught = [warning for warning in caught if warning.category is SkippedRun]
    messages = "\n".join(str(warning.message) for warning in caught)
    assert len(caught) == 8
    for name in ("killed", "_s7", "torn", "old", "odd", "zero_lr", "negative_lr", "infinite_lr"):
        assert name in messages
    assert "hyperparameters.lr is 0.0, not a positive finite number" in messages
    assert len(runs) == 2 * len(ADAMW) and set(curves["source"]) == set(runs["source"])


def test_report_opens_with_the_answer_then_verdicts(tmp_path, capsys):
    runs_dir, out = tmp_path / "runs", tmp_path / "out"
    write_quick_grid(runs_dir)
    write_partial_runs(runs_dir)
    assert main([str(runs_dir), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert "18 runs loaded, 5 skipped" in printed.out and "ANSWER" in printed.out
    assert all(len(line) <= TERMINAL_WIDTH for line in printed.out.splitlines()[1:-1])
    assert "warning: skipping" in printed.err and "killed" in printed.err and "Traceback" not in printed.err
    report = (out / "report.md").read_text()
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[0] == "## The answer: Lion tuned vs AdamW tuned" and sections[1].startswith("## Verdicts: ")
    first_screen = report.split("## Verdicts")[0]
    assert "AdamW better" in first_screen and "_loss_vs_lr.png" in first_screen
    assert "No protocol: an ad-hoc family" in report and "Holm" in report
    for heading in ("## Every claim: its words, its rule, where it was judged", "## Contexts", "## Skipped runs",
                    "## Rules (fixed before looking at the runs)"):
        assert heading in sections
    assert "lion-bench -m sweep=batch_lr_grid" in report and "lion-bench -m sweep=cautious" in report
    page = (out / "report.html").read_text()
    assert '<td class="adamw"><strong>AdamW better</strong>' in page and "**" not in page
    pngs = sorted(path.name for path in out.glob("*.png"))
    assert pngs and all((out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in pngs)
    assert all(f"({name})" in report for name in pngs)
    claims = pd.read_csv(out / "claims.csv")
    assert set(claims["claim"]) >= {"tuned", "update2", "update3", "update7", "paper_lr", "cautious"}


def test_arm_tables_show_ratios_and_only_comparable_throughput(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: ADAMW})
    runs, _ = load_local([tmp_path])
    runs.loc[runs["optimizer"] == "lion", "train_tokens_per_s"] = [1000.0, 1010.0, 990.0, 1500.0]
    table = arms_frame(summarize(runs)).set_index("optimizer")
    assert table.loc["lion", "lr"] == "3.33e-4 (base / 3)" and table.loc["adamw", "lr"] == "1e-3"
    speed = "tokens/s (steady, median)"
    assert table.loc["adamw", speed] == "1k" and "not comparable" in table.loc["lion", speed]


def one_line_error(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lion-bench-report: error: ") and expected in err, err


def test_report_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, [str(tmp_path / "empty"), "-o", str(tmp_path / "out")], "no finished or diverged runs")
    one_line_error(capsys, ["-o", str(tmp_path / "out")], "give at least one RUN_DIR")
    one_line_error(capsys, [str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")], "is not a directory")
    one_line_error(capsys, ["--wandb", "no-entity", "-o", str(tmp_path / "out")], "ENTITY/PROJECT")
    one_line_error(capsys, [str(tmp_path / "empty")], "-o/--out")
    write_run(tmp_path / "runs", "adamw", 0, 3.0)
    (tmp_path / "file").write_text("x")
    one_line_error(capsys, [str(tmp_path / "runs"), "-o", str(tmp_path / "file")], "is an existing file")
    one_line_error(capsys, [str(tmp_path / "runs"), "-o", str(tmp_path / "file" / "sub")], "is a file, not a directory")
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, [str(tmp_path / "runs"), "-o", ""], "-o needs a directory name")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "file", "runs"]


def test_a_bad_protocol_is_one_line(tmp_path, capsys):
    study = tmp_path / "study"
    write_run(study / "runs", "adamw", 0, 3.0)
    (study / "protocol.yaml").write_text("questions:\n  - {claim: nope}\n")
    one_line_error(capsys, [str(study / "runs"), "-o", str(tmp_path / "out")], "claim 'nope' is not in the catalogue")


def test_only_unusable_runs_is_an_error_after_naming_them(tmp_path, capsys):
    write_partial_runs(tmp_path / "runs")
    assert main([str(tmp_path / "runs"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("warning: skipping") == 5 and "error: no finished or diverged runs" in err
    assert "(5 skipped)" in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_missing_report_packages_are_named(tmp_path, monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "scipy" else real_find_spec(name, *args))
    write_run(tmp_path / "runs", "adamw", 0, 3.0)
    one_line_error(capsys, [str(tmp_path / "runs"), "-o", str(tmp_path / "out")],
                   "needs scipy: pip install 'lion-bench[report]'")


def test_damaged_metrics_lines_are_skipped_named_and_counted(tmp_path, capsys):
    write_lr_ratio(tmp_path / "runs", ADAMW, {1.0: [a + 0.5 for a in ADAMW]})
    metrics = sorted((tmp_path / "runs").glob("*/metrics.jsonl"))[0]
    good = len(metrics.read_text().splitlines())
    metrics.write_text(metrics.read_text() + 'null\n{"step": "x"}\n{"step": 7, "train\n')
    assert main([str(tmp_path / "runs"), "-o", str(tmp_path / "report")]) == 0
    out, err = capsys.readouterr()
    assert all(f"{metrics}:{good + k}:" in err for k in (1, 2, 3))
    assert "runs loaded, 0 skipped; 3 damaged lines or files skipped inside them" in out


def test_metrics_are_read_line_by_line(tmp_path):
    run = write_run(tmp_path, "adamw", 0, 3.0)
    line = json.dumps({"step": 1, "tokens": 1024, "train_loss": 3.1, "lr": 1e-3, "elapsed_s": 0.1,
                       "padding": "x" * 400}) + "\n"
    with open(run / "metrics.jsonl", "w") as handle:
        for _ in range(20_000):  # 9 MB of text
            handle.write(line)
    tracemalloc.start()
    rows = sum(1 for _ in iter_metrics(run))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows == 20_000 and peak < 1_000_000  # never the whole file in memory


def test_the_committed_study_opens_with_its_answer(tmp_path, capsys):
    assert main([str(RESULTS / "claim_map_h200x4" / "runs"), str(RESULTS / "stdlib_lr_ratio_h100" / "runs"),
                 "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    first = [line for line in printed.splitlines() if "ANSWER" in line][0]
    assert "AdamW better" in first
    report = (tmp_path / "out" / "report.md").read_text()
    assert "written after its runs" in report and "No protocol: an ad-hoc family" in report
