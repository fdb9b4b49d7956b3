"""Claims about Lion's options and settings: betas (0.95, 0.98) for stability, cautious Lion, the lr schedule
(cosine vs reciprocal square root; scaling the whole schedule), and its memory (the peak device memory of
paired runs; the optimizer state bytes beside it)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.claims.base import (ABOVE_SUPPORTS, ADAMW, BELOW_SUPPORTS, INSIDE_SUPPORTS, LION,
                                            MATCH_FACTOR, Cell, Settings, better_supports, metric_values, not_judged,
                                            one_per_seed, pair, pair_runs, reading, too_few)
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY, SPIKE_FRACTION, STATE_RATIO, STATE_TOLERANCE
from lion_bench.results.claims.curves import Curves
from lion_bench.results.claims.selection import arm_grid, edges_line, grid_edge, held_out_values
from lion_bench.results.contexts import Context, fields_id, without
from lion_bench.results.format import interval, short_number
from lion_bench.results.stats import Measured, Paired, SignTest, ThreeWay, Threshold, t_interval

DEFAULT, STABLE = "0.9,0.99", "0.95,0.98"
KEYS = ("betas", "cautious", "schedule_cosine", "schedule_ratio", "state_half")
# Peaks that are a run's own: the CUDA allocator's, or the CPU's resident set since the run started (not
# process_max_rss, a process's lifetime peak over every run it trained).
OWN_PEAK_KINDS = ("cuda_allocated", "rss_since_run_start")


def spiked(curves: Curves, source: str, warmup_steps: int) -> bool:
    """A train loss more than SPIKE_FRACTION above the lowest logged before it, after the warmup."""
    rows = curves.of(source)
    rows = rows[np.isfinite(rows["train_loss"])]
    lowest = math.inf
    for step, loss in zip(rows["step"], rows["train_loss"]):
        if step > warmup_steps and loss > lowest * (1 + SPIKE_FRACTION):
            return True
        lowest = min(lowest, loss)
    return False


def betas_cells(runs: pd.DataFrame, curves: Curves, settings: Settings) -> list[Cell]:
    claim = CLAIM_BY_KEY["betas"]
    cells = []
    lion = runs[runs["optimizer"] == "lion"]
    for setup, setup_runs in lion.groupby("setup", sort=True):
        default, stable = setup_runs[setup_runs["betas"] == DEFAULT], setup_runs[setup_runs["betas"] == STABLE]
        if not len(default) or not len(stable):
            continue
        arms = sorted(set(zip(default["lr_key"], default["wd_key"])) & set(zip(stable["lr_key"], stable["wd_key"])))
        lrs = ", ".join(short_number(lr) for lr in sorted({lr for lr, _ in arms}))
        context = Context(setup, (f"Lion at lr {lrs}",), (("setup", setup),))
        sources = sorted(set(default["source"]) | set(stable["source"]))
        if not arms:
            cells.append(not_judged(claim, context, "no lr and weight decay run with both betas", sources))
            continue
        events = {"default": 0, "stable": 0}
        only_default = only_stable = num_pairs = 0
        finals = []
        for lr, wd in arms:
            pick = lambda frame: one_per_seed(frame[(frame["lr_key"] == lr) & (frame["wd_key"] == wd)])
            a, b = pick(default), pick(stable)
            for seed in sorted(set(a.index) & set(b.index)):
                event_a = a.at[seed, "status"] == "diverged" or spiked(curves, a.at[seed, "source"],
                                                                      int(a.at[seed, "warmup_steps"]))
                event_b = b.at[seed, "status"] == "diverged" or spiked(curves, b.at[seed, "source"],
                                                                      int(b.at[seed, "warmup_steps"]))
                num_pairs += 1
                events["default"] += event_a
                events["stable"] += event_b
                only_default += event_a and not event_b
                only_stable += event_b and not event_a
                if a.at[seed, "status"] == b.at[seed, "status"] == "finished":
                    finals.append(b.at[seed, settings.metric] - a.at[seed, settings.metric])
        test = SignTest(only_stable, only_default, num_pairs, ("(0.95, 0.98)", "(0.9, 0.99)"),
                        "share of one-sided instabilities that (0.9, 0.99) had")
        read = reading(("(0.95, 0.98) fewer",), ("(0.9, 0.99) fewer",))
        cell = Cell(claim, context, test, read, sources=sources,
                    detail=f"instabilities (divergence or spike): (0.9, 0.99) {events['default']} of {num_pairs} runs, "
                           f"(0.95, 0.98) {events['stable']} of {num_pairs}")
        cell.aside = f"final loss (0.95, 0.98) - (0.9, 0.99): {interval(*t_interval(finals))} (95%, finished pairs)"
        if not test.testable:
            cell.test = None
            cell.reason = (f"too few pairs: n = {num_pairs}" if num_pairs < 3 else
                           "no pair where only one betas setting had an instability (nothing to tell them apart)")
        cells.append(cell)
    return cells


def cautious_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    claim = CLAIM_BY_KEY["cautious"]
    cells = []
    for setup, setup_runs in runs.groupby("setup", sort=True):
        plain, cautious = setup_runs[setup_runs["optimizer"] == "lion"], setup_runs[setup_runs["optimizer"] ==
                                                                                     "lion+cautious"]
        if not len(plain) or not len(cautious):
            continue
        for (lr, wd, betas), arm in cautious.groupby(["lr_key", "wd_key", "betas"], sort=True):
            reference = plain[(plain["lr_key"] == lr) & (plain["wd_key"] == wd) & (plain["betas"] == betas)]
            context = Context(setup, (f"Lion lr {short_number(lr)}, wd {short_number(wd)}",),
                              (("setup", setup), ("lr", float(lr)), ("wd", float(wd))))
            if not len(reference):
                cells.append(not_judged(claim, context, "no plain Lion run at this lr and weight decay", arm["source"]))
                continue
            paired = pair_runs(arm, reference, settings.metric, ("cautious", LION))
            margin = settings.margin * paired.reference_mean
            cell = Cell(claim, context, read=better_supports("cautious", LION), sources=paired.sources,
                        detail=f"margin ±{short_number(margin)}")
            cell.reason = too_few(paired)
            if not cell.reason:
                cell.test = ThreeWay(paired, margin, "final loss cautious - Lion")
            cells.append(cell)
    return cells


def schedule_groups(runs: pd.DataFrame, key: str) -> dict[str, pd.DataFrame]:
    """Runs grouped by their setup without ``key``: setups that differ in that key alone."""
    ids = [fields_id(without(fields, key)) for fields in runs["setup_fields"]]
    return {group_id: group for group_id, group in runs.assign(_without=ids).groupby("_without", sort=True)}


def gains(runs: pd.DataFrame, metric: str) -> tuple[dict[int, float], str]:
    """Seed -> AdamW - Lion, each at its arm best on the other seeds (its only arm when it ran one), and the
    grid edge one of those arms is at ("" when none)."""
    chosen = {}
    for name, family in ((ADAMW, "adamw"), (LION, "lion")):
        arms = runs[runs["optimizer"] == family]
        values, picks, _ = held_out_values(arms, metric)
        chosen[name] = (values, grid_edge(name, picks, arm_grid(arms, metric)[0]))
    (adamw, adamw_edge), (lion, lion_edge) = chosen[ADAMW], chosen[LION]
    return {seed: adamw[seed] - lion[seed] for seed in set(adamw) & set(lion)}, edges_line([adamw_edge, lion_edge])


def schedule_cosine_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    claim = CLAIM_BY_KEY["schedule_cosine"]
    cells = []
    for group_id, group in schedule_groups(runs, "trainer.schedule.name").items():
        by_schedule = {name: g for name, g in group.groupby("schedule")}
        if "cosine" not in by_schedule or "inverse_sqrt" not in by_schedule:
            continue
        context = Context(group_id, (f"{group['task'].iloc[0]}: cosine vs inverse_sqrt",),
                          (("setup_without_schedule", group_id),))
        sources = sorted(set(by_schedule["cosine"]["source"]) | set(by_schedule["inverse_sqrt"]["source"]))
        (cosine, cosine_edge), (rsqrt, rsqrt_edge) = (gains(by_schedule[name], settings.metric)
                                                      for name in ("cosine", "inverse_sqrt"))
        seeds = sorted(s for s in set(cosine) & set(rsqrt) if math.isfinite(cosine[s]) and math.isfinite(rsqrt[s]))
        paired = Paired(np.array([cosine[s] - rsqrt[s] for s in seeds]), names=("cosine", "inverse_sqrt"),
                        sources=sources)
        edge = edges_line(f"{name}: {edge}" for name, edge in (("cosine", cosine_edge), ("inverse_sqrt", rsqrt_edge))
                          if edge)
        cell = Cell(claim, context, read=ABOVE_SUPPORTS, sources=sources, edge=edge,
                    detail=f"gain AdamW - Lion: cosine {interval(*t_interval([cosine[s] for s in seeds]))}, "
                           f"inverse_sqrt {interval(*t_interval([rsqrt[s] for s in seeds]))} (95%)")
        cell.reason = too_few(paired)
        if not cell.reason:
            cell.test = Threshold(paired, 0.0, "gain(cosine) - gain(inverse_sqrt)")
        cells.append(cell)
    return cells


def schedule_ratio_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    claim = CLAIM_BY_KEY["schedule_ratio"]
    cells = []
    lion = runs[runs["optimizer"] == "lion"]
    for group_id, group in schedule_groups(lion, "trainer.schedule.final_fraction").items():
        fractions = sorted(group["final_fraction"].unique())
        if len(fractions) < 2:
            continue
        low, high = fractions[0], fractions[-1]
        for lr, arm in group.groupby("lr_key", sort=True):
            divisor = float(arm["lr_divisor"].iloc[0])
            context = Context(group_id, (f"Lion lr {short_number(lr)}, end lr fractions {low:g} vs {high:g}",),
                              (("setup_without_final_fraction", group_id), ("lr", float(lr))))
            if low <= 0 or abs(math.log(high / low / divisor)) > math.log(MATCH_FACTOR):
                cells.append(not_judged(claim, context, f"the end fractions {low:g} and {high:g} do not differ by the "
                                                        f"lr divisor {divisor:g}", arm["source"]))
                continue
            scaled, unscaled = arm[arm["final_fraction"] == low], arm[arm["final_fraction"] == high]
            paired = pair_runs(scaled, unscaled, settings.metric, ("whole schedule scaled", "end lr unscaled"))
            margin = settings.margin * paired.reference_mean
            cell = Cell(claim, context, read=better_supports("whole schedule scaled", "end lr unscaled"),
                        sources=paired.sources, detail=f"margin ±{short_number(margin)}")
            cell.reason = too_few(paired)
            if not cell.reason:
                cell.test = ThreeWay(paired, margin, "final loss scaled - unscaled end")
            cells.append(cell)
    return cells


def state_line(adamw: pd.DataFrame, lion: pd.DataFrame) -> tuple[float, str]:
    """(Lion / AdamW median optimizer state bytes, the line that says so); NaN and "" without both."""
    adamw_bytes = adamw.loc[adamw["optimizer_state_bytes"].gt(0), "optimizer_state_bytes"]
    lion_bytes = lion.loc[lion["optimizer_state_bytes"].gt(0), "optimizer_state_bytes"]
    if not len(adamw_bytes) or not len(lion_bytes):
        return math.nan, ""
    ratio = float(lion_bytes.median() / adamw_bytes.median())
    return ratio, f"optimizer state Lion {lion_bytes.median():.0f} B, AdamW {adamw_bytes.median():.0f} B ({ratio:.3g})"


def own_peaks(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose record holds their own peak memory: one of OWN_PEAK_KINDS, not a packed trial's."""
    return runs[runs["peak_memory_bytes"].gt(0) & runs["peak_memory_kind"].isin(OWN_PEAK_KINDS)
                & runs["packed_members"].eq(1)]


