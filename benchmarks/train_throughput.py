"""Training throughput: lion-bench's loop against a bare loop in the same process, on the same model,
batch, precision and optimizer.

    python benchmarks/train_throughput.py --out results.jsonl             # the full table (GPU)
    python benchmarks/train_throughput.py --optimizers lion --compile off --steps 120 --window 40 110

The model is the 6x512 byte transformer (1024 context, 19.6M parameters), 16 x 1024 tokens per step,
bf16 autocast, gradient clipping at 0.5, on the embedded corpus. Rows:

- ``bare``: the fewest operations a training step needs: random windows gathered on the device,
  forward, backward, clipping, optimizer step, zero_grad (in place, as lion-bench: the gradients keep
  their addresses, which spares Lion's kernel a table rebuild). Timed between two synchronizations.
- ``lion-bench``: ``lion_bench.trainer.train`` with evaluation only at the end and no checkpoints.
- ``lion-bench defaults``: evaluation every 50 steps and checkpoints every 10 minutes (the shipped
  defaults; a run this short takes none).
- ``lion-bench eval 50, ckpt 100 steps``: the defaults before checkpoints moved to a background
  thread and a wall-time cadence (evaluation every 50 steps, a checkpoint every 100 steps).

Each lion-bench row is timed from its metrics rows, written right after the loop read the losses
(a host sync): ms per step between steps ``--window`` (default 50 and 290). Rows alternate (bare,
lion-bench, ...) and repeat ``--repeats`` times; the table shows medians. Not a test: needs CUDA.

``--profile DIR`` instead runs torch.profiler over steps 40-80 of the bare loop and of lion-bench
(evaluation every 50 steps, so one evaluation falls inside) for each optimizer, eager, and writes
the top operators by host and by GPU time, with GPU busy time per step against wall time per step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from lion_bench.optimizers.registry import build_optimizer
from lion_bench.tasks import build_task
from lion_bench.trainer import train
from run_metadata import run_metadata

MODEL = ["task.model.seq_len=1024", "task.model.d_model=512", "task.model.n_layer=6", "task.model.n_head=8"]
COMMON = [*MODEL, "trainer.batch_size=16", "trainer.grad_clip=0.5", "trainer.precision=bf16", "trainer.progress=false",
          "trainer.log_every=10", "trainer.schedule.warmup_steps=20", "device=cuda"]
VARIANTS = {
    "lion-bench": ["trainer.eval_every=100000", "trainer.checkpoint_minutes=0", "trainer.checkpoint_every=0"],
    "lion-bench defaults": ["trainer.eval_every=50", "trainer.checkpoint_minutes=10", "trainer.checkpoint_every=0"],
    "lion-bench eval 50, ckpt 100 steps": ["trainer.eval_every=50", "trainer.checkpoint_minutes=0",
                                           "trainer.checkpoint_every=100"],
}


def compose_config(overrides: list[str]):
    with initialize_config_module(config_module="lion_bench.configs", version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


class StepClock:
    """A lion-bench logger: the host time at which each metrics row was written; optionally starts
    and stops a profiler at two logged steps."""

    def __init__(self, profiler=None, profile_window: tuple[int, int] = (0, 0)):
        self.at: dict[int, float] = {}
        self.profiler, self.profile_window = profiler, profile_window

    def log(self, row):
        step = int(row["step"])
        self.at[step] = time.perf_counter()
        if self.profiler is not None and step == self.profile_window[0]:
            self.profiler.start()
        if self.profiler is not None and step == self.profile_window[1]:
            torch.cuda.synchronize()
            self.profiler.stop()

    def finish(self, record):
        pass


def lion_bench_ms(overrides: list[str], steps: int, window: tuple[int, int], clock: StepClock | None = None
                  ) -> tuple[float, dict]:
    clock = clock or StepClock()
    with tempfile.TemporaryDirectory() as run_dir:
        record = train(compose_config([*overrides, f"trainer.max_steps={steps}"]), Path(run_dir), [clock])
    first, last = window
    assert record.status.value == "finished", record.divergence or record.error
    return 1000 * (clock.at[last] - clock.at[first]) / (last - first), record.time_s


def bare_ms(overrides: list[str], steps: int, window: tuple[int, int], compiled: bool, profiler=None, *,
            batch_size: int = 16, grad_accum_steps: int = 1, device: str = "cuda") -> float:
    """The same model, optimizer and batch with nothing else: no schedule, no logging, no reads.
    ``batch_size`` sequences per micro-step, ``grad_accum_steps`` micro-steps per optimizer step (the
    lion-pytorch recipe: 4 x 4); bf16 autocast on CUDA, fp32 on the CPU (``device="cpu"``: a dry run)."""
    cfg = compose_config(overrides)
    device = torch.device(device)
    torch.manual_seed(0)
    task = build_task(cfg.task, batch_size=batch_size, seed=0, device=device)
    model = task.build_model().to(device)
    optimizer = build_optimizer(cfg.optimizer, model, lr=float(cfg.base.lr) / float(cfg.optimizer.get("lr_divisor", 1)),
                                weight_decay=0.0, device_type=device.type)
    trained = torch.compile(model) if compiled else model
    data = task.train_data_on_device
    seq_len = int(cfg.task.model.seq_len)
    offsets = torch.arange(seq_len + 1, device=device)
    clip = float(cfg.trainer.grad_clip)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step():
        for _ in range(grad_accum_steps):
            starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), device=device)
            windows = data[starts[:, None] + offsets].long()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = trained(windows[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256).float(), windows[:, 1:].reshape(-1))
            (loss / grad_accum_steps if grad_accum_steps > 1 else loss).backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)  # as lion-bench does: gradients keep their addresses

    first, last = window
    for _ in range(first):
        step()
    sync()
    if profiler is not None:
        profiler.start()
    start = time.perf_counter()
    for _ in range(last - first):
        step()
    sync()
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.stop()
    return 1000 * elapsed / (last - first)


def profile(out_dir: Path, optimizers: list[str]) -> None:
    """Host and GPU time per step of the bare loop and lion-bench (eager), from torch.profiler."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    out_dir.mkdir(parents=True, exist_ok=True)
    window = (40, 80)
    lines = []
    for optimizer in optimizers:
        impl = ["optimizer.impl=triton"] if optimizer == "lion" else ["optimizer.impl=fused"]
        overrides = [*COMMON, f"optimizer={optimizer}", *impl, "trainer.compile=false"]
        for name in ("bare", "lion-bench eval 50"):
            profiler = torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            if name == "bare":
                wall_ms = bare_ms(overrides, 100, window, compiled=False, profiler=profiler)
            else:
                clock = StepClock(profiler, window)
                wall_ms, _ = lion_bench_ms([*overrides, "trainer.eval_every=50", "trainer.checkpoint_minutes=0"], 100,
                                           window, clock)
            events = profiler.key_averages()
            gpu_ms = sum(event.self_device_time_total for event in events) / 1000 / (window[1] - window[0])
            line = (f"{optimizer} {name}: wall {wall_ms:.2f} ms/step (under the profiler), GPU busy "
                    f"{gpu_ms:.2f} ms/step")
            lines.append(line)
            print(line, flush=True)
            slug = f"{optimizer}_{name.split()[0]}"
            (out_dir / f"{slug}_cpu.txt").write_text(events.table(sort_by="self_cpu_time_total", row_limit=25))
            (out_dir / f"{slug}_gpu.txt").write_text(events.table(sort_by="self_device_time_total", row_limit=25))
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", nargs="+", default=["adamw", "lion"])
    parser.add_argument("--compile", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--variants", nargs="+", default=["lion-bench", "lion-bench defaults"], choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--window", type=int, nargs=2, default=(50, 290))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, metavar="DIR", help="profile instead of timing (see above)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("train_throughput.py needs CUDA")
    if args.profile:
        profile(args.profile, args.optimizers)
        return
    meta = run_metadata(torch.cuda.get_device_name(), steps=args.steps, window=list(args.window))
    rows = []
    for optimizer in args.optimizers:
        impl = ["optimizer.impl=triton"] if optimizer == "lion" else ["optimizer.impl=fused"]
        for compiled in args.compile:
            overrides = [*COMMON, f"optimizer={optimizer}", *impl, f"trainer.compile={compiled == 'on'}"]
            times: dict[str, list[float]] = {"bare": []}
            compile_s: list[float] = []
            for _ in range(args.repeats):
                times["bare"].append(bare_ms(overrides, args.steps, args.window, compiled == "on"))
                for variant in args.variants:
                    ms, time_s = lion_bench_ms([*overrides, *VARIANTS[variant]], args.steps, args.window)
                    times.setdefault(variant, []).append(ms)
                    compile_s.append(time_s["compile"])
            bare = statistics.median(times["bare"])
            for name, values in times.items():
                row = {**meta, "optimizer": optimizer, "compile": compiled, "row": name,
                       "ms_per_step": statistics.median(values), "all_ms": values,
                       "fraction_of_bare": bare / statistics.median(values),
                       "compile_s": statistics.median(compile_s) if name != "bare" else None}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"\n{meta['device']}, torch {meta['torch']}, commit {meta['git_sha']}, {meta['date']}")
    print("| optimizer | compile | row | ms/step | % of bare |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['optimizer']} | {row['compile']} | {row['row']} | {row['ms_per_step']:.2f} | "
              f"{100 * row['fraction_of_bare']:.1f}% |")


if __name__ == "__main__":
    main()
