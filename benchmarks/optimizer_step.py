"""Median optimizer step time on GPT-style parameter lists, against the bandwidth the step needs.

    python benchmarks/optimizer_step.py --out results.jsonl            # every shape, dtype and row
    python benchmarks/optimizer_step.py --shapes gpt-19.6m --dtypes fp32 --rows lion-triton
    python benchmarks/optimizer_step.py --rows lion-triton lion-triton-bf16 adamw-fused --dtypes fp32 \
        --out host.jsonl                                              # the host-time rows, ~1 min on an H100
    python benchmarks/optimizer_step.py --dry-run                      # CPU, Triton interpreter, tiny shape

Each row times ``optimizer.step()`` on random params and grads three ways (``--timings``):
- do_bench: ``triton.testing.do_bench`` median (L2 flushed before each step, which lets the host
  run ahead: GPU time), with effective GB/s from the bytes the step must move (each input read
  once, each output written once: fp32 Lion reads p, g, m and writes p, m, 20 B/param) and that
  as a share of a device-to-device copy measured here (bytes read + written);
- back to back: N steps issued without a sync, no L2 flush, wall time / N (host and GPU overlap:
  the larger of the two), and the host's issue time / N alone (``host_us_per_step``);
- sync every step: N steps with ``torch.cuda.synchronize()`` after each, wall time / N (host and
  GPU in series, as in a training loop that reads its loss every step).
N is chosen so that one repeat takes about 0.2 s; 5 repeats, median and 20-80% quantiles.
Not a test: needs CUDA (``--dry-run`` runs every code path on the CPU, timings meaningless).
Prints a markdown table; ``--out`` also writes one JSON line per row and timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import triton
import triton.testing

from lion_bench.optimizers.lion import Lion, lion_update_foreach
from lion_bench.optimizers.lion_triton import LionTritonCache, lion_update_triton
from run_metadata import run_metadata


@dataclass(frozen=True)
class GPTShape:
    vocab: int
    context: int
    width: int
    num_layers: int

    def tensor_shapes(self) -> list[tuple[int, ...]]:
        """Token and position embeddings, per block: ln1, qkv, attention proj, ln2, mlp in and out
        (weights and biases), final ln; the output head is tied to the token embedding."""
        d = self.width
        block = [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
        return [(self.vocab, d), (self.context, d), *block * self.num_layers, (d,), (d,)]


SHAPES = {
    "gpt-19.6m": GPTShape(vocab=256, context=1024, width=512, num_layers=6),
    "gpt2-124m": GPTShape(vocab=50257, context=1024, width=768, num_layers=12),
    "gpt-1.3b": GPTShape(vocab=50257, context=2048, width=2048, num_layers=24),
}
# For --dry-run only (CPU, Triton interpreter).
TINY_SHAPE = GPTShape(vocab=16, context=8, width=8, num_layers=1)
TIMINGS = ("do_bench", "back_to_back", "sync_each")
TIMING_SUFFIX = {"do_bench": "", "back_to_back": ", back to back", "sync_each": ", sync every step"}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Row:
    name: str
    # (params) -> step function; called once per measurement
    build: Callable[[list[torch.Tensor]], Callable[[], None]]
    # bytes moved per parameter, given (param bytes, state bytes)
    bytes_per_param: Callable[[int], int]
    state_dtype: str  # "param" (same as the parameter) or "fp32" / "bf16"
    needs: str = ""  # optional module


def lion_bytes(param_bytes: int, state_bytes: int) -> int:
    return 2 * param_bytes + param_bytes + 2 * state_bytes  # read p, g, m; write p, m


def adamw_bytes(param_bytes: int, state_bytes: int) -> int:
    return 2 * param_bytes + param_bytes + 4 * state_bytes  # read p, g, m, v; write p, m, v


def optimizer_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    return optimizer.step


def compiled_lion(params: list[torch.Tensor]) -> Callable[[], None]:
    """The foreach impl's whole step through torch.compile (Inductor fuses across tensors)."""
    update = torch.compile(
        lambda ps, gs, ms: lion_update_foreach(ps, gs, ms, lr=1e-4, weight_decay=0.1, beta1=0.9, beta2=0.99)
    )
    detached = [p.detach() for p in params]
    grads = [p.grad for p in params]
    exp_avgs = [torch.zeros_like(p) for p in params]
    return lambda: update(detached, grads, exp_avgs)


