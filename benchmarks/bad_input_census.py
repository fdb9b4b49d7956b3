"""Census of inputs outside the happy path (issue 18): each case runs the real command line
(``python -m lion_bench.train``, as ``lion-bench`` does) in a scratch directory of its own and is
counted as one of

    clear refusal       expected a refusal: exit status 2, one line, no traceback, nothing written
    refusal left files  exit status 2, but something was written
    correct acceptance  expected to run: it did (exit status 0) and what it wrote is right
    traceback           a Python traceback, or a process killed (the memory limit, a signal)
    silent wrong        exit status 0 and a wrong result: another trial's numbers reported as this
                        one's, a record the tool itself rejects (read_record), a sweep that ran other
                        trials than asked
    accepted, refusal due  exit status 0 and nothing found wrong in what it wrote, where the input
                        is one to refuse (an lr that trains as 0, a trial layout that breaks on reuse)
    other               anything else (a failed trial where the run should have worked, a timeout)

Each process runs under a 6 GiB address-space limit, so memory bombs end as a MemoryError, not the
machine's out-of-memory killer. About 5 minutes on 2 idle CPU cores.

    python benchmarks/bad_input_census.py                  # this checkout (the installed lion_bench)
    python benchmarks/bad_input_census.py --only seed      # the cases whose name holds 'seed'
    # another commit, e.g. the one before issue 18:
    mkdir /tmp/before && git archive 5eccfa7 | tar -x -C /tmp/before && \\
        ln -s ../configs /tmp/before/lion_bench/configs && \\
        python benchmarks/bad_input_census.py --source /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

FAST = ["task=quadratic", "trainer.max_steps=2", "trainer.progress=false", "trainer.schedule.warmup_steps=0"]
TINY_TEXT = ["task.data.max_bytes=200000", "task.model.seq_len=32", "task.model.d_model=32", "task.model.n_layer=1",
             "task.model.n_head=2", "task.eval.num_windows=4", "trainer.batch_size=4", "trainer.max_steps=2",
             "trainer.progress=false", "trainer.schedule.warmup_steps=0"]
MEMORY_LIMIT = 6 << 30
CATEGORIES = ("clear refusal", "refusal left files", "correct acceptance", "traceback", "silent wrong",
              "accepted, refusal due", "other")


class Scratch:
    """One case's directories (inputs, the output root, the working directory) and its runner."""

    def __init__(self, root: Path, source: str | None):
        self.root = root
        self.inputs, self.out, self.cwd = root / "in", root / "out", root / "cwd"
        for path in (self.inputs, self.cwd):
            path.mkdir(parents=True)
        self.source = source

    def run(self, *arguments: str, output_root: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        if self.source:
            env["PYTHONPATH"] = self.source
        flags = [argument for argument in arguments if argument in ("-m", "--multirun")]
        rest = [argument for argument in arguments if argument not in flags]
        command = [sys.executable, "-m", "lion_bench.train", *flags,
                   *([f"output_root={self.out}"] if output_root else []), *rest]
        try:
            return subprocess.run(command, capture_output=True, text=True, cwd=self.cwd, env=env, timeout=timeout,
                                  preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT,) * 2))
        except subprocess.TimeoutExpired as expired:
            return subprocess.CompletedProcess(command, -999, expired.stdout or "", expired.stderr or "timeout")

    def written(self) -> list[str]:
        """What the command left outside the prepared inputs."""
        found = [str(path) for path in self.out.rglob("*")] if self.out.exists() else []
        return found + [str(path) for path in self.cwd.rglob("*")]

    def sweep_dir(self, name: str = "multirun") -> Path:
        return self.out / "sweeps" / name

    def trials(self, name: str = "multirun") -> list[Path]:
        return sorted(path for path in self.sweep_dir(name).glob("*") if path.is_dir() and not path.is_symlink())

    def python(self, code: str) -> str:
        """Run ``code`` with the checkout under test importable (to prepare or check); its output."""
        env = dict(os.environ, **({"PYTHONPATH": self.source} if self.source else {}))
        return subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=self.cwd, capture_output=True,
                              text=True).stdout

    def unreadable_records(self) -> str | None:
        """Why a run.json the command wrote (anywhere it wrote) is one read_record of the checkout
        under test rejects, or None."""
        records = [str(path.parent) for root in (self.out, self.inputs) for path in root.rglob("run.json")]
        if not records:
            return None
        return self.python(
            "import sys\nfrom lion_bench.runs.store import read_record\n"
            f"for run_dir in {records!r}:\n"
            "    try: read_record(run_dir)\n"
            "    except Exception as error: print(f'read_record rejects its own record: {error}'[:200]); break\n"
        ).strip() or None


