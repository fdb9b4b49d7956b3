"""The report's pages: the answer first (Lion tuned vs AdamW tuned), its plots, each family's verdicts, the
curves, the catalogue of every claim, the contexts' legend, the protocols and rules, then the arm tables and
the runs behind each verdict. ``build_report`` writes report.md, report.html, runs.csv, summary.csv,
claims.csv and the figures; ``terminal_summary`` is what the command prints."""

from __future__ import annotations

import math
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from lion_bench.results.claims.base import EXPLORATORY, MEASURED, NOT_JUDGED, PRIMARY, Cell
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY, CLAIMS, LARGE_BATCH
from lion_bench.results.claims.judge import EXPLORATORY_ALPHA, Family
from lion_bench.results.contexts import describe
from lion_bench.results.format import (count, crossing_interval, interval, level, p_value, plain, short_number,
                                       would_decide)
from lion_bench.results.plots import Figure, make_plots
from lion_bench.results.render import render
from lion_bench.results.stats import (ABOVE, AHEAD_THROUGHOUT, BELOW, CROSSES, INCONCLUSIVE, MIN_SEEDS,
                                      NEVER_CROSSES, Bootstrap, Crossing, Measured, SignTest)
from lion_bench.results.tables import THROUGHPUT_SPREAD, best_trials, summarize
from lion_bench.runs.store import atomic_write_text

TERMINAL_WIDTH = 100


def effect_text(cell: Cell) -> str:
    """``+0.18 [+0.16, +0.2] (98.3%)``: the effect, its interval and the interval's level."""
    if isinstance(cell.test, Crossing) and not math.isnan(cell.effect):
        points = cell.test.points
        shown = crossing_interval(cell.effect, cell.low, cell.high, points[0], points[-1])
        return f"{shown} (95%, exploratory)" if cell.role == EXPLORATORY else f"{shown} ({level(cell.alpha)})"
    if not math.isfinite(cell.effect):
        return "-"
    ratio = isinstance(cell.test, (Bootstrap, Measured, SignTest))
    if isinstance(cell.test, Measured):
        return short_number(cell.effect)
    shown = interval(cell.effect, cell.low, cell.high, sign=not ratio)
    if cell.role in (EXPLORATORY, NOT_JUDGED):  # not judged with an effect: a best arm at its grid's edge
        return f"{shown} (95%, exploratory)"
    return f"{shown} ({level(cell.alpha)})" if math.isfinite(cell.alpha) else shown


def verdict_text(cell: Cell) -> str:
    if cell.role == NOT_JUDGED:
        return "not judged"
    if cell.role == EXPLORATORY:
        return "exploratory"
    if cell.verdict == INCONCLUSIVE or cell.answer == INCONCLUSIVE:
        needed = (f" (~{cell.seeds_needed} seeds would decide it)" if cell.seeds_needed else "")
        return f"inconclusive{needed}"
    return cell.verdict


def answer_text(cell: Cell) -> str:
    if cell.role == PRIMARY or cell.role == MEASURED:
        return cell.answer or "-"
    return "-"


def notes(cell: Cell) -> str:
    parts = [cell.test.note if cell.test is not None else "", cell.toy, cell.reason, cell.facts.get("would_decide")]
    return "; ".join(part for part in parts if part)


# Where runs are toy scale, the run that would decide: Lion tuned vs AdamW tuned has a preset that decides on CPU.
DECIDING_COMMAND = {"tuned": "lion-bench -m sweep=tuned_decisive"}


