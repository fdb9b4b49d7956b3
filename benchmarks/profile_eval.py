"""Why does one evaluation of the text task cost 70-140 ms where a training step costs 8-14 ms (H200)?
Times and profiles one evaluation against one training step of the same lion-bench run.

    python benchmarks/profile_eval.py --out eval.jsonl --trace-dir eval_traces   # GPU, ~1-2 min
    python benchmarks/profile_eval.py --dry-run                                  # CPU, tiny model

The run is lion-bench's own (``trainer.start_run``): the 6x512 byte decoder, 1024 context, batch 16, bf16
autocast, Lion with the Triton kernel, 64 fixed validation windows; trained ``--warmup`` steps first
(eager, and with ``--compile``, compiled as well). Then, each timed as the median of ``--repeats``
(synchronized before and after, as ``trainer.timed`` does):

- ``train step``: one ``trainer.train_step``;
- ``eval``: ``task.evaluate(eval_model)`` as the loop calls it (today's path: the split on the device,
  windows gathered there), with evaluation batches of 32 (the task's default) and 64 (the study's);
- ``eval v1``: the same with commit 5eccfa7's loop (``baselines/text_eval_v1.py``: windows gathered on
  the host, each chunk copied through pinned memory), to tell what the copies cost;
- ``eval compiled``: the same evaluation through ``torch.compile(eval_model)`` (its own graph: eval
  mode, no grad, batch 32), to tell what eager execution costs;
- ``eval first``: the first evaluation after training steps, unsynchronized before (what the loop pays
  once per ``eval_every``, allocator and cuDNN/cuBLAS choices for new shapes included).

Then torch.profiler over 3 train steps and over one evaluation of each kind: GPU busy time (the union of
kernel intervals) against wall time, the top kernels by GPU time, and the host gaps (GPU idle between
kernels) with the CUDA runtime calls that cost host time (cudaMalloc, cudaHostAlloc, cudaMemcpy*,
synchronizations). ``--trace-dir`` also writes Chrome traces. Every JSON line carries ``run_metadata()``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from torch.profiler import ProfilerActivity, profile

from baselines.text_eval_v1 import sum_loss_v1
from lion_bench.trainer import start_run, train_step
from run_metadata import run_metadata

MODEL = ["task.model.seq_len=1024", "task.model.d_model=512", "task.model.n_layer=6", "task.model.n_head=8"]
COMMON = [*MODEL, "trainer.batch_size=16", "trainer.grad_clip=0.5", "trainer.precision=bf16", "trainer.progress=false",
          "optimizer=lion", "optimizer.impl=triton", "device=cuda", "task.eval.num_windows=64",
          "trainer.max_steps=100000", "trainer.checkpoint_minutes=0", "trainer.schedule.warmup_steps=20"]
DRY = ["task.data.max_bytes=200000", "task.model.seq_len=64", "task.model.d_model=32", "task.model.n_layer=1",
       "task.model.n_head=2", "task.eval.num_windows=64", "trainer.batch_size=8", "trainer.progress=false",
       "device=cpu", "trainer.max_steps=100000", "trainer.checkpoint_minutes=0"]
RUNTIME_CALLS = ("cudaMalloc", "cudaFree", "cudaHostAlloc", "cudaMemcpyAsync", "cudaMemcpy", "cudaStreamSynchronize",
                 "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaLaunchKernel", "cuLaunchKernel")


def compose_config(overrides: list[str]):
    with initialize_config_module(config_module="lion_bench.configs", version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_ms(device: torch.device, work, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        work()
        sync(device)
        times.append(1000 * (time.perf_counter() - start))
    return times


def set_eval_batch(task, batch_size: int) -> None:
    task.cfg.eval.batch_size = batch_size  # the task reads it at every evaluation


def gpu_summary(prof, wall_ms: float, steps: int = 1) -> dict:
    """GPU busy time (union of kernel and memcpy intervals), host gaps, top kernels, runtime calls."""
    device_events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    intervals = sorted((e.time_range.start, e.time_range.end, e.name) for e in device_events)
    busy, gaps, end, previous = 0.0, [], None, None
    for start, stop, name in intervals:
        if end is None or start > end:
            if end is not None:
                gaps.append((start - end, previous, name))
            busy += stop - start
            end = stop
        elif stop > end:
            busy += stop - end
            end = stop
        previous = name
    kernels = Counter()
    for e in device_events:
        kernels[e.name] += e.time_range.end - e.time_range.start
    calls = Counter()
    host_us = Counter()
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CPU and e.name in RUNTIME_CALLS:
            calls[e.name] += 1
            host_us[e.name] += e.time_range.end - e.time_range.start
    gaps.sort(reverse=True)
    return {
        "wall_ms_under_profiler": wall_ms / steps,
        "gpu_busy_ms": busy / 1000 / steps,
        "gpu_idle_ms": sum(gap for gap, _, _ in gaps) / 1000 / steps,
        "largest_gaps_us": [(round(gap), before[:60], after[:60]) for gap, before, after in gaps[:6]],
        "top_kernels_ms": [(name[:90], round(us / 1000 / steps, 3)) for name, us in kernels.most_common(12)],
        "runtime_calls": {name: [calls[name], round(host_us[name] / 1000, 3)] for name in calls},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model: every code path")
    parser.add_argument("--compile", nargs="+", choices=["off", "on"], default=["off", "on"],
                        help="training compiled or not (the evaluation always uses the plain module, as lion-bench)")
    parser.add_argument("--warmup", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--trace-dir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("profile_eval.py needs CUDA (--dry-run runs on the CPU)")
    device = torch.device("cpu" if args.dry_run else "cuda")
    meta = run_metadata(torch.cuda.get_device_name() if device.type == "cuda" else "cpu (dry run)",
                        warmup=args.warmup, repeats=args.repeats)
    rows = []

    def emit(row: dict) -> None:
        row = {**meta, **row}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in meta}), flush=True)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")

    for compiled in ["off"] if args.dry_run else args.compile:
        overrides = [*(DRY if args.dry_run else COMMON), f"trainer.compile={str(compiled == 'on').lower()}"]
        with tempfile.TemporaryDirectory() as run_dir:
            run, state = start_run(compose_config(overrides), Path(run_dir))
            task, model = run.task, run.eval_model
            run.model.train()
            for _ in range(args.warmup):
                train_step(run, state)
            run.pending.clear()
            sync(device)

            def step():
                train_step(run, state)
                run.pending.clear()

            zeros = torch.zeros_like(task.val_starts)
            compiled_eval = None
            variants = {
                "train step": step,
                "eval, batch 32": lambda: (set_eval_batch(task, 32), task.evaluate(model)),
                "eval, batch 64": lambda: (set_eval_batch(task, 64), task.evaluate(model)),
                "eval v1, batch 32": lambda: (set_eval_batch(task, 32),
                                              sum_loss_v1(task, model, task.val_data, task.val_starts, zeros)),
                "eval v1, batch 64": lambda: (set_eval_batch(task, 64),
                                              sum_loss_v1(task, model, task.val_data, task.val_starts, zeros)),
            }
            if not args.dry_run:
                compiled_eval = torch.compile(model)
                variants["eval compiled, batch 32"] = lambda: (set_eval_batch(task, 32), task.evaluate(compiled_eval))
            for name, work in variants.items():
                work()  # once untimed: compiles, allocates, picks kernels for the shape
                times = timed_ms(device, work, 3 * args.repeats if name == "train step" else args.repeats)
                emit({"training_compile": compiled, "variant": name, "median_ms": statistics.median(times),
                      "all_ms": [round(t, 3) for t in times]})
            # The first evaluation after training steps, as the loop runs it (steps queued, then eval).
            set_eval_batch(task, 32)
            firsts = []
            for _ in range(args.repeats):
                for _ in range(5):
                    step()
                start = time.perf_counter()
                sync(device)  # trainer.timed syncs first: queued steps are not counted as evaluation
                queued = time.perf_counter()
                task.evaluate(model)
                sync(device)
                firsts.append((1000 * (queued - start), 1000 * (time.perf_counter() - queued)))
            emit({"training_compile": compiled, "variant": "eval after 5 queued steps, batch 32",
                  "median_ms": statistics.median(t for _, t in firsts),
                  "drain_ms": statistics.median(d for d, _ in firsts), "all_ms": [round(t, 3) for _, t in firsts]})

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
            for name, work, count in (("train step", step, 3),
                                      ("eval, batch 32", variants["eval, batch 32"], 1),
                                      ("eval v1, batch 32", variants["eval v1, batch 32"], 1),
                                      ("eval, batch 64", variants["eval, batch 64"], 1)):
                sync(device)
                with profile(activities=activities) as prof:
                    start = time.perf_counter()
                    for _ in range(count):
                        work()
                    sync(device)
                    wall_ms = 1000 * (time.perf_counter() - start)
                summary = gpu_summary(prof, wall_ms, count)
                emit({"training_compile": compiled, "variant": f"profile: {name}", **summary})
                if args.trace_dir:
                    args.trace_dir.mkdir(parents=True, exist_ok=True)
                    prof.export_chrome_trace(str(args.trace_dir / f"{compiled}_{name.replace(' ', '_').replace(',', '')}.json"))
                print(prof.key_averages().table(sort_by="self_cuda_time_total" if device.type == "cuda"
                                                else "self_cpu_time_total", row_limit=12), flush=True)
    print(f"\n{meta['device']}, torch {meta['torch']}, commit {meta['git_sha']}, {meta['date']}")
    print("| training compiled | variant | median ms | GPU busy ms | GPU idle ms |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['training_compile']} | {row['variant']} | {row.get('median_ms', row.get('wall_ms_under_profiler', 0)):.2f} | "
              f"{row.get('gpu_busy_ms', float('nan')):.2f} | {row.get('gpu_idle_ms', float('nan')):.2f} |")


if __name__ == "__main__":
    main()
