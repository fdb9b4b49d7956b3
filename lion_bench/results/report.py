"""lion-bench-report: run records -> tables, plots and a claims check (report.md, report.html, CSVs, PNGs).

    lion-bench -m sweep=lr_ratio && lion-bench-report results/sweeps/lr_ratio -o report/
    lion-bench-report results/ -o report/                            # every run under results/
    lion-bench-report results/ --wandb my-team/lion-bench -o report/  # plus runs pulled from W&B
"""

from __future__ import annotations

import argparse
import html
import math
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from lion_bench.results.claims import CLAIMS, RULES, Verdict, check_claims
from lion_bench.results.load import SkippedRun, load_local, tables
from lion_bench.results.plots import make_plots
from lion_bench.results.tables import lion_vs_adamw, summarize
from lion_bench.runs.store import atomic_write_text

SUMMARY_COLUMNS = [
    "task", "setup", "optimizer", "lr_divisor", "wd_multiplier", "betas", "batch_size", "lr", "weight_decay",
    "num_seeds", "num_diverged", "final_val_loss_mean", "final_val_loss_std", "final_val_loss_ci_low",
    "final_val_loss_ci_high", "best_val_loss_mean", "best_val_loss_ci_low", "best_val_loss_ci_high",
    "final_val_bpc_mean", "final_val_bpc_ci_low", "final_val_bpc_ci_high", "train_tokens_per_s",
]


def _number(value, spec: str = ".4g", signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, ("+" if signed else "") + spec)


