"""Sweep throughput on one GPU: N real lion-bench trials sharing it, packed each way lion-bench offers,
against one bare compiled training loop on the same model and batch.

    python benchmarks/sweep_throughput.py --quick --out sweep.jsonl      # the priority rows, ~5-6 min (GPU)
    python benchmarks/sweep_throughput.py --out sweep.jsonl              # every row (much longer)
    python benchmarks/sweep_throughput.py --lr-grid --out lr_grid.jsonl  # rerun the claim_map study's lr_grid sweep
    python benchmarks/sweep_throughput.py --dry-run                      # CPU, tiny model: every code path

Settings (the study's two): ``batch16``, the 6x512 byte decoder (1024 context, 19.6M parameters) at batch
16 with clipping 0.5 and a cosine schedule (the lr_grid trials), and ``recipe``, lion-pytorch's recipe:
micro-batch 4 x 4 accumulation, clipping 0.5, constant lr. bf16 autocast, evaluation every 50 steps (64
windows), the embedded corpus. Each row is one ``lion-bench -m`` command (a fresh process, as a user runs
it) training N trials (AdamW and Lion, N/2 seeds each; N = 1: AdamW) with ``trainer.compile`` off or on,
packed by:

- ``solo``: N = 1, the basic launcher;
- ``processes``: ``hydra/launcher=workers`` with N worker processes sharing the GPU;
- ``processes+mps``: the same with the CUDA multi-process service running (started here with
  ``nvidia-cuda-mps-control -d`` in private pipe and log directories, stopped after the row; the row is
  skipped, saying why, where it cannot start);
- ``batched``: ``hydra/launcher=packed`` with ``pack=N``: the N trials trained as one batched model.

Each row reports, from the trials' own records: per-GPU steady tokens/s (the sum of the trials' steady
``train_tokens_per_s``: they run at the same time; for ``processes`` rows their steady windows overlap only
mostly, so ``tokens/s end to end``, every trained token over the command's wall time, is given beside it),
trials per GPU-hour from the command's wall time (start-up, compile, evaluation included; short trials
here, so start-up weighs more than in a study: the per-trial phases are in the JSON lines), GPU memory per
trial (the device's peak used memory read with nvidia-smi every 0.2 s, CUDA contexts included, / N), and
each trial's compile seconds (the first trial of a setting compiles cold unless the compile cache is warm).
The reference, run in its own process in the same call: ``train_throughput.bare_ms``, the bare loop with
fused AdamW (and the Triton Lion with ``--bare-optimizers``), compiled and eager, on the same model and batch.
Every JSON line carries ``run_metadata()``. ``--budget-s`` stops starting rows after that many seconds
(rows run in priority order), so a call of fixed length still ends with a table.

``--lr-grid`` instead reruns the claim_map study's lr_grid sweep (30 trials: AdamW at 5 lrs, Lion at the
same lrs / 3, 3 seeds, 1500 steps, evaluation every 75 steps on 64 windows in batches of 64, every
validation byte at the end) on this one GPU with the packing given by ``--lr-grid-launcher`` and reports
its GPU time against the study's: the sum of its trials' ``time_s.total`` / 4 (4 trials shared each H200)
= 527 GPU-seconds (target: <= 40%, 211 s). The study's data was python3.11-doc's HTML (50.7 MB:
``--lr-grid-data PATH``); without it the embedded corpus stands in (other validation size: the final
evaluation costs differ).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from run_metadata import run_metadata

BENCHMARKS = Path(__file__).resolve().parent
MODEL = ["task.model.seq_len=1024", "task.model.d_model=512", "task.model.n_layer=6", "task.model.n_head=8"]
SETTINGS = {
    # lr_grid's trials (claim_map study): batch 16, clip 0.5, cosine with 5% warmup.
    "batch16": {"overrides": ["trainer.batch_size=16", "trainer.grad_accum_steps=1", "trainer.grad_clip=0.5",
                              "trainer.schedule.warmup_fraction=0.05"], "batch_size": 16, "grad_accum_steps": 1},
    # readme_repro's trials: lion-pytorch's recipe, micro-batch 4 x 4 accumulation, constant lr.
    "recipe": {"overrides": ["trainer.batch_size=4", "trainer.grad_accum_steps=4", "trainer.grad_clip=0.5",
                             "trainer.schedule.name=constant", "trainer.schedule.warmup_steps=0"],
               "batch_size": 4, "grad_accum_steps": 4},
}
COMMON = [*MODEL, "trainer.precision=bf16", "trainer.progress=false", "trainer.eval_every=50", "trainer.log_every=10",
          "trainer.checkpoint_minutes=0", "device=cuda", "logger=none"]
DRY = ["task.data.max_bytes=200000", "task.model.seq_len=32", "task.model.d_model=32", "task.model.n_layer=1",
       "task.model.n_head=2", "task.eval.num_windows=8", "trainer.progress=false", "trainer.eval_every=50",
       "trainer.log_every=2", "trainer.checkpoint_minutes=0", "device=cpu", "logger=none"]
MODES = ("solo", "processes", "processes+mps", "batched")
# (setting, mode, N, compile) in priority order: what --quick runs, until --budget-s.
QUICK = [
    ("batch16", "solo", 1, True), ("batch16", "batched", 4, True), ("batch16", "processes", 4, True),
    ("recipe", "batched", 4, True), ("recipe", "processes", 4, True), ("batch16", "batched", 8, True),
    ("batch16", "processes+mps", 4, True), ("recipe", "batched", 8, True), ("batch16", "processes", 4, False),
    ("batch16", "batched", 4, False), ("recipe", "processes+mps", 4, True), ("batch16", "processes", 8, True),
    ("recipe", "solo", 1, True), ("batch16", "solo", 1, False), ("recipe", "processes", 8, True),
    ("batch16", "batched", 2, True), ("batch16", "processes", 2, True),
]
STUDY_LR_GRID_GPU_S = 527.0  # sum of the 30 lr_grid trials' time_s.total (2107 s) / 4 trials per H200


def trial_overrides(n: int) -> list[str]:
    """N trials: AdamW and Lion with N/2 seeds each (N = 1: AdamW, seed 0)."""
    if n == 1:
        return ["optimizer=adamw", "seed=0"]
    assert n % 2 == 0, n
    return ["optimizer=adamw,lion", "seed=" + ",".join(str(seed) for seed in range(n // 2))]


def mode_overrides(mode: str, n: int) -> list[str]:
    if mode == "solo":
        return []
    if mode in ("processes", "processes+mps"):
        return ["hydra/launcher=workers", f"hydra.launcher.workers={n}"]
    return ["hydra/launcher=packed", f"hydra.launcher.pack={n}", "hydra.launcher.workers=1"]


class MemoryPoller:
    """The GPU's used memory (nvidia-smi, MiB) polled every 0.2 s in a thread: its peak."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.peak_mib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            result = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i",
                                     os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]],
                                    capture_output=True, text=True)
            try:
                self.peak_mib = max(self.peak_mib, int(result.stdout.split()[0]))
            except (IndexError, ValueError):
                pass
            self._stop.wait(0.2)

    def __enter__(self) -> "MemoryPoller":
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()