def advise(families: list[Family], runs: pd.DataFrame, min_steps: int) -> None:
    """Each inconclusive primary answer gets what would decide it (``facts["would_decide"]``): the seeds at the
    observed spread and, at toy scale, the length, timed by its own runs' wall time per step."""
    for cell in (cell for family in families for cell in family.cells):
        if cell.role != PRIMARY or cell.answer != INCONCLUSIVE:
            continue
        mine = runs[runs["source"].isin(cell.sources) & (runs["status"] == "finished")]
        if not len(mine):
            continue
        per_step = (mine["wall_time_s"] / mine["steps"].clip(lower=1)).median()
        steps = int(mine["planned_steps"].min())
        command = DECIDING_COMMAND.get(cell.claim.key, f"lion-bench -m sweep={cell.claim.preset} "
                                                       f"trainer.max_steps={min_steps}")
        runs_per_seed = int(mine.groupby(["optimizer", "lr_key", "wd_key"]).ngroups)
        cell.facts["would_decide"] = would_decide(cell.seeds_needed, int(mine["seed"].nunique()), runs_per_seed,
                                                  float(per_step), steps, min_steps, command)


# --- the answer ------------------------------------------------------------------------------------
def _best(facts: dict, picks: list) -> str:
    """The arm chosen (the one the answer seeds ran, or the most chosen over the left-out seeds), and how many
    grid lrs came within 1% of the best on the seeds the choice was made on."""
    if not facts:
        return "-"
    lr, wd = picks[0] if len(picks) == 1 else (facts["lr"], facts["wd"])
    near = facts.get("near") or []
    span = f"; {len(near)} of {len(facts['lrs'])} lrs within 1%" if near else ""
    edge = " (grid edge)" if lr in (facts["lrs"][0], facts["lrs"][-1]) and len(facts["lrs"]) > 1 else ""
    return f"lr {short_number(lr)}{edge}, wd {short_number(wd)}{span}"


def _relative(cell: Cell) -> str:
    reference = cell.facts.get("reference", math.nan)
    if not (math.isfinite(cell.effect) and math.isfinite(reference) and reference):
        return "-"
    return f"{100 * cell.effect / reference:+.1f}% of AdamW's {short_number(reference)}"


ROLE_ORDER = {PRIMARY: 0, EXPLORATORY: 1, MEASURED: 2, NOT_JUDGED: 3}


def batch_of(family: Family, cell: Cell) -> int | None:
    """The batch size of a cell's setup (None for a budget setup, which holds several)."""
    return (family.legend.get(cell.context.setup) or {}).get("batch_size")


def family_tuned(family: Family) -> list[Cell]:
    """A family's tuned-vs-tuned cells, primary ones first, then by batch size; in a family with a judged one,
    its unjudged ones are left to the verdict tables."""
    mine = [cell for cell in family.cells if cell.claim.key == "tuned" and cell.context.setup != "-"]
    judged = [cell for cell in mine if cell.judged or cell.edge]
    return sorted(judged or mine, key=lambda cell: (ROLE_ORDER[cell.role], batch_of(family, cell) or 0, cell.label))


def tuned_cells(families: list[Family]) -> list[Cell]:
    """Every family's tuned-vs-tuned cells (``family_tuned``), family by family."""
    return [cell for family in families for cell in family_tuned(family)]


def answer_frame(families: list[Family]) -> pd.DataFrame:
    """One row per tuned-vs-tuned cell; where they differ by batch size, the batch opens each row."""
    shown = [(family, cell) for family in families for cell in family_tuned(family)]
    by_batch = len({batch_of(family, cell) for family, cell in shown}) > 1
    rows = []
    for family, cell in shown:
        batch = batch_of(family, cell)
        rows.append({
            "family": cell.family, **({"batch": f"**{batch}**" if batch else "-"} if by_batch else {}),
            "context": cell.label,
            "answer": f"**{cell.answer}**" if cell.role == PRIMARY else verdict_text(cell),
            "Lion - AdamW, final loss": effect_text(cell), "relative": _relative(cell), "n": cell.n,
            "Lion at its best": _best(cell.facts.get("lion", {}), cell.facts.get("picks", {}).get("lion", [])),
            "AdamW at its best": _best(cell.facts.get("adamw", {}), cell.facts.get("picks", {}).get("adamw", [])),
            "notes": notes(cell) or (f"~{cell.seeds_needed} seeds would decide it" if cell.seeds_needed else ""),
        })
    return pd.DataFrame(rows)


