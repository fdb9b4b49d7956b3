"""The published claims about Lion vs AdamW, each checked against run records by a rule fixed in advance.

Every claim is judged per setup (task, model, data, steps) on the comparison score of each run: its
final val loss, or, for a diverged run, its initial train loss (no better than not training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lion_bench.results.tables import Paired, arm_runs, paired_difference, setup_labels, summarize, t_interval

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
MUCH_WORSE_FRACTION = 0.02  # "much worse": by more than 2% of AdamW's loss
RATIO_RANGE = (3.0, 10.0)
LARGE_BATCH = 64

RULES = f"""\
- Score of a run: its final val loss; a diverged run scores its initial train loss (no better than not training).
- Paired comparison of arms A and B: runs paired by seed within one setup; d = score(A) - score(B);
  95% Student-t interval of the mean of d. Fewer than 2 paired seeds: inconclusive (runs missing).
- A claim "d < m" is supported when the whole interval is below m, contradicted when it is wholly above m,
  inconclusive otherwise (and the other way round for "d > m"). No correction for multiple claims.
- Update 2 ("much worse"): d = Lion(lr/1) - AdamW, m = {MUCH_WORSE_FRACTION:.0%} of AdamW's mean loss.
- Update 3: d = Lion(lr/3) - AdamW, m = 0. AdamW runs at the base lr Lion's divisor refers to, same batch size.
- Update 4: d = Lion(lr/10) - Lion(lr/1) and Lion(lr/10) - Lion(lr/3), both > 0: supported when both intervals
  are above 0, contradicted when either is below 0.
- Update 7: Lion's advantage a = AdamW - best Lion (per batch size), averaged per seed over batches < {LARGE_BATCH} and
  >= {LARGE_BATCH}. Supported: a at >= {LARGE_BATCH} above 0, a at < {LARGE_BATCH} not above 0, and their difference above 0.
  Contradicted: a at < {LARGE_BATCH} above 0, or a at >= {LARGE_BATCH} below 0.
- Best-value ratios (paper): an arm is a plausible optimum unless its paired difference to the best arm is above 0
  (it is significantly worse). The plausible ratios span the plausible grid values; a plausible value at the edge
  of the grid leaves that side open (0 or infinity). Supported when the whole span lies in
  [{RATIO_RANGE[0]:g}, {RATIO_RANGE[1]:g}], contradicted when it misses [{RATIO_RANGE[0]:g}, {RATIO_RANGE[1]:g}], inconclusive otherwise.
  When AdamW was run at one value only, that value is taken as its tuned reference (said in the details).
"""


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str
    source: str
    sweep: str  # the sweep preset that supplies the runs it needs
    needs: str


CLAIMS = (
    Claim("update2", "Lion at AdamW's lr is much worse than AdamW", "lion-pytorch README, update 2",
          "lr_ratio", "Lion at lr/1 and AdamW at the same base lr and batch size, >= 2 shared seeds"),
    Claim("update3", "Lion at AdamW's lr / 3 beats AdamW", "lion-pytorch README, update 3",
          "lr_ratio", "Lion at lr/3 and AdamW at the same base lr and batch size, >= 2 shared seeds"),
    Claim("update4", "lr / 10 is the worst of Lion at lr / {1, 3, 10}", "lion-pytorch README, update 4",
          "lr_ratio", "Lion at lr/1, lr/3 and lr/10 with the same other settings, >= 2 shared seeds"),
    Claim("update7", f"Lion's advantage over AdamW needs batch size >= {LARGE_BATCH}", "lion-pytorch README, update 7",
          "batch_size", f"Lion and AdamW at batch sizes both below and at/above {LARGE_BATCH}, >= 2 shared seeds"),
    Claim("paper_lr", "Lion's best lr is 3-10x smaller than AdamW's best lr",
          "Chen et al. 2023, Symbolic Discovery of Optimization Algorithms", "lr_ratio_fine",
          "Lion at >= 3 learning rates (and ideally AdamW at >= 3), same setup, >= 2 seeds each"),
    Claim("paper_wd", "Lion's best weight decay is 3-10x larger than AdamW's best",
          "Chen et al. 2023, Symbolic Discovery of Optimization Algorithms", "wd_multiplier",
          "Lion at >= 3 weight decays against an AdamW weight decay > 0, same setup, >= 2 seeds each"),
)


@dataclass
class Verdict:
    claim: Claim
    task: str
    verdict: str = INCONCLUSIVE
    num: int = 0
    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    effect_name: str = ""
    detail: str = ""
    missing: bool = True
    sources: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return {
            "claim": self.claim.key, "statement": self.claim.statement, "source": self.claim.source,
            "task": self.task, "verdict": self.verdict, "n": self.num, "effect_name": self.effect_name,
            "effect": self.effect, "ci_low": self.low, "ci_high": self.high, "detail": self.detail,
            "missing_runs": self.missing, "sweep": self.claim.sweep if self.missing else "",
            "num_runs": len(set(self.sources)), "runs": ";".join(sorted(set(self.sources))),
        }


def judge_interval(low: float, high: float, margin: float, claim_below: bool) -> str:
    """Verdict for a claim "d < margin" (claim_below) or "d > margin" from d's interval."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    below, above = high < margin, low > margin
    if claim_below:
        return SUPPORTED if below else CONTRADICTED if above else INCONCLUSIVE
    return SUPPORTED if above else CONTRADICTED if below else INCONCLUSIVE


