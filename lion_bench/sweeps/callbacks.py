"""The sweep's closing line, and its exit status.

``SweepSummary`` is a Hydra callback (registered in configs/train.yaml). It reads the attempts
that trials in the sweep directory made since the multirun started (``resume.record_attempt``),
so it works whichever launcher ran them (basic, Ray, SLURM on a shared filesystem), prints

    sweep lr_ratio: 12 trials: 9 finished, 1 diverged, 1 failed, 1 skipped

and raises ``SweepFailed`` if any trial failed or was interrupted: ``lion-bench -m`` then exits
with status 1, after every trial has had its turn.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lion_bench.sweeps.resume import OUTCOMES, read_attempts


class SweepFailed(SystemExit):
    """Hydra turns an Exception raised by a callback into a warning (exit status 0), so this is a
    SystemExit: its message goes to stderr and the process exits with status 1."""


def count_outcomes(sweep_dir: Path, since: float) -> tuple[Counter, list[str]]:
    """Outcome of each trial's last attempt at or after ``since``; and the failed trials' names."""
    counts: Counter = Counter({outcome: 0 for outcome in OUTCOMES})
    failed = []
    for trial_dir in sorted(path for path in Path(sweep_dir).iterdir() if path.is_dir()):
        attempts = [attempt for attempt in read_attempts(trial_dir) if attempt["at"] >= since]
        if attempts:
            outcome = attempts[-1]["outcome"]
            counts[outcome] += 1
            if outcome in ("failed", "interrupted"):
                failed.append(trial_dir.name)
    return counts, failed


def summary_line(name: str, counts: Counter) -> str:
    total = sum(counts.values())
    parts = [f"{counts[outcome]} {outcome}" for outcome in ("finished", "diverged", "failed", "skipped")]
    if counts["interrupted"]:
        parts.append(f"{counts['interrupted']} interrupted")
    return f"sweep {name}: {total} trials: {', '.join(parts)}"


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.started_at = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started_at = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        counts, failed = count_outcomes(sweep_dir, self.started_at)
        print(summary_line(sweep_dir.name, counts), flush=True)
        if failed:
            raise SweepFailed(
                f"{len(failed)} trial(s) did not finish: {', '.join(failed)}; each directory under "
                f"{sweep_dir} holds its traceback.txt. Rerun the same command to retry only these."
            )
