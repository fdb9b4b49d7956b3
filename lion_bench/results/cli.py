"""lion-bench-report: run records -> the answer (Lion tuned vs AdamW tuned), verdicts per family and
context, tables and plots (report.md, report.html, CSVs, PNGs).

    lion-bench -m sweep=tuned && lion-bench-report results/sweeps/tuned -o report/
    lion-bench-report results/ -o report/                            # every run under results/
    lion-bench-report results/claim_map_h200x4/runs -o report/       # a study, judged under its protocol
    lion-bench-report results/ --wandb my-team/lion-bench -o report/  # plus runs pulled from W&B
    lion-bench-report results/ --min-steps 5000 -o report/           # shorter runs are "toy scale"
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from lion_bench.results.claims.judge import MIN_STEPS, judge, study_protocols
from lion_bench.results.load import SkippedRun, load_local, tables
from lion_bench.results.protocol import ProtocolError
from lion_bench.results.render import markdown_table
from lion_bench.results.report import answer_frame, build_report, terminal_summary
from lion_bench.runs.errors import DamagedFile


class BadArguments(Exception):
    """A user mistake on the command line, reported as one line on stderr (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise BadArguments(message)


def check_output_dir(name: str) -> Path:
    """-o must name a directory this process can create or write into; checked before anything is written."""
    if not name.strip():
        raise BadArguments("-o needs a directory name (it is created if missing), e.g. -o report/")
    out = Path(name)
    if out.exists() and not out.is_dir():
        raise BadArguments(f"-o {out} is an existing file; give a directory (it is created if missing)")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BadArguments(f"-o {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadArguments(f"-o {out}: {existing} is not writable")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="lion-bench-report", description=__doc__.splitlines()[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("run_dirs", nargs="*", type=Path, help="directories searched recursively for run.json")
    parser.add_argument("-o", "--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--wandb", action="append", default=[], metavar="ENTITY/PROJECT",
                        help="also pull runs from this W&B project (repeatable)")
    parser.add_argument("--min-steps", type=int, default=MIN_STEPS,
                        help=f"runs shorter than this make their context 'toy scale' (default {MIN_STEPS})")
    args = parser.parse_args(argv)
    if not args.run_dirs and not args.wandb:
        raise BadArguments("give at least one RUN_DIR or --wandb ENTITY/PROJECT")
    for path in args.run_dirs:
        if not path.is_dir():
            raise BadArguments(f"{path} is not a directory; give directories that hold run directories (run.json)")
    for project in args.wandb:
        if project.count("/") != 1 or not all(project.split("/")):
            raise BadArguments(f"--wandb takes ENTITY/PROJECT, got {project!r}")
    args.out = check_output_dir(args.out)
    return args


def check_dependencies() -> None:
    """The report's optional packages, all named at once with the command that installs them."""
    missing = [name for name in ("scipy", "tabulate", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise BadArguments(f"lion-bench-report needs {', '.join(missing)}: pip install 'lion-bench[report]'")


def load(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """Every run from the directories and W&B projects given, with the warnings for the runs skipped
    and for the damaged lines and files skipped inside runs that were kept."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRun)
        warnings.simplefilter("always", DamagedFile)
        runs, curves = load_local(args.run_dirs)
        if args.wandb:
            from lion_bench.results.wandb_import import fetch_project

            try:
                triples = [triple for project in args.wandb for triple in fetch_project(project)]
            except ImportError as error:
                raise BadArguments(str(error)) from None
            except Exception as error:  # network, auth, unknown project: the W&B client raises many types
                raise BadArguments(f"could not read runs from W&B ({type(error).__name__}: {error})") from None
            wandb_runs, wandb_curves = tables(triples)
            if len(wandb_runs):
                runs = pd.concat([frame for frame in (runs, wandb_runs) if len(frame)], ignore_index=True)
                curves = pd.concat([curves, wandb_curves], ignore_index=True)
    skipped = [str(warning.message) for warning in caught if issubclass(warning.category, SkippedRun)]
    damaged = [str(warning.message) for warning in caught if issubclass(warning.category, DamagedFile)]
    for warning in caught:
        if not issubclass(warning.category, (SkippedRun, DamagedFile)):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return runs, curves, skipped, damaged


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        check_dependencies()
        runs, curves, skipped, damaged = load(args)
        found = study_protocols(runs) if len(runs) else {}
    except (BadArguments, ProtocolError) as error:
        print(f"lion-bench-report: error: {error}", file=sys.stderr)
        return 2
    for message in skipped + damaged:
        print(f"warning: {message}", file=sys.stderr)
    inputs = [str(path) for path in args.run_dirs] + [f"wandb:{project}" for project in args.wandb]
    if not len(runs):
        print(f"lion-bench-report: error: no finished or diverged runs under {', '.join(inputs)} ({len(skipped)} "
              "skipped); run a sweep first (lion-bench -m sweep=quickstart) or give the directory holding its runs",
              file=sys.stderr)
        return 2
    families = judge(runs, curves, found, args.min_steps)
    result = build_report(families, runs, curves, args.out, skipped, inputs, args.min_steps)
    print(f"{len(runs)} runs loaded, {len(skipped)} skipped" + (f"; {len(damaged)} damaged lines or files skipped "
                                                                 "inside them (warnings above)" if damaged else ""))
    print("\n".join(terminal_summary(result["families"])))
    print(f"report: {args.out / 'report.md'} (and report.html, CSVs, {len(result['figures'])} plots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