def _close(a, b) -> np.ndarray:
    return np.isclose(a, b, rtol=1e-9, atol=0.0)


def matched_pairs(runs: pd.DataFrame, arms: pd.DataFrame, divisor: float) -> list[tuple[pd.Series, pd.Series, Paired]]:
    """(Lion arm at ``divisor``, its AdamW reference arm, their paired difference), most pairs first."""
    lion = arms[(arms["optimizer"] == "lion") & _close(arms["lr_divisor"], divisor)]
    adamw = arms[arms["optimizer"] == "adamw"]
    found = []
    for _, lion_arm in lion.iterrows():
        base_lr = lion_arm["lr"] * lion_arm["lr_divisor"]
        base_wd = lion_arm["weight_decay"] / lion_arm["wd_multiplier"] if lion_arm["wd_multiplier"] else math.nan
        reference = adamw[(adamw["batch_size"] == lion_arm["batch_size"]) & _close(adamw["lr"], base_lr)]
        if math.isfinite(base_wd):
            reference = reference[_close(reference["weight_decay"], base_wd)]
        for _, adamw_arm in reference.iterrows():
            found.append((lion_arm, adamw_arm, paired_difference(runs, lion_arm, adamw_arm)))
    return sorted(found, key=lambda item: (-item[2].num_pairs, item[0]["score_mean"]))


def describe(arm: pd.Series) -> str:
    if arm["optimizer"].startswith("lion"):
        return (f"{arm['optimizer']} lr/{arm['lr_divisor']:g} (lr {arm['lr']:.3g}, wd {arm['weight_decay']:.3g}, "
                f"betas {arm['betas']}, bs {arm['batch_size']})")
    return f"{arm['optimizer']} lr {arm['lr']:.3g} (wd {arm['weight_decay']:.3g}, bs {arm['batch_size']})"


def check_against_adamw(verdict: Verdict, runs, arms, divisor: float, much_worse: bool) -> Verdict:
    pairs = matched_pairs(runs, arms, divisor)
    if not pairs or pairs[0][2].num_pairs < 2:
        verdict.detail = "no Lion/AdamW arms sharing >= 2 seeds" if not pairs else "fewer than 2 paired seeds"
        return verdict
    lion_arm, adamw_arm, paired = pairs[0]
    margin = MUCH_WORSE_FRACTION * adamw_arm["score_mean"] if much_worse else 0.0
    verdict.verdict = judge_interval(paired.low, paired.high, margin, claim_below=not much_worse)
    verdict.num, verdict.effect, verdict.low, verdict.high = paired.num_pairs, paired.mean, paired.low, paired.high
    verdict.effect_name = "loss(Lion) - loss(AdamW)"
    verdict.detail = f"{describe(lion_arm)} vs {describe(adamw_arm)}" + (f"; margin {margin:.4g}" if much_worse else "")
    verdict.sources, verdict.missing = paired.sources, False
    return verdict


def check_update4(verdict: Verdict, runs, arms) -> Verdict:
    lion = arms[arms["optimizer"] == "lion"].assign(base_lr=lambda df: df["lr"] * df["lr_divisor"])
    best = None
    for _, group in lion.groupby(["batch_size", "wd_multiplier", "betas"], sort=True):
        chosen = {}
        for divisor in (1.0, 3.0, 10.0):
            matches = group[_close(group["lr_divisor"], divisor)]
            if matches.empty:
                break
            chosen[divisor] = matches.iloc[0]
        if len(chosen) < 3 or not all(_close(arm["base_lr"], chosen[1.0]["base_lr"]) for arm in chosen.values()):
            continue
        versus = [paired_difference(runs, chosen[10.0], chosen[other]) for other in (1.0, 3.0)]
        num = min(paired.num_pairs for paired in versus)
        if best is None or num > best[0]:
            best = (num, chosen, versus)
    if best is None or best[0] < 2:
        verdict.detail = "no Lion arms at lr/1, lr/3 and lr/10 sharing >= 2 seeds"
        return verdict
    num, chosen, (vs1, vs3) = best
    verdicts = [judge_interval(paired.low, paired.high, 0.0, claim_below=False) for paired in (vs1, vs3)]
    verdict.verdict = (CONTRADICTED if CONTRADICTED in verdicts
                       else SUPPORTED if verdicts == [SUPPORTED, SUPPORTED] else INCONCLUSIVE)
    weakest = min((vs1, vs3), key=lambda paired: paired.low if math.isfinite(paired.low) else -math.inf)
    verdict.num, verdict.effect, verdict.low, verdict.high = num, weakest.mean, weakest.low, weakest.high
    verdict.effect_name = "loss(lr/10) - loss(nearest other)"
    verdict.detail = (f"lr/10 - lr/1: {vs1.mean:+.4g} [{vs1.low:+.4g}, {vs1.high:+.4g}]; "
                      f"lr/10 - lr/3: {vs3.mean:+.4g} [{vs3.low:+.4g}, {vs3.high:+.4g}]; "
                      f"{describe(chosen[10.0])}")
    verdict.sources, verdict.missing = vs1.sources + vs3.sources, False
    return verdict