def lion_pytorch_step(use_triton: bool, foreach: bool = False):
    def build(params):
        if foreach:
            from lion_pytorch.foreach import Lion as ForeachLion

            return ForeachLion(params, lr=1e-4, weight_decay=0.1).step
        from lion_pytorch import Lion as LionPytorch

        return LionPytorch(params, lr=1e-4, weight_decay=0.1, use_triton=use_triton).step

    return build


def lion_row(name: str, impl: str, state_dtype: str | None, stochastic_rounding: bool = True) -> Row:
    def build(params):
        optimizer = Lion(params, lr=1e-4, weight_decay=0.1, impl=impl, state_dtype=state_dtype)
        optimizer._stochastic_rounding = stochastic_rounding
        return optimizer.step

    return Row(name, build, lion_bytes, state_dtype or "param")


def kernel_row(name: str, state_dtype: str) -> Row:
    """Today's kernel called as a pure function (``lion_update_triton`` with a cache), as the
    ``lion-triton-v1`` rows call theirs: kernel against kernel, without ``Lion.step``'s host work."""

    def build(params):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[state_dtype]
        detached = [p.detach() for p in params]
        grads = [p.grad for p in params]
        exp_avgs = [torch.zeros_like(p, dtype=dtype) for p in params]
        cache, flags = LionTritonCache(check_metadata=False), {}
        return lambda: lion_update_triton(detached, grads, exp_avgs, lr=1e-4, weight_decay=0.1, beta1=0.9, beta2=0.99,
                                          nonfinite_flags=flags, cache=cache)

    return Row(name, build, lion_bytes, state_dtype)


def v1_kernel_row(name: str, state_dtype: str) -> Row:
    """The pre-issue-12 kernel (benchmarks/baselines/lion_triton_v1.py) called as a pure function
    on the params, their grads and its own momenta, as ``Lion(impl="triton")`` called it."""

    def build(params):
        sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))
        from lion_triton_v1 import lion_update_triton as v1_update

        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[state_dtype]
        detached = [p.detach() for p in params]
        grads = [p.grad for p in params]
        exp_avgs = [torch.zeros_like(p, dtype=dtype) for p in params]
        return lambda: v1_update(detached, grads, exp_avgs, lr=1e-4, weight_decay=0.1, beta1=0.9, beta2=0.99)

    return Row(name, build, lion_bytes, state_dtype)


ROWS = {
    "lion-torch": lion_row("lion_bench torch", "torch", None),
    "lion-foreach": lion_row("lion_bench foreach", "foreach", None),
    "lion-triton": lion_row("lion_bench triton, fp32 state", "triton", "fp32"),
    "lion-triton-bf16": lion_row("lion_bench triton, bf16 state", "triton", "bf16"),
    "lion-triton-nearest-bf16": lion_row(
        "lion_bench triton, bf16 state rounded to nearest", "triton", "bf16", stochastic_rounding=False
    ),
    "lion-triton-kernel": kernel_row("lion_bench triton kernel alone, fp32 state", "fp32"),
    "lion-triton-kernel-bf16": kernel_row("lion_bench triton kernel alone, bf16 state", "bf16"),
    "lion-triton-v1": v1_kernel_row("lion_bench triton 2026-11-21 kernel, fp32 state", "fp32"),
    "lion-triton-v1-bf16": v1_kernel_row("lion_bench triton 2026-11-21 kernel, bf16 state", "bf16"),
    "adamw-foreach": Row(
        "torch AdamW foreach",
        lambda params: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1, foreach=True).step,
        adamw_bytes,
        "param",
    ),
    "adamw-fused": Row(
        "torch AdamW fused",
        lambda params: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1, fused=True).step,
        adamw_bytes,
        "param",
    ),
    "lion-compile": Row("torch.compile'd Lion (foreach step)", compiled_lion, lion_bytes, "param"),
    "lion-pytorch": Row("lion-pytorch 0.2.5 torch", lion_pytorch_step(False), lion_bytes, "param", "lion_pytorch"),
    "lion-pytorch-foreach": Row(
        "lion-pytorch 0.2.5 foreach", lion_pytorch_step(False, foreach=True), lion_bytes, "param", "lion_pytorch"
    ),
    "lion-pytorch-triton": Row(
        "lion-pytorch 0.2.5 triton", lion_pytorch_step(True), lion_bytes, "param", "lion_pytorch"
    ),
}