def claims_frame(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([verdict.row() for verdict in verdicts])


def claims_display(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims table as people read it: effect and interval as text, runs as a count."""
    rows = []
    for row in claims.itertuples(index=False):
        signed = row.effect_name.startswith(("loss", "advantage"))
        rows.append({
            "claim": f"{row.statement} ({row.source})", "task": row.task, "verdict": row.verdict, "n": row.n,
            "effect": f"{row.effect_name}: {_number(row.effect, signed=signed)}" if row.effect_name else "-",
            "95% interval": f"[{_number(row.ci_low, signed=signed)}, {_number(row.ci_high, signed=signed)}]"
            if row.effect_name else "-",
            "runs": row.num_runs,
            "details": row.detail + (f" -> run `lion-bench -m sweep={row.sweep}`" if row.missing_runs else ""),
        })
    return pd.DataFrame(rows)


def summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for row in summary.itertuples(index=False):
        def cell(metric: str) -> str:
            mean = getattr(row, f"{metric}_mean")
            return (f"{_number(mean)} ± {_number(getattr(row, f'{metric}_std'), '.2g')} "
                    f"[{_number(getattr(row, f'{metric}_ci_low'))}, {_number(getattr(row, f'{metric}_ci_high'))}]")

        rows.append({
            "task": row.task, "optimizer": row.optimizer, "lr": _number(row.lr, ".3g"),
            "divisor": _number(row.lr_divisor, "g"), "wd": _number(row.weight_decay, ".3g"),
            "wd mult": _number(row.wd_multiplier, "g"), "betas": row.betas, "batch": row.batch_size,
            "seeds": row.num_seeds, "diverged": row.num_diverged,
            "final val loss (mean ± std [95% CI])": cell("final_val_loss"),
            "best val loss": cell("best_val_loss"),
            "final val bpc": cell("final_val_bpc") if not math.isnan(row.final_val_bpc_mean) else "-",
            # Steady-state training throughput; runs recorded before it was measured show wall clock.
            "train tokens/s": _number(row.train_tokens_per_s, ".0f") if not math.isnan(row.train_tokens_per_s)
            else f"{_number(row.wall_tokens_per_s, '.0f')} (wall clock, evaluation included)",
        })
    return pd.DataFrame(rows)


def comparison_display(comparison: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for row in comparison.itertuples(index=False):
        rows.append({
            "task": row.task, "batch": row.batch_size, "best Lion lr": f"{row.lion_lr:.3g} (lr/{row.lion_lr_divisor:g})",
            "best AdamW lr": f"{row.adamw_lr:.3g}", "AdamW lr / Lion lr": f"{row.lr_ratio_adamw_over_lion:.3g}",
            "Lion - AdamW loss": _number(row.difference_lion_minus_adamw, signed=True),
            "95% interval": f"[{_number(row.ci_low, signed=True)}, {_number(row.ci_high, signed=True)}]",
            "paired seeds": row.num_pairs,
        })
    return pd.DataFrame(rows)


def missing_section(claims: pd.DataFrame) -> list[str]:
    missing = claims[claims["missing_runs"]]
    if missing.empty:
        return ["Every claim had the runs it needs."]
    lines = []
    for claim in CLAIMS:
        rows = missing[missing["claim"] == claim.key]
        if len(rows):
            tasks = ", ".join(sorted(set(rows["task"])))
            lines.append(f"- **{claim.statement}** ({tasks}): needs {claim.needs}. "
                         f"Supply with `lion-bench -m sweep={claim.sweep}`.")
    return lines


def runs_used_section(claims: pd.DataFrame) -> list[str]:
    """Each judged claim's run directories (by name; full paths are in claims.csv)."""
    lines = []
    for row in claims[~claims["missing_runs"]].itertuples(index=False):
        names = sorted({Path(source).name for source in row.runs.split(";") if source})
        lines.append(f"- {row.claim} ({row.task}, {len(names)} runs): {', '.join(names)}")
    return lines or ["No claim was judged."]


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(none)_"
    return frame.to_markdown(index=False, disable_numparse=True)


def render(blocks: list[tuple[str, object]], title: str) -> tuple[str, str]:
    """Blocks of (kind, content) -> (markdown, html). kinds: h2, text (markdown-ish lines), table, image."""
    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for kind, content in blocks:
        if kind == "h2":
            md += [f"## {content}", ""]
            body.append(f"<h2>{html.escape(content)}</h2>")
        elif kind == "text":
            md += [*content, ""]
            body.append("<pre>" + html.escape("\n".join(content)) + "</pre>")
        elif kind == "table":
            md += [markdown_table(content), ""]
            body.append(content.to_html(index=False, border=0, na_rep="-") if len(content) else "<p>(none)</p>")
        elif kind == "image":
            md += [f"![{content}]({content})", ""]
            body.append(f'<p><img src="{html.escape(str(content))}" alt="{html.escape(str(content))}"></p>')
    style = "body{font-family:sans-serif;max-width:1400px;margin:auto}table{border-collapse:collapse;font-size:13px}" \
            "td,th{border:1px solid #ccc;padding:3px 6px}pre{white-space:pre-wrap}"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    return "\n".join(md), page


def build_report(runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path, skipped: list[str],
                 inputs: list[str]) -> dict:
    """Write every output file under ``out_dir``; returns the tables it computed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs) if len(runs) else pd.DataFrame(columns=SUMMARY_COLUMNS + ["score_mean", "seeds"])
    comparison = lion_vs_adamw(runs, summary) if len(runs) else pd.DataFrame()
    claims = claims_frame(check_claims(runs, summary))
    plots = make_plots(runs, curves, summary, out_dir) if len(runs) else []

    runs.to_csv(out_dir / "runs.csv", index=False)
    summary.to_csv(out_dir / "summary.csv", index=False)
    claims.to_csv(out_dir / "claims.csv", index=False)

    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    blocks = [
        ("text", [f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from "
                  f"{', '.join(inputs)}: {len(runs)} runs ({', '.join(f'{v} {k}' for k, v in counts.items()) or 'none'}), "
                  f"{len(skipped)} skipped."]),
        ("h2", "Claims"),
        ("table", claims_display(claims)),
        ("h2", "Rule (fixed before looking at the runs)"),
        ("text", RULES.splitlines()),
        ("h2", "Claims not judged for lack of runs"),
        ("text", missing_section(claims)),
        ("h2", "Runs each claim used"),
        ("text", runs_used_section(claims)),
        ("h2", "Best Lion vs best AdamW"),
        ("text", ["Per task and batch size: each optimizer's arm with the lowest mean score; "
                  "difference paired by seed, 95% t-interval."]),
        ("table", comparison_display(comparison) if len(comparison) else pd.DataFrame()),
        ("h2", "Arms (mean over seeds of finished runs; diverged runs counted separately)"),
        ("table", summary_display(summary) if len(summary) else pd.DataFrame()),
        ("h2", "Plots"),
        *[("image", path.name) for path in plots],
    ]
    if skipped:
        blocks += [("h2", "Skipped runs"), ("text", [f"- {reason}" for reason in skipped])]
    markdown, page = render(blocks, "Lion vs AdamW: report")
    atomic_write_text(out_dir / "report.md", markdown + "\n")
    atomic_write_text(out_dir / "report.html", page)
    return {"summary": summary, "claims": claims, "comparison": comparison, "plots": plots}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lion-bench-report", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("run_dirs", nargs="*", type=Path, help="directories searched recursively for run.json")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    parser.add_argument("--wandb", action="append", default=[], metavar="ENTITY/PROJECT",
                        help="also pull runs from this W&B project (repeatable)")
    args = parser.parse_args(argv)
    if not args.run_dirs and not args.wandb:
        parser.error("give at least one RUN_DIR or --wandb ENTITY/PROJECT")
    for path in args.run_dirs:
        if not path.exists():
            parser.error(f"{path} does not exist")
    for project in args.wandb:
        if project.count("/") != 1 or not all(project.split("/")):
            parser.error(f"--wandb takes ENTITY/PROJECT, got {project!r}")
    return args


def check_dependencies() -> None:
    """The report's optional packages, all named at once with the command that installs them."""
    import importlib.util

    missing = [name for name in ("scipy", "tabulate", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"lion-bench-report needs {', '.join(missing)}: pip install 'lion-bench[report]'")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_dependencies()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRun)
        runs, curves = load_local(args.run_dirs)
        if args.wandb:
            from lion_bench.results.wandb_import import fetch_project

            try:
                triples = [triple for project in args.wandb for triple in fetch_project(project)]
            except ImportError:
                raise
            except Exception as error:  # network, auth, unknown project: the W&B client raises many types
                print(f"error: could not read runs from W&B ({type(error).__name__}: {error})", file=sys.stderr)
                return 2
            wandb_runs, wandb_curves = tables(triples)
            runs = pd.concat([frame for frame in (runs, wandb_runs) if len(frame)], ignore_index=True) \
                if len(wandb_runs) else runs
            curves = pd.concat([curves, wandb_curves], ignore_index=True)
    skipped = [str(warning.message) for warning in caught if issubclass(warning.category, SkippedRun)]
    for message in skipped:
        print(f"warning: {message}", file=sys.stderr)
    for warning in caught:
        if not issubclass(warning.category, SkippedRun):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    inputs = [str(path) for path in args.run_dirs] + [f"wandb:{project}" for project in args.wandb]
    result = build_report(runs, curves, args.out, skipped, inputs)
    print(f"{len(runs)} runs loaded, {len(skipped)} skipped")
    terminal = claims_display(result["claims"]).drop(columns=["details"])
    terminal["claim"] = [f"{row.statement}" for row in result["claims"].itertuples()]
    print(markdown_table(terminal))
    print(f"report: {args.out / 'report.md'} (and report.html, runs.csv, summary.csv, claims.csv, "
          f"{len(result['plots'])} plots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
