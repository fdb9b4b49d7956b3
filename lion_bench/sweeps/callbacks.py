"""The sweep's progress lines, its closing line, and its exit status.

``SweepSummary`` is a Hydra callback (registered in configs/train.yaml). Before each trial it prints

    trial 5/12 lion_div3 seed 1 | ETA 1m10s | best val loss: adamw 1.612, lion_div1 1.748

(the trial's own progress bar follows, in a terminal). At the end it reads the attempts that
trials in the sweep directory made in this sweep run (``resume.record_attempt``), so it works
whichever launcher ran them (basic, Ray, SLURM on a shared filesystem), prints

    sweep lr_ratio: 12 trials: 9 finished, 1 diverged, 1 failed, 1 skipped

(an interrupted sweep: ``sweep lr_ratio: 3 finished, 0 diverged, 0 failed, 0 skipped, 1 interrupted,
8 left of 12 trials``, printed by the command line before its one-line message) and raises ``SweepFailed`` if any trial failed or was interrupted: ``lion-bench -m`` then exits
with status 1, after every trial has had its turn. Counting never raises: a file it cannot read is
named in a warning, and a sweep whose outcomes cannot be counted exits 1.
"""

from __future__ import annotations

import math
import os
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lion_bench.runs.errors import DamagedFile
from lion_bench.sweeps.resume import OUTCOMES, SWEEP_RUN_VARIABLE, read_attempts


LINE_WIDTH = 100


class SweepFailed(SystemExit):
    """Hydra turns an Exception raised by a callback into a warning (exit status 0), so this is a
    SystemExit: its message goes to stderr and the process exits with status 1."""


def count_outcomes(sweep_dir: Path, since: float, sweep_run: str | None) -> tuple[Counter, list[str]]:
    """Outcome of each trial's last attempt of this sweep run (tagged ``sweep_run``, or untagged and at
    or after ``since``), and the names of trials that failed or were interrupted."""
    counts: Counter = Counter({outcome: 0 for outcome in OUTCOMES})
    failed = []
    for trial_dir in sorted(path for path in Path(sweep_dir).iterdir() if path.is_dir()):
        try:
            # A launcher whose workers did not inherit the sweep run's tag: attempts since the start count.
            attempts = [attempt for attempt in read_attempts(trial_dir) if attempt["at"] >= since
                        and attempt.get("sweep_run") in (sweep_run, None)]
        except OSError as error:
            warnings.warn(f"{trial_dir}: its attempts cannot be read ({error}); not counted", DamagedFile)
            continue
        if attempts:
            outcome = attempts[-1]["outcome"]
            counts[outcome] += 1
            if outcome in ("failed", "interrupted"):
                failed.append(trial_dir.name)
    return counts, failed


def sweep_line(name: str, counts: Counter, planned: int | None = None) -> str:
    """``sweep NAME: 12 trials: 9 finished, ...``; with ``planned`` (an interrupted sweep), how many are left."""
    total = sum(counts.values())
    parts = [f"{counts[outcome]} {outcome}" for outcome in ("finished", "diverged", "failed", "skipped")]
    parts += [f"{counts[outcome]} {outcome}" for outcome in ("interrupted", "busy") if counts[outcome]]
    if planned is not None:
        return f"sweep {name}: {', '.join(parts)}, {max(planned - total, 0)} left of {planned} trials"
    return f"sweep {name}: {total} trials: {', '.join(parts)}"


def _sweep_overrides(config: DictConfig) -> list | None:
    """The sweeper's params, overridden by command-line sweeps, parsed; None when they do not parse."""
    sweeper = OmegaConf.select(config, "hydra.sweeper", default=None)
    if sweeper is None:
        return None
    sweeps = {key: f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()}
    sweeps.update({override.split("=", 1)[0]: override for override in config.hydra.overrides.task})
    try:
        return [o for o in OverridesParser.create().parse_overrides(list(sweeps.values())) if o.is_sweep_override()]
    except Exception:  # noqa: BLE001 - glob(*) and the like need the config groups: no count then
        return None


def planned_trials(config: DictConfig) -> int | None:
    """How many trials the sweep launches: n_trials for Optuna, else the product of the swept
    values (the sweeper's params, overridden by command-line sweeps); None when it cannot tell."""
    sweeper = OmegaConf.select(config, "hydra.sweeper", default=None)
    if sweeper is not None and "n_trials" in sweeper:
        return int(sweeper.n_trials)
    overrides = _sweep_overrides(config)
    try:
        return None if overrides is None else math.prod(len(list(o.sweep_string_iterator())) for o in overrides)
    except Exception:  # noqa: BLE001
        return None


# Swept keys the trial line names anyway (the label and the seed), or that name no setting.
LABEL_KEYS = ("arm", "optimizer", "optimizer.name", "seed", "sweep")


