"""lion-bench-report: run records -> a verdict map (claims x contexts), tables and plots
(report.md, report.html, CSVs, PNGs).

    lion-bench -m sweep=lr_ratio && lion-bench-report results/sweeps/lr_ratio -o report/
    lion-bench-report results/ -o report/                            # every run under results/
    lion-bench-report results/ --wandb my-team/lion-bench -o report/  # plus runs pulled from W&B
    lion-bench-report results/ --min-steps 5000 -o report/           # shorter runs are "toy scale"
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from lion_bench.results.claims import CLAIMS, MIN_STEPS, Verdict, check_claims, label_map, rules
from lion_bench.results.contexts import Context, count, short_number
from lion_bench.results.load import SkippedRun, load_local, tables
from lion_bench.results.plots import make_plots
from lion_bench.results.render import markdown_table, render
from lion_bench.results.stats import INCONCLUSIVE
from lion_bench.results.tables import summarize
from lion_bench.runs.errors import DamagedFile
from lion_bench.runs.store import atomic_write_text

NOT_HERE = "·"
WALL_CLOCK = "wall-clock tokens/s (evaluation, compile and start-up included)"
STEADY = "train tokens/s (steady state)"


def _signed(value: float) -> str:
    return f"{value:+.3g}" if math.isfinite(value) else "-"


def _plain(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else ("inf" if value == math.inf else "-")


def effect_text(verdict: Verdict) -> str:
    """``+0.18 [+0.16, +0.2]``: the effect and its 95% interval (ratios unsigned)."""
    if not math.isfinite(verdict.effect):
        return ""
    number = _plain if verdict.claim.key.startswith("paper") else _signed
    return f"{number(verdict.effect)} [{number(verdict.low)}, {number(verdict.high)}]"


def cell(verdict: Verdict) -> str:
    """One cell of the verdict map: verdict, effect, interval, n, Holm-adjusted p (and what sits beside it)."""
    outcome = verdict.outcome
    parts = [f"**{outcome}**"]
    if outcome == INCONCLUSIVE and verdict.decision.outcome != INCONCLUSIVE:
        parts.append(f"(was {verdict.decision.outcome} before Holm)")
    if verdict.toy:
        parts.append("(toy scale)")
    if verdict.decision.note:
        parts[-1] += ":"
        parts.append(verdict.decision.note)
    if effect_text(verdict):
        parts.append(effect_text(verdict))
    parts.append(f"n={verdict.num}")
    if math.isfinite(verdict.p_adjusted):
        parts.append(f"p={verdict.p_adjusted:.2g}")
    text = " ".join(parts)
    return f"{text}; {verdict.aside}" if verdict.aside else text


MAX_COLUMNS = 4  # more contexts than this: one row per context instead, so the map reads down the page


def verdict_map(verdicts: list[Verdict]) -> pd.DataFrame:
    """Rows: claims; columns: every context with a judged verdict (or the transpose when there are more than
    MAX_COLUMNS contexts); cells: ``cell`` or NOT_HERE."""
    judged = [verdict for verdict in verdicts if verdict.judged]
    labels = sorted({verdict.label for verdict in judged})
    cells = {(verdict.claim.key, verdict.label): cell(verdict) for verdict in judged}
    if len(labels) > MAX_COLUMNS:
        return pd.DataFrame([{"context": label, **{claim.name: cells.get((claim.key, label), NOT_HERE)
                                                   for claim in CLAIMS}} for label in labels])
    return pd.DataFrame([{"claim": f"**{claim.name}**: {claim.statement}",
                          **{label: cells.get((claim.key, label), NOT_HERE) for label in labels}}
                         for claim in CLAIMS])


def where_it_holds(verdicts: list[Verdict]) -> list[str]:
    """One line per claim: the contexts where it held, where it did not, and where it could not be judged."""
    lines = []
    for claim in CLAIMS:
        mine = [verdict for verdict in verdicts if verdict.claim is claim]
        parts = []
        for outcome in ("supported", "contradicted", "inconclusive"):
            found = [verdict for verdict in mine if verdict.judged and verdict.outcome == outcome]
            if found:
                names = "; ".join(f"{verdict.label}{' (toy scale)' if verdict.toy else ''}" for verdict in found)
                parts.append(f"{outcome} in {len(found)} ({names})")
        missing = [verdict for verdict in mine if not verdict.judged]
        if missing:
            parts.append(f"not judged in {len(missing)} (runs missing: `lion-bench -m sweep={claim.sweep}`)")
        lines.append(f"- **{claim.name}** ({claim.statement}): {'; '.join(parts) or 'no runs'}")
    return lines


def how_judged() -> list[str]:
    return [f"- **{claim.name}** ({claim.statement}; {claim.source}): {claim.how}." for claim in CLAIMS]


def details_frame(verdicts: list[Verdict]) -> pd.DataFrame:
    rows = []
    for verdict in verdicts:
        if not verdict.judged:
            continue
        rows.append({
            "claim": verdict.claim.name, "context": verdict.label, "verdict": f"**{verdict.outcome}**",
            "before Holm": verdict.decision.outcome, "effect": verdict.effect_name,
            "value [95% interval]": effect_text(verdict) or "-", "n": verdict.num,
            "p": _plain(verdict.decision.p_value) if math.isfinite(verdict.decision.p_value) else "-",
            "p (Holm)": _plain(verdict.p_adjusted), "scale": verdict.toy or "-",
            "details": "; ".join(part for part in (verdict.decision.note, verdict.detail, verdict.aside) if part),
            "runs": len(set(verdict.sources)),
        })
    return pd.DataFrame(rows)


def not_judged(verdicts: list[Verdict]) -> list[str]:
    lines = []
    for claim in CLAIMS:
        reasons: dict[str, list[str]] = {}
        for verdict in verdicts:
            if verdict.claim is claim and not verdict.judged:
                reasons.setdefault(verdict.reason, []).append(verdict.label)
        for reason, labels in sorted(reasons.items()):
            where = "; ".join(labels[:3]) + (f"; and {len(labels) - 3} more" if len(labels) > 3 else "")
            lines.append(f"- **{claim.name}** in {len(labels)} context(s) ({where}): {reason}. Needs {claim.needs}; "
                         f"supply with `lion-bench -m sweep={claim.sweep}`.")
    return lines or ["Every claim was judged wherever it applies."]


def runs_used(verdicts: list[Verdict]) -> list[str]:
    lines = []
    for verdict in verdicts:
        if verdict.judged:
            names = sorted({Path(source).name for source in verdict.sources})
            lines.append(f"- {verdict.claim.name} in {verdict.label} ({len(names)} runs): {', '.join(names)}")
    return lines or ["No claim was judged."]


def _wd(row) -> str:
    if row.weight_decay == 0:
        return "0"
    if row.family == "lion" and math.isfinite(row.base_weight_decay) and row.wd_multiplier != 1:
        return f"{short_number(row.weight_decay)} ({short_number(row.base_weight_decay)} x {row.wd_multiplier:g})"
    return short_number(row.weight_decay)


def _lr(row) -> str:
    if row.family == "lion" and row.lr_divisor != 1:
        return f"{short_number(row.lr)} ({short_number(row.base_lr)} / {row.lr_divisor:g})"
    return short_number(row.lr)


def _loss(row, metric: str) -> str:
    mean = getattr(row, f"{metric}_mean")
    if not math.isfinite(mean):
        return "-"
    return (f"{mean:.4g} ± {_plain(getattr(row, f'{metric}_std'))} "
            f"[{_plain(getattr(row, f'{metric}_ci_low'))}, {_plain(getattr(row, f'{metric}_ci_high'))}]")


def arms_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """One setup's arms as people read them: resolved lr and weight decay, length, losses, throughput."""
    rows = []
    steady = summary["train_tokens_per_s"].notna().any()
    wall = summary["train_tokens_per_s"].isna().any()
    for row in summary.sort_values(["family", "lr", "weight_decay"]).itertuples(index=False):
        entry = {
            "optimizer": row.optimizer, "lr": _lr(row), "weight decay": _wd(row), "betas": row.betas,
            "batch": row.batch_size, "steps": row.planned_steps, f"{row.unit or 'tokens'}": count(row.tokens_mean),
            "schedule": f"{row.schedule}, warmup {row.warmup_steps}", "seeds": row.num_seeds,
            "diverged": row.num_diverged, "early val loss": _plain(row.early_val_loss_mean),
            "final val loss (mean ± std [95% CI])": _loss(row, "final_val_loss"),
            "final val bpc": _loss(row, "final_val_bpc"),
        }
        if steady:
            entry[STEADY] = f"{row.train_tokens_per_s:.0f}" if math.isfinite(row.train_tokens_per_s) else "-"
        if wall:
            entry[WALL_CLOCK] = f"{row.wall_tokens_per_s:.0f}" if math.isfinite(row.wall_tokens_per_s) else "-"
        rows.append(entry)
    return pd.DataFrame(rows)