class Mps:
    """The CUDA multi-process service in private directories, for one row: ``env`` for its clients."""

    def __init__(self, root: Path):
        self.env = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": str(root / "mps_pipe"),
                    "CUDA_MPS_LOG_DIRECTORY": str(root / "mps_log")}
        self.problem: str | None = None

    def __enter__(self) -> "Mps":
        control = shutil.which("nvidia-cuda-mps-control")
        if control is None:
            self.problem = "nvidia-cuda-mps-control not found"
            return self
        for key in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
            Path(self.env[key]).mkdir(parents=True, exist_ok=True)
        started = subprocess.run([control, "-d"], env=self.env, capture_output=True, text=True)
        if started.returncode != 0:
            self.problem = f"nvidia-cuda-mps-control -d failed: {(started.stderr or started.stdout).strip()[:200]}"
        time.sleep(1.0)
        return self

    def __exit__(self, *exc) -> None:
        control = shutil.which("nvidia-cuda-mps-control")
        if control and self.problem is None:
            subprocess.run([control], input="quit\n", env=self.env, capture_output=True, text=True)
            time.sleep(1.0)


def read_records(sweep_dir: Path) -> list[dict]:
    return [json.loads(Path(path).read_text()) for path in sorted(glob.glob(str(sweep_dir / "*" / "run.json")))]