def shown_swept_keys(config: DictConfig) -> list[str]:
    """Keys the trials differ in besides the arm and seed (``trainer.batch_size``), for the trial line."""
    return [o.key_or_group for o in _sweep_overrides(config) or () if o.key_or_group not in LABEL_KEYS]


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class SweepSummary(Callback):
    # The sweep this process is running (set at its start), for the count line of an interrupt.
    running: SweepSummary | None = None

    def __init__(self) -> None:
        self.started_at = time.time()
        self.sweep_run: str | None = None
        self.total: int | None = None
        self.trained_s: list[float] = []  # seconds of each trial that trained (not skipped or busy)
        self.best: dict[str, float] = {}  # label -> best final val loss so far
        self.job_started_at = 0.0
        self.num_started = 0
        self.multirun = False  # Hydra calls on_job_start for a single run too: no progress line there
        self.sweep_dir: Path | None = None
        self.shown_keys: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started_at = time.time()
        self.multirun = True
        # Tags this sweep run's attempts; launchers' worker processes inherit it.
        self.sweep_run = os.environ[SWEEP_RUN_VARIABLE] = uuid.uuid4().hex[:12]
        self.total = planned_trials(config)
        self.shown_keys = shown_swept_keys(config)
        self.sweep_dir = Path(config.hydra.sweep.dir)
        SweepSummary.running = self

    # --- a progress line per trial (the basic launcher runs trials in this process) --------------
    @staticmethod
    def label(config: DictConfig) -> str:
        return str(OmegaConf.select(config, "arm", default=None) or OmegaConf.select(config, "optimizer.name"))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.multirun:
            return
        self.num_started += 1
        self.job_started_at = time.time()
        index = OmegaConf.select(config, "hydra.job.num", default=self.num_started - 1)
        count = f"/{self.total}" if self.total else ""
        left = self.total - index if self.total else None
        # The first trial pays the process's start-up (lazy imports, the corpus, thread pools): left out once
        # another trial has trained.
        durations = self.trained_s[1:] or self.trained_s
        eta = f" | ETA {_duration(sum(durations) / len(durations) * left)}" if durations and left else ""
        shown = "".join(f" {key.removeprefix('trainer.')}={OmegaConf.select(config, key)}" for key in self.shown_keys)
        line = f"trial {index + 1}{count} {self.label(config)}{shown} seed {OmegaConf.select(config, 'seed')}{eta}"
        best = [f"{label} {loss:.4g}" for label, loss in sorted(self.best.items(), key=lambda item: item[1])]
        if best:  # the best arms first, as many as fit in a terminal line
            line += f" | best val loss: {best[0]}"
            for item in best[1:]:
                if len(line) + len(item) + 2 > LINE_WIDTH:
                    break
                line += f", {item}"
        print(line, flush=True)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not self.multirun:
            return
        seconds = time.time() - self.job_started_at
        try:
            value = job_return.return_value
        except Exception:  # noqa: BLE001 - the job raised (an interrupt): nothing to count
            return
        if isinstance(value, float) and not math.isnan(value):
            label = self.label(config)
            self.best[label] = min(self.best.get(label, math.inf), value)
        run_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
        attempts = read_attempts(Path(run_dir)) if run_dir else []
        if attempts and attempts[-1]["outcome"] not in ("skipped", "busy"):
            self.trained_s.append(seconds)

    # --- the closing line ------------------------------------------------------------------------
    def interrupted_line(self) -> str | None:
        """The count line of this sweep run when an interrupt stops it (trials finished, interrupted,
        left); None when they cannot be counted."""
        if self.sweep_dir is None or not self.sweep_dir.is_dir():
            return None
        try:
            counts, _ = count_outcomes(self.sweep_dir, self.started_at, self.sweep_run)
        except Exception:  # noqa: BLE001 - an interrupt's own line must still come
            return None
        planned = self.total if self.total is not None else sum(counts.values())
        return sweep_line(self.sweep_dir.name, counts, planned)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        SweepSummary.running = None
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        try:
            counts, failed = count_outcomes(sweep_dir, self.started_at, self.sweep_run)
        except Exception as error:  # noqa: BLE001 - never lose the exit status to a counting error
            raise SweepFailed(f"the trials' outcomes under {sweep_dir} could not be counted ({error}); "
                              "rerun the same command to retry what did not finish") from None
        print(sweep_line(sweep_dir.name, counts), flush=True)
        if failed:
            names = ", ".join(failed[:2]) + (f" and {len(failed) - 2} more" if len(failed) > 2 else "")
            raise SweepFailed(
                f"{len(failed)} trial(s) did not finish: {names} (each one's traceback.txt is in its directory "
                f"under {sweep_dir}); the same command retries only these"
            )
