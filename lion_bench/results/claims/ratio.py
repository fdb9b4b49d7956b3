"""lion-pytorch updates 2-4 and their summary: Lion at AdamW's lr / k for k in {1, 3, 10}, judged per AdamW
reference lr.

A context here is a setup, an AdamW reference (its lr and weight decay) and a Lion series (its weight decay
and betas). The reference is every AdamW arm of the setup, plus the recorded base lr of Lion runs with no
AdamW arm at it (update 4 needs no AdamW run). Lion arms are matched to "AdamW's lr / k" by their resolved lr,
so an lr_ratio sweep and a grid of absolute lrs are judged the same way. Update 3 is judged at an early budget
in tokens and shown with the point where the curves cross.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lion_bench.results.claims.base import (ABOVE_SUPPORTS, ADAMW, LION, YES_SUPPORTS, Cell, Series, Settings,
                                            better_supports, nearest_divisor_arm, not_judged,
                                            optimizer_parts, pair, pair_runs, same, series_of, too_few, wd_part)
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY, MUCH_WORSE_FRACTION
from lion_bench.results.claims.curves import crossings, describe_crossing, loss_at_tokens
from lion_bench.results.contexts import Context
from lion_bench.results.format import count, interval, short_number
from lion_bench.results.stats import ABOVE, BELOW, AllOf, ThreeWay, Threshold, t_interval

DIVISORS = (1, 3, 10)
KEYS = ("update2", "update3", "summary_lr3", "update4_vs3", "update4_worst")
EARLY_FRACTION = 0.25  # update 3's early budget without a protocol: a quarter of the run's tokens


@dataclass(frozen=True)
class Reference:
    lr: float
    weight_decay: float
    adamw: Series | None  # None: a recorded base lr that no AdamW run used


def references(setup_runs: pd.DataFrame) -> dict[Reference, pd.DataFrame | None]:
    found: dict[Reference, pd.DataFrame | None] = {}
    for series, group in series_of(setup_runs, "adamw", "wd_key").items():
        for lr, arm in group.groupby("lr_key", sort=True):
            found[Reference(float(lr), series.fixed, series)] = arm
    lion = setup_runs[setup_runs["optimizer_family"] == "lion"]
    for (base_lr, base_wd), _ in lion.groupby([lion["base_lr"].map(lambda x: float(f"{x:.6g}")),
                                               lion["base_weight_decay"]], sort=True):
        if not any(same(base_lr, ref.lr) and same(base_wd, ref.weight_decay) for ref in found):
            found[Reference(float(base_lr), float(base_wd), None)] = None
    return found


def _arm(k: int, lr: float, reference_lr: float) -> str:
    ratio = reference_lr / lr
    exact = "" if math.isclose(ratio, k, rel_tol=1e-6) else f" (AdamW's lr / {ratio:.3g})"
    return f"Lion lr {short_number(lr)}{exact}"


def ratio_cells(runs: pd.DataFrame, curves: pd.DataFrame, settings: Settings) -> list[Cell]:
    found = []
    for setup, setup_runs in runs.groupby("setup", sort=True):
        lion_series = series_of(setup_runs, "lion", "wd_key")
        for reference, adamw_runs in references(setup_runs).items():
            for series, series_runs in lion_series.items():
                if reference.adamw is None and not np.isclose(series_runs["base_lr"], reference.lr, rtol=1e-6).any():
                    continue
                matched = {}
                for k in DIVISORS:
                    arm = nearest_divisor_arm(series_runs, reference.lr, k)
                    if arm is not None:
                        matched[k] = arm
                if matched:
                    found += judge_context(setup, reference, adamw_runs, series, matched, curves, settings)
    return found


def judge_context(setup: str, reference: Reference, adamw_runs: pd.DataFrame | None, series: Series,
                  matched: dict[int, tuple[float, pd.DataFrame]], curves: pd.DataFrame,
                  settings: Settings) -> list[Cell]:
    head = (f"AdamW lr {short_number(reference.lr)}" if reference.adamw is not None
            else f"reference lr {short_number(reference.lr)} (no AdamW run)")
    attrs = (("setup", setup), ("reference_lr", reference.lr), ("adamw_wd", reference.weight_decay),
             ("lion_wd", series.fixed), ("lion", series.optimizer), ("lion_betas", series.betas))
    context = Context(setup, (head, wd_part(reference.weight_decay, series.fixed),
                              *optimizer_parts(reference.adamw, series)), attrs)
    names = {k: _arm(k, lr, reference.lr) for k, (lr, _) in matched.items()}
    cells = {}
    for key, k in (("update2", 1), ("update3", 3), ("summary_lr3", 3)):
        if adamw_runs is None:
            cells[key] = not_judged(CLAIM_BY_KEY[key], context, f"no AdamW run at the reference lr "
                                                                f"{short_number(reference.lr)}")
        elif k not in matched:
            cells[key] = not_judged(CLAIM_BY_KEY[key], context, f"no Lion arm at AdamW's lr / {k} "
                                                                f"({short_number(reference.lr / k)})")
    if "update2" not in cells:
        cells["update2"] = much_worse(context, matched[1][1], adamw_runs, names[1], settings)
    if "summary_lr3" not in cells:
        cells["summary_lr3"] = beats(context, matched[3][1], adamw_runs, names[3], settings)
    if "update3" not in cells:
        cells["update3"] = better_early(context, matched[3][1], adamw_runs, names[3], curves, settings)
    missing = [k for k in DIVISORS if k not in matched]
    if 3 in matched and 10 in matched:
        paired = pair_runs(matched[10][1], matched[3][1], settings.metric, ("lr / 10", "lr / 3"))
        cells["update4_vs3"] = judged(CLAIM_BY_KEY["update4_vs3"], context, paired,
                                      Threshold(paired, 0.0, "final loss lr/10 - lr/3"), ABOVE_SUPPORTS,
                                      f"{names[10]} vs {names[3]}")
    else:
        cells["update4_vs3"] = not_judged(CLAIM_BY_KEY["update4_vs3"], context, "no Lion arm at AdamW's lr / " +
                                          " or / ".join(str(k) for k in missing if k != 1))
    if not missing:
        cells["update4_worst"] = worst(context, matched, names, settings)
    else:
        cells["update4_worst"] = not_judged(CLAIM_BY_KEY["update4_worst"], context,
                                            "no Lion arm at AdamW's lr / " + " or / ".join(map(str, missing)))
    return list(cells.values())


def judged(claim, context, paired, test, read, detail: str = "") -> Cell:
    cell = Cell(claim, context, read=read, detail=detail, sources=paired.sources)
    reason = too_few(paired)
    if reason:
        cell.reason = reason
    else:
        cell.test = test
    return cell


def much_worse(context: Context, lion: pd.DataFrame, adamw: pd.DataFrame, name: str, settings: Settings) -> Cell:
    paired = pair_runs(lion, adamw, settings.metric, (LION, ADAMW))
    margin = MUCH_WORSE_FRACTION * paired.reference_mean
    return judged(CLAIM_BY_KEY["update2"], context, paired, Threshold(paired, margin, "final loss Lion - AdamW"),
                  ABOVE_SUPPORTS, f"{name} vs AdamW; threshold {short_number(margin)} ({MUCH_WORSE_FRACTION:.0%} of "
                                  f"AdamW's {short_number(paired.reference_mean)})")


def beats(context: Context, lion: pd.DataFrame, adamw: pd.DataFrame, name: str, settings: Settings) -> Cell:
    paired = pair_runs(lion, adamw, settings.metric, (LION, ADAMW))
    margin = settings.margin * paired.reference_mean
    cell = judged(CLAIM_BY_KEY["summary_lr3"], context, paired, ThreeWay(paired, margin, "final loss Lion - AdamW"),
                  better_supports(LION, ADAMW), f"{name} vs AdamW; margin ±{short_number(margin)}")
    cell.facts["margin"] = margin
    return cell


def better_early(context: Context, lion: pd.DataFrame, adamw: pd.DataFrame, name: str, curves: pd.DataFrame,
                 settings: Settings) -> Cell:
    claim = CLAIM_BY_KEY["update3"]
    budget = settings.early_tokens
    how = "fixed in the protocol"
    if budget is None:
        planned = adamw["tokens"][adamw["status"] == "finished"]
        budget = EARLY_FRACTION * float(planned.median()) if len(planned) else math.nan
        how = "a quarter of AdamW's run (no protocol fixed it)"
    sources = list(lion["source"]) + list(adamw["source"])
    if not math.isfinite(budget):
        return not_judged(claim, context, "no finished AdamW run to set the early budget by", sources)
    paired = pair(loss_at_tokens(lion, curves, budget), loss_at_tokens(adamw, curves, budget), (LION, ADAMW), sources,
                  (len(lion), len(adamw)))
    margin = settings.margin * paired.reference_mean
    found = crossings(lion, adamw, curves)
    cell = judged(claim, context, paired, ThreeWay(paired, margin, f"val loss at {count(budget)} tokens, Lion - AdamW"),
                  better_supports(LION, ADAMW), f"{name} vs AdamW; early budget {count(budget)} tokens ({how}); "
                                                f"margin ±{short_number(margin)}")
    if cell.test is None and paired.n == 0 and not any(paired.diverged):
        cell.reason = f"no evaluation reaches the early budget ({count(budget)} tokens) in both arms"
    final = pair_runs(lion, adamw, settings.metric, (LION, ADAMW))
    mean, low, high = t_interval(final.values())
    cell.aside = (f"final {interval(mean, low, high)} (95%); {describe_crossing(found, (name, ADAMW))}")
    cell.facts.update(early_tokens=budget, crossing=found, margin=margin)
    return cell


def _reading_above(answer: str) -> str:
    return "yes" if answer == ABOVE else "no" if answer == BELOW else "unsure"


def worst(context: Context, matched: dict[int, tuple[float, pd.DataFrame]], names: dict[int, str],
          settings: Settings) -> Cell:
    claim = CLAIM_BY_KEY["update4_worst"]
    parts = []
    for k in (1, 3):
        paired = pair_runs(matched[10][1], matched[k][1], settings.metric, ("lr / 10", f"lr / {k}"))
        parts.append((k, paired))
    sources = sorted({s for _, paired in parts for s in paired.sources})
    reasons = [too_few(paired) for _, paired in parts if too_few(paired)]
    if reasons:
        return not_judged(claim, context, reasons[0], sources)
    tests = [(Threshold(paired, 0.0, f"final loss lr/10 - lr/{k}"), _reading_above) for k, paired in parts]
    binding = min(tests, key=lambda t: np.mean(t[0].paired.values()) if t[0].paired.n else -math.inf)[0]
    test = AllOf(tests, binding, "final loss lr/10 - the better of lr/1, lr/3")
    detail = "; ".join(f"lr/10 - lr/{k}: {interval(*t_interval(paired.values()))} (95%)" for k, paired in parts)
    return Cell(claim, context, test, YES_SUPPORTS, detail=f"{detail}; {names[10]}", sources=sources)


def cells(runs: pd.DataFrame, curves: pd.DataFrame, settings: Settings) -> dict[str, list[Cell]]:
    out: dict[str, list[Cell]] = {key: [] for key in KEYS}
    for cell in ratio_cells(runs, curves, settings):
        out[cell.claim.key].append(cell)
    return out
