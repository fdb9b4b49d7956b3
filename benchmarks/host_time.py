"""Host (Python) time of ``Lion.step`` per step, on the CPU, with the kernel launch stubbed out.

    python benchmarks/host_time.py                       # the three GPT parameter lists of optimizer_step.py
    python benchmarks/host_time.py --impls triton foreach --steps 5000

What a GPU host spends issuing an optimizer step, minus the Triton launch itself (which needs a
GPU): the gathering of tensors, the table-key checks and the argument preparation. Tensors are tiny
(one row of each shape), since host work does not depend on sizes. For the triton impl the kernel
object is replaced by a no-op (``TRITON_INTERPRET=1`` only lets the tables be built on the CPU; no
kernel runs). Not a test; figures are for comparing code versions on one machine (benchmarks/NOTES.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optimizer_step import SHAPES  # noqa: E402

from lion_bench.optimizers import lion_triton  # noqa: E402
from lion_bench.optimizers.lion import Lion  # noqa: E402


class _NoLaunch:
    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impls", nargs="+", default=["triton"], choices=["torch", "foreach", "triton"])
    parser.add_argument("--state-dtype", default=None, choices=[None, "fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    lion_triton._lion_kernel = _NoLaunch()
    print("| shape | tensors | impl | host us per Lion.step (median of repeats, min-max) |")
    print("|---|---|---|---|")
    for name, shape in SHAPES.items():
        shapes = shape.tensor_shapes()
        for impl in args.impls:
            params = [torch.nn.Parameter(torch.zeros(s[:1])) for s in shapes]
            for p in params:
                p.grad = torch.zeros_like(p)
            state_dtype = args.state_dtype if impl == "triton" else None
            optimizer = Lion(params, lr=1e-4, weight_decay=0.1, impl=impl, state_dtype=state_dtype)
            for _ in range(10):
                optimizer.step()
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for _ in range(args.steps):
                    optimizer.step()
                times.append((time.perf_counter() - start) / args.steps * 1e6)
            print(f"| {name} | {len(params)} | {impl} | {statistics.median(times):.1f} ({min(times):.1f}-{max(times):.1f}) |")


if __name__ == "__main__":
    main()
