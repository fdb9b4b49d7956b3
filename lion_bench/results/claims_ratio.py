"""lion-pytorch updates 2-4: Lion at AdamW's lr / k for k in {1, 3, 10}, judged per AdamW reference.

A context here is a setup, an AdamW reference (its lr and weight decay) and a Lion series (its weight decay
and betas). The reference is every AdamW arm of the setup, plus the recorded base lr of Lion runs with no
AdamW arm at it (update 4 needs no AdamW run). Lion arms are matched to "AdamW's lr / k" by their resolved lr,
so an lr_ratio sweep and a grid of absolute lrs are judged the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lion_bench.results.claims import (CLAIM_BY_KEY, MATCH_FACTOR, MUCH_WORSE_FRACTION, Series, Verdict, judged_from,
                                       optimizer_parts, series_of, wd_part)
from lion_bench.results.contexts import Context, short_number
from lion_bench.results.stats import combine_all, compare, decide, one_per_seed

DIVISORS = (1, 3, 10)
KEYS = ("update2", "update3", "update4_vs3", "update4_worst")


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
    lion = setup_runs[setup_runs["family"] == "lion"]
    for (base_lr, base_wd), _ in lion.groupby([lion["base_lr"].map(lambda x: float(f"{x:.6g}")),
                                               lion["base_weight_decay"]], sort=True):
        if not any(_same(base_lr, ref.lr) and _same(base_wd, ref.weight_decay) for ref in found):
            found[Reference(float(base_lr), float(base_wd), None)] = None
    return found


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def lion_at(series_runs: pd.DataFrame, reference_lr: float) -> dict[int, tuple[float, pd.DataFrame]]:
    """k -> (Lion lr, its runs) for the arm nearest AdamW's lr / k within MATCH_FACTOR."""
    matched = {}
    arms = dict(tuple(series_runs.groupby("lr_key", sort=True)))
    for k in DIVISORS:
        distance = {lr: abs(math.log(reference_lr / lr / k)) for lr in arms}
        close = [lr for lr, value in distance.items() if value <= math.log(MATCH_FACTOR) + 1e-9]
        if close:
            lr = min(close, key=lambda item: (distance[item], item))
            matched[k] = (float(lr), arms[lr])
    return matched


def _arm(k: int, lr: float, reference_lr: float) -> str:
    ratio = reference_lr / lr
    exact = "" if math.isclose(ratio, k, rel_tol=1e-6) else f" (AdamW's lr / {ratio:.3g})"
    return f"Lion lr {short_number(lr)}{exact}"


def ratio_verdicts(runs: pd.DataFrame) -> list[Verdict]:
    verdicts = []
    for setup, setup_runs in runs.groupby("setup", sort=True):
        found = []
        lion_series = series_of(setup_runs, "lion", "wd_key")
        for reference, adamw_runs in references(setup_runs).items():
            for series, series_runs in lion_series.items():
                if reference.adamw is None and not (
                        np.isclose(series_runs["base_lr"], reference.lr, rtol=1e-6).any()):
                    continue
                matched = lion_at(series_runs, reference.lr)
                if matched:
                    found += judge_context(setup, reference, adamw_runs, series, matched)
        if not found:
            reason = ("no Lion runs" if not lion_series else
                      "no Lion arm at AdamW's lr / 1, / 3 or / 10 of a reference lr")
            found = [Verdict(CLAIM_BY_KEY[key], Context(setup), reason=reason) for key in KEYS]
        verdicts += found
    return verdicts


def judge_context(setup: str, reference: Reference, adamw_runs: pd.DataFrame | None, series: Series,
                  matched: dict[int, tuple[float, pd.DataFrame]]) -> list[Verdict]:
    head = (f"AdamW lr {short_number(reference.lr)}" if reference.adamw is not None
            else f"reference lr {short_number(reference.lr)} (no AdamW run)")
    context = Context(setup, (head, wd_part(reference.weight_decay, series.fixed),
                              *optimizer_parts(reference.adamw, series)))
    verdicts = {key: Verdict(CLAIM_BY_KEY[key], context) for key in KEYS}
    names = {k: _arm(k, lr, reference.lr) for k, (lr, _) in matched.items()}
    for key, k in (("update2", 1), ("update3", 3)):
        if adamw_runs is None:
            verdicts[key].reason = f"no AdamW run at the reference lr {short_number(reference.lr)}"
        elif k not in matched:
            verdicts[key].reason = f"no Lion arm at AdamW's lr / {k} ({short_number(reference.lr / k)})"
    if not verdicts["update2"].reason:
        much_worse(verdicts["update2"], matched[1][1], adamw_runs, names[1])
    if not verdicts["update3"].reason:
        better_early(verdicts["update3"], matched[3][1], adamw_runs, names[3])
    missing = [k for k in DIVISORS if k not in matched]
    if 3 in matched and 10 in matched:
        comparison = compare(matched[10][1], matched[3][1], "final_val_loss")
        decision = decide(comparison, 0.0, a_better=False, names=("lr / 10", "lr / 3"))
        judged_from(verdicts["update4_vs3"], comparison, decision, "final loss lr/10 - lr/3")
        verdicts["update4_vs3"].detail = f"{names[10]} vs {names[3]}"
    else:
        verdicts["update4_vs3"].reason = "no Lion arm at AdamW's lr / " + " or / ".join(
            str(k) for k in missing if k != 1)
    if not missing:
        worst(verdicts["update4_worst"], matched, names)
    else:
        verdicts["update4_worst"].reason = "no Lion arm at AdamW's lr / " + " or / ".join(map(str, missing))
    return list(verdicts.values())


