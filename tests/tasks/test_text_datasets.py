"""Any text dataset through Hugging Face ``datasets`` for the byte-level tasks (task.data.source=hf):
local datasets of every kind the loaders read, offline; the same cap, interleaved split, fingerprint
and checks as local files; the source recorded. Datasets are built in the tests (no network)."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest
import torch
from test_bad_input import assert_refused, run_entry_point

from compose import TINY_TEXT
from lion_bench.runs.errors import BadInput
from lion_bench.tasks import build_task, check_task_data, data_identity
from lion_bench.tasks import datasets_text
from lion_bench.tasks.corpus import interleaved_split
from lion_bench.trainer import train

datasets = pytest.importorskip("datasets")

CPU = torch.device("cpu")
ROWS = [f"def function_{index}(x):\n    return x * {index} + {index % 7}  # row {index}" for index in range(3000)]
JOINED = "\n".join(ROWS).encode()
SMALL = [override for override in TINY_TEXT if not override.startswith("task.data.max_bytes")] + ["task.data.max_bytes=60000"]


@pytest.fixture(autouse=True)
def fresh_cache():
    datasets_text._cached_text.cache_clear()
    yield
    datasets_text._cached_text.cache_clear()


def make_dataset(kind: str, directory, rows=ROWS, column: str = "content"):
    """A local dataset of ``kind`` holding ``rows`` in ``column`` (and a number column beside it)."""
    table = datasets.Dataset.from_dict({column: rows, "number": list(range(len(rows)))})
    if kind == "saved":  # Dataset.save_to_disk
        table.save_to_disk(str(directory))
    elif kind == "saved_dict":  # DatasetDict.save_to_disk: the split is chosen by hf_split
        datasets.DatasetDict({"train": table, "validation": table.select(range(10))}).save_to_disk(str(directory))
    elif kind == "parquet_dir":  # a directory of data files, as the Hub serves them
        directory.mkdir()
        table.to_parquet(str(directory / "train.parquet"))
    elif kind == "jsonl_file":
        directory.mkdir()
        table.to_json(str(directory / "rows.jsonl"))
        return directory / "rows.jsonl"
    elif kind == "txt_dir":  # text files: one row per line, column "text"
        directory.mkdir()
        (directory / "a.txt").write_text("\n".join(rows) + "\n")
    return directory


def hf(dataset, column="content", *more):
    return ["task.data.source=hf", f"task.data.hf_dataset={dataset}", f"task.data.hf_column={column}", *more]


@pytest.mark.parametrize("kind", ["saved", "saved_dict", "parquet_dir", "jsonl_file", "txt_dir"])
def test_a_local_dataset_is_a_corpus_like_a_file(tmp_path, make_config, kind):
    dataset = make_dataset(kind, tmp_path / "dataset")
    column = "text" if kind == "txt_dir" else "content"
    cfg = make_config(["task=text", *SMALL, *hf(dataset, column)])
    task = build_task(cfg.task, batch_size=8, seed=0, device=CPU)
    expected = JOINED[:60000]  # rows joined by newlines, cut at the cap, then the interleaved split
    train_bytes, val_bytes = interleaved_split(expected, 0.1, 65536)
    assert bytes(task.train_data.tolist()) == train_bytes and bytes(task.val_data.tolist()) == val_bytes
    assert data_identity(cfg.task) == f"sha256:{hashlib.sha256(expected).hexdigest()}"
    description = task.describe()
    assert description["source"] == f"hf:{dataset} train[{column}]"
    assert description["sha256"] == hashlib.sha256(train_bytes + val_bytes).hexdigest()
    assert (description["hf_dataset"], description["hf_split"], description["hf_column"]) == (str(dataset), "train", column)


def test_reading_stops_at_the_cap(tmp_path, monkeypatch):
    dataset = make_dataset("saved", tmp_path / "dataset")
    pulled = []
    texts = datasets_text._texts

    def counting(*args):
        for text in texts(*args):
            pulled.append(text)
            yield text

    monkeypatch.setattr(datasets_text, "_texts", counting)
    data, _ = datasets_text.dataset_text(str(dataset), None, "train", "content", 1000)
    assert data == JOINED[:1000]
    rows_needed = next(count for count in range(1, len(ROWS)) if len("\n".join(ROWS[:count])) >= 1000)
    assert len(pulled) == rows_needed  # not one row past the cap


def test_a_text_run_on_a_local_dataset_records_its_fingerprint(tmp_path, make_config):
    dataset = make_dataset("saved_dict", tmp_path / "dataset")
    cfg = make_config(["task=text", *SMALL, *hf(dataset, "content", "task.data.hf_split=train"), "trainer.max_steps=4",
                       "trainer.schedule.warmup_steps=0", "trainer.eval_every=2", "device=cpu"])
    record = train(cfg, tmp_path / "run")
    assert record.status.value == "finished"
    train_bytes, val_bytes = interleaved_split(JOINED[:60000], 0.1, 65536)
    assert record.data["sha256"] == hashlib.sha256(train_bytes + val_bytes).hexdigest()
    assert record.data["hf_dataset"] == str(dataset) and record.data["hf_column"] == "content"
    assert record.data["source"] == f"hf:{dataset} train[content]"


def test_lstm_conv_reads_the_same_dataset(tmp_path, make_config):
    dataset = make_dataset("parquet_dir", tmp_path / "dataset")
    cfg = make_config(["task=lstm_conv", "task.data.max_bytes=60000", "task.model.seq_len=32", *hf(dataset)])
    task = build_task(cfg.task, batch_size=4, seed=0, device=CPU)
    assert task.describe()["source"] == f"hf:{dataset} train[content]" and len(task.train_data) + len(task.val_data) == 60000


def test_a_changed_local_dataset_is_other_data(tmp_path, make_config):
    dataset = make_dataset("saved", tmp_path / "dataset")
    cfg = make_config(["task=text", *SMALL, *hf(dataset)])
    before = data_identity(cfg.task)
    make_dataset("saved", tmp_path / "dataset", rows=[row.upper() for row in ROWS])
    assert data_identity(cfg.task) != before


@pytest.mark.parametrize("kind, overrides, message", [
    ("saved", ["task.data.hf_column=body"], "has no column 'body' (columns: content, number); set task.data.hf_column"),
    ("parquet_dir", ["task.data.hf_column=body"], "has no column 'body'"),
    ("saved", ["task.data.hf_column=number"], "the column 'number' of"),
    ("saved_dict", ["task.data.hf_split=test"], "has no split 'test' (splits: train, validation); set task.data.hf_split"),
    ("saved", ["task.data.hf_dataset=null"], "task.data.source=hf reads a Hugging Face dataset: set task.data.hf_dataset"),
    ("saved", ["task.data.hf_dataset=./no/such/dir"], "task.data.hf_dataset='./no/such/dir' does not exist"),
    ("saved", ["task.data.path=/etc/hostname"], "task.data.path and task.data.source=hf both name the data"),
    ("saved", ["task.data.max_bytes=100", "task.model.seq_len=32"], "is too small for windows of task.model.seq_len=32"),
])
def test_bad_dataset_settings_are_one_line_before_anything_runs(tmp_path, monkeypatch, capsys, kind, overrides,
                                                                message):
    dataset = make_dataset(kind, tmp_path / "dataset")
    capsys.readouterr()  # datasets' own progress bars while the test wrote it
    arguments = ["task=text", *hf(dataset), *overrides, "device=cpu"]
    code, out, err = run_entry_point(arguments, tmp_path / "out", monkeypatch, capsys)
    assert_refused(code, out, err, message, tmp_path / "out")


def test_without_datasets_the_message_says_what_to_install(make_config, monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real_find_spec(name, *a))
    cfg = make_config(["task=text", *hf(tmp_path)])
    with pytest.raises(BadInput, match=r"needs Hugging Face datasets, which is not installed: pip install 'lion-bench\[data\]'"):
        check_task_data(cfg.task)
