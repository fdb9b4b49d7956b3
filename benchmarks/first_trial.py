"""The first trial of a process against the ones after it: wall time, CPU time and page faults per step.

    python benchmarks/first_trial.py                    # 3 trials of sweep=quickstart's AdamW arm, 200 steps
    python benchmarks/first_trial.py --baseline         # the same with malloc's defaults (before the fix)
    python benchmarks/first_trial.py --trials 2 --steps 40 --out first_trial.jsonl
    python benchmarks/first_trial.py --fresh 3          # the README's first trial, each in a fresh process

Each trial is ``lion_bench.trainer.train`` in this process on sweep=quickstart's model and data (seeds
0, 1, ...), as ``lion-bench -m sweep=quickstart`` runs them. A logger reads the clock, the process's CPU
time and its minor page faults (first touches of memory) at every step; the table gives, per trial,
its total seconds and per-step means over steps 1-10, 11-30 and 31 to the end. ``--baseline`` leaves
glibc's malloc at its defaults (``lion_bench.runs.memory.reuse_freed_memory`` made a no-op), which
gave ~1,000 faults per step over the first ~30 steps of the first trial (none after). Wall times move
with whatever else the machine runs: say how busy it was (``uptime``) beside them.

``--fresh N`` times what a newcomer sees instead: N fresh processes, each running the README's main command
for its first trial only (``lion-bench -m sweep=quickstart arm=adamw_grid sweep.point=p1 seed=0``, into an
empty directory): the whole process's wall time, the trial's record (total and startup seconds) and the
per-step wall time of steps 1-10, 11-60 and 61-200 from its metrics (logged every step).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_module
from run_metadata import run_metadata

import lion_bench.trainer
from lion_bench.trainer import train

SEGMENTS = ((1, 11), (11, 31), (31, None))


class StepClock:
    """A trainer logger: (step, wall, user CPU, system CPU, minor faults) at every logged step."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, float, float, int]] = []

    def log(self, row) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.rows.append((row["step"], time.perf_counter(), usage.ru_utime, usage.ru_stime, usage.ru_minflt))

    def finish(self, record) -> None:
        pass


def per_step(rows, first: int, last: int | None) -> dict[str, float]:
    by_step = {row[0]: row for row in rows}
    last = last if last is not None else max(by_step)
    (_, wall0, user0, sys0, faults0), (_, wall1, user1, sys1, faults1) = by_step[first], by_step[last]
    steps = last - first
    return {"wall_ms": 1000 * (wall1 - wall0) / steps, "user_ms": 1000 * (user1 - user0) / steps,
            "sys_ms": 1000 * (sys1 - sys0) / steps, "faults": (faults1 - faults0) / steps}


FRESH_SEGMENTS = ((1, 10), (10, 60), (60, None))


def fresh_trials(count: int, steps: int) -> list[dict]:
    """The README's first trial in ``count`` fresh processes: process wall time, record times, step segments."""
    lines = []
    for index in range(count):
        with tempfile.TemporaryDirectory() as root:
            command = [sys.executable, "-m", "lion_bench.train", "-m", "sweep=quickstart", "arm=adamw_grid",
                       "sweep.point=p1", "seed=0", f"trainer.max_steps={steps}", "trainer.log_every=1",
                       "trainer.progress=false", f"output_root={root}"]
            started = time.perf_counter()
            subprocess.run(command, check=True, cwd=root, capture_output=True, env={**os.environ, "PYTHONSAFEPATH": "1"})
            process_s = time.perf_counter() - started
            [trial] = Path(root).glob("sweeps/quickstart/*/run.json")
            record = json.loads(trial.read_text())
            elapsed = {row["step"]: row["elapsed_s"] for row in map(json.loads, trial.with_name("metrics.jsonl")
                                                                      .read_text().splitlines()) if "elapsed_s" in row}
        segments = {}
        for first, last in FRESH_SEGMENTS:
            last = last or max(elapsed)
            segments[f"steps_{first}_{last}_ms"] = 1000 * (elapsed[last] - elapsed[first]) / (last - first)
        line = {**run_metadata("cpu", fresh_process=index + 1, steps=steps,
                                              trial_command=" ".join(["lion-bench", *command[3:-1]])),
                "process_s": process_s, "total_s": record["time_s"]["total"], "startup_s": record["time_s"]["startup"],
                **segments, "load_average": os.getloadavg()}
        lines.append(line)
        shown = " | ".join(f"{name.removeprefix('steps_').removesuffix('_ms').replace('_', '-')}: {value:.1f} ms/step"
                           for name, value in segments.items())
        print(f"process {index + 1}: {process_s:.1f} s in all, trial {line['total_s']:.1f} s (startup "
              f"{line['startup_s']:.1f} s) | {shown} | load {line['load_average'][0]:.2f}", flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--baseline", action="store_true", help="malloc's defaults: the code before the fix")
    parser.add_argument("--out", type=Path, help="append one JSON line per trial")
    parser.add_argument("--fresh", type=int, metavar="N", help="the README's first trial in N fresh processes")
    args = parser.parse_args()
    if args.fresh:
        lines = fresh_trials(args.fresh, args.steps)
        if args.out:
            with open(args.out, "a") as handle:
                handle.writelines(json.dumps(line) + "\n" for line in lines)
        return
    if args.baseline:
        lion_bench.trainer.reuse_freed_memory = lambda: False
    lines = []
    for seed in range(args.trials):
        with initialize_config_module(config_module="lion_bench.configs", version_base="1.3"):
            cfg = compose(config_name="train", overrides=[
                "sweep=quickstart", "arm=adamw", f"seed={seed}", f"trainer.max_steps={args.steps}",
                "trainer.log_every=1", "trainer.progress=false", "device=cpu"])
        clock = StepClock()
        with tempfile.TemporaryDirectory() as run_dir:
            record = train(cfg, Path(run_dir), loggers=[clock])
        segments = {f"steps_{first}_{last or args.steps}": per_step(clock.rows, first, last) for first, last in SEGMENTS}
        line = {**run_metadata("cpu", baseline=args.baseline, trial=seed + 1, steps=args.steps),
                "total_s": record.time_s["total"], "startup_s": record.time_s["startup"],
                "tokens_per_s": record.train_tokens_per_s, **segments}
        lines.append(line)
        shown = " | ".join(f"{name.removeprefix('steps_').replace('_', '-')}: {v['wall_ms']:.0f} ms wall, "
                           f"{v['user_ms'] + v['sys_ms']:.0f} ms CPU, {v['faults']:.0f} faults"
                           for name, v in segments.items())
        print(f"trial {seed + 1}: {line['total_s']:.1f} s (startup {line['startup_s']:.1f} s) | {shown}", flush=True)
    if args.out:
        with open(args.out, "a") as handle:
            handle.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    sys.exit(main())