def much_worse(verdict: Verdict, lion: pd.DataFrame, adamw: pd.DataFrame, name: str) -> None:
    adamw_mean = adamw.loc[adamw["status"] == "finished", "final_val_loss"].mean()
    margin = MUCH_WORSE_FRACTION * adamw_mean if math.isfinite(adamw_mean) else math.nan
    comparison = compare(lion, adamw, "final_val_loss")
    decision = decide(comparison, margin, a_better=False, names=("Lion", "AdamW"))
    judged_from(verdict, comparison, decision, "final loss Lion - AdamW")
    verdict.detail = (f"{name} vs AdamW; margin {short_number(margin)} "
                      f"({MUCH_WORSE_FRACTION:.0%} of AdamW's {short_number(adamw_mean)})")


def better_early(verdict: Verdict, lion: pd.DataFrame, adamw: pd.DataFrame, name: str) -> None:
    columns = ["early_eval_steps", "status"]
    pairs = pd.merge(one_per_seed(lion)[columns], one_per_seed(adamw)[columns], left_index=True, right_index=True,
                     suffixes=("_lion", "_adamw"))
    pairs = pairs[(pairs["status_lion"] == "finished") & (pairs["status_adamw"] == "finished")]
    if (pairs["early_eval_steps_lion"] != pairs["early_eval_steps_adamw"]).any():
        verdict.reason = "the arms were not evaluated at the same steps"
        return
    if len(pairs) and (pairs["early_eval_steps_lion"] == "").all():
        verdict.reason = "no evaluation in the first quarter of the run (set trainer.eval_every <= steps / 4)"
        return
    comparison = compare(lion, adamw, "early_val_loss")
    decision = decide(comparison, 0.0, a_better=True, names=("Lion", "AdamW"))
    judged_from(verdict, comparison, decision, "early loss Lion - AdamW")
    steps = pairs["early_eval_steps_lion"].iloc[0] if len(pairs) else "-"
    verdict.detail = f"{name} vs AdamW; early window: evaluations at steps {steps}"
    asides = []
    for metric, title in (("quarter_val_loss", "at 25%"), ("final_val_loss", "final")):
        other = compare(lion, adamw, metric)
        asides.append(f"{title} {_signed(other.mean)} [{_signed(other.low)}, {_signed(other.high)}]")
    verdict.aside = "; ".join(asides)


def worst(verdict: Verdict, matched: dict[int, tuple[float, pd.DataFrame]], names: dict[int, str]) -> None:
    parts = []
    for k in (1, 3):
        comparison = compare(matched[10][1], matched[k][1], "final_val_loss")
        parts.append((k, comparison, decide(comparison, 0.0, a_better=False, names=("lr / 10", f"lr / {k}"))))
    verdict.sources = sorted(set(parts[0][1].sources + parts[1][1].sources))
    if any(decision is None for _, _, decision in parts):
        verdict.reason = "fewer than 2 seeds where lr / 1, / 3 and / 10 all finished"
        return
    verdict.decision = combine_all([decision for _, _, decision in parts])
    verdict.decision.note = "; ".join(decision.note for _, _, decision in parts if decision.note)
    _, binding, _ = min(parts, key=lambda part: part[1].mean if math.isfinite(part[1].mean) else -math.inf)
    verdict.num = min(comparison.num_pairs for _, comparison, _ in parts)
    verdict.effect, verdict.low, verdict.high = binding.mean, binding.low, binding.high
    verdict.effect_name = "final loss lr/10 - the worse of lr/1, lr/3"
    verdict.detail = "; ".join(f"lr/10 - lr/{k}: {_signed(c.mean)} [{_signed(c.low)}, {_signed(c.high)}]"
                               for k, c, _ in parts) + f"; {names[10]}"


def _signed(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+.3g}"