def arms_blocks(runs: pd.DataFrame, summary: pd.DataFrame) -> list[tuple[str, object]]:
    labels = label_map(runs)
    blocks = []
    for label, setup in sorted((Context(setup).label(labels), setup) for setup in summary["setup"].unique()):
        blocks += [("h3", label), ("table", arms_frame(summary[summary["setup"] == setup]))]
    return blocks


def build_report(runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path, skipped: list[str], inputs: list[str],
                 min_steps: int = MIN_STEPS) -> dict:
    """Write every output file under ``out_dir``; returns what it computed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs)
    verdicts = check_claims(runs, min_steps)
    claims = pd.DataFrame([verdict.row() for verdict in verdicts])
    plots = make_plots(runs, curves, verdicts, out_dir)

    runs.drop(columns=["setup_fields", "budget_fields"]).to_csv(out_dir / "runs.csv", index=False)
    summary.to_csv(out_dir / "summary.csv", index=False)
    claims.to_csv(out_dir / "claims.csv", index=False)

    counts = runs["status"].value_counts().to_dict()
    status = ", ".join(f"{number} {name}" for name, number in counts.items())
    blocks = [
        ("text", [f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from {', '.join(inputs)}: "
                  f"{len(runs)} runs ({status}), {len(skipped)} skipped."]),
        ("h2", "Verdict map"),
        ("table", verdict_map(verdicts)),
        ("text", [f"Each cell: verdict, effect [95% interval], n (paired seeds, or seeds for ratios), p after Holm's "
                  f"correction over the {sum(v.judged and math.isfinite(v.p_adjusted) for v in verdicts)} tested "
                  f"verdicts of this report. {NOT_HERE}: not judged in that context. Toy scale: runs shorter than "
                  f"{min_steps:,} steps (`--min-steps`)."]),
        ("h2", "Where each claim holds"),
        ("text", where_it_holds(verdicts)),
        ("h2", "How each claim is judged"),
        ("text", how_judged()),
        ("h2", "Rules (fixed before looking at the runs)"),
        ("text", rules(min_steps).splitlines()),
        ("h2", "Verdicts in detail"),
        ("table", details_frame(verdicts)),
        ("h2", "Not judged for lack of runs"),
        ("text", not_judged(verdicts)),
        ("h2", "Runs each verdict used"),
        ("text", runs_used(verdicts)),
        ("h2", "Arms (per setup; mean over the seeds of finished runs, diverged runs counted apart)"),
        *arms_blocks(runs, summary),
        ("h2", "Plots"),
        *[("image", path.name) for path in plots],
    ]
    if skipped:
        blocks += [("h2", "Skipped runs"), ("text", [f"- {reason}" for reason in skipped])]
    markdown, page = render(blocks, "Lion vs AdamW: report")
    atomic_write_text(out_dir / "report.md", markdown + "\n")
    atomic_write_text(out_dir / "report.html", page)
    return {"summary": summary, "claims": claims, "verdicts": verdicts, "plots": plots}


class BadArguments(Exception):
    """A user mistake on the command line, reported as one line on stderr (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise BadArguments(message)


def check_output_dir(out: Path) -> None:
    """-o must be a directory this process can create or write into; checked before anything is written."""
    if out.exists() and not out.is_dir():
        raise BadArguments(f"-o {out} is an existing file; give a directory (it is created if missing)")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BadArguments(f"-o {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadArguments(f"-o {out}: {existing} is not writable")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="lion-bench-report", description=__doc__.splitlines()[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("run_dirs", nargs="*", type=Path, help="directories searched recursively for run.json")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    parser.add_argument("--wandb", action="append", default=[], metavar="ENTITY/PROJECT",
                        help="also pull runs from this W&B project (repeatable)")
    parser.add_argument("--min-steps", type=int, default=MIN_STEPS,
                        help=f"runs shorter than this make their context 'toy scale' (default {MIN_STEPS})")
    args = parser.parse_args(argv)
    if not args.run_dirs and not args.wandb:
        raise BadArguments("give at least one RUN_DIR or --wandb ENTITY/PROJECT")
    for path in args.run_dirs:
        if not path.exists():
            raise BadArguments(f"{path} does not exist; give directories that hold run directories (run.json)")
    for project in args.wandb:
        if project.count("/") != 1 or not all(project.split("/")):
            raise BadArguments(f"--wandb takes ENTITY/PROJECT, got {project!r}")
    check_output_dir(args.out)
    return args


def check_dependencies() -> None:
    """The report's optional packages, all named at once with the command that installs them."""
    import importlib.util

    missing = [name for name in ("scipy", "tabulate", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"lion-bench-report needs {', '.join(missing)}: pip install 'lion-bench[report]'")


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
            except ImportError:
                raise
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
    except BadArguments as error:
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
    result = build_report(runs, curves, args.out, skipped, inputs, args.min_steps)
    print(f"{len(runs)} runs loaded, {len(skipped)} skipped" + (f"; {len(damaged)} damaged lines or files skipped "
                                                                 "inside them (warnings above)" if damaged else ""))
    print(markdown_table(verdict_map(result["verdicts"])))
    print("\n".join(where_it_holds(result["verdicts"])))
    print(f"report: {args.out / 'report.md'} (and report.html, runs.csv, summary.csv, claims.csv, "
          f"{len(result['plots'])} plots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
