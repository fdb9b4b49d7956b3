"""Lion tuned vs AdamW tuned (the headline), and update 5 read across tasks from those answers.

Within a setup, each optimizer's arms (its lrs, and weight decays where swept) form its grid. Each
optimizer's best arm is chosen on the selection seeds and judged on the answer seeds, so no setting is
picked on the losses it is judged by (the winner's curse). Without named selection seeds each seed's value
is taken at the arm that is best on the other seeds (leave one seed out); arms are compared on the same seeds
(``selection``). A best arm at the edge of its grid makes the answer "not judged" (its effect still shown).
Tuneability: the grid lrs whose mean loss lies within 1% of the best one's (DeepOBS reads an optimizer's lr
sensitivity this way).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lion_bench.results.claims.base import (ADAMW, ADAMW_BETTER, EQUIVALENT, LION, LION_BETTER, Cell, Series,
                                            Settings, YES_SUPPORTS, identity, not_judged, optimizer_parts, pair,
                                            series_of, too_few)
from lion_bench.results.claims.catalogue import CLAIM_BY_KEY
from lion_bench.results.claims.selection import (arm_grid, edges_line, grid_edge, held_out_values, seed_list,
                                                 shared_seeds)
from lion_bench.results.contexts import Context
from lion_bench.results.format import short_number
from lion_bench.results.stats import AllOf, ThreeWay

MIN_GRID = 3  # lrs per optimizer for a tuned answer
TUNEABLE_FRACTION = 0.01  # an lr "within 1% of the best"
LANGUAGE_MODELS = ("text", "enwik8", "enwik8_12l")
NEGATIVE_TASKS = {"mlp": "feedforward (mlp)", "lstm_conv": "LSTM + convolution (lstm_conv)"}
KEYS = ("tuned", "update5")


def tuneability(runs: pd.DataFrame, metric: str) -> dict:
    """The best arm on the seeds every arm ran (equal seeds for every arm), and the grid lrs within 1% of its
    mean loss (at the best weight decay)."""
    seeds = shared_seeds(runs)
    runs = runs[runs["seed"].isin(seeds)]
    finished = runs[runs["status"] == "finished"]
    means = finished.groupby(["lr_key", "wd_key"])[metric].mean()
    diverged = set(zip(runs.loc[runs["status"] == "diverged", "lr_key"], runs.loc[runs["status"] == "diverged",
                                                                                  "wd_key"]))
    means = means[[key not in diverged for key in means.index]]
    if not len(means):
        return {}
    (lr, wd), best = means.idxmin(), float(means.min())
    at_wd = means.xs(wd, level="wd_key")
    near = sorted(float(x) for x, mean in at_wd.items() if mean <= best * (1 + TUNEABLE_FRACTION))
    lrs = sorted(float(x) for x in runs["lr_key"].unique())
    return {"lr": float(lr), "wd": float(wd), "loss": best, "near": near, "lrs": lrs, "seeds": seeds,
            "at_edge": float(lr) in (lrs[0], lrs[-1]) and len(lrs) > 1,
            "range": near[-1] / near[0] if near else math.nan}


def describe_tuneability(name: str, facts: dict) -> str:
    if not facts:
        return f"{name}: no finished run"
    near = facts["near"]
    span = (f"{short_number(near[0])}-{short_number(near[-1])} ({facts['range']:.3g}x)" if len(near) > 1
            else short_number(near[0]))
    edge = ", at the grid's edge" if facts["at_edge"] else ""
    return (f"{name} best lr {short_number(facts['lr'])}, wd {short_number(facts['wd'])}{edge} "
            f"(mean over seeds {seed_list(facts['seeds'])} {facts['loss']:.4g}); lrs within 1%: {span} of "
            f"{len(facts['lrs'])}")


def judge_pair(setup: str, adamw: Series, adamw_runs: pd.DataFrame, lion: Series, lion_runs: pd.DataFrame,
               settings: Settings) -> Cell:
    claim = CLAIM_BY_KEY["tuned"]
    swept = "lr, wd" if adamw_runs["wd_key"].nunique() > 1 or lion_runs["wd_key"].nunique() > 1 else "lr"
    context = Context(setup, (f"each at its best {swept}", *optimizer_parts(adamw, lion)),
                      (("setup", setup), ("lion", lion.optimizer), ("adamw", adamw.optimizer)))
    sources = list(adamw_runs["source"]) + list(lion_runs["source"])
    short = [name for name, runs in ((ADAMW, adamw_runs), (LION, lion_runs)) if runs["lr_key"].nunique() < MIN_GRID]
    if short:
        return not_judged(claim, context, f"{' and '.join(short)} ran at fewer than {MIN_GRID} lrs (an lr grid per "
                                          "optimizer is needed)", sources)
    adamw_values, adamw_picks, how = held_out_values(adamw_runs, settings.metric, settings.selection_seeds,
                                                     settings.answer_seeds)
    lion_values, lion_picks, _ = held_out_values(lion_runs, settings.metric, settings.selection_seeds,
                                                 settings.answer_seeds)
    paired = pair(lion_values, adamw_values, (LION, ADAMW), sources)
    chosen_on = (lambda runs: runs[runs["seed"].isin(settings.selection_seeds)]) if settings.selection_seeds \
        else (lambda runs: runs)  # tuneability on the seeds the choice was made on
    facts = {"adamw": tuneability(chosen_on(adamw_runs), settings.metric),
             "lion": tuneability(chosen_on(lion_runs), settings.metric),
             "picks": {"adamw": sorted(set(adamw_picks)), "lion": sorted(set(lion_picks))}, "selection": how,
             "reference": paired.reference_mean}
    cell = Cell(claim, context, sources=sorted(set(sources)), facts=facts, read=identity)
    cell.detail = "; ".join([describe_tuneability(ADAMW, facts["adamw"]), describe_tuneability(LION, facts["lion"]),
                             f"selection: {how}"])
    reason = too_few(paired)
    if reason:
        cell.reason = reason
        return cell
    margin = settings.margin * paired.reference_mean
    cell.test = ThreeWay(paired, margin, "final loss Lion - AdamW (each tuned)")
    cell.edge = edges_line([grid_edge(ADAMW, adamw_picks, arm_grid(adamw_runs, settings.metric)[0]),
                            grid_edge(LION, lion_picks, arm_grid(lion_runs, settings.metric)[0])])
    cell.facts["margin"] = margin
    return cell


def tuned_cells(runs: pd.DataFrame, settings: Settings) -> list[Cell]:
    cells = []
    for setup, setup_runs in runs.groupby("setup", sort=True):
        adamw = {series: group for series, group in series_of(setup_runs, "adamw", None).items()
                 if series.optimizer == "adamw"}
        lion = {series: group for series, group in series_of(setup_runs, "lion", None).items()
                if series.optimizer == "lion"}
        if not adamw or not lion:
            continue  # a setup with one optimizer says nothing about this claim (it is listed as not judged)
        for adamw_series, adamw_runs in adamw.items():
            for lion_series, lion_runs in lion.items():
                cells.append(judge_pair(setup, adamw_series, adamw_runs, lion_series, lion_runs, settings))
    return cells


def positive(answer: str) -> str:
    return "yes" if answer in (LION_BETTER, EQUIVALENT) else "no" if answer == ADAMW_BETTER else "unsure"


def negative(answer: str) -> str:
    return "yes" if answer == ADAMW_BETTER else "no" if answer in (LION_BETTER, EQUIVALENT) else "unsure"


def update5_cells(tuned: list[Cell], runs: pd.DataFrame) -> list[Cell]:
    """Update 5 from the tuned answers of one family's tasks: one per language-model task and the negative
    tasks it names; needs one judged context per task."""
    claim = CLAIM_BY_KEY["update5"]
    task_of = dict(zip(runs["setup"], runs["task"]))
    by_task: dict[str, list[Cell]] = {}
    for cell in tuned:
        if cell.test is not None:
            by_task.setdefault(task_of.get(cell.context.setup, "?"), []).append(cell)
    language = [task for task in LANGUAGE_MODELS if task in by_task]
    negative_tasks = [task for task in NEGATIVE_TASKS if task in by_task]
    context = Context("tasks:" + ",".join(sorted(by_task)), (f"tasks {', '.join(sorted(by_task))}",),
                      (("tasks", ",".join(sorted(by_task))),))
    if not language or not negative_tasks:
        missing = ("a language-model task (text or enwik8)" if not language else "mlp or lstm_conv")
        return [not_judged(claim, context, f"needs tuned answers on {missing} in the same family")]
    several = [task for task in language + negative_tasks if len(by_task[task]) > 1]
    if several:
        return [not_judged(claim, context, f"several tuned contexts for {', '.join(several)}: pick one per task "
                                           "with a protocol question (runs: ...)")]
    parts = [(by_task[task][0].test, positive) for task in language] + \
            [(by_task[task][0].test, negative) for task in negative_tasks]
    sources = sorted({source for task in language + negative_tasks for source in by_task[task][0].sources})
    test = AllOf(parts, by_task[language[0]][0].test, effect_name=f"tuned Lion - AdamW on {language[0]}")
    detail = "; ".join(f"{task}: {by_task[task][0].detail.split(';')[0]}" for task in language + negative_tasks)
    edge = edges_line(f"{task}: {by_task[task][0].edge}" for task in language + negative_tasks if by_task[task][0].edge)
    return [Cell(claim, context, test, YES_SUPPORTS, detail=detail, sources=sources, edge=edge,
                 facts={"tasks": language + negative_tasks})]


def cells(runs: pd.DataFrame, curves: pd.DataFrame, settings: Settings) -> dict[str, list[Cell]]:
    tuned = tuned_cells(runs, settings)
    return {"tuned": tuned, "update5": update5_cells(tuned, runs)}