# A case prepares its inputs, runs the command (one or more times) and returns the deciding process,
# and, for a run that exited 0, what is wrong with what it wrote (None: nothing).
Case = Callable[[Scratch], tuple[subprocess.CompletedProcess, str | None]]
CASES: dict[str, tuple[str, Case]] = {}  # name -> (expected: refuse | accept, case)


def case(name: str, expect: str, *arguments: str) -> None:
    """A one-command case; what it wrote must be records that read_record accepts."""
    def run(s: Scratch):
        result = s.run(*(argument.replace("IN", str(s.inputs)) for argument in arguments))
        return result, (s.unreadable_records() if result.returncode == 0 else None)
    CASES[name] = (expect, run)


def scenario(name: str, expect: str):
    def register(function: Case) -> Case:
        CASES[name] = (expect, function)
        return function
    return register


def record_problem(run_dir: Path, optimizer: str | None = None) -> str | None:
    """What is wrong with the run.json in ``run_dir`` (another optimizer's, or one the tool rejects)."""
    path = run_dir / "run.json"
    if not path.is_file():
        return f"{path} is missing"
    data = json.loads(path.read_text())
    if optimizer and data.get("optimizer") != optimizer:
        return f"{run_dir.name}: run.json says {data.get('optimizer')}, the trial is {optimizer}"
    named = run_dir.name.rsplit("_", 1)[-1]  # trial directories end in their trial id
    if len(named) == 12 and data.get("trial_id") != named:
        return f"{run_dir.name}: run.json is the record of trial {data.get('trial_id')}"
    if data.get("status") not in ("finished", "diverged"):
        return f"{run_dir.name}: status {data.get('status')}"
    hyper = data.get("hyperparameters") or {}
    if any(hyper.get(key) is None for key in ("lr", "weight_decay")):
        return f"{run_dir.name}: run.json holds lr or weight decay null, which read_record rejects"
    return None


# --- 1. identity: skips that check whose record they skip ----------------------------------------
case("sweep presets combined", "refuse", "-m", "sweep=quickstart,lr_ratio", *TINY_TEXT)
case("sweep presets by glob", "refuse", "-m", "sweep=glob(*)", *TINY_TEXT)
for label, subdir in [("job number", "${hydra.job.num}"), ("dot", "."), ("constant", "x"), ("seed", "${seed}"),
                      ("parent", "../escaped"), ("absolute", "/tmp/lion_bench_census_escaped"),
                      ("trial id in a subfolder", "${trial_dir:}/x")]:
    case(f"hydra.sweep.subdir {label}", "refuse", "-m", f"hydra.sweep.subdir={subdir}", "seed=0,1", *FAST)
case("hydra.sweep.subdir with the trial id", "accept", "-m", "hydra.sweep.subdir=run_${trial_dir:}", "seed=0,1",
     *FAST)


@scenario("a second sweep into ${hydra.job.num} dirs with optimizer=adamw", "refuse")
def _job_num_reuse(s: Scratch):
    common = ["-m", "hydra.sweep.subdir=${hydra.job.num}", "seed=0,1", *FAST]
    first = s.run(*common, "optimizer=lion")
    if first.returncode != 0:
        return first, None
    second = s.run(*common, "optimizer=adamw")
    wrong = [problem for trial in s.trials() if (problem := record_problem(trial, "adamw"))]
    return second, "; ".join(wrong) or None


@scenario("a run.json copied from another trial", "accept")
def _copied_record(s: Scratch):
    command = ["-m", "optimizer=lion,adamw", *FAST]
    s.run(*command)
    lion, adamw = (next(t for t in s.trials() if t.name.startswith(name)) for name in ("lion", "adamw"))
    shutil.copy(lion / "run.json", adamw / "run.json")
    second = s.run(*command)
    return second, record_problem(adamw, "adamw") or record_problem(lion, "lion")


