"""The coordinator: every claim of the catalogue judged in every family of runs, corrected within its family.

A family is a study (``results/<study>/``) or, for runs outside any study, the directory holding them. With a
protocol, the family's primary cells are its questions (each a claim judged on the runs the question names,
in the context it names, under its seeds, metric and margin); every other cell of the study is exploratory:
an effect and a 95% interval, no verdict word. Without one, every cell of the family is primary. Holm's
correction runs over a family's primary cells alone, so nothing loaded beside a family changes its verdicts.
Cells with fewer than 3 paired seeds are not judged, and so is a cell whose best arm lies at the edge of its
grid (``Cell.edge``): its effect and 95% interval are shown as exploratory, the edge is its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from lion_bench.results.claims import batch, optimum, ratio, tuned, variants
from lion_bench.results.claims.base import EXPLORATORY, MEASURED, NOT_JUDGED, PRIMARY, Cell, Settings, not_judged
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY, CLAIMS
from lion_bench.results.claims.curves import Curves
from lion_bench.results.contexts import Context, short_labels
from lion_bench.results.protocol import DEFAULT_ALPHA, DEFAULT_MARGIN, Protocol, Question, load_protocol
from lion_bench.results.stats import INCONCLUSIVE, holm_levels

MODULES = (tuned, ratio, optimum, batch, variants)
MIN_STEPS = 1000  # runs shorter than this make their context "toy scale"
EXPLORATORY_ALPHA = 0.05


@dataclass
class Family:
    """One family's runs, protocol and judged cells."""

    name: str
    study: str | None
    protocol: Protocol | None
    num_runs: int
    cells: list[Cell] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    setup_labels: dict[str, str] = field(default_factory=dict)
    legend: dict[str, dict] = field(default_factory=dict)  # setup id -> its fields

    @property
    def primary(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.role == PRIMARY]

    @property
    def num_tests(self) -> int:
        return sum(math.isfinite(cell.p_decision) for cell in self.primary)


MODULE_OF = {key: module for module in MODULES for key in module.KEYS}


def all_cells(runs: pd.DataFrame, curves: Curves, settings: Settings, modules=MODULES) -> dict[str, list[Cell]]:
    out: dict[str, list[Cell]] = {claim.key: [] for claim in CLAIMS}
    for module in modules:
        for key, found in module.cells(runs, curves, settings).items():
            out[key] += found
    return out


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (list, tuple)):
        return any(_matches(value, item) for item in wanted)
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        try:
            return math.isclose(float(value), float(wanted), rel_tol=1e-6, abs_tol=1e-15)
        except (TypeError, ValueError):
            return False
    return str(value) == str(wanted)


def select_runs(runs: pd.DataFrame, wanted: Mapping[str, Any]) -> pd.DataFrame | str:
    """The runs whose columns hold the wanted values, or why the selection cannot be made."""
    for key, value in wanted.items():
        if key not in runs.columns:
            return f"`runs: {key}` is not a run column (some valid ones: sweep, task, batch_size, schedule, seed)"
        runs = runs[[_matches(found, value) for found in runs[key]]]
    return runs


def question_cell(question: Question, protocol: Protocol, runs: pd.DataFrame, curves: Curves) -> Cell:
    claim = CLAIM_BY_KEY[question.claim]
    context = Context(f"question {question.id}", (f"question {question.id}",))
    chosen = select_runs(runs, question.runs)
    if isinstance(chosen, str):
        cell = not_judged(claim, context, chosen)
    else:
        if question.seeds is not None:
            chosen = chosen[chosen["seed"].isin(question.seeds)]
        settings = Settings(margin=protocol.margin_of(question), metric=question.metric,
                            early_tokens=protocol.early_tokens_of(question), selection_seeds=question.selection_seeds,
                            answer_seeds=question.answer_seeds, seeds=question.seeds)
        found = all_cells(chosen, curves, settings, (MODULE_OF[claim.key],))[claim.key] if len(chosen) else []
        matching = [cell for cell in found if all(_matches(cell.attrs().get(key), value)
                                                  for key, value in question.at.items())]
        if len(matching) == 1:
            cell = matching[0]
        elif not matching:
            cell = not_judged(claim, context, f"no run matches (runs: {question.runs or 'all'}, at: "
                                              f"{question.at or 'any'}): run `lion-bench -m sweep={claim.preset}`")
        else:
            cell = not_judged(claim, context, f"{len(matching)} contexts match; narrow the question's `at` (they "
                                              f"differ in: {differing_attrs(matching)})")
    absent = [f"{key} {item}" for key, value in question.runs.items() if isinstance(value, (list, tuple))
              and key in runs.columns for item in value if not any(_matches(found, item) for found in runs[key])]
    if absent:  # a value the question names that no run has yet (a batch size of a study still running)
        cell.aside = "; ".join(filter(None, [cell.aside, f"not run: no runs for {', '.join(absent)}"]))
    cell.question = question.id
    return cell


