"""bf16 momentum with stochastic rounding (issue 12): does it follow fp32 momentum, what does it cost?

    python benchmarks/bf16_momentum.py --out bf16.jsonl                  # all three parts (estimate: ~3 min, H100)
    python benchmarks/bf16_momentum.py --parts ema timing --out bf16.jsonl   # estimate: under 1 min
    python benchmarks/bf16_momentum.py --parts timing --out bf16.jsonl       # estimate: ~30 s
    python benchmarks/bf16_momentum.py --parts train --steps 300 --data /path/to/enwik8 --out train.jsonl
    TRITON_INTERPRET=1 python benchmarks/bf16_momentum.py --dry-run     # CPU: every code path, tiny sizes

Parts (``--parts``):
- ema: ``Lion(impl="triton")`` with a constant gradient of 1.0 on 2**20 elements for 5,000 steps, at
  beta2 0.99 and 0.999: final mean momentum for fp32 state, bf16 state (stochastic rounding) and
  bf16 state rounded to nearest (the old behaviour, kept behind ``Lion._stochastic_rounding``),
  with each bf16 arm's relative gap to fp32. Target: stochastic rounding within 1% at both betas.
- timing: ``do_bench`` median of the step on the three GPT parameter lists of optimizer_step.py with
  fp32 params: bf16 state (stochastic rounding, rounded to nearest, and the 2026-11-21 kernel frozen
  in benchmarks/baselines/) and fp32 state (today's and the 2026-11-21 kernel), each timed as called
  and replayed from a CUDA graph (GPU time alone: the small shape's step is close to its host time).
  Target: the stochastic-rounding bf16 step within 3% of the 2026-11-21 kernel's bf16 step.
- train: the 6x512 byte transformer (seq 1024, 8 heads; 16 x 1024 tokens per step, bf16 autocast)
  trained with Lion for ``--steps`` steps per seed and momentum arm, same seeds (init and batches),
  random windows of a byte corpus (default: the embedded standard-library corpus; ``--data PATH``
  for a file or directory). Final loss on 64 fixed validation windows. The comparison, decided
  before running: bf16 momentum matches fp32 momentum if the difference of the seed means is
  within the larger of the two arms' seed standard deviations; the per-seed paired differences are
  printed too. GPU kernels (SDPA, autocast) are not bit-deterministic, so a seed repeats only
  approximately.

Writes one JSON line per measurement to ``--out`` (with device, date, command) and prints a
markdown table per part, then a summary table last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import optimizer_step  # noqa: E402
from run_metadata import run_metadata  # noqa: E402

from lion_bench.optimizers import Lion, build_scheduler, param_groups  # noqa: E402
from lion_bench.tasks.corpus import embedded_corpus, interleaved_split, local_corpus  # noqa: E402
from lion_bench.tasks.transformer import ByteTransformer  # noqa: E402

EMA_ARMS = {"fp32": ("fp32", True), "bf16 stochastic": ("bf16", True), "bf16 nearest": ("bf16", False)}
TIMING_ROWS = ["lion-triton-bf16", "lion-triton-nearest-bf16", "lion-triton-v1-bf16", "lion-triton", "lion-triton-v1"]
TRAIN_ARMS = {"fp32": ("fp32", True), "bf16": ("bf16", True), "bf16-nearest": ("bf16", False)}


def lion(params, state_dtype: str, stochastic_rounding: bool, **kwargs) -> Lion:
    optimizer = Lion(params, impl="triton", state_dtype=state_dtype, **kwargs)
    optimizer._stochastic_rounding = stochastic_rounding
    return optimizer


def ema_part(device: torch.device, num_steps: int, numel: int, emit) -> list[str]:
    lines = ["| beta2 | steps | 1 - beta2^steps | fp32 state | bf16, stochastic rounding (gap to fp32) | "
             "bf16, rounded to nearest (gap to fp32) |", "|---|---|---|---|---|---|"]
    for beta2 in (0.99, 0.999):
        finals = {}
        for arm, (state_dtype, stochastic) in EMA_ARMS.items():
            p = torch.nn.Parameter(torch.zeros(numel, device=device))
            p.grad = torch.ones_like(p)
            optimizer = lion([p], state_dtype, stochastic, lr=1e-4, betas=(0.9, beta2), seed=0)
            for _ in range(num_steps):
                optimizer.step()
            finals[arm] = float(optimizer.state[p]["exp_avg"].float().mean())
        exact = 1 - beta2**num_steps
        for arm, value in finals.items():
            gap = value / finals["fp32"] - 1
            emit({"part": "ema", "beta2": beta2, "steps": num_steps, "numel": numel, "arm": arm,
                  "mean_momentum": value, "exact": exact, "gap_to_fp32": gap})
        gaps = {arm: 100 * (finals[arm] / finals["fp32"] - 1) for arm in finals}
        lines.append(f"| {beta2} | {num_steps} | {exact:.4f} | {finals['fp32']:.4f} | "
                     f"{finals['bf16 stochastic']:.4f} ({gaps['bf16 stochastic']:+.2f}%) | "
                     f"{finals['bf16 nearest']:.4f} ({gaps['bf16 nearest']:+.2f}%) |")
    return lines


def timing_part(device: torch.device, shapes: dict, emit) -> list[str]:
    lines = ["| shape | timing | bf16 state: stochastic | nearest | 2026-11-21 kernel | stochastic / 2026-11-21 | "
             "fp32 state: today | 2026-11-21 kernel | today / 2026-11-21 | host us/step, fp32 state: today / "
             "2026-11-21 |", "|---|---|---|---|---|---|---|---|---|---|"]
    # do_bench times Lion.step as called (the host issues it while the GPU flushes L2: close to GPU
    # time unless the host is the slower of the two); a CUDA graph replay leaves the host out. The
    # 2026-11-21 rows call the update function directly, without Lion.step's host work.
    graphs = [False, True] if device.type == "cuda" else [False]  # no graphs on the CPU (--dry-run)
    for shape_name, shape in shapes.items():
        params = optimizer_step.make_params(shape, torch.float32, device)
        for graph in graphs:
            ms, host_us = {}, {}
            for row_key in TIMING_ROWS:
                result = optimizer_step.time_row(optimizer_step.ROWS[row_key], params, ("do_bench",), graph=graph)
                result = result["do_bench"]
                ms[row_key], host_us[row_key] = result["ms"], result["host_us_per_step"]
                emit({"part": "timing", "shape": shape_name, "num_tensors": len(params), "row": row_key,
                      "row_name": optimizer_step.ROWS[row_key].name, "graph": graph, **result})
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            host = "" if graph else f"{host_us['lion-triton']:.0f} / {host_us['lion-triton-v1']:.0f}"
            lines.append(
                f"| {shape_name} | {'CUDA graph' if graph else 'do_bench'} | {ms['lion-triton-bf16']:.3f} | "
                f"{ms['lion-triton-nearest-bf16']:.3f} | {ms['lion-triton-v1-bf16']:.3f} | "
                f"{ms['lion-triton-bf16'] / ms['lion-triton-v1-bf16']:.3f} | {ms['lion-triton']:.3f} | "
                f"{ms['lion-triton-v1']:.3f} | {ms['lion-triton'] / ms['lion-triton-v1']:.3f} | {host} |"
            )
        del params
    return lines


class ByteData:
    def __init__(self, data: bytes, seq_len: int, num_val_windows: int):
        train, val = interleaved_split(data, 0.1)
        self.train = torch.frombuffer(bytearray(train), dtype=torch.uint8)
        self.val = torch.frombuffer(bytearray(val), dtype=torch.uint8)
        self.seq_len = seq_len
        last_start = len(self.val) - seq_len - 1
        self.val_starts = torch.linspace(0, last_start, min(num_val_windows, last_start + 1)).long()

    def windows(self, data: torch.Tensor, starts: torch.Tensor, device: torch.device):
        offsets = starts[:, None] + torch.arange(self.seq_len + 1)
        windows = data[offsets].long().to(device, non_blocking=True)
        return windows[:, :-1], windows[:, 1:]

    def train_batch(self, batch_size: int, generator: torch.Generator, device: torch.device):
        starts = torch.randint(0, len(self.train) - self.seq_len - 1, (batch_size,), generator=generator)
        return self.windows(self.train, starts, device)


def loss_of(model, inputs, targets, autocast: bool) -> torch.Tensor:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


@torch.no_grad()
def evaluate(model, data: ByteData, device: torch.device, autocast: bool, batch_size: int = 16) -> float:
    model.eval()
    total = torch.zeros((), device=device)
    for starts in data.val_starts.split(batch_size):
        inputs, targets = data.windows(data.val, starts, device)
        total += loss_of(model, inputs, targets, autocast) * len(starts)
    model.train()
    return float(total) / len(data.val_starts)


def train_once(arm: str, seed: int, data: ByteData, args, device: torch.device) -> dict:
    state_dtype, stochastic = TRAIN_ARMS[arm]
    torch.manual_seed(seed)
    model = ByteTransformer(seq_len=args.seq_len, d_model=args.d_model, n_layer=args.n_layer, n_head=args.n_head).to(device)
    optimizer = lion(param_groups(model, args.weight_decay), state_dtype, stochastic, lr=args.lr, betas=(0.9, 0.99))
    scheduler = build_scheduler(optimizer, "cosine", total_steps=args.steps, warmup_steps=args.warmup_steps,
                                final_fraction=0.1)
    generator = torch.Generator().manual_seed(seed)
    autocast = device.type == "cuda"
    logged = []
    start = time.perf_counter()
    for step in range(args.steps):
        inputs, targets = data.train_batch(args.batch_size, generator, device)
        loss = loss_of(model, inputs, targets, autocast)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            logged.append((step, loss.detach()))  # read at the end: no sync per step
    val_loss = evaluate(model, data, device, autocast)
    seconds = time.perf_counter() - start
    flag = optimizer.nonfinite_grad_flag
    return {"arm": arm, "seed": seed, "val_loss": val_loss, "train_loss": [(s, float(v)) for s, v in logged],
            "nonfinite_grad_flag": None if flag is None else int(flag), "seconds": seconds,
            "num_params": sum(p.numel() for p in model.parameters())}


def train_part(device: torch.device, args, emit) -> list[str]:
    if args.data:
        data_bytes, source = local_corpus(args.data, args.max_bytes)
    else:
        data_bytes, source = embedded_corpus(args.max_bytes)
    data = ByteData(data_bytes, args.seq_len, args.val_windows)
    print(f"train: {source}, {len(data.train)} train / {len(data.val)} val bytes", flush=True)
    results = {arm: {} for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:
            result = train_once(arm, seed, data, args, device)
            results[arm][seed] = result["val_loss"]
            emit({"part": "train", "source": source, "steps": args.steps, "batch_size": args.batch_size,
                  "seq_len": args.seq_len, "lr": args.lr, "weight_decay": args.weight_decay, **result})
            print(f"  {arm} seed {seed}: val loss {result['val_loss']:.4f} ({result['seconds']:.0f} s, "
                  f"non-finite flag {result['nonfinite_grad_flag']})", flush=True)
    lines = ["| momentum | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | std |",
             "|---|" + "---|" * (len(args.seeds) + 2)]
    means, stds = {}, {}
    for arm, by_seed in results.items():
        values = [by_seed[s] for s in args.seeds]
        means[arm] = statistics.mean(values)
        stds[arm] = statistics.stdev(values) if len(values) > 1 else float("nan")
        lines.append(f"| {arm} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {means[arm]:.4f} | {stds[arm]:.4f} |")
    for arm in results:
        if arm == "fp32" or "fp32" not in results:
            continue
        difference = means[arm] - means["fp32"]
        spread = max(stds[arm], stds["fp32"])
        paired = [results[arm][s] - results["fp32"][s] for s in args.seeds]
        verdict = "within" if abs(difference) <= spread else ("outside" if spread == spread else "n/a (one seed)")
        lines.append(f"| {arm} - fp32 | " + " | ".join(f"{d:+.4f}" for d in paired) +
                     f" | {difference:+.4f} | {verdict} the seed spread ({spread:.4f}) |")
        emit({"part": "train_summary", "arm": arm, "mean": means[arm], "fp32_mean": means["fp32"],
              "difference": difference, "seed_spread": spread, "paired_differences": paired, "within_spread": verdict})
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["ema", "timing", "train"], choices=["ema", "timing", "train"])
    parser.add_argument("--out", help="JSON lines file (appended)")
    parser.add_argument("--ema-steps", type=int, default=5000)
    parser.add_argument("--shapes", nargs="+", default=list(optimizer_step.SHAPES), choices=list(optimizer_step.SHAPES))
    parser.add_argument("--steps", type=int, default=600, help="training steps per run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["fp32", "bf16"], choices=list(TRAIN_ARMS))
    parser.add_argument("--data", help="a text file or directory (default: the embedded standard-library corpus)")
    parser.add_argument("--max-bytes", type=int, default=40_000_000)
    parser.add_argument("--lr", type=float, default=3e-4, help="Lion lr (AdamW's 1e-3 / 3)")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="on >= 2-dim tensors")
    parser.add_argument("--warmup-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--n-layer", type=int, default=6)
    parser.add_argument("--n-head", type=int, default=8)
    parser.add_argument("--val-windows", type=int, default=64)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--dry-run", action="store_true", help="CPU, Triton interpreter, tiny sizes: no figures")
    args = parser.parse_args(argv)
    if args.dry_run:
        if os.environ.get("TRITON_INTERPRET") != "1":
            raise SystemExit("--dry-run runs the Triton kernel through its interpreter: set TRITON_INTERPRET=1")
        device, device_name = torch.device("cpu"), "cpu (dry run)"
        args.ema_steps, ema_numel, shapes = 3, 4096, {"tiny": optimizer_step.TINY_SHAPE}
        args.steps, args.seeds, args.max_bytes, args.warmup_steps, args.log_every = 3, [0, 1], 300_000, 1, 1
        args.batch_size, args.seq_len, args.d_model, args.n_layer, args.n_head, args.val_windows = 2, 32, 16, 1, 2, 4
    else:
        if not torch.cuda.is_available():
            raise SystemExit("bf16_momentum.py needs a CUDA device (or --dry-run)")
        device, device_name = torch.device("cuda"), torch.cuda.get_device_name()
        ema_numel, shapes = 1 << 20, {name: optimizer_step.SHAPES[name] for name in args.shapes}
    meta = run_metadata(device_name)
    print(json.dumps(meta), flush=True)
    out = open(args.out, "a") if args.out else None

    def emit(record: dict) -> None:
        if out:
            out.write(json.dumps({**meta, **record}) + "\n")
            out.flush()

    tables = {}
    if "ema" in args.parts:
        tables["constant-gradient EMA (mean momentum)"] = ema_part(device, args.ema_steps, ema_numel, emit)
        print("\n".join(tables["constant-gradient EMA (mean momentum)"]), flush=True)
    if "timing" in args.parts:
        tables["step time, fp32 params, do_bench median ms"] = timing_part(device, shapes, emit)
        print("\n".join(tables["step time, fp32 params, do_bench median ms"]), flush=True)
    if "train" in args.parts:
        title = (f"final val loss (nats/byte), {args.n_layer}x{args.d_model} byte transformer, {args.steps} steps of "
                 f"{args.batch_size}x{args.seq_len} tokens, Lion lr {args.lr:g}")
        tables[title] = train_part(device, args, emit)
    print(f"\n## Summary ({device_name}, {meta['date']})")
    for title, lines in tables.items():
        print(f"\n{title}\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
