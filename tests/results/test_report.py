"""lion-bench-report end to end on synthetic records and on the committed study: the verdict map, tables,
skipped partial runs, files written, and the command's errors (one line, exit status 2)."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic_runs import write_lr_ratio, write_run

from lion_bench.results.claims import check_claims
from lion_bench.results.load import SkippedRun, load_local
from lion_bench.results.report import arms_frame, main, verdict_map
from lion_bench.results.tables import summarize

ADAMW = [3.00, 3.02, 2.98, 3.01]
STUDY = Path(__file__).resolve().parents[2] / "results" / "stdlib_lr_ratio_h100" / "runs"


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


def write_two_contexts(root):
    """The held-out corpus finding, planted: AdamW at lr 1e-3 with cosine, where Lion at AdamW's lr is much
    worse, and at 1e-4 with a constant lr, where it is better."""
    shifts = {"cosine": {1.0: 0.5, 3.0: -0.1, 10.0: 0.3}, "constant": {1.0: -0.2, 3.0: 0.1, 10.0: 0.4}}
    for (schedule, base_lr), shift in zip((("cosine", 1e-3), ("constant", 1e-4)), shifts.values()):
        write_lr_ratio(root / schedule, ADAMW, {k: [a + s + 0.01 * (i % 2) for i, a in enumerate(ADAMW)]
                                                for k, s in shift.items()}, schedule=schedule, base_lr=base_lr)


def test_partial_and_unreadable_runs_are_skipped_with_a_warning_naming_them(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: [loss - 0.1 for loss in ADAMW]})
    write_partial_runs(tmp_path)
    with pytest.warns(SkippedRun) as caught:
        runs, curves = load_local([tmp_path])
    caught = [warning for warning in caught if warning.category is SkippedRun]  # DamagedFile: torn metrics lines
    messages = "\n".join(str(warning.message) for warning in caught)
    assert len(caught) == 5
    for name in ("killed", "_s7", "torn", "old", "odd"):
        assert name in messages
    assert "status 'interrupted'" in messages and "lacks trial_id" in messages and "unreadable record" in messages
    assert len(runs) == 2 * len(ADAMW) and set(runs["status"]) == {"finished"}
    assert set(curves["source"]) == set(runs["source"])


def test_summary_statistics_per_arm(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: [2.9, 2.8, 2.95, 2.85]})
    write_run(tmp_path, "lion", 9, math.nan, divisor=3.0, wd_multiplier=3.0, status="diverged")
    runs, _ = load_local([tmp_path])
    summary = summarize(runs).set_index("optimizer")
    lion = summary.loc["lion"]
    finished = np.array([2.9, 2.8, 2.95, 2.85])
    half = stats.t.ppf(0.975, 3) * finished.std(ddof=1) / 2
    assert lion["num_seeds"] == 5 and lion["num_diverged"] == 1
    assert lion["final_val_loss_mean"] == pytest.approx(finished.mean())  # the diverged run is not averaged in
    assert (lion["final_val_loss_ci_low"], lion["final_val_loss_ci_high"]) == pytest.approx(
        (finished.mean() - half, finished.mean() + half))
    assert lion["final_val_bpc_mean"] == pytest.approx(finished.mean() / math.log(2))
    assert lion["lr_divisor"] == 3.0 and lion["betas"] == "0.9,0.99"


def test_report_command_writes_the_verdict_map_first(tmp_path, capsys):
    runs_dir, out = tmp_path / "runs", tmp_path / "out"
    write_lr_ratio(runs_dir, ADAMW, {1.0: [loss + 0.5 for loss in ADAMW], 3.0: [loss - 0.1 - 0.01 * (i % 2)
                   for i, loss in enumerate(ADAMW)], 10.0: [loss + 0.8 for loss in ADAMW]})
    write_partial_runs(runs_dir)
    assert main([str(runs_dir), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert f"{4 * len(ADAMW)} runs loaded, 5 skipped" in printed.out
    for row in ("**Update 4 (summary)**", "**Update 4 (strict)**", "**Update 3**"):
        assert row in printed.out
    assert "warning: skipping" in printed.err and "killed" in printed.err and "Traceback" not in printed.err
    report = (out / "report.md").read_text()
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## Verdict map", "## Where each claim holds", "## How each claim is judged"]
    for heading in ("## Rules (fixed before looking at the runs)", "## Not judged for lack of runs", "## Plots",
                    "## Skipped runs", "## Verdicts in detail"):
        assert heading in sections
    assert "lion-bench -m sweep=batch_lr_grid" in report and "lion-bench -m sweep=lr_grid" in report
    assert "Holm" in report and "2,000 bootstrap draws" in report
    page = (out / "report.html").read_text()
    assert '<td class="supported"><strong>supported</strong>' in page and "<ul><li><strong>Update 2</strong>" in page
    assert "**" not in page and "<pre>" not in page
    pngs = sorted(path.name for path in out.glob("*.png"))
    assert len(pngs) == 2 and all((out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in pngs)
    assert all(f"({name})" in report for name in pngs)
    assert len(pd.read_csv(out / "runs.csv")) == 4 * len(ADAMW)
    claims = pd.read_csv(out / "claims.csv")
    assert (claims.loc[claims["claim"] == "update3", "verdict"] == "supported").all()


def test_two_contexts_give_two_columns_with_different_verdicts(tmp_path, capsys):
    write_two_contexts(tmp_path / "runs")
    assert main([str(tmp_path / "runs"), "-o", str(tmp_path / "out")]) == 0
    runs, _ = load_local([tmp_path / "runs"])
    table = verdict_map(check_claims(runs))
    assert list(table.columns) == [
        "claim",
        "synthetic 2x64 ctx64 bs16 2000 steps constant, cuda bf16, AdamW lr 1e-4, wd AdamW 0.1, Lion 0.3, "
        "stdlib c04fb1",
        "synthetic 2x64 ctx64 bs16 2000 steps cosine, cuda bf16, AdamW lr 1e-3, wd AdamW 0.1, Lion 0.3, "
        "stdlib c04fb1"]
    update2 = table.iloc[0]
    assert update2.iloc[1].startswith("**contradicted**") and update2.iloc[2].startswith("**supported**")
    printed = capsys.readouterr().out
    assert "AdamW lr 1e-4" in printed and "AdamW lr 1e-3" in printed


def test_many_contexts_give_one_row_each(tmp_path):
    for base_lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2):
        write_lr_ratio(tmp_path, ADAMW[:2], {3.0: [2.9, 2.8]}, base_lr=base_lr)
    runs, _ = load_local([tmp_path])
    table = verdict_map(check_claims(runs))
    assert list(table.columns) == ["context", "Update 2", "Update 3", "Update 4 (summary)", "Update 4 (strict)",
                                   "Update 7", "Paper: lr ratio", "Paper: wd ratio"]
    ratio = table[table["context"].str.contains("AdamW lr")].set_index("context")
    assert len(ratio) == 5 and ratio["Update 3"].str.startswith("**").all()
    # Lion ran at each base lr / 3: within a factor 1.2 of AdamW's own lr for every AdamW lr but 1e-2.
    judged = [label.split("AdamW lr ")[1].split(",")[0] for label in ratio.index[ratio["Update 2"] != "·"]]
    assert sorted(judged) == ["1e-3", "1e-4", "3e-3", "3e-4"]
    (grids,) = table.loc[table["context"].str.contains("lr swept"), "Paper: lr ratio"]
    assert grids.startswith("**")


def test_committed_study_verdict_map(tmp_path, capsys):
    assert main([str(STUDY), "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    label = ("text 6x512 ctx512 bs32 800 steps cosine, cuda bf16, AdamW lr 1e-3, wd 0, stdlib c04fb1, "
             "study stdlib_lr_ratio_h100")
    assert label in printed
    lines = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in printed.splitlines()
             if line.startswith("| **")}
    assert lines["**Update 2**: Lion at AdamW's lr is much worse than AdamW"].startswith("**supported** (toy scale)")
    assert lines["**Update 4 (summary)**: Lion at AdamW's lr / 10 is worse than at lr / 3"].startswith(
        "**supported** (toy scale) +0.18 [+0.162, +0.197] n=3")
    assert lines["**Update 4 (strict)**: lr / 10 is the worst of Lion at AdamW's lr / {1, 3, 10}"].startswith(
        "**contradicted**")
    assert lines["**Paper: lr ratio**: Lion's best lr is 3-10x smaller than AdamW's best lr"] == "·"


def test_arm_tables_show_the_resolved_settings(tmp_path):
    write_lr_ratio(tmp_path / "a", ADAMW, {3.0: ADAMW}, base_wd=0.0)
    write_lr_ratio(tmp_path / "b", ADAMW, {3.0: ADAMW}, base_wd=0.1)
    runs, _ = load_local([tmp_path])
    runs["train_tokens_per_s"] = np.nan  # records from before steady-state throughput was measured
    summary = summarize(runs)
    no_decay = arms_frame(summary[summary["base_weight_decay"] == 0]).set_index("optimizer")
    decay = arms_frame(summary[summary["base_weight_decay"] > 0]).set_index("optimizer")
    assert no_decay.loc["lion", "weight decay"] == "0" and decay.loc["lion", "weight decay"] == "0.3 (0.1 x 3)"
    assert decay.loc["lion", "lr"] == "3.33e-4 (1e-3 / 3)" and decay.loc["adamw", "lr"] == "1e-3"
    row = decay.loc["adamw"]
    assert (row["batch"], row["steps"], row["tokens"], row["schedule"]) == (16, 2000, "2.05M", "cosine, warmup 20")
    assert "wall-clock tokens/s (evaluation, compile and start-up included)" in decay.columns
    assert "train tokens/s (steady state)" not in decay.columns
    steady = arms_frame(summarize(load_local([tmp_path])[0]))
    assert "train tokens/s (steady state)" in steady.columns and "wall-clock" not in " ".join(steady.columns)


def one_line_error(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lion-bench-report: error: ") and expected in err, err


def test_report_errors_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, [str(tmp_path / "empty"), "-o", str(tmp_path / "out")], "no finished or diverged runs")
    one_line_error(capsys, ["-o", str(tmp_path / "out")], "give at least one RUN_DIR")
    one_line_error(capsys, [str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")], "does not exist")
    one_line_error(capsys, ["--wandb", "no-entity", "-o", str(tmp_path / "out")], "ENTITY/PROJECT")
    one_line_error(capsys, [str(tmp_path / "empty")], "-o/--out")
    write_run(tmp_path / "runs", "adamw", 0, 3.0)
    (tmp_path / "file").write_text("x")
    one_line_error(capsys, [str(tmp_path / "runs"), "-o", str(tmp_path / "file")], "is an existing file")
    one_line_error(capsys, [str(tmp_path / "runs"), "-o", str(tmp_path / "file" / "sub")], "is a file, not a directory")
    assert not (tmp_path / "out").exists() and (tmp_path / "file").read_text() == "x"


def test_only_unusable_runs_is_an_error_after_naming_them(tmp_path, capsys):
    write_partial_runs(tmp_path / "runs")
    assert main([str(tmp_path / "runs"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("warning: skipping") == 5 and "error: no finished or diverged runs" in err
    assert "(5 skipped)" in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_missing_report_packages_are_named(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "scipy" else real_find_spec(name, *args))
    write_run(tmp_path / "runs", "adamw", 0, 3.0)
    with pytest.raises(ImportError, match=r"needs scipy: pip install 'lion-bench\[report\]'"):
        main([str(tmp_path / "runs"), "-o", str(tmp_path / "out")])


def test_damaged_metrics_lines_are_skipped_named_and_counted(tmp_path, capsys):
    write_lr_ratio(tmp_path / "runs", ADAMW, {1.0: [a + 0.5 for a in ADAMW]})
    metrics = sorted((tmp_path / "runs").glob("*/metrics.jsonl"))[0]
    good = len(metrics.read_text().splitlines())
    metrics.write_text(metrics.read_text() + 'null\n{"step": "x"}\n{"step": 7, "train\n')
    assert main([str(tmp_path / "runs"), "-o", str(tmp_path / "report")]) == 0
    out, err = capsys.readouterr()
    assert all(f"{metrics}:{good + k}:" in err for k in (1, 2, 3))
    assert "runs loaded, 0 skipped; 3 damaged lines or files skipped inside them" in out
