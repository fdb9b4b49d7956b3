"""The published claims about Lion vs AdamW, each judged in every context that has the runs it needs,
by rules fixed in advance (``RULES``, printed in every report).

A verdict belongs to one context (``contexts.py``): the setup plus what the claim keeps fixed. The
claim families live in their own modules: ``claims_ratio`` (lion-pytorch updates 2-4: Lion at AdamW's
lr / k), ``claims_optimum`` (the paper's lr and weight-decay ratios from both optimizers' optima) and
``claims_batch`` (update 7: batch size). Holm's correction runs over every verdict of one report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from lion_bench.results.contexts import Context, setup_labels, short_number
from lion_bench.results.stats import (ALPHA, CONTRADICTED, INCONCLUSIVE, NUM_BOOTSTRAP, SUPPORTED, Comparison,
                                      Decision, holm)

MIN_STEPS = 1000  # runs shorter than this make their context "toy scale"
MUCH_WORSE_FRACTION = 0.02  # update 2's "much worse": by more than 2% of AdamW's mean final loss
RATIO_RANGE = (3.0, 10.0)
LARGE_BATCH = 64
MIN_GRID = 4  # values per optimizer for the paper's ratios
MIN_BATCH_GRID = 3  # lrs per optimizer and batch size for update 7
MATCH_FACTOR = 1.2  # a Lion lr within this factor of AdamW's lr / k counts as "lr / k"

__all__ = ["CLAIMS", "Claim", "Verdict", "check_claims", "rules", "SUPPORTED", "CONTRADICTED", "INCONCLUSIVE"]


@dataclass(frozen=True)
class Claim:
    key: str
    name: str  # the row of the verdict map
    statement: str
    source: str
    how: str  # one line: how it is judged
    sweep: str  # the sweep preset that supplies the runs it needs
    needs: str


README = "lion-pytorch README"
PAPER = "Chen et al. 2023 (arXiv 2302.06675)"
CLAIMS = (
    Claim("update2", "Update 2", "Lion at AdamW's lr is much worse than AdamW", f"{README}, update 2",
          how=f"final val loss, Lion at AdamW's lr minus AdamW; supported when above {MUCH_WORSE_FRACTION:.0%} of "
              "AdamW's mean final loss",
          sweep="lr_ratio", needs="Lion at AdamW's lr and AdamW, >= 2 seeds where both finished"),
    Claim("update3", "Update 3", "Lion at AdamW's lr / 3 gives better early results than AdamW", f"{README}, update 3",
          how="early loss (mean val loss over the evaluations in the first quarter of the run), Lion at AdamW's "
              "lr / 3 minus AdamW; supported when below 0; the val loss at 25% of the steps and the final val loss "
              "are shown beside it",
          sweep="lr_ratio",
          needs="Lion at AdamW's lr / 3 and AdamW with the same evaluation steps, one in the first quarter, "
                ">= 2 seeds"),
    Claim("update4_vs3", "Update 4 (summary)", "Lion at AdamW's lr / 10 is worse than at lr / 3",
          f"{README}, update 4 as its summary reads it",
          how="final val loss, lr / 10 minus lr / 3; supported when above 0",
          sweep="lr_ratio", needs="Lion at AdamW's lr / 3 and / 10, >= 2 seeds where both finished"),
    Claim("update4_worst", "Update 4 (strict)", "lr / 10 is the worst of Lion at AdamW's lr / {1, 3, 10}",
          f"{README}, update 4 read strictly",
          how="final val loss, lr / 10 minus lr / 1 and minus lr / 3; supported when both are above 0, "
              "contradicted when either is below",
          sweep="lr_ratio", needs="Lion at AdamW's lr / 1, / 3 and / 10, >= 2 seeds where all finished"),
    Claim("update7", "Update 7", f"Lion's advantage over AdamW needs batch size >= {LARGE_BATCH}",
          f"{README}, update 7",
          how="at one token budget with warmup as a share of the run, each optimizer at its best lr of a grid at "
              "each batch size (picked on the other seeds); advantage = AdamW minus Lion final val loss per batch "
              f"size; supported when positive at every batch size >= {LARGE_BATCH} and at none below",
          sweep="batch_lr_grid",
          needs=f"both optimizers at >= {MIN_BATCH_GRID} lrs at batch sizes below and at/above {LARGE_BATCH}, "
                "trainer.budget=tokens, trainer.schedule.warmup_fraction set, >= 2 seeds"),
    Claim("paper_lr", "Paper: lr ratio", "Lion's best lr is 3-10x smaller than AdamW's best lr", PAPER,
          how=f"both optimizers on lr grids (>= {MIN_GRID} values, best inside); each best lr from a parabola in "
              "log lr through the best point and its neighbours; AdamW / Lion with a bootstrap interval over seeds; "
              f"supported when the interval lies in [{RATIO_RANGE[0]:g}, {RATIO_RANGE[1]:g}]",
          sweep="lr_grid", needs=f"both optimizers at >= {MIN_GRID} lrs each (the best inside the grid), >= 2 seeds"),
    Claim("paper_wd", "Paper: wd ratio", "Lion's best weight decay is 3-10x larger than AdamW's best", PAPER,
          how=f"as the lr ratio, over weight-decay grids (>= {MIN_GRID} values > 0 each, each optimizer at one lr); "
              f"Lion / AdamW; supported when the interval lies in [{RATIO_RANGE[0]:g}, {RATIO_RANGE[1]:g}]",
          sweep="wd_multiplier",
          needs=f"both optimizers at >= {MIN_GRID} weight decays > 0 each (the best inside), one lr each, "
                ">= 2 seeds: Lion's from `lion-bench -m sweep=wd_multiplier`, AdamW's with `base.weight_decay=...` "
                "swept"),
)
CLAIM_BY_KEY = {claim.key: claim for claim in CLAIMS}


def rules(min_steps: int = MIN_STEPS) -> str:
    return f"""\
