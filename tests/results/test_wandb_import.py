"""--wandb ENTITY/PROJECT against recorded public-API responses (data/wandb_api_runs.json); no network.

The fixture holds what ``wandb.Api().runs(path)`` exposes per run (id, state, config, summary, history
rows) for runs logged by ``logger=wandb``: two current-shape runs, one logged without the summary
``record`` (rebuilt from config and summary), one diverged run whose final loss comes back as 'NaN',
and one still running (skipped).
"""

import json
import math
from pathlib import Path

import pytest

from lion_bench.results import cli
from lion_bench.results.load import SkippedRun, tables
from lion_bench.results.wandb_import import fetch_project

RECORDED = json.loads((Path(__file__).parent / "data" / "wandb_api_runs.json").read_text())


class FakeSummary(dict):
    """Like wandb's HTTPSummary: a mapping that also exposes the raw ``_json_dict``."""

    @property
    def _json_dict(self):
        return dict(self)


class FakeRun:
    def __init__(self, recorded):
        self.id, self.name, self.state = recorded["id"], recorded["name"], recorded["state"]
        self.config = recorded["config"]
        self.summary = FakeSummary(recorded["summary"])
        self._history = recorded["history"]

    def scan_history(self, keys=None, page_size=1000):
        return iter(self._history)


class FakeApi:
    def __init__(self, *args, **kwargs):
        self.paths = []

    def runs(self, path, filters=None, order=None, per_page=50):
        self.paths.append(path)
        return [FakeRun(recorded) for recorded in RECORDED["runs"]]


def load():
    api = FakeApi()
    with pytest.warns(SkippedRun, match="r8running"):
        runs, curves = tables(fetch_project(RECORDED["project"], api=api))
    assert api.paths == [RECORDED["project"]]
    return runs, curves


def test_runs_come_back_in_the_local_record_shape():
    runs, curves = load()
    recorded = {run["id"]: run for run in RECORDED["runs"]}
    assert len(runs) == len(recorded) - 1
    by_id = runs.set_index(runs["source"].str.rsplit("/", n=1).str[-1])
    for run_id in ("r0x", "r1x", "r2x", "r3x"):
        (full_id,) = [key for key in recorded if key.startswith(run_id)]
        row, original = by_id.loc[full_id], recorded[full_id]
        config = original["config"]
        assert row["source"] == f"wandb:{RECORDED['project']}/{full_id}"
        assert row["task"] == config["task"]["name"] and row["seed"] == config["seed"]
        assert row["optimizer"] == config["optimizer"]["name"] and row["status"] == "finished"
        assert row["final_val_loss"] == pytest.approx(original["summary"]["final_val_loss"])
        assert row["lr"] == pytest.approx(config["base"]["lr"] / config["optimizer"].get("lr_divisor", 1.0))
        assert (curves["source"] == row["source"]).sum() == len(original["history"])
    # The run logged without a summary record is rebuilt with the same trial's numbers.
    rebuilt = by_id.loc[[key for key in recorded if key.startswith("r2x")][0]]
    assert rebuilt["best_val_loss"] == pytest.approx(
        recorded[rebuilt.name]["summary"]["val_loss"]["min"])
    diverged = by_id.loc["r9diverg"]
    assert diverged["status"] == "diverged" and math.isnan(diverged["final_val_loss"])


def test_report_pulls_wandb_runs(tmp_path, monkeypatch, capsys):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setattr(wandb, "Api", FakeApi)
    assert cli.main(["--wandb", RECORDED["project"], "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr()
    assert "5 runs loaded, 1 skipped" in printed.out and "r8running" in printed.err
    assert (tmp_path / "report.md").exists() and list(tmp_path.glob("*.png"))


def test_bad_project_path():
    with pytest.raises(ValueError, match="ENTITY/PROJECT"):
        list(fetch_project("just-a-project", api=FakeApi()))