def make_params(shape: GPTShape, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    generator = torch.Generator(device=device).manual_seed(0)
    params = []
    for tensor_shape in shape.tensor_shapes():
        p = torch.nn.Parameter(torch.randn(tensor_shape, generator=generator, device=device, dtype=dtype) * 0.02)
        p.grad = torch.randn(tensor_shape, generator=generator, device=device, dtype=dtype) * 1e-3
        params.append(p)
    return params


def copy_bandwidth(device: torch.device, num_bytes: int = 2 << 30) -> float:
    """GB/s of a device-to-device copy, counting bytes read plus bytes written."""
    src = torch.randn(num_bytes // 4, device=device)
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), warmup=100, rep=1000, return_mode="median")
    del src, dst
    return 2 * num_bytes / ms / 1e6


def state_bytes(optimizer_like) -> int | None:
    state = getattr(getattr(optimizer_like, "__self__", None), "state", None)
    if state is None:
        return None
    return sum(t.numel() * t.element_size() for s in state.values() for t in s.values() if torch.is_tensor(t))


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """(median, 20%, 80%) by linear interpolation."""
    ordered = sorted(values)

    def at(q):
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return at(0.5), at(0.2), at(0.8)


def loop_times(step: Callable[[], None], synchronize: Callable[[], None], num_steps: int, repeats: int = 5) -> dict:
    """Steps issued back to back (no L2 flush) and with a sync after each: ms per step."""
    back_to_back, issue, synced = [], [], []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        for _ in range(num_steps):
            step()
        issued = time.perf_counter()
        synchronize()
        end = time.perf_counter()
        back_to_back.append((end - start) / num_steps * 1e3)
        issue.append((issued - start) / num_steps * 1e3)
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        for _ in range(num_steps):
            step()
            synchronize()
        synced.append((time.perf_counter() - start) / num_steps * 1e3)
    return {"back_to_back": back_to_back, "issue": issue, "sync_each": synced, "loop_steps": num_steps}