- Context: every setting that is not the compared factor or the seed (task, model, data fingerprint, steps or
  token budget, batch, schedule and warmup, clipping, resolved precision and device type, each optimizer's weight
  decay and betas, the AdamW reference lr where a claim is relative to it, the committed study a run belongs to).
  Each claim is judged in every context that has the runs it needs; runs of different contexts never pool.
- Arms are matched by their resolved absolute lr and weight decay: Lion counts as "AdamW's lr / k" when AdamW's
  lr / Lion's lr is within a factor {MATCH_FACTOR:g} of k (the nearest such arm), whatever sweep ran it.
- Paired comparison of arms A and B: runs paired by seed; d = A - B over the seeds where both finished (n counts
  only those pairs); 95% Student-t interval; two-sided t-test of d = margin.
- Divergence: a diverged run never averages with finished ones. An arm with a diverged run loses its comparison
  (p = 0, said in the verdict); when both arms have one, inconclusive. In grids a diverged point is worse than any
  finished one and is never fitted.
- A claim is supported when the test is significant in the claimed direction, contradicted when significant in
  the other, inconclusive otherwise; fewer than 2 pairs: not judged (the runs it needs are listed with the sweep).
- Multiple claims: Holm's step-down correction over all verdicts in this report that were tested (family-wise
  error {ALPHA:g}); a verdict whose Holm-adjusted p is >= {ALPHA:g} becomes inconclusive. Cells show the adjusted p.
- Ratios (paper): both optimizers on grids of >= {MIN_GRID} values with each best value inside its grid; best log
  value = vertex of the parabola through the best grid point and its two neighbours (kept between them; the best
  point itself when a neighbour diverged); interval = 2.5-97.5% percentiles of {NUM_BOOTSTRAP:,} bootstrap draws
  of seeds (the same draw for both optimizers); p-values = twice the bootstrap share on the wrong side.
- Update 7: per batch size, each optimizer's lr is the best of its grid on the other seeds (leave one seed
  out) and the held-out seed's final loss is its value; per-batch paired t-tests of AdamW - Lion. Contradicted when
  Lion wins at a batch below {LARGE_BATCH} or loses at one >= {LARGE_BATCH} (Bonferroni over the batch sizes); supported
  when it wins at every batch >= {LARGE_BATCH} (the largest of their p) and at none below; needs judged batch sizes on
  both sides of {LARGE_BATCH}.
- Toy scale: a context with runs shorter than {min_steps:,} steps is marked "toy scale" beside each verdict.
"""


NO_CONTEXT = Context("-")
DEFAULT_BETAS = {"adamw": "0.9,0.999", "lion": "0.9,0.99"}


@dataclass(frozen=True)
class Series:
    """One optimizer's arms that differ only in the swept value (lr or weight decay)."""

    optimizer: str  # label, variants included (lion+cautious)
    fixed: float  # the value it keeps fixed: weight decay for an lr sweep, lr for a weight-decay sweep
    betas: str


def series_of(runs: pd.DataFrame, family: str, fixed: str) -> dict[Series, pd.DataFrame]:
    """``family``'s runs grouped by optimizer label, betas and the fixed column (``wd_key`` or ``lr_key``)."""
    chosen = runs[runs["family"] == family]
    return {Series(optimizer, float(value), betas): group
            for (optimizer, value, betas), group in chosen.groupby(["optimizer", fixed, "betas"], sort=True)}


def optimizer_parts(adamw: Series | None, lion: Series | None) -> list[str]:
    """Label parts for optimizer variants and betas other than the defaults."""
    parts = []
    for name, family, series in (("AdamW", "adamw", adamw), ("Lion", "lion", lion)):
        if series is None:
            continue
        if series.optimizer != family:
            parts.append(series.optimizer)
        if series.betas != DEFAULT_BETAS[family]:
            parts.append(f"{name} betas {series.betas}")
    return parts


