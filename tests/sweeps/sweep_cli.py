"""Run ``lion-bench -m`` as a subprocess and read what it left (shared by the sweep tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FAST = ["task=quadratic", "trainer.max_steps=2", "trainer.progress=false"]  # the default warmup: none in 2 steps


def run_sweep(tmp_path: Path, *overrides: str, python: str = sys.executable, timeout: int = 600):
    return subprocess.run(
        [python, "-m", "lion_bench.train", "-m", f"output_root={tmp_path}", *overrides],
        capture_output=True, text=True, cwd=tmp_path, timeout=timeout,
    )


def trial_records(sweep_dir: Path) -> dict[str, dict]:
    """Trial directory name -> its run.json."""
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(sweep_dir.glob("*/run.json"))}
