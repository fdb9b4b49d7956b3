"""Packed trials (lion_bench/sweeps/packed.py): several runs trained as one batched model record what
each would record alone. The reference is the same trial run alone by the trainer; every metrics row
is compared (CPU, float tolerance: the batched kernels sum in another order)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from compose import TINY_TEXT, InterruptAt, compose_config
from lion_bench.sweeps.packed import train_packed
from lion_bench.runs.errors import Interrupted
from lion_bench.runs.record import RunRecord, Status
from lion_bench.trainer import train

BASE = [*TINY_TEXT, "device=cpu", "trainer.max_steps=12", "trainer.log_every=2", "trainer.eval_every=6",
        "trainer.schedule.warmup_steps=2", "trainer.checkpoint_minutes=0"]
# Members differ in everything that need not be shared: optimizer, seed, lr, weight decay, betas,
# clipping, steps; one diverges (Lion at 1000x AdamW's lr).
MEMBERS = {
    "lion": ["optimizer=lion", "seed=0"],
    "adamw_clipped": ["optimizer=adamw", "seed=1", "trainer.grad_clip=0.5", "base.weight_decay=0.3"],
    "lion_short": ["optimizer=lion", "seed=2", "optimizer.betas=[0.95,0.98]", "trainer.max_steps=8",
                   "optimizer.wd_multiplier=10"],
    "lion_diverges": ["optimizer=lion", "seed=3", "optimizer.lr_divisor=0.001"],
}
NUMBERS = ("train_loss", "val_loss", "val_bpc", "lr", "tokens")


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_rows(packed: list[dict], solo: list[dict]) -> None:
    assert [row["step"] for row in packed] == [row["step"] for row in solo]
    for packed_row, solo_row in zip(packed, solo):
        assert set(packed_row) == set(solo_row), packed_row["step"]
        for key in NUMBERS:
            if key in solo_row:
                assert packed_row[key] == pytest.approx(solo_row[key], rel=1e-5, abs=1e-6), (key, solo_row["step"])


def assert_same_record(packed: RunRecord, solo: RunRecord) -> None:
    assert (packed.status, packed.steps, packed.tokens, packed.diverged_at_step) == (
        solo.status, solo.steps, solo.tokens, solo.diverged_at_step)
    assert packed.hyperparameters == solo.hyperparameters
    for key, value in solo.final.items():
        assert packed.final[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.fixture(scope="module")
def solo_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("solo")
    return {name: (train(compose_config([*BASE, *overrides]), root / name), root / name)
            for name, overrides in MEMBERS.items()}


def test_a_packed_trial_records_what_it_records_alone_one_diverging(tmp_path, solo_runs):
    jobs = [(compose_config([*BASE, *overrides]), tmp_path / name, []) for name, overrides in MEMBERS.items()]
    results = dict(zip(MEMBERS, train_packed(jobs)))
    assert solo_runs["lion_diverges"][0].status is Status.DIVERGED  # the reference diverges, and so does its pack member
    assert solo_runs["lion_diverges"][0].diverged_at_step < 12
    for name, (solo, solo_dir) in solo_runs.items():
        packed = results[name]
        assert isinstance(packed, RunRecord), packed
        assert_same_record(packed, solo)
        assert_same_rows(metrics(tmp_path / name), metrics(solo_dir))
        assert packed.environment["packed"] == {"mode": "batched", "members": len(MEMBERS)}
        on_disk = json.loads((tmp_path / name / "run.json").read_text())
        assert on_disk["status"] == solo.status.value and on_disk["trial_id"] == solo.trial_id
        assert not (tmp_path / name / "checkpoint.pt").exists()


def test_an_interrupted_pack_resumes_each_trial_where_it_stopped(tmp_path, solo_runs):
    names = ["lion", "adamw_clipped"]
    overrides = {name: [*BASE, *MEMBERS[name], "trainer.checkpoint_every=4"] for name in names}
    # Ctrl-C at step 6 (raised by the first member's logger): every member is closed as interrupted.
    with pytest.raises(Interrupted):
        train_packed([(compose_config(overrides[name]), tmp_path / name, [InterruptAt(6)] if i == 0 else [])
                      for i, name in enumerate(names)])
    for name in names:
        assert json.loads((tmp_path / name / "run.json").read_text())["status"] == "interrupted"
        assert (tmp_path / name / "checkpoint.pt").exists()
    resumed = train_packed([(compose_config(overrides[name]), tmp_path / name, []) for name in names])
    for name, record in zip(names, resumed):
        solo, solo_dir = solo_runs[name]
        assert record.resumed_from_step == 4
        assert_same_record(record, solo)
        assert_same_rows(metrics(tmp_path / name), metrics(solo_dir))


def test_a_pack_that_vmap_cannot_run_trains_its_members_one_at_a_time(tmp_path):
    # nn.LSTM has no vmap batching rule: the pack says so and each trial trains as it would alone.
    lstm = ["task=lstm_conv", "device=cpu", "task.data.max_bytes=100000", "task.model.seq_len=16",
            "task.model.hidden_size=16", "task.model.embed_dim=8", "task.eval.num_windows=4", "trainer.batch_size=4",
            "trainer.max_steps=3", "trainer.schedule.warmup_steps=0", "trainer.progress=false"]
    jobs = [(compose_config([*lstm, f"seed={seed}"]), tmp_path / f"s{seed}", []) for seed in (0, 1)]
    with pytest.warns(RuntimeWarning, match="cannot train as one batched model .*vmap"):
        records = train_packed(jobs)
    alone = train(compose_config([*lstm, "seed=1"]), tmp_path / "alone")
    assert [record.status for record in records] == [Status.FINISHED, Status.FINISHED]
    assert "packed" not in records[1].environment
    assert records[1].final_val_loss == alone.final_val_loss
    assert math.isfinite(records[0].final_val_loss)
