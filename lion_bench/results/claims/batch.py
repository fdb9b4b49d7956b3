"""lion-pytorch update 7: "would only recommend this optimizer in the setting of high batch sizes (64 or
above)", read as what it says: a necessary condition. Lion's advantage (AdamW - Lion) grows with batch size,
and at batch sizes >= 64 Lion is not worse; Lion losing below 64 is consistent with it. With it, the batch
size where Lion stops losing (the crossing), an estimate with an interval.

Batch sizes are compared within a *budget setup* (the setup without batch size and steps, with the token
budget and the warmup instead), so each batch size trains on the same data. At each batch size each
optimizer runs at its own best arm: with a protocol's selection and answer seeds, the tuned answer at that
batch (``tuned``: best lr and weight decay on the selection seeds, judged on the answer seeds); without them,
its best lr of a grid at each weight decay, chosen for each seed on the other seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.claims.base import (ADAMW, ADAMW_BETTER, EQUIVALENT, LION, LION_BETTER, YES_SUPPORTS, Cell,
                                            Series, Settings, not_judged, optimizer_parts, pair, series_of, wd_part)
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY, LARGE_BATCH
from lion_bench.results.claims.selection import arm_grid, edges_line, grid_edge, held_out_values
from lion_bench.results.claims.tuned import tuned_cells
from lion_bench.results.contexts import Context
from lion_bench.results.format import crossing_interval, interval, short_number
from lion_bench.results.stats import (ABOVE, AHEAD_THROUGHOUT, BELOW, CROSSES, INCONCLUSIVE, MIN_SEEDS, NEVER_CROSSES,
                                      AllOf, Crossing, Paired, ThreeWay, Threshold, t_interval)

MIN_BATCH_GRID = 3  # lrs per optimizer and batch size
KEYS = ("update7", "batch_crossing")
AHEAD_FROM_SMALLEST, NEVER_WITHIN = "ahead from the smallest", "never crosses within the studied batches"
CROSSING_WORDS = {CROSSES: CROSSES, AHEAD_THROUGHOUT: AHEAD_FROM_SMALLEST, NEVER_CROSSES: NEVER_WITHIN}


def not_worse(answer: str) -> str:
    return "yes" if answer in (LION_BETTER, EQUIVALENT) else "no" if answer == ADAMW_BETTER else "unsure"


def grows(answer: str) -> str:
    return "yes" if answer == ABOVE else "no" if answer == BELOW else "unsure"


def batch_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    cells = []
    for setup, setup_runs in runs.groupby("budget_setup", sort=True):
        batches = sorted(setup_runs["batch_size"].unique())
        if len(batches) < 2:
            continue  # one batch size: nothing to say about batch size (listed as not judged if nowhere judged)
        context = Context(setup, (f"batch {', '.join(map(str, batches))} (lr tuned per batch)",),
                          (("budget_setup", setup),))
        reason = ""
        if setup_runs["budget"].iloc[0] != "tokens":
            reason = "budget in steps: batch sizes see different data (set trainer.budget=tokens)"
        elif setup_runs["budget_fields"].iloc[0]["warmup"][0] != "fraction" and setup_runs["warmup_steps"].max() > 0:
            reason = "warmup in steps outlasts short large-batch runs (set trainer.schedule.warmup_fraction)"
        if reason:
            cells += [not_judged(CLAIM_BY_KEY[key], context, reason, setup_runs["source"]) for key in KEYS]
            continue
        if settings.selection_seeds is not None:
            cells += tuned_batch_cells(setup, batches, setup_runs, settings)
            continue
        adamw = {s: g for s, g in series_of(setup_runs, "adamw", "wd_key").items() if s.optimizer == "adamw"}
        lion = {s: g for s, g in series_of(setup_runs, "lion", "wd_key").items() if s.optimizer == "lion"}
        for adamw_series, adamw_runs in adamw.items():
            for lion_series, lion_runs in lion.items():
                cells += judge(setup, batches, adamw_series, adamw_runs, lion_series, lion_runs, settings)
    return cells


def judge(setup: str, batches: list[int], adamw: Series, adamw_runs: pd.DataFrame, lion: Series,
          lion_runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    """Held-out mode (no selection seeds): at each batch size each optimizer at its best lr of a grid at one
    weight decay, each seed at the lr best on the other seeds."""
    context = Context(setup, (f"batch {', '.join(map(str, batches))} (lr tuned per batch)",
                              wd_part(adamw.fixed, lion.fixed), *optimizer_parts(adamw, lion)),
                      (("budget_setup", setup), ("adamw_wd", adamw.fixed), ("lion_wd", lion.fixed)))
    sources = sorted(set(adamw_runs["source"]) | set(lion_runs["source"]))
    per_batch, skipped, descriptions, edges = {}, [], {}, []
    for batch in batches:
        a, b = adamw_runs[adamw_runs["batch_size"] == batch], lion_runs[lion_runs["batch_size"] == batch]
        short = [name for name, arms in ((ADAMW, a), (LION, b)) if arms["lr_key"].nunique() < MIN_BATCH_GRID]
        if short:
            skipped.append(f"bs{batch}: {' and '.join(short)} at fewer than {MIN_BATCH_GRID} lrs")
            continue
        adamw_values, adamw_picks, _ = held_out_values(a, settings.metric)
        lion_values, lion_picks, _ = held_out_values(b, settings.metric)
        paired = pair(lion_values, adamw_values, (LION, ADAMW), list(a["source"]) + list(b["source"]))
        if paired.n < MIN_SEEDS and not any(paired.diverged):
            skipped.append(f"bs{batch}: too few seeds (n = {paired.n})")
            continue
        for name, picks, arms in ((ADAMW, adamw_picks, a), (LION, lion_picks, b)):
            edge = grid_edge(name, picks, arm_grid(arms, settings.metric)[0])
            edges += [f"bs{batch}: {edge}"] if edge else []
        per_batch[batch] = ThreeWay(paired, settings.margin * paired.reference_mean, f"Lion - AdamW at bs{batch}")
        lrs = (f"AdamW lr {'/'.join(map(short_number, sorted({lr for lr, _ in adamw_picks})))}, "
               f"Lion lr {'/'.join(map(short_number, sorted({lr for lr, _ in lion_picks})))}")
        descriptions[batch] = describe(batch, per_batch[batch], lrs)
    return verdicts(context, per_batch, skipped, descriptions, sources, edges)


def tuned_batch_cells(setup: str, batches: list[int], setup_runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    """Tuned mode (the protocol names selection and answer seeds): at each batch size, the tuned answer there
    (``tuned.tuned_cells`` on that batch's runs), one context per pair of optimizer variants and betas."""
    answers: dict[tuple[str, ...], dict[int, Cell]] = {}
    for batch in batches:
        for cell in tuned_cells(setup_runs[setup_runs["batch_size"] == batch], settings):
            answers.setdefault(cell.context.fixed[1:], {})[batch] = cell  # fixed[1:]: variant and betas parts
    sources = sorted(set(setup_runs["source"]))
    head = f"batch {', '.join(map(str, batches))} (each tuned per batch)"
    if not answers:
        context = Context(setup, (head,), (("budget_setup", setup),))
        return [not_judged(CLAIM_BY_KEY[key], context, "no batch size has runs of both optimizers", sources)
                for key in KEYS]
    out = []
    for parts, by_batch in answers.items():
        context = Context(setup, (head, *parts), (("budget_setup", setup),))
        per_batch, skipped, descriptions, edges = {}, [], {}, []
        for batch in batches:
            cell = by_batch.get(batch)
            status = batch_status(cell, setup_runs[setup_runs["batch_size"] == batch], settings)
            if status:
                skipped.append(f"bs{batch}: {status}")
                continue
            per_batch[batch] = cell.test
            edges += [f"bs{batch}: {cell.edge}"] if cell.edge else []
            picks = cell.facts.get("picks", {})
            arms = "; ".join(f"{name} " + "/".join(f"lr {short_number(lr)}, wd {short_number(wd)}"
                                                   for lr, wd in picks.get(key, []))
                             for name, key in ((ADAMW, "adamw"), (LION, "lion")))
            descriptions[batch] = describe(batch, cell.test, arms)
        out += verdicts(context, per_batch, skipped, descriptions,
                        sorted({source for cell in by_batch.values() for source in cell.sources}), edges)
    return out


def batch_status(cell: Cell | None, batch_runs: pd.DataFrame, settings: Settings) -> str:
    """Why a batch size's tuned answer cannot be used ("" when it can): not run, too few seeds, or the tuned
    claim's own reason."""
    answer_seeds = (set(settings.answer_seeds) if settings.answer_seeds
                    else set(batch_runs["seed"]) - set(settings.selection_seeds or ()))
    missing = [name for name, family in ((ADAMW, "adamw"), (LION, "lion"))
               if not batch_runs.loc[batch_runs["optimizer_family"] == family, "seed"].isin(answer_seeds).any()]
    if missing:
        return f"not run ({' and '.join(missing)} on no answer seed)"
    if cell is None:
        return "not run (no tuned answer)"
    if cell.test is None or not cell.test.testable:
        reason = cell.reason or (cell.test.note if cell.test is not None else "") or "nothing to test"
        return reason if reason.startswith("too few seeds") else f"not judged ({reason})"
    return ""


def verdicts(context: Context, per_batch: dict[int, ThreeWay], skipped: list[str], descriptions: dict[int, str],
             sources: list[str], edges: list[str]) -> list[Cell]:
    """Update 7 and the crossing from each judged batch size's Lion - AdamW test (paired by seed); a best arm at
    its grid's edge at any judged batch makes both not judged (``Cell.edge``)."""
    detail = "; ".join([descriptions[batch] for batch in sorted(per_batch)] + skipped)
    advantages = {batch: {seed: -float(d) for seed, d in zip(test.paired.seeds, test.paired.differences)}
                  for batch, test in per_batch.items()}
    cells = [update7_cell(context, per_batch, advantages, detail, skipped, sources),
             crossing_cell(context, advantages, detail, skipped, sources)]
    for cell in cells:
        cell.edge = edges_line(edges) if cell.test is not None else ""
    return cells


def update7_cell(context: Context, per_batch: dict[int, ThreeWay], advantages: dict[int, dict[int, float]],
                 detail: str, skipped: list[str], sources: list[str]) -> Cell:
    claim = CLAIM_BY_KEY["update7"]
    large = [batch for batch in per_batch if batch >= LARGE_BATCH]
    if len(per_batch) < 2 or not large:
        return not_judged(claim, context, f"needs judged batch sizes including one >= {LARGE_BATCH} (judged: "
                                          f"{', '.join(map(str, sorted(per_batch))) or 'none'}; "
                                          f"{'; '.join(skipped) or 'no grid'})", sources)
    slope = Threshold(Paired(slopes(advantages), names=("slope", "0")), 0.0,
                      "advantage (AdamW - Lion) per doubling of the batch, per seed")
    parts = [(slope, grows)] + [(per_batch[batch], not_worse) for batch in sorted(large)]
    test = AllOf(parts, slope, slope.effect_name)
    return Cell(claim, context, test, YES_SUPPORTS, detail=detail, aside="; ".join(skipped), sources=sources,
                facts={"batches": sorted(per_batch), "advantages": advantages, "large": sorted(large)})


def crossing_cell(context: Context, advantages: dict[int, dict[int, float]], detail: str, skipped: list[str],
                  sources: list[str]) -> Cell:
    """The batch size where Lion stops losing, over the seeds with a finished pair at every judged batch."""
    claim = CLAIM_BY_KEY["batch_crossing"]
    batches = sorted(advantages)
    if len(batches) < 2:
        judged = ", ".join(map(str, batches)) or "none"
        return not_judged(claim, context, f"needs >= 2 judged batch sizes (judged: {judged}; "
                                          f"{'; '.join(skipped) or 'no grid'})", sources)
    seeds = sorted(set.intersection(*(set(advantages[batch]) for batch in batches)))
    differences = np.array([[-advantages[batch][seed] for batch in batches] for seed in seeds], dtype=float)
    test = Crossing(batches, differences.reshape(len(seeds), len(batches)), "batch where Lion stops losing")
    cell = Cell(claim, context, read=reading_crossing, detail=detail, sources=sources,
                facts={"batches": batches, "seeds": seeds})
    if len(seeds) < MIN_SEEDS:
        cell.reason = f"too few seeds: n = {len(seeds)} with a finished pair at every judged batch (a verdict needs " \
                      f">= {MIN_SEEDS})"
        return cell
    cell.test = test
    per_seed = sorted(test.per_seed())
    with np.errstate(invalid="ignore"):
        median = float(np.median(per_seed))  # +-inf (ahead from the smallest, never) count as values
    cell.facts["per_seed"] = dict(zip(seeds, test.per_seed()))
    cell.aside = "; ".join([f"per seed: {crossing_interval(median, per_seed[0], per_seed[-1], batches[0], batches[-1])}"
                            f" (median [range] over {len(seeds)} seeds)", *skipped])
    return cell


def reading_crossing(answer: str) -> str:
    return CROSSING_WORDS.get(answer, INCONCLUSIVE)


def slopes(advantages: dict[int, dict[int, float]]) -> np.ndarray:
    """Per seed with a finite advantage at every judged batch size: the least-squares slope over log2 batch."""
    batches = sorted(advantages)
    seeds = set.intersection(*(set(values) for values in advantages.values()))
    x = np.log2(np.array(batches, dtype=float))
    out = []
    for seed in sorted(seeds):
        y = np.array([advantages[batch][seed] for batch in batches])
        if np.isfinite(y).all():
            out.append(float(np.polyfit(x, y, 1)[0]))
    return np.array(out)


def describe(batch: int, test: ThreeWay, arms: str) -> str:
    mean, low, high = t_interval(test.paired.values())
    note = f", {test.note}" if test.note else ""
    return f"bs{batch}: Lion - AdamW {interval(mean, low, high)} (95%) n={test.n} ({arms}{note})"


def cells(runs: pd.DataFrame, curves: pd.DataFrame, settings: Settings) -> dict[str, list[Cell]]:
    found = batch_cells(runs, settings)
    return {key: [cell for cell in found if cell.claim.key == key] for key in KEYS}