def differing_attrs(cells: list[Cell]) -> str:
    keys = sorted({key for cell in cells for key in cell.attrs()})
    return ", ".join(key for key in keys if len({repr(cell.attrs().get(key)) for cell in cells}) > 1) or "-"


def settle(primary: list[Cell], alpha: float) -> None:
    """Holm over the primary cells' tests; each answered and shown at its rate."""
    tested = [cell for cell in primary if cell.test is not None and cell.test.testable]
    p_values = [cell.test.p_decision() for cell in tested]
    for cell, p, (decided, rate, adjusted) in zip(tested, p_values, holm_levels(p_values, alpha)):
        cell.role, cell.alpha, cell.p_decision, cell.p_adjusted = PRIMARY, rate, p, adjusted
        cell.answer = cell.test.decide(rate) if decided else INCONCLUSIVE
        cell.verdict = cell.read(cell.answer)
        cell.effect, cell.low, cell.high = cell.test.interval(rate)
        cell.alpha = cell.test.interval_alpha(rate)
        if not decided:
            cell.seeds_needed = cell.test.seeds_to_decide(rate)


def explore(cell: Cell) -> None:
    cell.role, cell.alpha = EXPLORATORY, EXPLORATORY_ALPHA
    cell.effect, cell.low, cell.high = cell.test.interval(EXPLORATORY_ALPHA)
    cell.answer, cell.verdict = "", EXPLORATORY


def measure(cell: Cell) -> None:
    cell.role, cell.alpha = MEASURED, math.nan
    cell.answer = cell.test.decide(EXPLORATORY_ALPHA)
    cell.verdict = cell.read(cell.answer)
    cell.effect, cell.low, cell.high = cell.test.interval(EXPLORATORY_ALPHA)


def withhold(cell: Cell) -> None:
    """A cell whose best arm is at its grid's edge: not judged (outside Holm's family), its effect and 95%
    interval shown as exploratory, the edge as the reason."""
    cell.role, cell.alpha, cell.answer, cell.reason = NOT_JUDGED, EXPLORATORY_ALPHA, "", cell.edge
    cell.effect, cell.low, cell.high = cell.test.interval(EXPLORATORY_ALPHA)


def untestable(cell: Cell) -> bool:
    if cell.test is None:
        return True
    if not cell.test.testable:
        cell.reason = cell.reason or cell.test.note or "nothing to test (both arms diverged, or no finite value)"
        return True
    return False


