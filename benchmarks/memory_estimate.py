"""The memory check's estimate (``plan.memory_need``) against the memory runs really peak at: the
estimate must stay below the peak (a lower bound), or the check could refuse a run that fits.

On CUDA the peak is the allocator's (``torch.cuda.max_memory_allocated`` since the run started); on
the CPU the resident set since the run started, minus the resident set at the start (each config in
a process of its own: memory a run freed stays resident for the next). One JSON line per config, then
the largest estimate / peak ratio (must be < 1).

    python benchmarks/memory_estimate.py --device cpu             # a few seconds per config
    python benchmarks/memory_estimate.py --device cuda            # the GPU: bf16 autocast, compiled
    python benchmarks/memory_estimate.py --device cpu --quick     # two small configs (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_module

from lion_bench.checks import resolved_config
from lion_bench.devices import resolve_device
from lion_bench.estimates import memory_need
from lion_bench.runs.environment import environment
from lion_bench.trainer import train

CONFIGS = [
    [],
    ["sweep=quickstart"],
    ["task.model.n_layer=6", "task.model.d_model=256", "trainer.batch_size=32"],
    ["task.model.seq_len=512", "task.model.n_layer=2", "trainer.batch_size=64"],
    ["optimizer=adamw", "task.model.n_layer=8", "task.model.d_model=512", "trainer.batch_size=8"],
    ["task=lstm_conv", "task.model.seq_len=256", "trainer.batch_size=256"],
    ["task=image", "task.model.channels=[64,128]", "trainer.batch_size=2048"],
    ["task=mlp", "trainer.batch_size=4096"],
    ["task=mlp", "task.data.num_val=2000000"],
    ["task=quadratic", "trainer.batch_size=65536"],
]
CUDA_CONFIGS = [
    ["task.model.n_layer=6", "task.model.d_model=512", "task.model.n_head=8", "task.model.seq_len=1024",
     "trainer.batch_size=16"],
    ["optimizer.state_dtype=bf16", "task.model.n_layer=12", "task.model.d_model=768", "task.model.n_head=12",
     "task.model.seq_len=1024", "trainer.batch_size=8"],
]


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(overrides: list[str], device: str, steps: int) -> dict:
    common = [f"device={device}", f"trainer.max_steps={steps}", "trainer.schedule.warmup_steps=0",
              "trainer.progress=false", "trainer.eval_every=1000000"]
    with initialize_config_module(config_module="lion_bench.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*common, *overrides])
    config = resolved_config(cfg)
    resolved = resolve_device(device)
    need = memory_need(config, resolved)
    start = resident_bytes() if resolved.type == "cpu" else 0
    with tempfile.TemporaryDirectory() as directory:
        record = train(cfg, Path(directory) / "run")
    peak = record.peak_memory_bytes - start
    return {"overrides": " ".join(overrides), "estimate_bytes": need, "peak_bytes": peak,
            "peak_kind": record.peak_memory_kind, "ratio": round(need / peak, 3) if peak > 0 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="two small configs only")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a JSON list of overrides: measure it, print its row
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(measure(json.loads(arguments.one), arguments.device, arguments.steps)))
        return
    configs = CONFIGS + (CUDA_CONFIGS if arguments.device.startswith("cuda") else [])
    configs = [configs[0], configs[-1]] if arguments.quick else configs
    print(json.dumps({"environment": environment(resolve_device(arguments.device))}, default=str))
    ratios = []
    for overrides in configs:
        command = [sys.executable, __file__, "--device", arguments.device, "--steps", str(arguments.steps),
                   "--one", json.dumps(overrides)]
        row = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        ratios.append(row["ratio"] or 0)
        print(json.dumps(row), flush=True)
    print(json.dumps({"largest_ratio": max(ratios), "below_peak": max(ratios) < 1}))


if __name__ == "__main__":
    main()
