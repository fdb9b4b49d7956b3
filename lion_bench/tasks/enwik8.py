"""enwik8: byte-level LM on the first 10^8 bytes of an English Wikipedia XML dump (the Hutter
Prize file). Standard split: the first 90M bytes train, the next 5M validation, the last 5M test.
Metric: bits per byte (bpc) = loss in nats / ln 2.

Where the file comes from, with ``task.data.source=file`` (the default), in order:
``task.data.path`` (the raw ``enwik8``, ``enwik8.zip`` as the Hutter Prize page serves it, or
``enwik8.gz``); ``<task.data.cache_dir>/enwik8``; else, with ``task.data.download=true``, the zip
from ``task.data.url``, checked and cached. With ``task.data.source=hf``, through Hugging Face
``datasets`` (``pip install 'lion-bench[data]'``): ``task.data.hf_dataset`` (a Hub id, by default
LTCB/enwik8, or a local dataset directory) and ``task.data.hf_config``, whose ``text`` column holds
the file (rows joined by newlines). Every source is checked for its exact size and SHA-256 before
any byte is used; nothing is ever truncated.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.datasets_text import dataset_text, require_datasets
from lion_bench.tasks.text import ByteLMTask

ENWIK8_URL = "http://mattmahoney.net/dc/enwik8.zip"
# SHA-256 of the 100,000,000-byte file (not of the zip), as published in several public repositories.
ENWIK8_SHA256 = "2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8"
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ByteSplits:
    """The exact layout a file must have: sizes of its three consecutive splits and its SHA-256."""

    num_train: int
    num_valid: int
    num_test: int
    sha256: str | None

    @property
    def num_bytes(self) -> int:
        return self.num_train + self.num_valid + self.num_test


ENWIK8 = ByteSplits(num_train=90_000_000, num_valid=5_000_000, num_test=5_000_000, sha256=ENWIK8_SHA256)


def how_to_get(cache_dir: Path) -> str:
    return (
        f"Download {ENWIK8_URL} (36 MB; it unzips to the 100,000,000-byte file enwik8), then either\n"
        f"  lion-bench task=enwik8 task.data.path=/path/to/enwik8.zip   (the raw enwik8 or enwik8.gz work too)\n"
        f"or put the unzipped file at {cache_dir / 'enwik8'} (the cache, task.data.cache_dir)."
    )


def read_enwik8_file(path: Path, layout: ByteSplits) -> bytes:
    """The raw bytes of ``path``: a plain file, a zip holding one file, or a gzip stream."""
    try:
        return _read_archive(path, layout)
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error) as reason:
        raise BadInput(f"{path} is a damaged archive ({reason}); download it again from {ENWIK8_URL}") from reason


def _read_archive(path: Path, layout: ByteSplits) -> bytes:
    with path.open("rb") as stream:
        magic = stream.read(4)
    if magic.startswith(_ZIP_MAGIC):
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) != 1:
                names = ", ".join(info.filename for info in members) or "nothing"
                raise BadInput(f"{path} should be a zip holding just the file enwik8, but it holds: {names}")
            if members[0].file_size != layout.num_bytes:
                raise BadInput(
                    f"{path} holds {members[0].filename} of {members[0].file_size:,} bytes; enwik8 has exactly "
                    f"{layout.num_bytes:,}. The file is not enwik8 or is damaged: download it again from {ENWIK8_URL}."
                )
            return archive.read(members[0])
    if magic.startswith(_GZIP_MAGIC):
        with gzip.open(path, "rb") as stream:
            # One byte past the expected size is enough to tell a longer file from enwik8.
            return stream.read(layout.num_bytes + 1)
    return path.read_bytes()


def verify(data: bytes, layout: ByteSplits, origin: str) -> str:
    """Raise unless ``data`` has the exact size and checksum of ``layout``; return its SHA-256."""
    if len(data) != layout.num_bytes:
        size = f"{len(data):,}" if len(data) <= layout.num_bytes else f"more than {layout.num_bytes:,}"
        raise BadInput(
            f"{origin} holds {size} bytes; enwik8 has exactly {layout.num_bytes:,}. "
            f"The file is not enwik8 or is truncated or damaged: download it again from {ENWIK8_URL}."
        )
    digest = hashlib.sha256(data).hexdigest()
    if layout.sha256 is not None and digest != layout.sha256:
        raise BadInput(
            f"{origin} has the right size but SHA-256 {digest}, not enwik8's {layout.sha256}. "
            f"The file is damaged or altered: download it again from {ENWIK8_URL}."
        )
    return digest


def download(url: str, cache_dir: Path, layout: ByteSplits) -> Path:
    """Fetch the zip at ``url``, check the file inside, and cache it raw as ``cache_dir/enwik8``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / "enwik8"
    print(f"enwik8: downloading {url} into {cache_dir}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        archive = Path(scratch) / "enwik8.zip"
        with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out)
        data = read_enwik8_file(archive, layout)
        verify(data, layout, f"the download from {url}")
        partial = Path(scratch) / "enwik8"
        partial.write_bytes(data)
        os.replace(partial, target)
    return target


