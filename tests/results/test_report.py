"""lion-bench-report end to end on synthetic records: tables, skipped partial runs, files written."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic_runs import write_lr_ratio, write_run

from lion_bench.results.load import SkippedRun, load_local
from lion_bench.results.plots import make_plots
from lion_bench.results.report import main
from lion_bench.results.tables import summarize

ADAMW = [3.00, 3.02, 2.98, 3.01]


def write_partial_runs(root):
    (root / "killed").mkdir(parents=True)
    (root / "killed" / "metrics.jsonl").write_text('{"step": 1, "train_loss": 5.0}\n{"step": 2, "tr')
    write_run(root, "lion", 7, 3.0, divisor=3.0)
    interrupted = next(root.glob("*_s7"))
    record = json.loads((interrupted / "run.json").read_text())
    (interrupted / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    (root / "torn").mkdir()
    (root / "torn" / "run.json").write_text('{"status": "finished", "trial_')
    (root / "old").mkdir()
    (root / "old" / "run.json").write_text(json.dumps({"status": "finished", "task": "text"}))


def test_partial_runs_are_skipped_with_a_warning_naming_them(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: [loss - 0.1 for loss in ADAMW]})
    write_partial_runs(tmp_path)
    with pytest.warns(SkippedRun) as caught:
        runs, curves = load_local([tmp_path])
    messages = "\n".join(str(warning.message) for warning in caught)
    assert len(caught) == 4
    for name in ("killed", "_s7", "torn", "old"):
        assert name in messages
    assert "status 'interrupted'" in messages and "lacks trial_id" in messages
    assert len(runs) == 2 * len(ADAMW) and set(runs["status"]) == {"finished"}
    assert set(curves["source"]) == set(runs["source"])
    assert curves.groupby("source").size().eq(3).all()


def test_summary_statistics_per_arm(tmp_path):
    write_lr_ratio(tmp_path, ADAMW, {3.0: [2.9, 2.8, 2.95, 2.85]})
    write_run(tmp_path, "lion", 9, math.nan, divisor=3.0, wd_multiplier=3.0, status="diverged")
    runs, _ = load_local([tmp_path])
    summary = summarize(runs).set_index("optimizer")
    lion = summary.loc["lion"]
    finished = np.array([2.9, 2.8, 2.95, 2.85])
    half = stats.t.ppf(0.975, 3) * finished.std(ddof=1) / 2
    assert lion["num_seeds"] == 5 and lion["num_diverged"] == 1
    assert lion["final_val_loss_mean"] == pytest.approx(finished.mean())
    assert lion["final_val_loss_std"] == pytest.approx(finished.std(ddof=1))
    assert (lion["final_val_loss_ci_low"], lion["final_val_loss_ci_high"]) == pytest.approx(
        (finished.mean() - half, finished.mean() + half))
    assert lion["final_val_bpc_mean"] == pytest.approx(finished.mean() / math.log(2))
    assert lion["lr_divisor"] == 3.0 and lion["betas"] == "0.9,0.99"
    assert summary.loc["adamw", "num_diverged"] == 0


def test_report_command_writes_every_output(tmp_path, capsys):
    runs_dir, out = tmp_path / "runs", tmp_path / "out"
    write_lr_ratio(runs_dir, ADAMW, {1.0: [loss + 0.5 for loss in ADAMW], 3.0: [loss - 0.1 - 0.01 * (i % 2)
                   for i, loss in enumerate(ADAMW)], 10.0: [loss + 0.8 for loss in ADAMW]})
    write_partial_runs(runs_dir)
    assert main([str(runs_dir), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert "Lion at AdamW's lr / 3 beats AdamW" in printed.out and "supported" in printed.out
    assert "skipping" in printed.err and "killed" in printed.err
    report = (out / "report.md").read_text()
    for heading in ("## Claims", "## Rule", "## Runs each claim used", "## Claims not judged for lack of runs", "## Best Lion vs best AdamW",
                    "## Plots", "## Skipped runs"):
        assert heading in report
    assert "lion-bench -m sweep=batch_size" in report and "lion-bench -m sweep=wd_multiplier" in report
    assert "<table" in (out / "report.html").read_text()
    pngs = sorted(path.name for path in out.glob("*.png"))
    assert "synthetic_loss_vs_lr.png" in pngs and "synthetic_best_curves.png" in pngs
    assert all((out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in pngs)
    for name in pngs:
        assert f"({name})" in report
    assert len(pd.read_csv(out / "runs.csv")) == 4 * len(ADAMW)
    assert len(pd.read_csv(out / "summary.csv")) == 4
    claims = pd.read_csv(out / "claims.csv").set_index("claim")
    assert claims.loc["update3", "verdict"] == "supported" and claims.loc["update3", "num_runs"] == 8
    comparison_line = next(line for line in report.splitlines() if line.startswith("| synthetic ") and "lr/3" in line)
    assert "-0.105" in comparison_line  # best Lion (lr/3) minus AdamW, mean of the paired differences


def test_report_needs_inputs(tmp_path):
    with pytest.raises(SystemExit):
        main(["-o", str(tmp_path)])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nowhere"), "-o", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--wandb", "no-entity", "-o", str(tmp_path)])


def test_report_with_no_usable_runs_says_what_is_missing(tmp_path):
    write_partial_runs(tmp_path / "runs")
    assert main([str(tmp_path / "runs"), "-o", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "0 runs" in report and "lion-bench -m sweep=lr_ratio" in report


def test_batch_size_plot(tmp_path):
    for batch_size in (16, 128):
        write_lr_ratio(tmp_path / "runs", ADAMW[:2], {3.0: [2.9, 2.8]}, batch_size=batch_size)
    runs, curves = load_local([tmp_path / "runs"])
    paths = make_plots(runs, curves, summarize(runs), tmp_path / "plots")
    assert sorted(path.name for path in paths) == [
        "synthetic_best_curves.png", "synthetic_loss_vs_batch.png", "synthetic_loss_vs_lr.png"]
    assert all(path.stat().st_size > 1000 for path in paths)


def test_missing_report_packages_are_named(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "scipy" else real_find_spec(name, *args))
    write_run(tmp_path / "runs", "adamw", 0, 3.0)
    with pytest.raises(ImportError, match=r"needs scipy: pip install 'lion-bench\[report\]'"):
        main([str(tmp_path / "runs"), "-o", str(tmp_path / "out")])
