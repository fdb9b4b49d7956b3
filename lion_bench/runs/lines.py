"""The line a run prints when it ends (``run_line``): status, arm, lr and the result, in one terminal line."""

from __future__ import annotations

import math

from lion_bench.runs.record import RunRecord

LINE_WIDTH = 100  # terminal lines; everything else is in the run's directory
SHORT_UNITS = {"tokens": "tok"}


def _rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def run_line(record: RunRecord) -> str:
    """The run's line, at most LINE_WIDTH characters: status, arm (or optimizer), lr, weight decay when
    on, the ratios where no arm names them, seed, the result, time and steady throughput. What does
    not fit is left out: the step count first, then the ratios (run.json has everything)."""
    hyper, options = record.hyperparameters, record.config.get("optimizer", {})
    by_name = not record.arm  # an arm's name says its ratios
    optional = {  # left out in this order when the line is too long
        "steps": f"{record.steps} steps, ",
        "wd_ratio": f" (base*{hyper['wd_multiplier']:g})" if by_name and hyper["wd_multiplier"] != 1 else "",
        "lr_ratio": f" (base/{hyper['lr_divisor']:g})" if by_name and hyper["lr_divisor"] != 1 else "",
        "speed": f", {_rate(record.train_tokens_per_s)} {SHORT_UNITS.get(record.unit, record.unit)}/s"
                 if record.train_tokens_per_s else "",
    }
    bpc = record.final.get("val_bpc")
    if record.status.value == "diverged":
        result = f"at step {record.diverged_at_step}"
    elif math.isfinite(record.final_val_loss):
        result = f"val loss {record.final_val_loss:.4f}"
        result += f" ({bpc:.3f} bpc)" if isinstance(bpc, float) and math.isfinite(bpc) else ""
    else:
        result = "no val loss"
    flags = "".join(f" {flag}" for flag in ("cautious", "decoupled_weight_decay", "decay_vectors") if options.get(flag))

    def line() -> str:
        decay = f" wd={hyper['weight_decay']:.3g}{optional['wd_ratio']}" if hyper["weight_decay"] else ""
        return (f"[{record.status.value}] {record.arm or record.optimizer} lr={hyper['lr']:.3g}{optional['lr_ratio']}"
                f"{decay}{flags} seed {record.seed}: {result} | {optional['steps']}{record.time_s['total']:.1f} s"
                f"{optional['speed']}")

    for part in optional:
        if len(line()) <= LINE_WIDTH:
            break
        optional[part] = ""
    return line()