@scenario("a checkpoint of another trial", "accept")
def _foreign_checkpoint(s: Scratch):
    command = ["-m", "seed=0", *FAST]
    s.run(*command)
    [trial] = s.trials()
    (trial / "run.json").unlink()
    s.python(f"import torch; torch.save({{'trial_id': '0123456789ab', 'model': {{}}, 'optimizer': {{}}, "
             f"'scheduler': {{}}, 'task': {{}}, 'rng': {{}}, 'loop': {{'step': 1}}}}, {str(trial / 'checkpoint.pt')!r})")
    second = s.run(*command)
    return second, record_problem(trial, "lion")


# --- 2. derived values, the device, shapes, memory -----------------------------------------------
case("lr divisor 1e-320 (lr inf)", "refuse", "optimizer.lr_divisor=1e-320", *FAST)
case("adamw lr divisor 1e-320", "refuse", "optimizer=adamw", "+optimizer.lr_divisor=1e-320", *FAST)
case("wd multiplier 1e308 (weight decay inf)", "refuse", "optimizer.wd_multiplier=1e308", "base.weight_decay=0.1",
     *FAST)
case("base.lr 1e308", "refuse", "base.lr=1e308", *FAST)
case("base.lr 1e308 adamw no decay", "refuse", "optimizer=adamw", "base.lr=1e308", "base.weight_decay=0", *FAST)
case("base.lr 1e-320", "refuse", "optimizer=adamw", "base.lr=1e-320", *FAST)
case("lr*wd = 2 (decay flips sign)", "refuse", "optimizer=adamw", "base.lr=2", "base.weight_decay=1", *FAST)
case("lr*wd = 1 (decay zeroes)", "refuse", "optimizer=adamw", "base.lr=1", "base.weight_decay=1", *FAST)
case("decoupled weight decay 1.5", "refuse", "optimizer.decoupled_weight_decay=true", "base.weight_decay=0.5",
     *FAST)
case("seed 2**64", "refuse", "seed=18446744073709551616", *FAST)
case("seed 10**30", "refuse", "seed=1000000000000000000000000000000", *FAST)
case("seed 2**64-1", "accept", "seed=18446744073709551615", *FAST)
case("image split_seed 2**64", "refuse", "task=image", "task.data.split_seed=18446744073709551616",
     "trainer.max_steps=2", "trainer.schedule.warmup_steps=0")
case("mlp problem_seed 2**64", "refuse", "task=mlp", "task.data.problem_seed=18446744073709551616",
     "trainer.max_steps=2", "trainer.schedule.warmup_steps=0")
case("max_steps 10**400", "refuse", f"trainer.max_steps={10**400}", "task=quadratic")
case("max_bytes 10**15 (a cap above the corpus)", "accept", "task.data.max_bytes=1000000000000000",
     *[a for a in TINY_TEXT if not a.startswith("task.data.max_bytes")])
case("state_dtype bf16, impl auto, CPU", "refuse", "optimizer.state_dtype=bf16", "device=cpu", *FAST)
case("image CNN 4 stages on 8x8 digits", "refuse", "task=image", "task.model.channels=[4,4,4,4]",
     "trainer.max_steps=2", "trainer.schedule.warmup_steps=0", "trainer.progress=false")
case("image CNN 3 stages on 8x8 digits", "accept", "task=image", "task.model.channels=[4,4,4]",
     "trainer.max_steps=2", "trainer.schedule.warmup_steps=0", "trainer.progress=false")
case("n_layer 10000", "refuse", "task.model.n_layer=10000", "trainer.progress=false")
case("batch_size 1e9", "refuse", "trainer.batch_size=1000000000", "trainer.progress=false")
case("d_model 100000", "refuse", "task.model.d_model=100000", "task.model.n_head=1", "trainer.progress=false")
case("mlp num_val 10**12", "refuse", "task=mlp", "task.data.num_val=1000000000000", "trainer.progress=false")
case("mlp hidden 10**9", "refuse", "task=mlp", "task.model.hidden=[1000000000]", "trainer.progress=false")
case("quadratic dim 10**10", "refuse", "task=quadratic", "task.dim=10000000000", "trainer.progress=false")
case("lstm hidden 10**6", "refuse", "task=lstm_conv", "task.model.hidden_size=1000000", "trainer.progress=false")
case("quadratic batch 4096 (fits)", "accept", *FAST, "trainer.batch_size=4096")
case("eval batch 10**9 (bounded by the data)", "accept", "task.eval.batch_size=1000000000", *TINY_TEXT)