def run_sweep(root: Path, name: str, overrides: list[str], env: dict | None, timeout: float, gpu: bool) -> dict:
    """One ``lion-bench -m`` command; its wall time, output tail, the trials' records and the GPU's peak memory."""
    sweep_dir = root / name
    command = [sys.executable, "-m", "lion_bench.train", "-m", f"output_root={root / 'out'}",
               f"hydra.sweep.dir={sweep_dir}", *overrides]
    with MemoryPoller(gpu) as memory:
        start = time.perf_counter()
        try:
            result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
            returncode, output = result.returncode, result.stdout + result.stderr
        except subprocess.TimeoutExpired as expired:  # the row reports what finished
            returncode, output = "timeout", f"{expired.stdout or ''}{expired.stderr or ''}"
            output = output.decode(errors="replace") if isinstance(output, bytes) else output
        wall_s = time.perf_counter() - start
    return {"returncode": returncode, "wall_s": wall_s, "records": read_records(sweep_dir),
            "peak_gpu_mib": memory.peak_mib or None, "tail": output[-1500:], "command": " ".join(command[2:])}


def summarize(sweep: dict, n: int) -> dict:
    records = sweep["records"]
    finished = [r for r in records if r.get("status") == "finished"]
    steady = [r["train_tokens_per_s"] for r in finished if r.get("train_tokens_per_s")]
    tokens = sum(r.get("tokens") or 0 for r in records)
    return {
        "trials": len(records), "finished": len(finished), "returncode": sweep["returncode"],
        "wall_s": sweep["wall_s"],
        "per_gpu_steady_tokens_per_s": sum(steady) if len(steady) == n else None,
        "per_trial_steady_tokens_per_s": steady,
        "tokens_per_s_end_to_end": tokens / sweep["wall_s"],
        "trials_per_gpu_hour": len(finished) / sweep["wall_s"] * 3600,
        "gpu_memory_per_trial_mib": sweep["peak_gpu_mib"] / n if sweep["peak_gpu_mib"] else None,
        "allocator_peak_per_trial_mib": [r["peak_memory_bytes"] / 2**20 / (r["environment"].get("packed") or {}).get(
            "members", 1) for r in finished if r.get("peak_memory_bytes")],
        "time_s": [r.get("time_s") for r in records],
        "compile_s": [round(r["time_s"].get("compile", 0.0), 2) for r in records if r.get("time_s")],
        "packed": [(r.get("environment") or {}).get("packed") for r in records],
        "compile_cache": sorted({str((r.get("environment") or {}).get("compile_cache")) for r in records}),
        "command": sweep["command"],
        "tail": sweep["tail"] if sweep["returncode"] != 0 or len(finished) < n else None,
    }