def check_update7(verdict: Verdict, runs, arms) -> Verdict:
    advantages = {}  # batch size -> per-seed AdamW - Lion (positive: Lion wins)
    sources = []
    for batch_size, group in arms.groupby("batch_size"):
        candidates = []
        for _, lion_arm in group[group["optimizer"] == "lion"].iterrows():
            pairs = matched_pairs(runs, group, lion_arm["lr_divisor"])
            pairs = [pair for pair in pairs if pair[0].equals(lion_arm) and pair[2].num_pairs >= 2]
            if pairs:
                candidates.append(pairs[0])
        if not candidates:
            continue
        lion_arm, adamw_arm, _ = min(candidates, key=lambda item: item[0]["score_mean"])
        lion_runs = arm_runs(runs, lion_arm).set_index("seed")
        adamw_runs = arm_runs(runs, adamw_arm).set_index("seed")
        seeds = sorted(set(lion_runs.index) & set(adamw_runs.index))
        advantages[int(batch_size)] = adamw_runs.loc[seeds, "score"] - lion_runs.loc[seeds, "score"]
        sources += list(lion_runs.loc[seeds, "source"]) + list(adamw_runs.loc[seeds, "source"])
    small = [batch for batch in advantages if batch < LARGE_BATCH]
    large = [batch for batch in advantages if batch >= LARGE_BATCH]
    if not small or not large:
        verdict.detail = f"batch sizes with both optimizers: {sorted(advantages) or 'none'}"
        return verdict
    table = pd.DataFrame(advantages).dropna()  # seeds run at every batch size
    if len(table) < 2:
        verdict.detail = "fewer than 2 seeds shared across all batch sizes"
        return verdict
    small_advantage, large_advantage = table[small].mean(axis=1), table[large].mean(axis=1)
    _, small_low, _ = t_interval(small_advantage.to_numpy())
    _, large_low, large_high = t_interval(large_advantage.to_numpy())
    mean, low, high = t_interval((large_advantage - small_advantage).to_numpy())
    if small_low > 0 or large_high < 0:
        verdict.verdict = CONTRADICTED
        reason = f"Lion wins below {LARGE_BATCH}" if small_low > 0 else f"Lion loses at >= {LARGE_BATCH}"
    elif large_low > 0 and low > 0:
        verdict.verdict, reason = SUPPORTED, f"Lion wins at >= {LARGE_BATCH}, and by more than below"
    else:
        verdict.verdict, reason = INCONCLUSIVE, "no interval decides"
    verdict.num, verdict.effect, verdict.low, verdict.high = len(table), mean, low, high
    verdict.effect_name = f"advantage(bs >= {LARGE_BATCH}) - advantage(bs < {LARGE_BATCH})"
    verdict.detail = (f"{reason}; Lion's advantage (AdamW - Lion) by batch size: "
                      + ", ".join(f"{batch}: {table[batch].mean():+.4g}" for batch in sorted(table.columns)))
    verdict.sources, verdict.missing = sources, False
    return verdict


def plausible_span(runs: pd.DataFrame, arms: pd.DataFrame, value: str) -> tuple[float, float, pd.Series]:
    """(low, high) of ``value`` over plausible optima of ``arms`` (one per grid value); open at grid edges."""
    arms = arms.sort_values("score_mean", kind="stable").drop_duplicates(value)
    best = arms.iloc[0]
    plausible = [best[value]]
    for _, arm in arms.iloc[1:].iterrows():
        paired = paired_difference(runs, arm, best)
        if not (paired.num_pairs >= 2 and paired.low > 0):
            plausible.append(arm[value])
    grid = sorted(arms[value])
    if len(grid) == 1:
        return grid[0], grid[0], best
    low = 0.0 if min(plausible) == grid[0] else min(plausible)
    high = math.inf if max(plausible) == grid[-1] else max(plausible)
    return low, high, best