def batch_cells(family: Family, key: str) -> list[Cell]:
    """A family's cells of a batch-size claim worth opening the report with: judged ones (primary first), or
    the not-judged one a protocol asked for."""
    mine = [cell for cell in family.cells if cell.claim.key == key and (cell.judged or cell.question)]
    return sorted(mine, key=lambda cell: (ROLE_ORDER[cell.role], cell.label))


def crossing_line(cell: Cell) -> str:
    """"Lion stops losing at batch ~180 [90, 250] (n 5, 99.2%)", or that it never does within the batches."""
    if not cell.judged:
        why = "; ".join(filter(None, [cell.reason, cell.aside]))
        return f"Where Lion stops losing (batch crossing): not judged ({why})"
    points = cell.test.points
    shown = crossing_interval(cell.effect, cell.low, cell.high, points[0], points[-1])
    rate = "95%, exploratory" if cell.role == EXPLORATORY else level(cell.alpha)
    answer = cell.test.decide(cell.alpha) if cell.role == EXPLORATORY else cell.answer
    where = f"batch {points[0]:g}-{points[-1]:g}"
    if answer == CROSSES:
        text = f"Lion stops losing at batch {shown}"
    elif answer == NEVER_CROSSES:
        text = f"Lion never catches up within {where}"
    elif answer == AHEAD_THROUGHOUT:
        text = f"Lion is not behind from the smallest batch ({points[0]:g}) on"
    else:
        text = f"Where Lion stops losing within {where} is inconclusive: {shown}"
    return f"{text} (n {cell.n}, {rate}); {cell.aside}"


def update7_line(cell: Cell) -> str:
    """Update 7's verdict with its parts' answers at the rate that decided it: the growth of Lion's advantage
    and Lion against AdamW at each judged large batch."""
    claim = CLAIM_BY_KEY["update7"]
    head = f"{claim.name} (\u201c{claim.words}\u201d)"
    if not cell.judged:
        return f"{head}: not judged ({'; '.join(filter(None, [cell.reason, cell.aside]))})"
    rate = cell.alpha if cell.role == PRIMARY else EXPLORATORY_ALPHA
    slope, *large = [part for part, _ in cell.test.parts]
    growth = interval(*slope.interval(rate))
    sides = ", ".join(f"bs{batch} {test.decide(rate)}" for batch, test in zip(cell.facts.get("large", []), large))
    grows = slope.decide(rate)
    grows = f"{grows} 0" if grows in (ABOVE, BELOW) else "not told apart from 0"
    return (f"{head}: **{verdict_text(cell)}**; Lion's advantage per doubling of the batch {growth} ({grows}); "
            f"at batch >= {LARGE_BATCH}: {sides} (at {level(rate)})" + (f"; {cell.aside}" if cell.aside else ""))


def batch_lines(families: list[Family]) -> list[str]:
    """After the per-batch rows: where Lion stops losing, then update 7's verdict, for each family judging them."""
    lines = []
    for family in families:
        found = [crossing_line(cell) for cell in batch_cells(family, "batch_crossing")]
        found += [update7_line(cell) for cell in batch_cells(family, "update7")]
        prefix = f"{family.name}: " if len(families) > 1 else ""
        lines += [f"- {prefix}{line}" for line in found]
    return lines


def answer_missing(families: list[Family]) -> list[str]:
    if any(cell.judged for cell in tuned_cells(families)):
        return []
    return ["No family has an lr grid of >= 3 lrs for both optimizers with >= 3 seeds, so Lion tuned vs AdamW tuned "
            "is not answered here. Run `lion-bench -m sweep=tuned` (each optimizer on its own lr grid, 3 seeds) "
            "and report on its directory."]


def answer_figures(families: list[Family], figures: list[Figure]) -> tuple[list[Figure], list[Figure]]:
    """(the loss-vs-lr figures of the judged answers' setups, primary first; every other loss-vs-lr figure)."""
    order = [(cell.family, cell.context.setup) for cell in tuned_cells(families) if cell.judged]
    first = [figure for key in order for figure in figures
             if figure.kind == "loss_vs_lr" and (figure.family, figure.setup) == key]
    rest = [figure for figure in figures if figure.kind == "loss_vs_lr" and figure not in first]
    return first, rest


