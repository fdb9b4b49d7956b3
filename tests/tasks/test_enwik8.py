"""enwik8: acquisition (raw, zip, gz, cache, download), exact size and checksum checks, the
missing-file error, full-split evaluation, and a short training run on a synthetic file.

Tests never touch the network: the download is served from a local zip through a patched urlopen,
and the size check uses a small synthetic layout set only here (``Enwik8Task.layout``)."""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import urllib.error
import zipfile

import pytest
import torch
from torch import nn

from lion_bench.runs.errors import BadInput
from lion_bench.runs.store import read_metrics
from lion_bench.tasks import build_task
from lion_bench.tasks import enwik8 as enwik8_module
from lion_bench.tasks.enwik8 import (
    ENWIK8,
    ENWIK8_URL,
    ByteSplits,
    Enwik8Task,
    load_enwik8,
)
from lion_bench.trainer import train

WORDS = b"the of and in to a is was for on as by with from at his an that which first were".split()


def synthetic_enwik8(num_bytes: int) -> bytes:
    """Wikipedia-XML-shaped bytes: pages of random words, cut to exactly ``num_bytes``."""
    generator = torch.Generator().manual_seed(0)
    pages, total, page = [], 0, 0
    while total < num_bytes:
        picks = torch.randint(0, len(WORDS), (60,), generator=generator).tolist()
        text = b" ".join(WORDS[i] for i in picks)
        chunk = b"  <page>\n    <title>Article %d</title>\n    <text>%s</text>\n  </page>\n" % (page, text)
        pages.append(chunk)
        total += len(chunk)
        page += 1
    return b"".join(pages)[:num_bytes]


DATA = synthetic_enwik8(40_000)
SMALL = ByteSplits(num_train=36_000, num_valid=2_000, num_test=2_000, sha256=hashlib.sha256(DATA).hexdigest())


def write_formats(directory, data: bytes = DATA) -> dict:
    raw = directory / "enwik8"
    raw.write_bytes(data)
    zipped = directory / "enwik8.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("enwik8", data)
    gzipped = directory / "enwik8.gz"
    gzipped.write_bytes(gzip.compress(data))
    return {"raw": raw, "zip": zipped, "gz": gzipped}


def test_the_real_layout_is_the_standard_split():
    assert (ENWIK8.num_train, ENWIK8.num_valid, ENWIK8.num_test) == (90_000_000, 5_000_000, 5_000_000)
    assert ENWIK8.num_bytes == 100_000_000
    assert len(ENWIK8.sha256) == 64 and int(ENWIK8.sha256, 16)
    # Only tests swap the layout; the class default is the real one.
    assert Enwik8Task.layout is ENWIK8


@pytest.mark.parametrize("kind", ["raw", "zip", "gz"])
def test_reads_raw_zip_and_gzip(tmp_path, kind):
    files = write_formats(tmp_path)
    data, source, digest = load_enwik8(str(files[kind]), tmp_path / "cache", allow_download=False, layout=SMALL)
    assert data == DATA
    assert digest == SMALL.sha256
    assert source.startswith("local:")


@pytest.mark.parametrize("kind", ["raw", "zip", "gz"])
@pytest.mark.parametrize("size_change", [-1, +1])
def test_wrong_size_is_an_error_never_a_truncation(tmp_path, kind, size_change):
    wrong = DATA[:-1] if size_change < 0 else DATA + b"x"
    files = write_formats(tmp_path, wrong)
    with pytest.raises(ValueError, match="exactly 40,000"):
        load_enwik8(str(files[kind]), tmp_path / "cache", allow_download=False, layout=SMALL)


def test_wrong_checksum_is_an_error(tmp_path):
    altered = bytes([DATA[0] ^ 1]) + DATA[1:]
    files = write_formats(tmp_path, altered)
    with pytest.raises(ValueError, match="SHA-256"):
        load_enwik8(str(files["raw"]), tmp_path / "cache", allow_download=False, layout=SMALL)


def test_damaged_archive_is_a_clear_error(tmp_path):
    files = write_formats(tmp_path)
    files["gz"].write_bytes(files["gz"].read_bytes()[:200])
    with pytest.raises(ValueError, match="damaged archive"):
        load_enwik8(str(files["gz"]), tmp_path / "cache", allow_download=False, layout=SMALL)