def _widest_context(arms: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame | None:
    if arms.empty:
        return None
    groups = [group for _, group in arms.groupby(keys, sort=True)]
    return max(groups, key=lambda group: (group[value].nunique(), group["num_seeds"].min(), -group["score_mean"].min()))


def check_ratio(verdict: Verdict, runs, arms, value: str) -> Verdict:
    """Paper claims: lr (AdamW / Lion) or weight decay (Lion / AdamW) ratio of the best arms in [3, 10]."""
    sources = []
    spans = {}
    for optimizer in ("lion", "adamw"):
        fixed = ["batch_size", "betas", "weight_decay" if value == "lr" else "lr"]
        context = _widest_context(arms[arms["optimizer"] == optimizer], fixed, value)
        if context is None:
            verdict.detail = f"no {optimizer} runs"
            return verdict
        spans[optimizer] = (*plausible_span(runs, context, value), context[value].nunique())
        for _, arm in context.iterrows():
            sources += list(arm_runs(runs, arm)["source"])
    lion_low, lion_high, lion_best, lion_grid = spans["lion"]
    adamw_low, adamw_high, adamw_best, adamw_grid = spans["adamw"]
    if lion_grid < 3:
        verdict.detail = f"Lion was run at {lion_grid} {value} value(s); needs >= 3"
        return verdict
    if value == "weight_decay" and adamw_high == 0:
        verdict.detail = "AdamW's weight decay is 0: no ratio"
        return verdict
    with np.errstate(divide="ignore"):
        if value == "lr":  # AdamW / Lion
            ratio = adamw_best["lr"] / lion_best["lr"]
            low = adamw_low / lion_high if lion_high > 0 else math.inf
            high = adamw_high / lion_low if lion_low > 0 else math.inf
        else:  # Lion / AdamW
            ratio = lion_best[value] / adamw_best[value] if adamw_best[value] > 0 else math.inf
            low = lion_low / adamw_high if adamw_high > 0 else 0.0
            high = lion_high / adamw_low if adamw_low > 0 else math.inf
    lower, upper = RATIO_RANGE
    if low >= lower * (1 - 1e-9) and high <= upper * (1 + 1e-9):
        verdict.verdict = SUPPORTED
    elif high < lower * (1 - 1e-9) or low > upper * (1 + 1e-9):
        verdict.verdict = CONTRADICTED
    else:
        verdict.verdict = INCONCLUSIVE
    verdict.num = int(min(arms_seeds for arms_seeds in (lion_best["num_seeds"], adamw_best["num_seeds"])))
    verdict.effect, verdict.low, verdict.high = ratio, low, high
    verdict.effect_name = "AdamW lr / Lion lr" if value == "lr" else "Lion wd / AdamW wd"
    reference = " (AdamW run at one value: taken as its tuned reference)" if adamw_grid == 1 else ""
    verdict.detail = (f"best Lion {value} {lion_best[value]:.3g} of {lion_grid} values, best AdamW {value} "
                      f"{adamw_best[value]:.3g} of {adamw_grid}{reference}")
    verdict.sources, verdict.missing = sources, False
    return verdict


def check_claims(runs: pd.DataFrame, summary: pd.DataFrame | None = None) -> list[Verdict]:
    """One verdict per claim and setup (one 'missing' verdict per claim when there are no runs at all)."""
    if summary is None:
        summary = summarize(runs) if len(runs) else pd.DataFrame()
    if not len(runs):
        return [Verdict(claim, task="-", detail="no runs") for claim in CLAIMS]
    labels = setup_labels(runs)
    verdicts = []
    for (task, setup), arms in summary.groupby(["task", "setup"], sort=True):
        setup_runs = runs[(runs["task"] == task) & (runs["setup"] == setup)]
        label = labels[(task, setup)]
        for claim in CLAIMS:
            verdict = Verdict(claim, task=label)
            if claim.key == "update2":
                check_against_adamw(verdict, setup_runs, arms, 1.0, much_worse=True)
            elif claim.key == "update3":
                check_against_adamw(verdict, setup_runs, arms, 3.0, much_worse=False)
            elif claim.key == "update4":
                check_update4(verdict, setup_runs, arms)
            elif claim.key == "update7":
                check_update7(verdict, setup_runs, arms)
            elif claim.key == "paper_lr":
                check_ratio(verdict, setup_runs, arms, "lr")
            elif claim.key == "paper_wd":
                check_ratio(verdict, setup_runs, arms, "weight_decay")
            verdicts.append(verdict)
    return verdicts