# --- verdicts --------------------------------------------------------------------------------------
def claims_frame(family: Family) -> pd.DataFrame:
    rows = []
    for cell in family.cells:
        if cell.claim.key == "tuned" or (cell.role == NOT_JUDGED and not cell.question and not cell.edge):
            continue
        rows.append({
            "claim": f"**{cell.claim.name}**", "context": cell.label, "answer": answer_text(cell),
            "verdict": verdict_text(cell), "effect [interval] (level)": effect_text(cell),
            "effect": cell.test.effect_name if cell.test is not None else "", "n": cell.n,
            "p (Holm)": p_value(cell.p_adjusted), "question": cell.question or "-",
            "notes": "; ".join(part for part in (notes(cell), cell.aside) if part),
        })
    return pd.DataFrame(rows)


def family_text(family: Family) -> list[str]:
    protocol = family.protocol
    if protocol is None:
        return [f"No protocol: an ad-hoc family ({family.num_runs} runs). Holm's correction runs over its "
                f"{family.num_tests} tests alone (family-wise error {family.alpha:g}); other families loaded beside "
                "it change nothing here. Intervals are at each test's Holm level."]
    when = ("committed before its runs" if protocol.written_before_runs else
            "written after its runs (a record of what was declared, not a pre-registration)"
            if protocol.written_before_runs is False else "when it was written is not stated")
    lines = [f"Protocol `{protocol.path}` ({protocol.written or 'undated'}, {when}): {len(protocol.questions)} primary "
             f"questions, Holm over them alone (family-wise error {protocol.alpha:g}); equivalence margin "
             f"{protocol.margin:.2%} of the reference arm's mean; every other cell of the study is exploratory."]
    if protocol.note:
        lines.append(protocol.note)
    return lines


# --- the catalogue ---------------------------------------------------------------------------------
def catalogue_frame(families: list[Family]) -> pd.DataFrame:
    rows = []
    for claim in CLAIMS:
        mine = [cell for family in families for cell in family.cells if cell.claim is claim]
        judged = [cell for cell in mine if cell.judged or cell.role == MEASURED]
        tally: dict[str, int] = {}
        for cell in judged:
            tally[verdict_text(cell).split(" (")[0]] = tally.get(verdict_text(cell).split(" (")[0], 0) + 1
        where = ", ".join(f"{name} {number}" for name, number in sorted(tally.items()))
        reasons = sorted({cell.reason for cell in mine if cell.role == NOT_JUDGED and cell.reason})
        status = (f"judged in {len(judged)} context(s): {where}" if judged else
                  f"not judged: run `lion-bench -m sweep={claim.preset}`" + (f" ({reasons[0]})" if reasons else ""))
        rows.append({"claim": f"**{claim.name}**", "source": claim.source, "its words": f"\u201c{claim.words}\u201d",
                     "how it is judged": claim.rule, "here": status})
    return pd.DataFrame(rows)


