from __future__ import annotations

import pytest

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.corpus import (
    embedded_corpus,
    interleaved_split,
    local_corpus,
    stdlib_files,
)


def test_interleaved_split_holds_out_every_tenth_block():
    data = bytes(range(100)) * 100  # 10,000 bytes = 100 blocks of 100
    train, val = interleaved_split(data, 0.1, block_bytes=100)
    assert len(val) == 1000 and len(train) == 9000
    blocks = [data[i : i + 100] for i in range(0, len(data), 100)]
    assert val == b"".join(blocks[9::10])
    assert interleaved_split(data, 0.1, block_bytes=100) == (train, val)  # fixed, no seed


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_interleaved_split_rejects_impossible_fractions(fraction):
    with pytest.raises(ValueError, match="val_fraction must be in"):
        interleaved_split(b"x" * 100, fraction)


def test_embedded_corpus_is_the_sorted_stdlib_without_installed_packages():
    files = stdlib_files()
    assert files and not any("site-packages" in path.parts for path in files)
    data, source = embedded_corpus(100_000)
    assert len(data) == 100_000 and source.startswith("python-stdlib:")
    assert data.startswith(files[0].read_bytes()[:1000])
    assert embedded_corpus(100_000)[0] == data


def test_local_corpus_reads_a_directory_in_order(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"second")
    (tmp_path / "a.txt").write_bytes(b"first ")
    assert local_corpus(tmp_path, None)[0] == b"first second"
    assert local_corpus(tmp_path, 8)[0] == b"first se"
    with pytest.raises(BadInput, match="task.data.path=null to use the embedded corpus"):
        local_corpus(tmp_path / "missing", None)


def test_interleaved_split_keeps_the_fraction_for_small_corpora():
    train, val = interleaved_split(b"y" * 200_000, 0.1, block_bytes=65536)
    assert len(val) == 20_000 and len(train) == 180_000