def judge_family(name: str, runs: pd.DataFrame, curves: pd.DataFrame, protocol: Protocol | None,
                 min_steps: int = MIN_STEPS) -> Family:
    study = runs["study"].iloc[0] if "study" in runs and len(runs) else None
    family = Family(name, study, protocol, len(runs), alpha=protocol.alpha if protocol else DEFAULT_ALPHA)
    settings = Settings(margin=protocol.margin if protocol else DEFAULT_MARGIN,
                        early_tokens=protocol.early_tokens if protocol else None)
    curves = Curves(curves)
    explored = [cell for found in all_cells(runs, curves, settings).values() for cell in found]
    primary: list[Cell] = []
    if protocol is not None:
        primary = [question_cell(question, protocol, runs, curves) for question in protocol.questions]
        # A question's cell replaces its exploratory twin; where the question could not be judged (its runs
        # were not all there), the twin stays, shown as exploratory, so what did run is still visible.
        taken = {(cell.claim.key, cell.context) for cell in primary if not untestable(cell)}
        explored = [cell for cell in explored if (cell.claim.key, cell.context) not in taken]
    else:
        primary = [cell for cell in explored if not cell.claim.measured]
        explored = [cell for cell in explored if cell.claim.measured]
    # A measurement (even one a protocol asks about) has no test to correct: it never enters Holm's family.
    explored += [cell for cell in primary if cell.claim.measured and cell.test is not None]
    primary = [cell for cell in primary if not (cell.claim.measured and cell.test is not None)]
    for cell in primary + explored:
        cell.family = name
        cell.role = NOT_JUDGED
    settle([cell for cell in primary if not untestable(cell) and not cell.edge], family.alpha)
    for cell in explored:
        if untestable(cell) or cell.edge:
            continue
        (measure if cell.claim.measured else explore)(cell)
    for cell in primary + explored:
        if cell.edge and not untestable(cell):
            withhold(cell)
        if cell.role == NOT_JUDGED:
            cell.verdict = NOT_JUDGED
    judged_keys = {cell.claim.key for cell in primary + explored}
    missing = [not_judged(claim, Context("-"), f"no runs for it here: run `lion-bench -m sweep={claim.preset}`")
               for claim in CLAIMS if claim.key not in judged_keys]
    for cell in missing:
        cell.family, cell.verdict = name, NOT_JUDGED
    family.cells = primary + explored + missing
    label(family, runs, min_steps)
    return family


def label(family: Family, runs: pd.DataFrame, min_steps: int) -> None:
    """Short labels (what differs between the family's setups), toy-scale marks, and variants of one label."""
    setups = dict(zip(runs["setup"], runs["setup_fields"]))
    budgets = dict(zip(runs["budget_setup"], runs["budget_fields"]))
    family.legend = {**setups, **budgets}
    family.setup_labels = {**short_labels(setups), **short_labels(budgets)}
    steps = dict(zip(runs["source"], runs["planned_steps"]))
    for cell in family.cells:
        cell.label = cell.context.label(family.setup_labels) or "-"
        shortest = min((steps[source] for source in cell.sources if source in steps), default=None)
        if cell.judged and shortest is not None and shortest < min_steps:
            cell.toy = f"toy scale ({shortest:,} steps < {min_steps:,})"
    seen: dict[tuple[str, str], list[Context]] = {}
    for cell in family.cells:
        found = seen.setdefault((cell.claim.key, cell.label), [])
        if cell.context not in found:
            found.append(cell.context)
    for cell in family.cells:
        found = seen[(cell.claim.key, cell.label)]
        if len(found) > 1:
            cell.label += f" (variant {sorted(found).index(cell.context) + 1} of {len(found)})"


def study_protocols(runs: pd.DataFrame) -> dict[str, Protocol | None]:
    """Each study's protocol (None for a study without one); ProtocolError for one that cannot be used."""
    studies = sorted(set(runs["study"].dropna())) if "study" in runs else []
    return {study: load_protocol(Path(study), set(CLAIM_BY_KEY)) for study in studies}


def judge(runs: pd.DataFrame, curves: pd.DataFrame, protocols: Mapping[str, Protocol | None] = (),
          min_steps: int = MIN_STEPS) -> list[Family]:
    """Every family of ``runs`` judged on its own; ``protocols`` maps a study directory to its protocol."""
    protocols = dict(protocols or {})
    families = []
    for name, family_runs in runs.groupby("family", sort=True):
        study = family_runs["study"].iloc[0] if "study" in family_runs else None
        family_curves = curves[curves["source"].isin(set(family_runs["source"]))]
        families.append(judge_family(name, family_runs, family_curves, protocols.get(study), min_steps))
    order = {claim.key: index for index, claim in enumerate(CLAIMS)}
    for family in families:
        family.cells.sort(key=lambda cell: (order[cell.claim.key], cell.role != PRIMARY, cell.label))
    return families
