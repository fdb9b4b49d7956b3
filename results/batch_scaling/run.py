"""Runs study 3 (results/batch_scaling/protocol.yaml): at each batch size, each optimizer's lr grid (A, extended
outward while its best lr is at an edge), weight-decay grid at that lr (B, extended upward likewise) and best
arm on the answer seeds (C), choosing arms with the report's own rule
(``lion_bench.results.claims.selection.best_arm``: the lowest mean final val loss over the selection seeds).

    python results/batch_scaling/run.py --batch 1024 256 64 16 --corpus /tmp/data/pydoc_html.txt --until $END
    python results/batch_scaling/run.py --scale cpu --corpus pydoc_html.txt           # the smaller width, on CPU
    python results/batch_scaling/run.py --plan          # what has run and what is left, nothing started

Every phase is ``lion-bench -m`` started ``--workers`` times on one sweep directory (the per-trial locks split
the trials), so a batch size resumes where it stopped when run again (a trial interrupted mid-run starts over
unless its checkpoint is there); ``--until`` (seconds since the epoch) stops cleanly before a deadline.
Records land in results/batch_scaling/runs/bs<batch>/.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lion_bench.results.claims.selection import arm_grid, best_arm
from lion_bench.results.load import load_local

STUDY = Path(__file__).resolve().parent
SELECTION, ANSWER = (0, 1), (2, 3, 4, 5, 6)
BATCHES = (1024, 256, 64, 16)
REFERENCE_BATCH = 16
# lr = base / divisor, base = BASE_LR * sqrt(batch / 16); each grid extends by a factor 2 outward, twice at most.
DIVISORS = {"adamw": (4.0, 2.0, 1.0, 0.5), "lion": (24.0, 12.0, 6.0, 3.0)}
WEIGHT_DECAYS = {"adamw": (0.1, 0.3), "lion": (1.0, 3.0)}  # beyond 0 (phase A); extends x3 upward, twice at most
MAX_EXTENSIONS = 2
ARMS = {"adamw": "adamw_grid", "lion": "lion_own_grid"}
COMMON = ["task=text", "task.data.max_bytes=null", "task.eval.num_windows=512", "trainer.budget=tokens",
          f"trainer.reference_batch_size={REFERENCE_BATCH}", "trainer.grad_clip=0.5", "trainer.compile=false",
          "trainer.schedule.warmup_fraction=0.1", "trainer.eval_every=100000", "trainer.log_every=16",
          "trainer.checkpoint_minutes=0"]
# Two scales, each its own study directory and protocol: "gpu" (study 3, results/batch_scaling) and "cpu"
# (the same procedure at a smaller width, results/batch_scaling_cpu). WORKERS: processes per optimizer.
SCALES = {
    "gpu": {"study": STUDY, "base_lr": 1e-3, "workers": {1024: 1, 256: 2, 64: 2, 16: 3},
            # 16 x 4096 sequences of 256 bytes: 16.8M tokens per run
            "setting": ["task.model.seq_len=256", "task.model.d_model=512", "task.model.n_layer=6",
                        "task.model.n_head=8", "task.eval.batch_size=128", "trainer.max_steps=4096"]},
    "cpu": {"study": STUDY.parent / "batch_scaling_cpu", "base_lr": 4e-3, "workers": {1024: 1, 256: 1, 64: 1, 16: 1},
            # 16 x 1024 sequences of 64 bytes: 1.05M tokens per run
            "setting": ["task.model.seq_len=64", "task.model.d_model=64", "task.model.n_layer=2",
                        "task.model.n_head=2", "task.eval.batch_size=256", "trainer.max_steps=1024", "device=cpu"]},
}
BASE_LR = 1e-3  # the scale's (main sets it)
RUNS = STUDY / "runs"
EXTRA: list[str] = []  # --extra: more overrides for every phase (a dry run at a tiny size)


def base_lr(batch: int) -> float:
    return BASE_LR * math.sqrt(batch / REFERENCE_BATCH)


def seeds(values) -> str:
    return "seed=" + ",".join(map(str, values))


def number(value: float) -> str:
    return f"{value:g}"


class Deadline(Exception):
    """The --until deadline stopped a phase; what finished is on disk, the rest runs next time."""


def sweep(batch: int, overrides: list[str], workers: int, deadline: float, setting: list[str]) -> None:
    """``lion-bench -m`` ``workers`` times at once on the batch size's sweep directory."""
    part = f"bs{batch}"
    command = [sys.executable, "-m", "lion_bench.train", "-m", "sweep=tuned",
               f"sweep.name={part}", f"hydra.sweep.dir={RUNS / part}", "trainer.progress=false",
               f"trainer.batch_size={batch}", f"base.lr={base_lr(batch):.6g}", *setting, *overrides, *EXTRA]
    if deadline - time.time() < 60:
        raise Deadline
    print(f"[{time.strftime('%H:%M:%S')}] {part}: {' '.join(overrides)} x {workers}", flush=True)
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for _ in range(workers)]
    stopped = False
    for process in processes:
        try:
            process.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            stopped = True
            for other in processes:
                other.send_signal(signal.SIGINT)
            process.wait()
    for process in processes:
        errors = process.stderr.read().strip().splitlines()
        if process.returncode not in (0, 130) and errors:
            print(f"  exit {process.returncode}: {errors[-1][:300]}", flush=True)
    if stopped:
        raise Deadline