@scenario("diverged run with lr inf is a result, never retrained", "refuse")
def _diverged_infinite(s: Scratch):
    command = ["-m", "optimizer.lr_divisor=1e-320", "seed=0", *FAST]
    first = s.run(*command)
    if first.returncode == 2:
        return first, None
    second = s.run(*command)
    damaged = list(s.sweep_dir().rglob("*.damaged*"))
    return second, (f"the rerun set aside {damaged[0].name} and trained again" if damaged else None)


# --- 3. output locations -------------------------------------------------------------------------
LONG = "x" * 300
case("hydra.run.dir under /proc", "refuse", "hydra.run.dir=/proc/lion_bench_x", *FAST)
case("output_root under /proc", "refuse", "output_root=/proc/lion_bench_x", *FAST)
case("hydra.sweep.dir under /proc", "refuse", "-m", "hydra.sweep.dir=/proc/lion_bench_x", *FAST)
case("output_root under /sys", "refuse", "output_root=/sys/lion_bench_x", *FAST)
case("output_root at an existing file", "refuse", "output_root=IN/afile", *FAST)
case("hydra.run.dir at an existing file", "refuse", "hydra.run.dir=IN/afile", *FAST)
case("hydra.sweep.dir at an existing file", "refuse", "-m", "hydra.sweep.dir=IN/afile", *FAST)
case("output_root under a file", "refuse", "output_root=IN/afile/sub", *FAST)
case("output_root under /dev/null", "refuse", "output_root=/dev/null/x", *FAST)
case("output_root a broken symlink", "refuse", "output_root=IN/dangling", *FAST)
case("output_root with a 300-character name", "refuse", f"output_root=IN/{LONG}", *FAST)
case("hydra.run.dir with a 300-character name", "refuse", f"hydra.run.dir=IN/{LONG}", *FAST)
case("hydra.sweep.dir with a 300-character name", "refuse", "-m", f"hydra.sweep.dir=IN/{LONG}", *FAST)
case("hydra.run.dir longer than PATH_MAX", "refuse", "hydra.run.dir=IN/" + "/".join(["y" * 200] * 25), *FAST)
case("hydra.run.dir with a 250-character name (fits)", "accept", f"hydra.run.dir=IN/{'z' * 250}", *FAST)


# --- 4. odd entries in a trial directory ---------------------------------------------------------
def damaged_trial(damage: Callable[[Scratch, Path, Path], None], check_outside: bool = False) -> Case:
    """A 2-trial sweep; trial seed 0 is damaged by ``damage(scratch, trial, other trial)`` and its
    run.json removed; the rerun must train it and skip the other."""
    def run(s: Scratch):
        command = ["-m", "seed=0,1", *FAST]
        s.run(*command)
        first, second = s.trials()
        (first / "run.json").unlink()
        damage(s, first, second)
        result = s.run(*command)
        problem = record_problem(s.sweep_dir() / first.name, "lion") or record_problem(second, "lion")
        outside, elsewhere = s.inputs / "outside", s.inputs / "elsewhere"
        if problem is None and outside.exists() and outside.read_text() != "untouched":
            problem = "it wrote through a symbolic link outside the trial directory"
        if problem is None and elsewhere.exists() and any(elsewhere.iterdir()):
            problem = "it wrote the trial outside the sweep directory, through a symbolic link"
        return result, problem
    return run


def _replace_with_directory(name: str):
    def damage(s, trial, other):
        path = trial / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        path.mkdir()
        (path / "inside").write_text("x")
    return damage


def _trial_as_file(s, trial, other):
    shutil.rmtree(trial)
    trial.write_text("not a directory")


def _trial_as_symlink(s, trial, other):
    shutil.rmtree(trial)
    (s.inputs / "elsewhere").mkdir()
    trial.symlink_to(s.inputs / "elsewhere")


def _hydra_as_file(s, trial, other):
    shutil.rmtree(trial / ".hydra")
    (trial / ".hydra").write_text("not a directory")


def _symlink(name: str, to_other: bool):
    def damage(s, trial, other):
        (trial / name).unlink(missing_ok=True)
        target = other / name if to_other else s.inputs / "outside"
        if not to_other:
            target.write_text("untouched")
        (trial / name).symlink_to(target)
    return damage