def legend_frame(families: list[Family], runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for family in families:
        used = set(runs.loc[runs["family"] == family.name, "setup"])
        for setup_id in sorted(used, key=lambda s: family.setup_labels.get(s, s)):
            rows.append({"family": family.name, "label": family.setup_labels.get(setup_id, setup_id),
                         "full setting": describe(family.legend.get(setup_id, {}))})
    return pd.DataFrame(rows)


def rules(min_steps: int) -> list[str]:
    return [
        "- **Families.** A study (`results/<study>/`) is one family; runs outside any study form one family per "
        "directory that holds them. Runs of different families never pool, and each family is corrected alone.",
        "- **Primary and exploratory.** A study's protocol names its primary questions (claim, runs, context, "
        "metric, seeds, margin, error rate), written before the runs; only they get verdicts, with Holm's "
        "step-down correction over the protocol's questions. Every other cell of a study is exploratory: effect "
        "and 95% interval, no verdict word. A family without a protocol treats each of its cells as primary.",
        "- **Intervals at the verdict's error rate.** Each primary test is answered, and its interval shown, at "
        "its Holm level alpha / (k - rank + 1); a test Holm stops is inconclusive and shown at alpha / k, where "
        "its interval decides nothing either. A test's decision p-value is the smallest error rate at which it "
        "decides (found by bisection).",
        f"- **Paired by seed.** d = A - B over the seeds where both finished; fewer than {MIN_SEEDS} paired seeds: no "
        "verdict (too few seeds). An arm with a diverged run loses its comparison (a diverged run never averages "
        "with finished ones); when both diverged, nothing is tested.",
        "- **Three-way answers** (Lion vs AdamW, and other A-vs-B claims): the interval inside (-m, +m): "
        "equivalent; wholly below 0 and reaching past -m: A better; the mirror image: B better; otherwise "
        "inconclusive, with the seeds that would decide it at the observed spread. m is the protocol's margin as "
        "a share of the reference arm's mean (default 0.5%). A claim that one side is better counts "
        "\"equivalent\" against it.",
        "- **Thresholds** (update 2's much worse, update 4): the interval of d above or below the threshold.",
        "- **Tuned vs tuned**: each optimizer's best arm chosen on the selection seeds (without a protocol: each "
        "seed at the arm best on the other seeds) and compared on the answer seeds, so no setting is judged on "
        "the losses that picked it.",
        "- **Ratios of optima**: a quadratic in log value over >= 4 grid points around each best point; bootstrap "
        "over seeds (one draw for both optimizers), each draw's vertex moved by the fit's own standard error; grids "
        "tied to each other (ratio space: Lion at AdamW's grid lrs / k, one k other than 1) are not judged; two "
        "grids of their own (absolute lrs, the same or not, or each optimizer's own divisors of one base lr) "
        "measure the ratio.",
        "- **Equal seeds.** Arms of a grid are compared on the same seeds: the selection seeds where named, else "
        "the seeds every arm ran (an arm that also ran the answer seeds is never a mean over more seeds set "
        "against means over fewer); each cell says which.",
        "- **Grid edges.** A best arm at either end of its lr grid, at the top of its weight-decay grid, or at its "
        "bottom when that is above 0, is no optimum: every claim resting on it is not judged (\"best Lion lr X is "
        "the bottom of its grid: extend the grid\"), its effect shown as exploratory. Weight decay 0 is the "
        "parameter's bound, not an edge: a best arm at 0 is an optimum.",
        "- **Memory**: peak device memory of each record (its own: the CUDA allocator's, or the CPU's resident set "
        "since the run started; not a packed trial's), Lion - AdamW paired by seed within one setup and kind of "
        "peak; optimizer state bytes beside it.",
        "- **Crossings**: per seed, the last step (and tokens) where the two curves change order, interpolated "
        "between evaluations; the median and the range over seeds.",
        "- **Where Lion stops losing over batch size** (batch crossing): the smallest studied batch after which "
        "Lion's tuned loss is <= AdamW's at every larger one, interpolated in log2 batch, for the mean difference "
        "over the answer seeds; its interval from a band of t intervals of that mean at every batch (each at the "
        "verdict's level / the number of batches), whose edges' crossings bound it. The per-seed crossings' "
        "median and range are shown beside: with 5 seeds their range covers the median at only 93.75%, short of "
        "a Holm level. \"Never within the studied batches\" and \"ahead from the smallest\" are answers.",
        "- **Update 7 on tuned answers**: with a protocol's selection and answer seeds, each batch size's "
        "Lion - AdamW is its tuned answer; a batch without one, or with < 3 answer seeds, is listed and left out.",
        f"- **Toy scale**: a context with runs shorter than {min_steps:,} steps (`--min-steps`) is marked.",
    ]


# --- arms ------------------------------------------------------------------------------------------
def _loss(row, metric: str) -> str:
    mean = getattr(row, f"{metric}_mean")
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.4g} [{short_number(getattr(row, f'{metric}_ci_low'))}, {short_number(getattr(row, f'{metric}_ci_high'))}]"


