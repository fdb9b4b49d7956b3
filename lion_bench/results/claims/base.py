"""What every claim family shares: the catalogue's entry type, the settings a judgement is made under, the
cell (one claim in one context) and the helpers that pair runs into tests.

A claim family module (``tuned``, ``ratio``, ``curves``, ``optimum``, ``batch``, ``variants``) turns a
family's runs into cells, each with a test (``stats``) and a *reading* of the test's answer as the claim's
verdict. The coordinator (``judge``) decides which cells are primary (a study's protocol, or every cell of
an ad-hoc sweep), corrects them together and fills in the answer, the interval and the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from lion_bench.results.contexts import Context
from lion_bench.results.format import short_number
from lion_bench.results.stats import (ABOVE, BELOW, EQUIVALENT, INCONCLUSIVE, INSIDE, OUTSIDE, MIN_SEEDS, Paired,
                                      Test)

SUPPORTED, CONTRADICTED = "supported", "contradicted"
PRIMARY, EXPLORATORY, MEASURED, NOT_JUDGED = "primary", "exploratory", "measured", "not judged"
LION, ADAMW = "Lion", "AdamW"
LION_BETTER, ADAMW_BETTER = f"{LION} better", f"{ADAMW} better"
DEFAULT_BETAS = {"adamw": "0.9,0.999", "lion": "0.9,0.99"}
MATCH_FACTOR = 1.2  # a Lion lr within this factor of AdamW's lr / k counts as "lr / k"


@dataclass(frozen=True)
class Claim:
    """One testable claim: its source's own words, our rule, the preset that supplies its runs."""

    key: str
    name: str  # a short name: the row people look for ("Update 2")
    statement: str  # what we test, in one line
    source: str  # where it was said
    words: str  # the source's own words
    rule: str  # how it is judged
    preset: str  # lion-bench -m sweep=<preset> supplies the runs
    needs: str  # the runs it needs
    headline: bool = False  # the answer itself is the result (Lion tuned vs AdamW tuned)
    measured: bool = False  # a deterministic measurement: no seeds, no test, never in a Holm family


@dataclass(frozen=True)
class Settings:
    """What a judgement is made under: the protocol's (or the defaults without one)."""

    margin: float = 0.005  # equivalence margin as a fraction of the reference arm's mean metric
    metric: str = "final_val_loss"
    early_tokens: float | None = None  # update 3's early budget; None: a quarter of the run's tokens
    selection_seeds: tuple[int, ...] | None = None  # tuned: None = leave one seed out
    answer_seeds: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None  # only these seeds (None: all)


Reading = Callable[[str], str]


def reading(supported: tuple[str, ...], contradicted: tuple[str, ...]) -> Reading:
    """A test's answer as the claim's verdict."""
    def read(answer: str) -> str:
        if answer in supported:
            return SUPPORTED
        if answer in contradicted:
            return CONTRADICTED
        return INCONCLUSIVE
    return read


def identity(answer: str) -> str:
    return answer


ABOVE_SUPPORTS = reading((ABOVE,), (BELOW,))
BELOW_SUPPORTS = reading((BELOW,), (ABOVE,))
INSIDE_SUPPORTS = reading((INSIDE,), (OUTSIDE,))
YES_SUPPORTS = reading(("yes",), ("no",))


def better_supports(winner: str, loser: str) -> Reading:
    """A claim that ``winner`` is better: "equivalent within the margin" contradicts it (no real gain)."""
    return reading((f"{winner} better",), (f"{loser} better", EQUIVALENT))


@dataclass
class Cell:
    """One claim in one context of one family: its test (or why there is none), and, once the
    coordinator has decided its role, the answer, interval and verdict at the error rate it holds."""

    claim: Claim
    context: Context
    test: Test | None = None
    read: Reading = identity
    reason: str = ""  # why it is not judged
    edge: str = ""  # the best arm it rests on is at its grid's edge (selection.grid_edge): shown, never a verdict
    detail: str = ""
    aside: str = ""  # shown beside, never part of the verdict (the final loss beside an early one)
    sources: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # what tables and plots show (best settings, crossing)
    family: str = ""
    role: str = NOT_JUDGED
    question: str = ""  # the protocol question it answers
    alpha: float = math.nan  # the error rate of its answer and interval
    answer: str = ""
    verdict: str = ""
    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_decision: float = math.nan
    p_adjusted: float = math.nan
    seeds_needed: int | None = None
    label: str = ""  # the context as people read it (what differs from the family's other contexts)
    toy: str = ""

    @property
    def judged(self) -> bool:
        return self.role in (PRIMARY, EXPLORATORY, MEASURED)

    @property
    def n(self) -> int:
        return self.test.n if self.test is not None else 0

    def attrs(self) -> dict[str, Any]:
        return dict(self.context.attrs)

    def row(self) -> dict[str, Any]:
        return {
            "family": self.family, "claim": self.claim.key, "name": self.claim.name, "statement": self.claim.statement,
            "source": self.claim.source, "context": self.label, "setup": self.context.setup, "role": self.role,
            "question": self.question, "answer": self.answer, "verdict": self.verdict, "n": self.n,
            "effect_name": self.test.effect_name if self.test is not None else "", "effect": self.effect,
            "ci_low": self.low, "ci_high": self.high,
            "ci_level": 1 - self.alpha if math.isfinite(self.alpha) else math.nan,
            "p_decision": self.p_decision, "p_holm": self.p_adjusted, "seeds_needed": self.seeds_needed,
            "note": self.test.note if self.test is not None else "", "detail": self.detail, "aside": self.aside,
            "toy_scale": self.toy, "not_judged_because": self.reason, "preset": self.claim.preset,
            "num_runs": len(set(self.sources)), "runs": ";".join(sorted(set(self.sources))),
        }