def test_missing_file_offline_says_exactly_what_to_do(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(BadInput) as error:
        load_enwik8(None, cache, allow_download=False)
    message = str(error.value)
    assert ENWIK8_URL in message
    assert "lion-bench task=enwik8 task.data.path=" in message
    assert str(cache / "enwik8") in message
    assert "task.data.download=false" in message


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(BadInput, match="is not a file") as error:
        load_enwik8(str(tmp_path / "nowhere.zip"), tmp_path / "cache", allow_download=False)
    assert ENWIK8_URL in str(error.value)


def test_failed_download_through_the_cli_config_says_what_to_do(tmp_path, monkeypatch, make_config):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(enwik8_module.urllib.request, "urlopen", offline)
    cfg = make_config(["task=enwik8", f"task.data.cache_dir={tmp_path / 'cache'}", "device=cpu"])
    with pytest.raises(BadInput) as error:
        train(cfg, tmp_path)
    message = str(error.value)
    assert "downloading http://mattmahoney.net/dc/enwik8.zip failed (<urlopen error Name or service" in message
    assert "lion-bench task=enwik8 task.data.path=/path/to/enwik8.zip" in message


def serve(monkeypatch, payload: bytes) -> list[str]:
    requested = []

    def urlopen(url, timeout):
        requested.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(enwik8_module.urllib.request, "urlopen", urlopen)
    return requested


def test_download_is_checked_and_cached(tmp_path, monkeypatch):
    zipped = write_formats(tmp_path)["zip"].read_bytes()
    cache = tmp_path / "cache"
    requested = serve(monkeypatch, zipped)
    data, source, _ = load_enwik8(None, cache, allow_download=True, layout=SMALL)
    assert data == DATA and requested == [ENWIK8_URL]
    assert (cache / "enwik8").read_bytes() == DATA
    assert sorted(p.name for p in cache.iterdir()) == ["enwik8"]  # no zip or partial file left behind
    # Second load: from the cache, no request.
    data, source, _ = load_enwik8(None, cache, allow_download=True, layout=SMALL)
    assert data == DATA and source == f"cache:{cache / 'enwik8'}" and len(requested) == 1


def test_corrupt_download_is_not_cached(tmp_path, monkeypatch):
    zipped = write_formats(tmp_path, DATA[:-10])["zip"].read_bytes()
    cache = tmp_path / "cache"
    serve(monkeypatch, zipped)
    with pytest.raises(ValueError, match="exactly 40,000"):
        load_enwik8(None, cache, allow_download=True, layout=SMALL)
    assert not (cache / "enwik8").exists()


class Bigram(nn.Module):
    """Logits depend on the current byte only, so any window layout must give the same loss."""

    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(256, 256)

    def forward(self, tokens):
        return self.table(tokens)


@pytest.fixture
def small_enwik8(tmp_path, monkeypatch, make_config):
    monkeypatch.setattr(Enwik8Task, "layout", SMALL)
    path = write_formats(tmp_path)["zip"]

    def config(overrides=()):
        return make_config([
            "task=enwik8", f"task.data.path={path}", "task.data.download=false", "device=cpu",
            "task.model.seq_len=32", "task.model.d_model=32", "task.model.n_layer=1", "task.model.n_head=2",
            "task.eval.num_windows=16", "trainer.batch_size=8", "trainer.progress=false", *overrides,
        ])

    return config


@pytest.mark.parametrize("stride", [32, 7, 1])
def test_full_split_scores_every_byte_once(small_enwik8, stride):
    cfg = small_enwik8([f"task.eval.stride={stride}"])
    task = build_task(cfg.task, batch_size=8, seed=0, device=torch.device("cpu"))
    torch.manual_seed(0)
    model = Bigram()
    for split, data in (("full_val", task.val_data), ("test", task.test_data)):
        result = task.evaluate_full(model, data, split)
        expected = nn.functional.cross_entropy(model(data[:-1].long()), data[1:].long()).item()
        assert result[f"{split}_bytes"] == len(data) - 1 == 1_999
        assert result[f"{split}_loss"] == pytest.approx(expected, rel=1e-5)
        assert result[f"{split}_bpc"] == pytest.approx(expected / math.log(2), rel=1e-5)


def test_splits_follow_the_layout(small_enwik8):
    cfg = small_enwik8()
    task = build_task(cfg.task, batch_size=8, seed=0, device=torch.device("cpu"))
    assert bytes(task.train_data.numpy()) == DATA[:36_000]
    assert bytes(task.val_data.numpy()) == DATA[36_000:38_000]
    assert bytes(task.test_data.numpy()) == DATA[38_000:]
    assert task.describe()["sha256"] == SMALL.sha256


def test_unknown_final_evaluation_lists_the_choices(small_enwik8):
    cfg = small_enwik8(["task.eval.final=everything"])
    with pytest.raises(ValueError, match="sample, full_valid, full_test"):
        build_task(cfg.task, batch_size=8, seed=0, device=torch.device("cpu"))


def test_trains_and_reports_bpc_on_the_test_split(small_enwik8, tmp_path):
    cfg = small_enwik8(["task.eval.final=full_test", "trainer.max_steps=60", "trainer.eval_every=20",
                        "optimizer=adamw", "base.lr=3e-3"])
    record = train(cfg, tmp_path)
    assert record["status"] == "finished"
    evals = [row["val_loss"] for row in read_metrics(tmp_path) if "val_loss" in row]
    # From about ln(256) = 5.5 nats at step 0; 60 steps learn the page markup and common words.
    assert evals[-1] < evals[0] < 5.0
    assert record["final_test_bytes"] == 1_999
    assert record["final_test_bpc"] == pytest.approx(record["final_test_loss"] / math.log(2))
    assert record["final_test_bpc"] < 6.0
    assert record["data"]["test_bytes"] == 2_000


def test_presets_compose(make_config):
    six, twelve = (make_config([f"task={name}"]).task for name in ("enwik8", "enwik8_12l"))
    assert (six.model.n_layer, six.model.d_model, six.model.n_head, six.model.seq_len) == (6, 512, 8, 1024)
    assert twelve.model.n_layer == 12 and twelve.name == "enwik8"
    assert {key: value for key, value in twelve.items() if key != "model"} == {
        key: value for key, value in six.items() if key != "model"
    }


def test_bad_stride_fails_before_training(small_enwik8):
    cfg = small_enwik8(["task.eval.stride=33"])
    with pytest.raises(ValueError, match=r"task.eval.stride must be in \[1, seq_len=32\]"):
        build_task(cfg.task, batch_size=8, seed=0, device=torch.device("cpu"))


def local_hub_dataset(directory, rows: list[str]):
    """A dataset directory as the Hub serves one (a parquet file of a `text` column), built offline."""
    datasets = pytest.importorskip("datasets")
    directory.mkdir()
    datasets.Dataset.from_dict({"text": rows}).to_parquet(str(directory / "train.parquet"))
    return directory


def test_enwik8_through_hugging_face_datasets(tmp_path, monkeypatch, make_config):
    dataset = local_hub_dataset(tmp_path / "enwik8_hub", [DATA.decode()])
    monkeypatch.setattr(Enwik8Task, "layout", SMALL)
    cfg = make_config(["task=enwik8", "task.data.source=hf", f"task.data.hf_dataset={dataset}", "task.data.hf_config=null",
                       "task.model.seq_len=32", "task.model.d_model=32", "task.model.n_layer=1", "task.model.n_head=2",
                       "task.eval.num_windows=8", "trainer.batch_size=8", "trainer.max_steps=20",
                       "trainer.schedule.warmup_steps=2", "trainer.progress=false", "device=cpu"])
    task = build_task(cfg.task, batch_size=8, seed=0, device=torch.device("cpu"))
    assert bytes(task.train_data.tolist()) == DATA[:36_000] and bytes(task.val_data.tolist()) == DATA[36_000:38_000]
    assert task.describe()["source"] == f"hf:{dataset}" and task.describe()["sha256"] == SMALL.sha256
    record = train(cfg, tmp_path / "run")
    assert record.status.value == "finished" and record.data["source"] == f"hf:{dataset}"


def test_enwik8_from_datasets_is_checked_like_a_file(tmp_path, monkeypatch, make_config):
    dataset = local_hub_dataset(tmp_path / "other_hub", [DATA.decode()[:-10]])  # 10 bytes short
    monkeypatch.setattr(Enwik8Task, "layout", SMALL)
    cfg = make_config(["task=enwik8", "task.data.source=hf", f"task.data.hf_dataset={dataset}", "task.data.hf_config=null"])
    with pytest.raises(BadInput, match=r"holds 39,990 bytes; enwik8 has exactly 40,000"):
        build_task(cfg.task, batch_size=8, seed=0, device=torch.device("cpu"))
    missing = make_config(["task=enwik8", "task.data.source=hf", f"task.data.hf_dataset={tmp_path / 'nowhere'}",
                           "task.data.hf_config=null"])
    with pytest.raises(BadInput, match="could not load enwik8 from Hugging Face datasets"):
        build_task(missing.task, batch_size=8, seed=0, device=torch.device("cpu"))