def load_enwik8(
    path: str | None, cache_dir: str | Path, *, allow_download: bool, url: str = ENWIK8_URL,
    layout: ByteSplits = ENWIK8,
) -> tuple[bytes, str, str]:
    """(the checked bytes, where they came from, their SHA-256)."""
    cache_dir = Path(cache_dir).expanduser()
    if path:
        source = Path(path).expanduser()
        if not source.is_file():
            raise BadInput(f"task.data.path={str(path)!r} is not a file.\n{how_to_get(cache_dir)}")
        data = read_enwik8_file(source, layout)
        return data, f"local:{source.resolve()}", verify(data, layout, str(source))
    cached = cache_dir / "enwik8"
    if not cached.is_file():
        if not allow_download:
            raise BadInput(
                f"enwik8 is not in the cache ({cached}) and task.data.download=false.\n{how_to_get(cache_dir)}"
            )
        try:
            download(url, cache_dir, layout)
        except (urllib.error.URLError, OSError) as reason:
            raise BadInput(
                f"enwik8 is not in the cache ({cached}) and downloading {url} failed ({reason}).\n"
                f"{how_to_get(cache_dir)}"
            ) from reason
    data = cached.read_bytes()
    return data, f"cache:{cached}", verify(data, layout, f"the cached {cached} (delete it to download again)")


def load_enwik8_datasets(dataset: str, config: str | None, layout: ByteSplits = ENWIK8) -> tuple[bytes, str, str]:
    """(the checked bytes, where they came from, their SHA-256) through Hugging Face ``datasets``: the
    ``text`` column of the train split, rows joined by newlines, read to one byte past the layout."""
    purpose = "task.data.source=hf (enwik8 through Hugging Face datasets; or use task.data.source=file)"
    require_datasets(purpose)
    origin = f"{dataset}{f' ({config})' if config else ''}"
    try:
        data, _ = dataset_text(dataset, config, "train", "text", layout.num_bytes + 1, purpose=purpose)
    except BadInput as reason:
        raise BadInput(f"could not load enwik8 from Hugging Face datasets {origin}: {reason}; "
                       "or use task.data.source=file (see task=enwik8's config)") from reason
    return data, f"hf:{origin}", verify(data, layout, f"the dataset {origin}")


class Enwik8Task(ByteLMTask):
    name = "enwik8"
    description = "byte-level LM on enwik8 (Hutter Prize file), a 6x512 decoder; bpc over the full split"
    # The layout every file is checked against. Only tests replace it (with a small synthetic
    # layout); no config key reaches it, so a real run always checks the real size and checksum.
    layout: ByteSplits = ENWIK8

    @classmethod
    def check_data(cls, cfg) -> None:
        data_cfg = cfg["data"]
        if data_cfg.get("source", "file") == "hf":
            require_datasets("task.data.source=hf (enwik8 through Hugging Face datasets; or use task.data.source=file)")
        elif data_cfg.get("path") and not Path(data_cfg["path"]).expanduser().is_file():
            raise BadInput(f"task.data.path={data_cfg['path']!r} is not a regular file; point it at enwik8, "
                           f"enwik8.zip or enwik8.gz (from {ENWIK8_URL}), or set task.data.path=null")
        cls.check_windows(cls.layout.num_train, cls.layout.num_valid, int(cfg["model"]["seq_len"]))

    @classmethod
    def data_size(cls, cfg) -> int:
        return cls.layout.num_bytes

    @classmethod
    def data_identity(cls, cfg) -> str:
        # Every source is checked against the layout's checksum before use: that checksum is the data.
        return f"sha256:{cls.layout.sha256}" if cls.layout.sha256 else f"bytes:{cls.layout.num_bytes}"

    def load_splits(self) -> tuple[bytes, bytes, str]:
        data_cfg = self.cfg.data
        if data_cfg.get("source", "file") == "hf":
            data, source, self.sha256 = load_enwik8_datasets(
                data_cfg.get("hf_dataset") or "LTCB/enwik8", data_cfg.get("hf_config"), layout=self.layout)
        else:
            data, source, self.sha256 = load_enwik8(
                data_cfg.get("path"), data_cfg.cache_dir, allow_download=bool(data_cfg.download),
                url=data_cfg.get("url") or ENWIK8_URL, layout=self.layout,
            )
        num_train, num_valid = self.layout.num_train, self.layout.num_valid
        self.test_data = torch.frombuffer(bytearray(data[num_train + num_valid :]), dtype=torch.uint8)
        return data[:num_train], data[num_train : num_train + num_valid], source

    def data_fingerprint(self, train: bytes, val: bytes) -> str:
        # The whole file's checksum, already computed when it was checked.
        return self.sha256

    def describe(self) -> dict:
        return {**super().describe(), "test_bytes": len(self.test_data)}