def arms_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """One setup's arms: resolved lr (and its ratio to the AdamW reference), weight decay, losses, and the
    steady throughput where it is comparable (the median of the arm; flagged when its runs differ > 20%)."""
    rows = []
    for row in summary.sort_values(["optimizer_family", "optimizer", "lr", "weight_decay"]).itertuples(index=False):
        lr = short_number(row.lr)
        if row.optimizer_family == "lion" and row.lr_divisor != 1:
            lr += f" (base / {row.lr_divisor:g})"
        speed = "-"
        if math.isfinite(row.train_tokens_per_s):
            speed = count(row.train_tokens_per_s)
            if row.throughput_spread > THROUGHPUT_SPREAD:
                speed += f" (runs differ {row.throughput_spread:.2g}x: not comparable)"
        shared = f"{plain(row.final_val_loss_shared_mean, 4)} ({row.shared_seeds})"
        rows.append({"optimizer": row.optimizer, "lr": lr, "weight decay": short_number(row.weight_decay),
                     "betas": row.betas, "seeds": row.num_seeds, "diverged": row.num_diverged,
                     "final val loss [95%]": _loss(row, "final_val_loss"), "final val bpc": _loss(row, "final_val_bpc"),
                     "mean on the seeds every arm ran": shared,
                     f"{row.unit or 'tokens'}/s (steady, median)": speed})
    return pd.DataFrame(rows)


def arms_blocks(families: list[Family], summary: pd.DataFrame) -> list[tuple[str, object]]:
    blocks = []
    for family in families:
        mine = summary[summary["family"] == family.name]
        for setup in sorted(mine["setup"].unique(), key=lambda s: family.setup_labels.get(s, s)):
            blocks += [("h3", f"{family.name}: {family.setup_labels.get(setup, setup)}"),
                       ("table", arms_frame(mine[mine["setup"] == setup]))]
    return blocks


def runs_used(families: list[Family]) -> list[str]:
    lines = []
    for family in families:
        for cell in family.cells:
            if cell.judged:
                names = sorted({Path(source).name for source in cell.sources})
                lines.append(f"- {family.name}, {cell.claim.name}, {cell.label} ({len(names)} runs): {', '.join(names)}")
    return lines or ["No claim was judged."]


def figures_blocks(figures: list[Figure], kind: str) -> list[tuple[str, object]]:
    return [("image", figure.path.name) for figure in figures if figure.kind == kind]


