"""Runs study 2 (results/tuned_vs_tuned/protocol.yaml): each part's phases A (lr grid), B (weight decay at the
best lr) and C (the best arm on the answer seeds), choosing each optimizer's arm with the report's own rule
(``lion_bench.results.claims.selection.best_arm``: the lowest mean final val loss over seeds 0-2).

    python results/tuned_vs_tuned/run.py --part small_mlp --workers 8               # CPU
    python results/tuned_vs_tuned/run.py --part lm_pydoc --corpus pydoc=pydoc_html.txt --workers 4   # one GPU
    python results/tuned_vs_tuned/run.py --part q4 --workers 8                      # betas, schedule, cautious

Every phase is ``lion-bench -m`` started ``--workers`` times on one sweep directory (the per-trial locks split
the trials), so the part resumes where it stopped when run again; ``--until`` (seconds since the epoch) stops
it cleanly before a deadline. Records land in results/tuned_vs_tuned/runs/<part>/.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lion_bench.results.claims.selection import arm_grid, best_arm
from lion_bench.results.load import load_local

STUDY = Path(__file__).resolve().parent
SELECTION, ANSWER, Q4_BETAS = (0, 1, 2), (3, 4, 5, 6, 7), (0, 1, 2, 3, 4)
GRID = {"adamw": {"p1": 8, "p2": 4, "p3": 2, "p4": 1, "p5": 0.5, "p6": 0.25},
        "lion": {"p1": 50, "p2": 20, "p3": 10, "p4": 5, "p5": 2, "p6": 1}}  # configs/sweep/tuned.yaml
WEIGHT_DECAYS = {"adamw": (0.1, 0.3), "lion": (0.3, 1.0)}
ARMS = {"adamw": "adamw_grid", "lion": "lion_own_grid"}
LM = ["task=text", "task.data.max_bytes=null", "task.model.seq_len=1024", "task.model.d_model=512",
      "task.model.n_layer=6", "task.model.n_head=8", "trainer.batch_size=16", "trainer.max_steps=1000",
      "trainer.grad_clip=0.5", "trainer.compile=false", "trainer.schedule.warmup_fraction=0.05",
      "trainer.eval_every=100", "base.lr=1e-3"]
SMALL = ["trainer.batch_size=16", "trainer.max_steps=1000", "device=cpu"]
PARTS = {"lm_pydoc": ("pydoc", LM), "lm_gcide": ("gcide", LM), "small_mlp": (None, ["task=mlp", *SMALL]),
         "small_lstm_conv": (None, ["task=lstm_conv", *SMALL]), "small_image": (None, ["task=image", *SMALL])}


def seeds(values) -> str:
    return "seed=" + ",".join(map(str, values))


RUNS = STUDY / "runs"  # --runs-dir moves it (a dry run elsewhere)
EXTRA: list[str] = []  # --extra overrides (a dry run with few steps)


def sweep(part: str, setting: list[str], overrides: list[str], workers: int, deadline: float,
          preset: str = "tuned") -> bool:
    """``lion-bench -m`` ``workers`` times at once on one sweep directory; False when the deadline stopped it."""
    command = [sys.executable, "-m", "lion_bench.train", "-m", f"sweep={preset}", f"sweep.name={part}",
               f"hydra.sweep.dir={RUNS / part}", "trainer.progress=false", *setting, *overrides, *EXTRA]
    left = deadline - time.time()
    if left < 60:
        return False
    print(f"[{time.strftime('%H:%M:%S')}] {part}: {' '.join(overrides)} x {workers}", flush=True)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"} if "device=cpu" in setting else dict(os.environ)
    processes = [subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for _ in range(workers)]
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
    return not stopped


def chosen(part: str, optimizer: str, selection=SELECTION) -> tuple[str, float, float] | None:
    """(grid point, weight decay, lr) of ``optimizer``'s best arm over seeds 0-2, by the report's rule."""
    directory = RUNS / part
    if not directory.exists():
        return None
    runs, _ = load_local([directory])
    mine = runs[(runs["optimizer"] == optimizer) & runs["seed"].isin(selection) & (runs["betas"] ==
                                                                                  ("0.9,0.999" if optimizer == "adamw"
                                                                                   else "0.9,0.99"))]
    arms, values = arm_grid(mine, "final_val_loss")
    pick = best_arm(arms, values, list(selection))
    if pick is None:
        return None
    lr, weight_decay = pick
    base = float(mine["base_lr"].iloc[0])
    point = min(GRID[optimizer], key=lambda p: abs(base / GRID[optimizer][p] - lr) / lr)
    return point, weight_decay, lr


def arm_overrides(optimizer: str, point: str, weight_decay) -> list[str]:
    decay = [f"base.weight_decay={weight_decay}"] + (["optimizer.wd_multiplier=1"] if optimizer == "lion" else [])
    return [f"arm={ARMS[optimizer]}", f"sweep.point={point}", *decay]


def extend_decay(part: str, setting: list[str], optimizer: str, point: str, workers: int, deadline: float) -> bool:
    """The protocol's amendment of 2026-12-07: a best weight decay at the top of the grid is an edge, so the next
    (x3, at most twice) runs on the selection seeds at the same lr; False when the deadline stopped it."""
    tried = list(WEIGHT_DECAYS[optimizer])
    for _ in range(2):
        _, weight_decay, _ = chosen(part, optimizer)
        if weight_decay < tried[-1]:
            return True
        tried.append(round(tried[-1] * 3, 6))
        print(f"  {part} {optimizer}: best weight decay {weight_decay:g} is its grid's largest: adding {tried[-1]:g}",
              flush=True)
        if not sweep(part, setting, [*arm_overrides(optimizer, point, tried[-1]), seeds(SELECTION)], workers,
                     deadline):
            return False
    return True


def run_part(part: str, setting: list[str], workers: int, deadline: float) -> bool:
    # A: the lr grids at weight decay 0.
    if not sweep(part, setting, ["base.weight_decay=0", seeds(SELECTION)], workers, deadline):
        return False
    # B: two weight decays at each optimizer's best lr, then outward while the best is the largest tried.
    for optimizer in ("adamw", "lion"):
        if chosen(part, optimizer) is None:
            print(f"  {part} {optimizer}: no arm ran on every selection seed; see the trials' traceback.txt", flush=True)
            return False
        point, _, lr = chosen(part, optimizer)
        values = ",".join(map(str, WEIGHT_DECAYS[optimizer]))
        print(f"  {part} {optimizer}: best lr {lr:.3g} ({point}) at weight decay 0", flush=True)
        if not sweep(part, setting, [*arm_overrides(optimizer, point, values), seeds(SELECTION)], workers, deadline):
            return False
        if not extend_decay(part, setting, optimizer, point, workers, deadline):
            return False
    # C: each optimizer's best arm on the answer seeds.
    for optimizer in ("adamw", "lion"):
        point, weight_decay, lr = chosen(part, optimizer)
        print(f"  {part} {optimizer}: chosen lr {lr:.3g} ({point}), weight decay {weight_decay:g}", flush=True)
        if not sweep(part, setting, [*arm_overrides(optimizer, point, weight_decay), seeds(ANSWER)], workers,
                     deadline):
            return False
    return True


def run_q4(workers: int, deadline: float) -> bool:
    """Question 4 on lstm_conv: betas at Lion's two largest grid lrs, inverse_sqrt and cautious at the chosen arms."""
    setting = PARTS["small_lstm_conv"][1]
    answers = {optimizer: chosen("small_lstm_conv", optimizer) for optimizer in ("adamw", "lion")}
    if any(answer is None for answer in answers.values()):
        print("q4 needs small_lstm_conv's chosen arms: run --part small_lstm_conv first", flush=True)
        return False
    for arm, chosen_seeds in (("lion_stable_betas", Q4_BETAS), ("lion_grid", (3, 4))):
        if not sweep("q4_betas", setting, [f"arm={arm}", "sweep.lr_divisor=1,2", "base.weight_decay=0",
                                           seeds(chosen_seeds)], workers, deadline, preset="betas"):
            return False
    for optimizer, (point, weight_decay, _) in answers.items():
        if not sweep("q4_schedule", setting, [*arm_overrides(optimizer, point, weight_decay),
                                              "trainer.schedule.name=inverse_sqrt", seeds(ANSWER)], workers, deadline):
            return False
    point, weight_decay, _ = answers["lion"]
    return sweep("q4_cautious", setting, [*arm_overrides("lion", point, weight_decay), "optimizer.cautious=true",
                                          seeds(ANSWER)], workers, deadline)


