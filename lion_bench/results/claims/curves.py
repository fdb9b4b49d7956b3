"""Reading loss curves: a run's val loss at a token budget, and where two arms' curves cross (per seed,
the point after which one stays ahead), for any two arms compared over training."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.claims.base import one_per_seed
from lion_bench.results.format import count
from lion_bench.results.stats import interpolate, last_crossing, order_interval


class Curves:
    """The logged rows of a family's runs, split by run once (every claim reads runs one at a time)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.by_source = {source: rows.sort_values("step") for source, rows in frame.groupby("source", sort=False)}
        self.empty = frame.iloc[:0]

    def of(self, source: str) -> pd.DataFrame:
        return self.by_source.get(source, self.empty)


def evaluations(curves: Curves, source: str) -> pd.DataFrame:
    """One run's evaluations (step, tokens, val_loss), by step."""
    rows = curves.of(source)
    return rows[np.isfinite(rows["val_loss"])][["step", "tokens", "val_loss"]]


def loss_at_tokens(runs: pd.DataFrame, curves: Curves, tokens: float) -> dict[int, float]:
    """Seed -> val loss at ``tokens`` (linear between the evaluations around it); +inf for a run that diverged
    before it; seeds whose evaluations do not reach that far are left out."""
    out = {}
    for seed, run in zip(one_per_seed(runs).index, one_per_seed(runs).itertuples(index=False)):
        rows = evaluations(curves, run.source)
        value = interpolate(rows["tokens"].to_numpy(), rows["val_loss"].to_numpy(), tokens)
        if run.status == "diverged" and (not math.isfinite(value) or not len(rows) or rows["tokens"].max() < tokens):
            out[int(seed)] = math.inf
        elif math.isfinite(value):
            out[int(seed)] = value
    return out


def crossings(a: pd.DataFrame, b: pd.DataFrame, curves: Curves) -> dict:
    """Per seed where both finished, the step and tokens after which one arm stays ahead (A - B changes sign
    for the last time), over the evaluation steps both share; with the median and range over seeds."""
    a, b = one_per_seed(a), one_per_seed(b)
    steps_at, tokens_at, after = [], [], []
    for seed in sorted(set(a.index) & set(b.index)):
        if a.at[seed, "status"] != "finished" or b.at[seed, "status"] != "finished":
            continue
        rows_a = evaluations(curves, a.at[seed, "source"]).set_index("step")
        rows_b = evaluations(curves, b.at[seed, "source"]).set_index("step")
        shared = sorted(set(rows_a.index) & set(rows_b.index))
        if len(shared) < 2:
            continue
        differences = rows_a.loc[shared, "val_loss"].to_numpy() - rows_b.loc[shared, "val_loss"].to_numpy()
        step, final_sign = last_crossing(np.array(shared, float), differences)
        tokens, _ = last_crossing(rows_a.loc[shared, "tokens"].to_numpy(), differences)
        steps_at.append(step)
        tokens_at.append(tokens)
        after.append(final_sign)
    return {"steps": steps_at, "tokens": tokens_at, "sign_after": after,
            "step": order_interval(steps_at), "token": order_interval(tokens_at), "num_seeds": len(after)}


def describe_crossing(found: dict, names: tuple[str, str]) -> str:
    """"Lion lr / 3 is behind AdamW until step 1300 [1200, 1400] (21M tokens), ahead after" (range over seeds)."""
    if not found["num_seeds"]:
        return "no shared evaluations to compare curves"
    ahead_at_end = sum(sign < 0 for sign in found["sign_after"])
    crossed = [step for step in found["steps"] if math.isfinite(step)]
    leader = names[0] if ahead_at_end * 2 > found["num_seeds"] else names[1]
    trailer = names[1] if leader == names[0] else names[0]
    if not crossed:
        return f"the curves never cross: {leader} is ahead at every evaluation ({found['num_seeds']} seeds)"
    median, low, high = found["step"]
    tokens = found["token"][0]
    return (f"{leader} is behind {trailer} until step {median:.0f} [{low:.0f}, {high:.0f}] ({count(tokens)} tokens; "
            f"median and range over {len(crossed)} of {found['num_seeds']} seeds that cross), ahead after")