def memory_cells(runs: pd.DataFrame) -> list[Cell]:
    """Less memory: Lion's peak device memory against AdamW's, paired by seed within a setup (task, model,
    batch, device type) and one kind of peak, each seed's median over its arms; where no record holds its own
    peak, the optimizer state bytes alone (Lion's half of AdamW's), labelled so."""
    claim = CLAIM_BY_KEY["state_half"]
    cells = []
    finished = runs[runs["status"] == "finished"]
    for setup, setup_runs in finished.groupby("setup", sort=True):
        adamw = setup_runs[setup_runs["optimizer"] == "adamw"]
        lion = setup_runs[(setup_runs["optimizer"] == "lion") & setup_runs["state_dtype"].isin([None, "fp32"])]
        if not len(adamw) or not len(lion):
            continue
        context = Context(setup, ("fp32 state",), (("setup", setup),))
        sources = sorted(set(adamw["source"]) | set(lion["source"]))
        ratio, state = state_line(adamw, lion)
        peaks = {name: own_peaks(frame) for name, frame in ((LION, lion), (ADAMW, adamw))}
        num_with, num_runs = sum(len(frame) for frame in peaks.values()), len(adamw) + len(lion)
        differences, ratios, kinds = [], [], sorted(set(peaks[LION]["peak_memory_kind"]))
        for kind in kinds:
            per_seed = {name: frame[frame["peak_memory_kind"] == kind].groupby("seed")["peak_memory_bytes"].median()
                        for name, frame in peaks.items()}
            for seed in sorted(set(per_seed[LION].index) & set(per_seed[ADAMW].index)):
                differences.append(per_seed[LION][seed] - per_seed[ADAMW][seed])
                ratios.append(per_seed[LION][seed] / per_seed[ADAMW][seed])
        if differences:
            paired = Paired(np.array(differences, dtype=float), names=(LION, ADAMW), sources=sources)
            detail = (f"peak memory ({', '.join(kinds)}) Lion / AdamW {min(ratios):.3g}-{max(ratios):.3g} over "
                      f"{len(ratios)} seed pairs; {num_with} of {num_runs} records hold their own peak")
            cell = Cell(claim, context, read=BELOW_SUPPORTS, sources=sources,
                        detail="; ".join(filter(None, [detail, f"second measure: {state}" if state else ""])))
            cell.reason = too_few(paired)
            if not cell.reason:
                cell.test = Threshold(paired, 0.0, "peak memory Lion - AdamW (bytes, paired by seed)")
        elif state:
            test = Measured(ratio, (STATE_RATIO - STATE_TOLERANCE, STATE_RATIO + STATE_TOLERANCE), num_runs,
                            "optimizer state bytes Lion / AdamW")
            why = (f"{num_with} of {num_runs} records hold their own peak, no seed ran both optimizers with one "
                   "kind of it" if num_with else f"none of the {num_runs} records holds its own peak memory")
            cell = Cell(claim, context, test, INSIDE_SUPPORTS, sources=sources,
                        detail=f"{state}; state bytes only: {why}")
        else:
            continue
        cells.append(cell)
    return cells


def cells(runs: pd.DataFrame, curves: pd.DataFrame, settings: Settings) -> dict[str, list[Cell]]:
    return {"betas": betas_cells(runs, curves, settings), "cautious": cautious_cells(runs, settings),
            "schedule_cosine": schedule_cosine_cells(runs, settings),
            "schedule_ratio": schedule_ratio_cells(runs, settings), "state_half": memory_cells(runs)}
