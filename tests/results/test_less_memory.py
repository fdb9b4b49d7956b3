"""Less memory: judged on the records' own peak device memory, Lion - AdamW paired by seed within one setup and
one kind of peak; records without their own peak (none, a packed trial's) count for nothing and the cell says
how many had one; the optimizer state bytes are a second, labelled line (the verdict only where no record has a
peak)."""

import math

from synthetic_runs import judged, only, write_run

from lion_bench.results.claims.base import CONTRADICTED, MEASURED, NOT_JUDGED, SUPPORTED
from lion_bench.runs.store import read_record, write_record


def write_memory_run(root, optimizer, seed, peak, kind="cuda_allocated", packed=None, lr=1e-3, **kwargs):
    run_dir = write_run(root, optimizer, seed, 3.0, base_lr=lr, state_bytes=800 if optimizer == "adamw" else 400,
                        **kwargs)
    record = read_record(run_dir)
    record.peak_memory_bytes, record.peak_memory_kind = peak, (kind if peak is not None else None)
    if packed:
        record.environment["packed"] = {"mode": "batched", "members": packed}
    write_record(run_dir, record)


def test_a_lower_peak_in_every_seed_pair_supports_it(tmp_path):
    for seed in range(4):
        for lr in (1e-3, 3e-3):  # each seed's median over its arms
            write_memory_run(tmp_path, "adamw", seed, 10_000 + 10 * seed, lr=lr)
            write_memory_run(tmp_path, "lion", seed, 9_000 + 10 * seed + (5 if lr == 3e-3 else 0), lr=lr)
    cell = only(judged(tmp_path), "state_half")
    assert cell.role == MEASURED and cell.verdict == SUPPORTED and math.isnan(cell.p_decision)
    assert cell.n == 4 and abs(cell.effect - (-997.5)) < 1e-6
    assert "over 4 seed pairs; 16 of 16 records hold their own peak" in cell.detail
    assert "second measure: optimizer state Lion 400 B, AdamW 800 B (0.5)" in cell.detail


def test_a_higher_peak_contradicts_it_whatever_the_state_bytes_say(tmp_path):
    for seed in range(3):
        write_memory_run(tmp_path, "adamw", seed, 10_000 + 7 * seed)
        write_memory_run(tmp_path, "lion", seed, 10_500 + 3 * seed)  # state half, but a higher peak
    cell = only(judged(tmp_path), "state_half")
    assert cell.verdict == CONTRADICTED and cell.effect > 0


def test_records_without_their_own_peak_count_for_nothing(tmp_path):
    for seed in range(4):
        write_memory_run(tmp_path, "adamw", seed, 10_000)
    write_memory_run(tmp_path, "lion", 0, None)  # not recorded
    write_memory_run(tmp_path, "lion", 1, 1_000, packed=4)  # its pack's peak, not its own
    write_memory_run(tmp_path, "lion", 2, 9_000, kind="process_max_rss")  # a process's lifetime peak
    write_memory_run(tmp_path, "lion", 3, 9_000)
    cell = only(judged(tmp_path), "state_half", judged_only=False)
    # One seed pair is left: too few for a verdict, and the state bytes (half) do not stand in for it.
    assert cell.verdict == NOT_JUDGED and "too few seeds: n = 1" in cell.reason
    assert "over 1 seed pairs; 5 of 8 records hold their own peak" in cell.detail


def test_peaks_of_different_kinds_are_not_paired(tmp_path):
    for seed in range(3):
        write_memory_run(tmp_path, "adamw", seed, 10_000, kind="cuda_allocated")
        write_memory_run(tmp_path, "lion", seed, 9_000, kind="rss_since_run_start")
    cell = only(judged(tmp_path), "state_half")
    assert cell.verdict == SUPPORTED and cell.effect == 0.5  # the state bytes alone, labelled so
    assert "state bytes only: 6 of 6 records hold their own peak, no seed ran both optimizers" in cell.detail