for name in (".lock", ".hydra/config.yaml", "config.yaml", "metrics.jsonl", "attempts.jsonl", "traceback.txt"):
    scenario(f"{name} as a directory", "accept")(damaged_trial(_replace_with_directory(name)))
scenario(".hydra as a file", "accept")(damaged_trial(_hydra_as_file))
scenario("the trial directory a file", "accept")(damaged_trial(_trial_as_file))
scenario("the trial directory a symlink", "accept")(damaged_trial(_trial_as_symlink))
scenario("run.json a symlink to another trial's", "accept")(damaged_trial(_symlink("run.json", True)))
scenario("metrics.jsonl a symlink outside", "accept")(damaged_trial(_symlink("metrics.jsonl", False)))
scenario("config.yaml a symlink outside", "accept")(damaged_trial(_symlink("config.yaml", False)))


# --- issue 26 ------------------------------------------------------------------------------------
case("mlp val_fraction leaving no training examples", "refuse", "task=mlp", "task.data.source=wine",
     "task.data.val_fraction=0.999", "trainer.max_steps=2", "trainer.progress=false")
case("hydra.output_subdir outside the run directory", "refuse", *FAST, "hydra.output_subdir=../../..")
case("hydra.output_subdir two folders deep in a sweep", "refuse", "-m", *FAST, "hydra.output_subdir=a/b")


@scenario("multirun.yaml a directory in the sweep directory", "refuse")
def _multirun_file_a_directory(s: Scratch):
    (s.inputs / "sweep" / "multirun.yaml").mkdir(parents=True)
    return s.run("-m", *FAST, f"hydra.sweep.dir={s.inputs / 'sweep'}"), None


# --- the census ----------------------------------------------------------------------------------
def classify(expect: str, result: subprocess.CompletedProcess, wrong: str | None, written: list[str]) -> str:
    text = result.stdout + result.stderr
    if "Traceback" in text or result.returncode < 0 and result.returncode != -999 or "MemoryError" in text:
        return "traceback"
    if result.returncode == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if expect == "refuse" and written:
            return "refusal left files"
        if expect == "refuse" and len(lines) == 1 and lines[0].startswith("lion-bench: "):
            return "clear refusal"
        return "other"
    if result.returncode == 0:
        if wrong:
            return "silent wrong"
        return "accepted, refusal due" if expect == "refuse" else "correct acceptance"
    return "other"


def prepare_inputs(s: Scratch) -> None:
    (s.inputs / "afile").write_text("a file\n")
    (s.inputs / "dangling").symlink_to(s.inputs / "nowhere")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="a checkout to import lion_bench from (PYTHONPATH)")
    parser.add_argument("--only", help="run only cases whose name holds this text")
    parser.add_argument("--json", help="write each case's outcome here")
    arguments = parser.parse_args()
    counts: Counter = Counter()
    outcomes = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="lion_bench_census_") as root:
        for index, (name, (expect, run)) in enumerate(CASES.items()):
            if arguments.only and arguments.only not in name:
                continue
            scratch = Scratch(Path(root) / f"case{index}", arguments.source)
            prepare_inputs(scratch)
            try:
                result, wrong = run(scratch)
            except Exception as error:  # noqa: BLE001 - a case whose setup failed: its command misbehaved
                result, wrong = subprocess.CompletedProcess([], -998, "", f"setup failed: {error!r}"), None
            written = [] if expect != "refuse" else scratch.written()
            category = classify(expect, result, wrong, written)
            counts[category] += 1
            last = (result.stderr.strip().splitlines() or [""])[-1][:160]
            detail = wrong or (written[0] if category == "refusal left files" else last)
            print(f"{category:18} | {name} | exit {result.returncode} | {detail}", flush=True)
            outcomes.append({"case": name, "expect": expect, "category": category, "exit": result.returncode,
                             "detail": detail})
    total = sum(counts.values())
    print(f"\n{total} tried: " + ", ".join(f"{counts[c]} {c}" for c in CATEGORIES) +
          f" ({time.time() - started:.0f} s)")
    if arguments.json:
        Path(arguments.json).write_text(json.dumps({"counts": dict(counts), "cases": outcomes}, indent=2) + "\n")


if __name__ == "__main__":
    main()