def records(batch: int, optimizer: str):
    """The optimizer's finished or diverged runs of the batch size on the selection seeds."""
    directory = RUNS / f"bs{batch}"
    if not directory.exists():
        return None
    with warnings.catch_warnings():  # the other optimizer's trials still running have no run.json yet
        warnings.simplefilter("ignore")
        runs, _ = load_local([directory])
    if runs.empty:
        return None
    return runs[(runs["optimizer"] == optimizer) & runs["seed"].isin(SELECTION)]


def best(batch: int, optimizer: str, weight_decay: float | None = None) -> tuple[float, float] | None:
    """(lr, weight decay) of the optimizer's best arm on the selection seeds (at ``weight_decay`` if given)."""
    mine = records(batch, optimizer)
    if mine is None or mine.empty:
        return None
    if weight_decay is not None:
        mine = mine[mine["wd_key"] == float(f"{weight_decay:.6g}")]
    arms, values = arm_grid(mine, "final_val_loss")
    return best_arm(arms, values, list(SELECTION))


def lr_of(batch: int, divisor: float) -> float:
    return float(f"{base_lr(batch) / divisor:.6g}")


def point(divisor: float) -> str:
    """The grid point's name in sweep.grid: d4, d0_5, ..."""
    return "d" + number(divisor).replace(".", "_")


def arm(optimizer: str, divisors, weight_decays) -> list[str]:
    """Overrides for the optimizer's arm at ``divisors`` (its own grid points, sweep=tuned's mechanism)."""
    grid = [f"++sweep.grid.{optimizer}.{point(divisor)}={number(divisor)}" for divisor in divisors]
    decay = [f"base.weight_decay={','.join(map(number, weight_decays))}"]
    if optimizer == "lion":
        decay.append("optimizer.wd_multiplier=1")
    return [f"arm={ARMS[optimizer]}", *grid, f"sweep.point={','.join(map(point, divisors))}", *decay]


def lr_phase(batch: int, optimizer: str, workers: int, deadline: float, setting: list[str]) -> float:
    """Phase A for one optimizer: its grid at weight decay 0, extended outward while its best lr is at an
    edge. Returns the divisor of the best lr."""
    grid = list(DIVISORS[optimizer])
    sweep(batch, [*arm(optimizer, grid, [0]), seeds(SELECTION)], workers, deadline, setting)
    for extension in range(MAX_EXTENSIONS + 1):  # returns at the latest after MAX_EXTENSIONS extensions
        pick = best(batch, optimizer, 0.0)
        if pick is None:
            raise RuntimeError(f"bs{batch} {optimizer}: no lr ran on every selection seed; see traceback.txt")
        divisor = min(grid, key=lambda d: abs(lr_of(batch, d) - pick[0]) / pick[0])
        if divisor not in (min(grid), max(grid)) or extension == MAX_EXTENSIONS:
            return divisor
        outward = divisor * 2 if divisor == max(grid) else divisor / 2  # a larger divisor is a smaller lr
        grid.append(outward)
        print(f"  bs{batch} {optimizer}: best lr {pick[0]:.3g} at its grid's edge: adding lr "
              f"{lr_of(batch, outward):.3g}", flush=True)
        sweep(batch, [*arm(optimizer, [outward], [0]), seeds(SELECTION)], workers, deadline, setting)
    return divisor