def time_row(row: Row, params: list[torch.Tensor], timings: tuple[str, ...] = ("do_bench",), graph: bool = False) -> dict:
    """{timing: result} for the requested timings (do_bench with graph=True: the step replayed from a CUDA graph)."""
    cuda = params[0].is_cuda
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    step = row.build(params)
    step()  # builds state, compiles, autotunes: outside the timing
    synchronize()
    host_start = time.perf_counter()
    for _ in range(10):
        step()
    host_us = (time.perf_counter() - host_start) / 10 * 1e6
    synchronize()
    results = {}
    if "do_bench" in timings:
        timed = step
        if graph:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                step()
            torch.cuda.current_stream().wait_stream(stream)
            cuda_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(cuda_graph):
                step()
            timed = cuda_graph.replay
        if cuda:
            ms, ms_20, ms_80 = triton.testing.do_bench(timed, warmup=50, rep=500, quantiles=[0.5, 0.2, 0.8])
        else:  # --dry-run: a plain timer, only to exercise the code
            ms = ms_20 = ms_80 = loop_times(timed, synchronize, 2, repeats=1)["back_to_back"][0]
        results["do_bench"] = {"ms": ms, "ms_20": ms_20, "ms_80": ms_80, "host_us_per_step": host_us,
                               "state_bytes": state_bytes(step)}
    loops = [t for t in ("back_to_back", "sync_each") if t in timings]
    if loops and not graph:
        # About 0.2 s per repeat, from the host time of the first steps and (if run) do_bench.
        estimate_ms = max(host_us / 1e3, results.get("do_bench", {}).get("ms", 0.0))
        num_steps = 2 if not cuda else int(min(500, max(20, 200 / max(estimate_ms, 1e-3))))
        measured = loop_times(step, synchronize, num_steps)
        issue_ms = quantiles(measured["issue"])[0]
        for timing in loops:
            ms, ms_20, ms_80 = quantiles(measured[timing])
            results[timing] = {"ms": ms, "ms_20": ms_20, "ms_80": ms_80, "loop_steps": num_steps,
                               "host_us_per_step": issue_ms * 1e3 if timing == "back_to_back" else None,
                               "state_bytes": state_bytes(step)}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--timings", nargs="+", default=list(TIMINGS), choices=list(TIMINGS))
    parser.add_argument("--graph", action="store_true", help="also time lion-triton rows replayed from a CUDA graph")
    parser.add_argument("--out", help="JSON lines file for the results")
    parser.add_argument("--dry-run", action="store_true",
                        help="run every selected row once on a tiny shape on the CPU (Triton interpreter); no figures")
    args = parser.parse_args(argv)
    if args.dry_run:
        if os.environ.get("TRITON_INTERPRET") != "1":
            raise SystemExit("--dry-run runs the Triton kernel through its interpreter: set TRITON_INTERPRET=1")
        device, copy_gbps, device_name = torch.device("cpu"), float("nan"), "cpu (dry run)"
        shapes = {"tiny": TINY_SHAPE}
        # Rows that need CUDA (fused AdamW, torch.compile, lion-pytorch's kernel) are left out of a dry run.
        rows = [key for key in args.rows if key not in ("adamw-fused", "lion-compile", "lion-pytorch-triton")]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("optimizer_step.py needs a CUDA device (or --dry-run)")
        device = torch.device("cuda")
        copy_gbps, device_name = copy_bandwidth(device), torch.cuda.get_device_name(device)
        shapes, rows = {name: SHAPES[name] for name in args.shapes}, args.rows
    meta = run_metadata(device_name, copy_gbps=round(copy_gbps, 1))
    print(json.dumps(meta))
    out = open(args.out, "a") if args.out else None
    lines = ["| shape | params | row | state | median ms (20-80%) | GB/s | % of copy | state MiB | host us/step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for shape_name, shape in shapes.items():
        for dtype_name in args.dtypes:
            params = make_params(shape, DTYPES[dtype_name], device)
            num_params = sum(p.numel() for p in params)
            for row_key in rows:
                row = ROWS[row_key]
                if row.needs:
                    try:
                        __import__(row.needs)
                    except ImportError:
                        continue
                # CUDA graphs need CUDA: a dry run leaves those variants out.
                graphed = args.graph and row_key.startswith("lion-triton") and device.type == "cuda"
                variants = [False, True] if graphed else [False]
                for graph in variants:
                    try:
                        results = time_row(row, params, tuple(args.timings), graph=graph)
                    except Exception as error:  # a baseline that fails on this setup is reported, not fatal
                        print(f"{shape_name} {dtype_name} {row_key}: {type(error).__name__}: {error}", file=sys.stderr)
                        if args.dry_run:
                            raise
                        continue
                    param_bytes = DTYPES[dtype_name].itemsize
                    state = row.state_dtype if row.state_dtype != "param" else dtype_name
                    moved = num_params * row.bytes_per_param(param_bytes, DTYPES[state].itemsize)
                    for timing, result in results.items():
                        gbps = moved / result["ms"] / 1e6
                        name = row.name + (", CUDA graph" if graph else "") + TIMING_SUFFIX[timing]
                        record = {**meta, "shape": shape_name, "num_tensors": len(params), "num_params": num_params,
                                  "param_dtype": dtype_name, "state_dtype": state, "row": name, "row_key": row_key,
                                  "timing": timing, "graph": graph, "bytes_moved": moved, "gbps": gbps,
                                  "share_of_copy": gbps / copy_gbps, **result}
                        if out:
                            out.write(json.dumps(record) + "\n")
                            out.flush()
                        state_mib = "" if result["state_bytes"] is None else f"{result['state_bytes'] / 2**20:.0f}"
                        host = "" if result["host_us_per_step"] is None else f"{result['host_us_per_step']:.0f}"
                        line = (f"| {shape_name} ({len(params)} tensors) | {dtype_name} | {name} | {state} | "
                                f"{result['ms']:.3f} ({result['ms_20']:.3f}-{result['ms_80']:.3f}) | {gbps:.0f} | "
                                f"{100 * gbps / copy_gbps:.0f}% | {state_mib} | {host} |")
                        print(line, flush=True)
                        lines.append(line)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            del params
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
