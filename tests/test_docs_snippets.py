"""Every code example in README.md and docs/*.md runs here, or is listed below with the reason it is not.

A ```python block is executed in a fresh directory (its one free name, ``model``, is any torch module). A
```bash block is split into commands: each ``lion-bench`` command is checked the way the command checks it
before anything runs (its names, then the composed config against the schema, the device and the data), the
cheap ones also run for real (``@slow``), and every other command is named in ``NOT_RUN`` with why. Every
block says its language (python, bash, toml or text), so a new example cannot slip past this test.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser

from compose import compose_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("python", "bash", "toml", "text")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# Commands that are not run or checked here, by a part of them, with the reason.
NOT_RUN = {
    "python3 -m venv": "creates an environment and installs into it (CI's .ci/run does exactly this)",
    ". .venv/bin/activate": "enters the environment made before it",
    "pip install": "installs packages (CI installs the same ones)",
    "pytest": "the test suite itself (CI runs it)",
    "lion-bench-report": "reads the runs of the sweep before it (tests/results/test_report.py runs it on records)",
    "python benchmarks/": "a benchmark of minutes on a GPU (benchmarks/RESULTS.md has its figures)",
    "task.data.source=hf": "reads a Hugging Face dataset (tests/tasks/test_text_datasets.py uses a local one)",
    "task.data.path=my_corpus.txt": "your own text file",
    "my_configs": "your own config directory (tests/test_user_tasks.py builds one)",
    "base.lr=BEST": "a placeholder for the best lr of the search before it",
    "task=enwik8": "needs the enwik8 file (tests/tasks/test_enwik8.py uses a small one)",
    "hydra/launcher=slurm": "needs a SLURM cluster",
    "hydra/launcher=ray": "needs '.[ray]' in an environment of its own (CI's second environment)",
}
# lion-bench commands cheap enough to run for real on CPU in a few seconds each.
RUN_FOR_REAL = ("lion-bench trainer.max_steps=5", "lion-bench-tasks", "lion-bench-tasks --check diabetes")
SLOW_PYTHON = ("run_sweep(",)  # python blocks that run a sweep


def blocks(language: str) -> list[tuple[str, str]]:
    """(page:line, body) of every block in that language."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            if match.group(1) == language:
                found.append((f"{page.relative_to(ROOT)}:{text[:match.start()].count(chr(10)) + 1}", match.group(2)))
    return found


def commands(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped, ``&&`` chains split, leading
    environment settings (``OMP_NUM_THREADS=1``) left out."""
    joined = re.sub(r"\\\n\s*", " ", body)
    found = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        found += [re.sub(r"^([A-Z_]+=\S+\s+)+", "", part.strip()) for part in line.split("&&") if part.strip()]
    return found


def not_run_reason(command: str) -> str | None:
    for part, reason in NOT_RUN.items():
        if part in command:
            return reason
    return None


BASH_COMMANDS = [(where, command) for where, body in blocks("bash") for command in commands(body)]
LION_BENCH = [(where, command) for where, command in BASH_COMMANDS
              if (command == "lion-bench" or command.startswith("lion-bench ")) and not not_run_reason(command)]


def test_every_block_names_its_language():
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            where = f"{page.relative_to(ROOT)}:{text[:match.start()].count(chr(10)) + 1}"
            assert match.group(1) in LANGUAGES, f"{where}: a code block needs one of {LANGUAGES} after its ```"


def test_every_bash_command_is_checked_or_listed():
    assert LION_BENCH, "no lion-bench command found in the docs"
    for where, command in BASH_COMMANDS:
        known = (command == "lion-bench" or command.startswith("lion-bench ") or command in RUN_FOR_REAL
                 or not_run_reason(command))
        assert known, f"{where}: `{command}` is neither checked here nor listed in NOT_RUN with a reason"


def first_values(arguments: list[str]) -> list[str]:
    """A multirun's overrides with each swept list replaced by its first value (one trial of the sweep)."""
    parser = OverridesParser.create()
    out = []
    for argument in arguments:
        if "=" in argument and not argument.startswith("-"):
            [override] = parser.parse_overrides([argument])
            if override.is_sweep_override():
                argument = f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}"
        out.append(argument)
    return out


@pytest.mark.parametrize("where, command", LION_BENCH, ids=[f"{w} {c}"[:90] for w, c in LION_BENCH])
def test_lion_bench_command_passes_its_checks(where, command):
    """The checks lion-bench makes before anything runs, on one trial of the command (the first value of each
    swept list): its names, then the composed config (schema, device, data). Launcher choices (hydra/...)
    are Hydra's and left out of the composed config."""
    from lion_bench.command_line import command_line_problem
    from lion_bench.config_names import command_line_names_problem
    from lion_bench.plan import check_config

    arguments = shlex.split(command)[1:]
    assert command_line_problem(arguments) is None, where
    assert command_line_names_problem(arguments) is None, where
    overrides = [argument for argument in first_values(arguments)
                 if not argument.startswith("-") and not argument.startswith("hydra")]
    if "task=diabetes" in overrides:
        pytest.importorskip("lion_bench_diabetes")  # the example plugin (pip install -e examples/diabetes)
        from lion_bench.user_tasks import register_task_configs

        register_task_configs()  # plugin tasks' configs, as lion-bench registers them at start-up
    check_config(compose_config(overrides))


@pytest.mark.slow
@pytest.mark.parametrize("command", RUN_FOR_REAL)
def test_cheap_command_runs(tmp_path, command):
    found = [where for where, listed in BASH_COMMANDS if listed == command]
    assert found, f"`{command}` is no longer in the docs: remove it from RUN_FOR_REAL"
    if "diabetes" in command:
        pytest.importorskip("lion_bench_diabetes")
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, f"{found[0]}: {command}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


def python_params():
    params = []
    for where, body in blocks("python"):
        marks = [pytest.mark.slow] if any(part in body for part in SLOW_PYTHON) else []
        params.append(pytest.param(where, body, id=where, marks=marks))
    return params


@pytest.mark.parametrize("where, body", python_params())
def test_python_block_runs(tmp_path, monkeypatch, where, body):
    if "task=\"diabetes\"" in body:
        pytest.importorskip("lion_bench_diabetes")
    monkeypatch.chdir(tmp_path)
    namespace = {"model": torch.nn.Linear(4, 2)}
    exec(compile(body, where, "exec"), namespace)
    assert namespace.get("optimizer") is not None or namespace.get("result") is not None, where
    if "result" in namespace:  # run_sweep's example: its records and verdicts came back
        result = namespace["result"]
        assert result.exit_status == 0 and len(result.runs) and len(result.claims) and result.families