def bare_row(setting: str, optimizer: str, compiled: bool, steps: int, dry: bool, cache_dir: Path, timeout: float
             ) -> dict:
    """``train_throughput.bare_ms`` in its own process (so that this one never holds a CUDA context,
    which the multi-process service would not share)."""
    config = SETTINGS[setting]
    impl = [] if dry else [f"optimizer.impl={'triton' if optimizer == 'lion' else 'fused'}"]
    overrides = [*(DRY if dry else COMMON), *config["overrides"], f"optimizer={optimizer}", *impl]
    window = (2, steps) if dry else (30, steps)
    device = "cpu" if dry else "cuda"
    # The trials' compile cache (trainer.compile_cache), so the bare loop and the trials share compiled graphs.
    code = (
        "import json, sys, torch; sys.path.insert(0, %r)\n"
        "from lion_bench.runs.compile_cache import use_compile_cache\n"
        "from train_throughput import bare_ms\n"
        "use_compile_cache(%r, torch.device(%r))\n"
        "ms = bare_ms(%r, %d, %r, %r, batch_size=%d, grad_accum_steps=%d, device=%r)\n"
        "print('BARE_MS', json.dumps(ms))\n"
    ) % (str(BENCHMARKS), str(cache_dir), device, overrides, steps, window, compiled, config["batch_size"],
         config["grad_accum_steps"], device)
    start = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": time.perf_counter() - start}
    wall_s = time.perf_counter() - start
    lines = [line for line in result.stdout.splitlines() if line.startswith("BARE_MS")]
    if result.returncode != 0 or not lines:
        return {"error": (result.stdout + result.stderr)[-1500:], "wall_s": wall_s}
    ms = json.loads(lines[-1].split(" ", 1)[1])
    tokens_per_step = config["batch_size"] * config["grad_accum_steps"] * (32 if dry else 1024)
    return {"ms_per_step": ms, "tokens_per_s": tokens_per_step / ms * 1000, "wall_s": wall_s, "window": list(window)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the priority rows only (QUICK), for a call of ~6 min")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, 2 trials: every code path")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--n", nargs="+", type=int, default=[1, 2, 4, 8], help="trials per row (1 or even)")
    parser.add_argument("--compile", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--steps", type=int, default=None, help="steps per trial (default 150; --quick 120)")
    parser.add_argument("--bare-optimizers", nargs="+", choices=["adamw", "lion"], default=["adamw"])
    parser.add_argument("--budget-s", type=float, default=None, help="start no row after this many seconds "
                        "(default: --quick 330, else none)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="trainer.compile_cache for every row "
                        "(default: a new directory, so the first compile of each shape is cold)")
    parser.add_argument("--lr-grid", action="store_true", help="rerun the study's lr_grid sweep instead (see above)")
    parser.add_argument("--lr-grid-launcher", nargs="*", default=["hydra/launcher=packed", "hydra.launcher.pack=4",
                                                                  "hydra.launcher.workers=2"])
    parser.add_argument("--lr-grid-data", default=None, help="the study's pydoc_html.txt (else the embedded corpus)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    dry = args.dry_run
    steps = args.steps or (14 if dry else 120 if args.quick else 150)
    budget = args.budget_s if args.budget_s is not None else (330.0 if args.quick else None)
    root = Path(tempfile.mkdtemp(prefix="sweep_throughput_"))
    cache_dir = args.cache_dir or root / "compile_cache"
    gpu = not dry
    device = "cpu (dry run)" if dry else subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"], capture_output=True, text=True
    ).stdout.strip() or "unknown GPU"
    meta = run_metadata(device, steps_per_trial=steps, cache_dir=str(cache_dir))
    rows: list[dict] = []
    started = time.perf_counter()

    def emit(row: dict) -> None:
        row = {**meta, **row}
        rows.append(row)
        shown = ("row", "setting", "mode", "n", "compile", "optimizer", "tokens_per_s", "per_gpu_steady_tokens_per_s",
                 "wall_s", "trials_per_gpu_hour", "compile_s", "finished", "reason", "error")
        print(json.dumps({k: row[k] for k in shown if k in row}), flush=True)
        if row.get("tail"):
            print(row["tail"], file=sys.stderr, flush=True)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")

    if args.lr_grid:
        lr_grid(args, root, cache_dir, emit)
        return

    if dry:
        plan = [(setting, mode, n, False) for setting in args.settings for n in (1, 2)
                for mode in ("solo", "processes", "batched") if (mode == "solo") == (n == 1)]
    elif args.quick:
        plan = [row for row in QUICK if row[0] in args.settings and row[1] in args.modes]
    else:
        plan = [(setting, mode, n, compiled == "on") for setting in args.settings for compiled in args.compile
                for n in args.n for mode in args.modes if (mode == "solo") == (n == 1)]
    bare_done: set[tuple[str, str, bool]] = set()
    for setting, mode, n, compiled in plan:
        if budget is not None and time.perf_counter() - started > budget:
            emit({"row": "skipped", "setting": setting, "mode": mode, "n": n, "compile": compiled,
                  "reason": f"budget of {budget:.0f} s spent"})
            continue
        overrides = [*(DRY if dry else COMMON), *SETTINGS[setting]["overrides"], *trial_overrides(n),
                     *mode_overrides(mode, n), f"trainer.max_steps={steps}", f"trainer.compile={str(compiled).lower()}",
                     f"trainer.compile_cache={cache_dir}"]
        name = f"{setting}_{mode.replace('+', '_')}_n{n}_{'compiled' if compiled else 'eager'}"
        if mode == "processes+mps":
            with Mps(root / name) as mps:
                if mps.problem:
                    emit({"row": "skipped", "setting": setting, "mode": mode, "n": n, "compile": compiled,
                          "reason": mps.problem})
                    continue
                sweep = run_sweep(root, name, overrides, mps.env, timeout=900, gpu=gpu)
        else:
            sweep = run_sweep(root, name, overrides, None, timeout=900, gpu=gpu)
        emit({"row": "sweep", "setting": setting, "mode": mode, "n": n, "compile": compiled, **summarize(sweep, n)})
        # The bare loop of a setting after its first row (whose first trial compiles cold, so its record
        # shows a cold compile): compiled, and eager (not in --quick unless the row was eager).
        for optimizer in args.bare_optimizers:
            for bare_compiled in (False,) if dry else (True, False) if not args.quick or not compiled else (True,):
                if (setting, optimizer, bare_compiled) in bare_done:
                    continue
                bare_done.add((setting, optimizer, bare_compiled))
                result = bare_row(setting, optimizer, bare_compiled, 40 if dry else max(steps, 150), dry, cache_dir,
                                  timeout=600)
                emit({"row": "bare", "setting": setting, "optimizer": optimizer, "compile": bare_compiled, **result})
    print_table(rows, meta)


def lr_grid(args, root: Path, cache_dir: Path, emit) -> None:
    """The claim_map study's lr_grid sweep on this GPU (its README's command without Ray)."""
    data = (["task.data.path=" + args.lr_grid_data, "task.data.max_bytes=null"] if args.lr_grid_data
            else ["task.data.max_bytes=null"])
    overrides = ["sweep=lr_grid", *data, "task.eval.final=full_valid", "task.eval.batch_size=64", *MODEL,
                 "trainer.grad_clip=0.5", "trainer.max_steps=1500", "trainer.eval_every=75", "trainer.batch_size=16",
                 "trainer.schedule.warmup_fraction=0.05", "trainer.progress=false", "device=cuda",
                 f"trainer.compile_cache={cache_dir}", *args.lr_grid_launcher]
    sweep = run_sweep(root, "lr_grid", overrides, None, timeout=3600, gpu=True)
    summary = summarize(sweep, 30)
    emit({"row": "lr_grid", "launcher": args.lr_grid_launcher, "data": args.lr_grid_data or "embedded corpus",
          "gpu_s": sweep["wall_s"], "study_gpu_s": STUDY_LR_GRID_GPU_S,
          "fraction_of_study": sweep["wall_s"] / STUDY_LR_GRID_GPU_S, **summary})
    print(f"\nlr_grid: {summary['finished']}/30 trials in {sweep['wall_s']:.0f} GPU-seconds on one GPU "
          f"({sweep['wall_s'] / STUDY_LR_GRID_GPU_S:.0%} of the study's {STUDY_LR_GRID_GPU_S:.0f}; target <= 40%)")


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def print_table(rows: list[dict], meta: dict) -> None:
    bare = {(r["setting"], r["optimizer"], r["compile"]): r.get("tokens_per_s") for r in rows if r["row"] == "bare"}
    print(f"\n{meta['device']}, torch {meta['torch']}, commit {meta['git_sha']}, {meta['date']}, "
          f"{meta['steps_per_trial']} steps per trial")
    print("| setting | row | N | compile | per-GPU steady tokens/s | x bare compiled AdamW | tokens/s end to end | "
          "trials / GPU-hour | GPU MiB / trial | compile s per trial |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        compiled = "on" if row.get("compile") else "off"
        reference = bare.get((row.get("setting"), "adamw", True))
        if row["row"] == "bare":
            speed = row.get("tokens_per_s")
            ratio = speed / reference if speed and reference else None
            print(f"| {row['setting']} | bare loop, {row['optimizer']} | 1 | {compiled} | {_fmt(speed, ',.0f', 'failed')} "
                  f"| {_fmt(ratio, '.2f')} | | | | |")
        elif row["row"] == "sweep":
            steady = row.get("per_gpu_steady_tokens_per_s")
            ratio = steady / reference if steady and reference else None
            missing = "{}/{} finished".format(row["finished"], row["n"])
            print(f"| {row['setting']} | {row['mode']} | {row['n']} | {compiled} | {_fmt(steady, ',.0f', missing)} | "
                  f"{_fmt(ratio, '.2f')} | {_fmt(row['tokens_per_s_end_to_end'], ',.0f')} | "
                  f"{_fmt(row['trials_per_gpu_hour'], '.0f')} | {_fmt(row.get('gpu_memory_per_trial_mib'), '.0f')} | "
                  f"{', '.join(map(str, row['compile_s']))} |")
        elif row["row"] == "skipped":
            print(f"| {row['setting']} | {row['mode']} | {row['n']} | {compiled} | skipped: {row['reason']} | | | | | |")


if __name__ == "__main__":
    main()
