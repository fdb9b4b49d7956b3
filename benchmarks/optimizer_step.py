"""Median optimizer step time on GPT-style parameter lists, against the bandwidth the step needs.

    python benchmarks/optimizer_step.py --out results.jsonl            # every shape, dtype and row
    python benchmarks/optimizer_step.py --shapes gpt-19.6m --dtypes fp32 --rows lion-triton

Each row times ``optimizer.step()`` on random params and grads with ``triton.testing.do_bench``
(median; L2 flushed before each step) and reports effective GB/s from the bytes the step must
move (each input read once, each output written once: fp32 Lion reads p, g, m and writes p, m,
20 B/param) and that as a share of a device-to-device copy measured here (bytes read + written).
Not a test: needs CUDA. Prints a markdown table; ``--out`` also writes one JSON line per row.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
import triton
import triton.testing

from lion_bench.optimizers.lion import Lion, lion_update_foreach


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


def lion_row(name: str, impl: str, state_dtype: str | None) -> Row:
    return Row(
        name,
        lambda params: Lion(params, lr=1e-4, weight_decay=0.1, impl=impl, state_dtype=state_dtype).step,
        lion_bytes,
        state_dtype or "param",
    )


ROWS = {
    "lion-torch": lion_row("lion_bench torch", "torch", None),
    "lion-foreach": lion_row("lion_bench foreach", "foreach", None),
    "lion-triton": lion_row("lion_bench triton, fp32 state", "triton", "fp32"),
    "lion-triton-bf16": lion_row("lion_bench triton, bf16 state", "triton", "bf16"),
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


def time_row(row: Row, params: list[torch.Tensor], graph: bool = False) -> dict:
    step = row.build(params)
    step()  # builds state, compiles, autotunes: outside the timing
    torch.cuda.synchronize()
    host_start = time.perf_counter()
    for _ in range(10):
        step()
    host_us = (time.perf_counter() - host_start) / 10 * 1e6
    torch.cuda.synchronize()
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
    ms, ms_20, ms_80 = triton.testing.do_bench(timed, warmup=50, rep=500, quantiles=[0.5, 0.2, 0.8])
    return {"ms": ms, "ms_20": ms_20, "ms_80": ms_80, "host_us_per_step": host_us, "state_bytes": state_bytes(step)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--graph", action="store_true", help="also time lion-triton rows replayed from a CUDA graph")
    parser.add_argument("--out", help="JSON lines file for the results")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("optimizer_step.py needs a CUDA device")
    device = torch.device("cuda")
    copy_gbps = copy_bandwidth(device)
    meta = {
        "device": torch.cuda.get_device_name(device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "git_sha": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        or "unknown",
        "copy_gbps": round(copy_gbps, 1),
    }
    print(json.dumps(meta))
    out = open(args.out, "a") if args.out else None
    lines = ["| shape | params | row | state | median ms (20-80%) | GB/s | % of copy | state MiB | host us/step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for shape_name in args.shapes:
        for dtype_name in args.dtypes:
            params = make_params(SHAPES[shape_name], DTYPES[dtype_name], device)
            num_params = sum(p.numel() for p in params)
            for row_key in args.rows:
                row = ROWS[row_key]
                if row.needs:
                    try:
                        __import__(row.needs)
                    except ImportError:
                        continue
                variants = [False, True] if args.graph and row_key.startswith("lion-triton") else [False]
                for graph in variants:
                    try:
                        result = time_row(row, params, graph=graph)
                    except Exception as error:  # a baseline that fails on this setup is reported, not fatal
                        print(f"{shape_name} {dtype_name} {row_key}: {type(error).__name__}: {error}", file=sys.stderr)
                        continue
                    param_bytes = DTYPES[dtype_name].itemsize
                    state = row.state_dtype if row.state_dtype != "param" else dtype_name
                    moved = num_params * row.bytes_per_param(param_bytes, DTYPES[state].itemsize)
                    gbps = moved / result["ms"] / 1e6
                    name = row.name + (", CUDA graph" if graph else "")
                    record = {**meta, "shape": shape_name, "num_tensors": len(params), "num_params": num_params,
                              "param_dtype": dtype_name, "state_dtype": state, "row": name, "bytes_moved": moved,
                              "gbps": gbps, "share_of_copy": gbps / copy_gbps, **result}
                    if out:
                        out.write(json.dumps(record) + "\n")
                        out.flush()
                    state_mib = "" if result["state_bytes"] is None else f"{result['state_bytes'] / 2**20:.0f}"
                    line = (f"| {shape_name} ({len(params)} tensors) | {dtype_name} | {name} | {state} | "
                            f"{result['ms']:.3f} ({result['ms_20']:.3f}-{result['ms_80']:.3f}) | {gbps:.0f} | "
                            f"{100 * gbps / copy_gbps:.0f}% | {state_mib} | {result['host_us_per_step']:.0f} |")
                    print(line, flush=True)
                    lines.append(line)
                torch.cuda.empty_cache()
            del params
            torch.cuda.empty_cache()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