def wd_phase(batch: int, optimizer: str, divisor: float, workers: int, deadline: float,
             setting: list[str]) -> None:
    """Phase B for one optimizer: its weight decays at its best lr, extended upward while the largest is best."""
    decays = list(WEIGHT_DECAYS[optimizer])
    sweep(batch, [*arm(optimizer, [divisor], decays), seeds(SELECTION)], workers, deadline, setting)
    for _ in range(MAX_EXTENSIONS):
        pick = best_at_lr(batch, optimizer, divisor)
        if pick is None or not math.isclose(pick[1], decays[-1], rel_tol=1e-6):
            return
        decays.append(decays[-1] * 3)
        print(f"  bs{batch} {optimizer}: best weight decay {pick[1]:g} is its grid's largest: adding "
              f"{decays[-1]:g}", flush=True)
        sweep(batch, [*arm(optimizer, [divisor], [decays[-1]]), seeds(SELECTION)], workers, deadline, setting)


def best_at_lr(batch: int, optimizer: str, divisor: float) -> tuple[float, float] | None:
    mine = records(batch, optimizer)
    mine = mine[mine["lr_key"] == lr_of(batch, divisor)]
    arms, values = arm_grid(mine, "final_val_loss")
    return best_arm(arms, values, list(SELECTION))


def tune(batch: int, optimizer: str, workers: int, deadline: float, setting: list[str]) -> None:
    """One optimizer's phases A, B and C at one batch size."""
    divisor = lr_phase(batch, optimizer, workers, deadline, setting)
    wd_phase(batch, optimizer, divisor, workers, deadline, setting)
    weight_decay = best_at_lr(batch, optimizer, divisor)[1]
    print(f"  bs{batch} {optimizer}: chosen lr {lr_of(batch, divisor):.3g}, weight decay {weight_decay:g}",
          flush=True)
    sweep(batch, [*arm(optimizer, [divisor], [weight_decay]), seeds(ANSWER)], workers, deadline, setting)


def run_batch(batch: int, workers: int, deadline: float, setting: list[str]) -> None:
    """Both optimizers' phases at once (they are independent), ``workers`` processes each."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(tune, batch, optimizer, workers, deadline, setting) for optimizer in ("adamw", "lion")]:
            done.result()  # a Deadline or an error of either optimizer ends the batch size


def plan() -> None:
    """What has run, batch size by batch size (no run started)."""
    for batch in BATCHES:
        directory = RUNS / f"bs{batch}"
        runs = load_local([directory])[0] if directory.exists() else None
        if runs is None or runs.empty:
            print(f"bs{batch}: nothing yet")
            continue
        for optimizer, group in runs.groupby("optimizer"):
            cells = group.groupby(["lr_key", "wd_key"])["seed"].apply(lambda s: ",".join(map(str, sorted(s))))
            print(f"bs{batch} {optimizer}: " + "; ".join(f"lr {lr:.3g} wd {wd:g} seeds {s}"
                                                        for (lr, wd), s in cells.items()))


def main() -> int:
    global RUNS, BASE_LR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=list(BATCHES), choices=BATCHES)
    parser.add_argument("--corpus", type=Path, help="the python3.11-doc HTML corpus (README: Data)")
    parser.add_argument("--workers", type=int, help="lion-bench processes per optimizer and phase (default: by batch size)")
    parser.add_argument("--until", type=float, default=float("inf"), help="stop before this time (epoch seconds)")
    parser.add_argument("--scale", choices=SCALES, default="gpu", help="gpu: study 3; cpu: results/batch_scaling_cpu")
    parser.add_argument("--runs-dir", type=Path, help="where the sweep directories go (default: the study's runs/)")
    parser.add_argument("--extra", action="append", default=[], help="more overrides for every phase (a dry run)")
    parser.add_argument("--plan", action="store_true", help="print what has run and exit")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    RUNS, BASE_LR = (args.runs_dir or scale["study"] / "runs").resolve(), scale["base_lr"]
    EXTRA.extend(args.extra)
    if args.plan:
        plan()
        return 0
    if args.corpus is None or not args.corpus.is_file():
        parser.error("--corpus PATH is needed: the python3.11-doc HTML corpus (README: Data)")
    setting = [*COMMON, *scale["setting"], f"task.data.path={args.corpus.resolve()}"]
    try:
        for batch in args.batch:
            run_batch(batch, args.workers or scale["workers"][batch], args.until, setting)
    except Deadline:
        print(f"[{time.strftime('%H:%M:%S')}] stopped at the deadline; run again to go on", flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