def not_judged(claim: Claim, context: Context, reason: str, sources=()) -> Cell:
    return Cell(claim, context, reason=reason, sources=sorted(set(sources)))


# --- runs into arms and pairs ------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One optimizer's arms that differ only in the swept value (lr or weight decay)."""

    optimizer: str  # label, variants included (lion+cautious)
    fixed: float  # the value it keeps fixed: weight decay for an lr sweep, lr for a weight-decay sweep
    betas: str


def series_of(runs: pd.DataFrame, optimizer_family: str, fixed: str | None) -> dict[Series, pd.DataFrame]:
    """The runs of ``optimizer_family`` (adamw, lion) grouped by optimizer label (variants apart), betas and
    the fixed column (``wd_key`` or ``lr_key``; None: nothing fixed)."""
    chosen = runs[runs["optimizer_family"] == optimizer_family]
    keys = ["optimizer", "betas"] + ([fixed] if fixed else [])
    out = {}
    for key, group in chosen.groupby(keys, sort=True):
        optimizer, betas = key[0], key[1]
        out[Series(optimizer, float(key[2]) if fixed else math.nan, betas)] = group
    return out


def optimizer_parts(adamw: Series | None, lion: Series | None) -> list[str]:
    """Label parts for optimizer variants and betas other than the defaults."""
    parts = []
    for name, family, series in ((ADAMW, "adamw", adamw), (LION, "lion", lion)):
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


def only_seeds(runs: pd.DataFrame, seeds) -> pd.DataFrame:
    return runs if seeds is None else runs[runs["seed"].isin(seeds)]


# The columns claims read run by run (the setup's field dicts stay behind: they make row access slow).
PER_RUN = ["seed", "source", "status", "tokens", "warmup_steps", "final_val_loss", "best_val_loss", "final_val_bpc"]


def one_per_seed(runs: pd.DataFrame, metric: str = "final_val_loss") -> pd.DataFrame:
    """One run per seed (the first by source), indexed by seed, with the per-run columns only."""
    columns = [column for column in dict.fromkeys([*PER_RUN, metric]) if column in runs.columns]
    return runs[columns].sort_values(["seed", "source"], kind="stable").drop_duplicates("seed").set_index("seed")


def metric_values(runs: pd.DataFrame, metric: str) -> dict[int, float]:
    """Seed -> the run's metric, +inf for a diverged run (worse than any finished one)."""
    runs = one_per_seed(runs, metric)
    return {int(seed): (math.inf if status == "diverged" else float(value))
            for seed, status, value in zip(runs.index, runs["status"], runs[metric])}


def pair(a: Mapping[int, float], b: Mapping[int, float], names: tuple[str, str],
         sources: list[str] = (), num_runs: tuple[int, int] | None = None) -> Paired:
    """Paired A - B from seed -> value maps (+inf: diverged). Only seeds both ran count; a diverged run is
    counted against its arm, never averaged."""
    seeds = sorted(set(a) & set(b))
    diverged = (sum(math.isinf(a[s]) for s in seeds), sum(math.isinf(b[s]) for s in seeds))
    finished = [s for s in seeds if math.isfinite(a[s]) and math.isfinite(b[s])]
    differences = np.array([a[s] - b[s] for s in finished], dtype=float)
    reference = float(np.mean([b[s] for s in finished])) if finished else math.nan
    return Paired(differences, diverged, num_runs or (len(seeds), len(seeds)), sorted(set(sources)), names, reference,
                  tuple(finished))


def pair_runs(a: pd.DataFrame, b: pd.DataFrame, metric: str, names: tuple[str, str]) -> Paired:
    return pair(metric_values(a, metric), metric_values(b, metric), names, list(a["source"]) + list(b["source"]),
                (len(a), len(b)))


def too_few(paired: Paired) -> str:
    """Why a pairing cannot be judged ("" when it can)."""
    if paired.n < MIN_SEEDS and not any(paired.diverged):
        return f"too few seeds: n = {paired.n} (a verdict needs >= {MIN_SEEDS} paired seeds)"
    return ""


def same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def lr_arms(runs: pd.DataFrame) -> dict[float, pd.DataFrame]:
    return {float(lr): group for lr, group in runs.groupby("lr_key", sort=True)}


def nearest_divisor_arm(series_runs: pd.DataFrame, reference_lr: float, k: float) -> tuple[float, pd.DataFrame] | None:
    """The arm nearest AdamW's lr / k within MATCH_FACTOR: (its lr, its runs)."""
    arms = lr_arms(series_runs)
    distance = {lr: abs(math.log(reference_lr / lr / k)) for lr in arms if lr > 0}
    close = [lr for lr, value in distance.items() if value <= math.log(MATCH_FACTOR) + 1e-9]
    if not close:
        return None
    lr = min(close, key=lambda item: (distance[item], item))
    return lr, arms[lr]