def wd_part(adamw_wd: float, lion_wd: float) -> str:
    if adamw_wd == lion_wd:
        return f"wd {short_number(adamw_wd)}"
    return f"wd AdamW {short_number(adamw_wd)}, Lion {short_number(lion_wd)}"


def judged_from(verdict: Verdict, comparison: Comparison, decision: Decision | None, effect_name: str) -> Verdict:
    """Fill ``verdict`` from one paired comparison (or say it was not judged)."""
    verdict.sources = comparison.sources
    if decision is None:
        verdict.reason = f"fewer than 2 seeds where both arms finished ({comparison.num_pairs})"
        return verdict
    verdict.decision, verdict.num = decision, comparison.num_pairs
    verdict.effect, verdict.low, verdict.high = comparison.mean, comparison.low, comparison.high
    verdict.effect_name = effect_name
    return verdict


@dataclass
class Verdict:
    claim: Claim
    context: Context
    decision: Decision | None = None  # None: not judged (the runs it needs are missing)
    reason: str = ""  # why it was not judged
    num: int = 0
    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    effect_name: str = ""
    detail: str = ""
    aside: str = ""  # shown beside the verdict, not part of it (update 3's final-loss comparison)
    sources: list[str] = field(default_factory=list)
    label: str = ""
    toy: str = ""  # "toy scale (...)" when the runs are shorter than the minimum length
    p_adjusted: float = math.nan

    @property
    def judged(self) -> bool:
        return self.decision is not None

    @property
    def outcome(self) -> str:
        """The verdict after Holm's correction."""
        if self.decision is None:
            return INCONCLUSIVE
        if self.decision.outcome != INCONCLUSIVE and not self.p_adjusted < ALPHA:
            return INCONCLUSIVE
        return self.decision.outcome

    def row(self) -> dict:
        return {
            "claim": self.claim.key, "statement": self.claim.statement, "source": self.claim.source,
            "context": self.label, "setup": self.context.setup,
            "verdict": self.outcome if self.judged else "not judged",
            "verdict_before_holm": self.decision.outcome if self.judged else "",
            "p_value": self.decision.p_value if self.judged else math.nan, "p_holm": self.p_adjusted,
            "n": self.num, "effect_name": self.effect_name, "effect": self.effect, "ci_low": self.low,
            "ci_high": self.high, "note": self.decision.note if self.judged else "", "detail": self.detail,
            "aside": self.aside, "toy_scale": self.toy, "not_judged_because": self.reason,
            "sweep": "" if self.judged else self.claim.sweep, "num_runs": len(set(self.sources)),
            "runs": ";".join(sorted(set(self.sources))),
        }


def label_map(runs: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    """Labels of every setup and budget setup in ``runs`` (each family labelled against its own kind)."""
    labels = {}
    for id_column, fields_column in (("setup", "setup_fields"), ("budget_setup", "budget_fields")):
        setups = dict(zip(runs[id_column], runs[fields_column]))
        labels.update(setup_labels(setups))
    return labels


def check_claims(runs: pd.DataFrame, min_steps: int = MIN_STEPS) -> list[Verdict]:
    """Every claim in every context of ``runs``, Holm-corrected together; sorted by claim, then context label."""
    from lion_bench.results.claims_batch import batch_verdicts
    from lion_bench.results.claims_optimum import optimum_verdicts
    from lion_bench.results.claims_ratio import ratio_verdicts

    if not len(runs):
        return [Verdict(claim, NO_CONTEXT, reason="no runs", label="-") for claim in CLAIMS]
    verdicts = ratio_verdicts(runs) + optimum_verdicts(runs) + batch_verdicts(runs)
    labels = label_map(runs)
    steps = dict(zip(runs["source"], runs["planned_steps"]))
    for verdict in verdicts:
        verdict.label = verdict.context.label(labels) if verdict.context.setup in labels else "-"
        shortest = min((steps[source] for source in verdict.sources), default=None)
        if verdict.judged and shortest is not None and shortest < min_steps:
            verdict.toy = f"toy scale ({shortest:,} steps < {min_steps:,})"
    # Labels round numbers (3 significant digits): contexts that differ beyond that are numbered, never merged.
    contexts_by_label: dict[str, list[Context]] = {}
    for verdict in verdicts:
        found = contexts_by_label.setdefault(verdict.label, [])
        if verdict.context not in found:
            found.append(verdict.context)
    for verdict in verdicts:
        found = sorted(contexts_by_label[verdict.label])
        if len(found) > 1:
            verdict.label += f" (variant {found.index(verdict.context) + 1} of {len(found)})"
    judged = [verdict for verdict in verdicts if verdict.judged]
    for verdict, adjusted in zip(judged, holm([verdict.decision.p_value for verdict in judged])):
        verdict.p_adjusted = adjusted
    order = {claim.key: index for index, claim in enumerate(CLAIMS)}
    return sorted(verdicts, key=lambda verdict: (order[verdict.claim.key], verdict.label, verdict.context))