# --- the whole report ------------------------------------------------------------------------------
def build_report(families: list[Family], runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path,
                 skipped: list[str], inputs: list[str], min_steps: int) -> dict:
    """Write every output file under ``out_dir``; returns what it computed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    advise(families, runs, min_steps)
    summary = summarize(runs)
    figures = make_plots(families, runs, curves, out_dir)
    claims = pd.DataFrame([cell.row() for family in families for cell in family.cells])
    runs.drop(columns=["setup_fields", "budget_fields"]).to_csv(out_dir / "runs.csv", index=False)
    summary.to_csv(out_dir / "summary.csv", index=False)
    claims.to_csv(out_dir / "claims.csv", index=False)

    status = ", ".join(f"{number} {name}" for name, number in runs["status"].value_counts().items())
    blocks = [
        ("text", [f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from {', '.join(inputs)}: "
                  f"{len(runs)} runs ({status}) in {len(families)} famil{'y' if len(families) == 1 else 'ies'}, "
                  f"{len(skipped)} skipped."]),
        ("h2", "The answer: Lion tuned vs AdamW tuned"),
        ("table", answer_frame(families)),
        ("text", batch_lines(families)),
        ("text", answer_missing(families) + [
            "Each optimizer at its own best setting of its grid, chosen on other seeds than those it is judged on; "
            "Lion - AdamW final val loss (negative: Lion better), three-way with the equivalence margin. Colour: who "
            "wins."]),
        *[("image", figure.path.name) for figure in answer_figures(families, figures)[0]],
    ]
    for family in families:
        blocks += [("h2", f"Verdicts: {family.name}"), ("text", family_text(family)), ("table", claims_frame(family))]
    blocks += [("h2", "Curves"), ("text", ["Val loss over tokens for Lion at AdamW's lr / 3 and AdamW (update 3): "
                                           "the early budget (dotted) and where the curves cross (dashed)."]),
               *figures_blocks(figures, "curves"), *figures_blocks(figures, "batch")]
    more = answer_figures(families, figures)[1]
    if more:
        blocks += [("h2", "Loss against lr in the other setups"),
                   *[("image", figure.path.name) for figure in more]]
    trials = best_trials(runs[runs["sweep"].astype(str).str.contains("optuna")]) if "sweep" in runs else None
    if trials is not None and len(trials):
        blocks += [("h2", "Best trials of the searches (optuna)"), ("table", trials)]
    blocks += [
        ("h2", "Every claim: its words, its rule, where it was judged"), ("table", catalogue_frame(families)),
        ("h2", "Contexts"), ("table", legend_frame(families, runs)),
        ("h2", "Rules (fixed before looking at the runs)"), ("text", rules(min_steps)),
        ("h2", "Arms (per setup; mean over the seeds of finished runs, diverged runs counted apart)"),
        *arms_blocks(families, summary),
        ("h2", "Runs each verdict used"), ("text", runs_used(families)),
    ]
    if skipped:
        blocks += [("h2", "Skipped runs"), ("text", [f"- {reason}" for reason in skipped])]
    markdown, page = render(blocks, "Lion vs AdamW: report")
    atomic_write_text(out_dir / "report.md", markdown + "\n")
    atomic_write_text(out_dir / "report.html", page)
    return {"summary": summary, "claims": claims, "families": families, "figures": figures}


def _fit(text: str) -> str:
    return text if len(text) <= TERMINAL_WIDTH else text[:TERMINAL_WIDTH - 3] + "..."


def terminal_summary(families: list[Family]) -> list[str]:
    """Each family's answer and primary verdicts: a line with the verdict and effect, then its context, each
    within 100 characters (the report has the rest)."""
    lines = []
    for family in families:
        kind = (f"protocol, {len(family.protocol.questions)} questions" if family.protocol else "no protocol")
        lines.append(_fit(f"{family.name} ({kind}; Holm over its {family.num_tests} tests):"))
        # Without a protocol every cell is primary: one withheld for a grid edge is shown with its reason.
        shown = [cell for cell in family.cells
                 if cell.role == PRIMARY or cell.question or (cell.edge and family.protocol is None)]
        shown += [cell for cell in family.cells if cell.role == MEASURED][:1]
        if not any(cell.claim.key == "tuned" for cell in shown):
            shown = [cell for cell in family.cells if cell.claim.key == "tuned" and cell.context.setup != "-"][:1] + shown
        # The report's opening order: the tuned answers by batch size, where Lion stops losing, update 7.
        opening = {"tuned": 0, "batch_crossing": 1, "update7": 2}
        shown.sort(key=lambda cell: (opening.get(cell.claim.key, 3), batch_of(family, cell) or 0
                                     if cell.claim.key == "tuned" else 0))
        for cell in shown:
            name = "ANSWER (tuned vs tuned)" if cell.claim.key == "tuned" else cell.claim.name
            what = cell.answer if cell.claim.key == "tuned" and cell.role == PRIMARY else verdict_text(cell)
            effect = effect_text(cell) if cell.judged else cell.reason
            lines.append(_fit(f"  {name:<26} {what:<14} {effect}"))
            lines.append(_fit(f"  {'':<26} {cell.label}"))
            if cell.facts.get("would_decide"):
                lines += textwrap.wrap(f"what would decide it: {cell.facts['would_decide']}", TERMINAL_WIDTH,
                                       initial_indent="  " + " " * 27, subsequent_indent="  " + " " * 27)
    return lines