def main() -> int:
    global RUNS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", required=True, choices=[*PARTS, "q4"])
    parser.add_argument("--workers", type=int, default=4, help="lion-bench processes per phase (one sweep directory)")
    parser.add_argument("--corpus", action="append", default=[], metavar="NAME=PATH",
                        help="where a corpus lies: pydoc=pydoc_html.txt, gcide=gcide.txt")
    parser.add_argument("--until", type=float, default=float("inf"), help="stop before this time (epoch seconds)")
    parser.add_argument("--runs-dir", type=Path, default=STUDY / "runs",
                        help="where the sweep directories go (default: the study's runs/)")
    parser.add_argument("--extra", action="append", default=[], help="more overrides for every phase (a dry run)")
    args = parser.parse_args()
    RUNS = args.runs_dir.resolve()
    EXTRA.extend(args.extra)
    if args.part == "q4":
        return 0 if run_q4(args.workers, args.until) else 3
    corpus, setting = PARTS[args.part]
    if corpus:
        paths = dict(item.split("=", 1) for item in args.corpus)
        if corpus not in paths or not Path(paths[corpus]).is_file():
            parser.error(f"--corpus {corpus}=PATH is needed (README: Data)")
        setting = [*setting, f"task.data.path={Path(paths[corpus]).resolve()}"]
    return 0 if run_part(args.part, setting, args.workers, args.until) else 3


if __name__ == "__main__":
    sys.exit(main())
