"""Numbers as the report writes them, in one place: every table, label, plot tick and terminal line goes
through these."""

from __future__ import annotations

import math
from typing import Any


def short_number(value: Any) -> str:
    """1e-3, 3.33e-4, 0.1, 0, 800, 0.02: numbers as people write them in a label; "-" for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if isinstance(value, int) or 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def count(value: float) -> str:
    """13107200 -> 13.1M."""
    if not math.isfinite(value):
        return "-"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def signed(value: float, digits: int = 3) -> str:
    """+0.145, -0.029; "-" for missing."""
    return f"{value:+.{digits}g}" if math.isfinite(value) else "-"


def plain(value: float, digits: int = 3) -> str:
    """0.302; inf; "-" for missing."""
    if value == math.inf:
        return "inf"
    return f"{value:.{digits}g}" if math.isfinite(value) else "-"


def interval(effect: float, low: float, high: float, sign: bool = True) -> str:
    """``+0.18 [+0.16, +0.2]``: an effect and its interval (differences signed, ratios and losses not)."""
    if not math.isfinite(effect):
        return "-"
    number = signed if sign else plain
    return f"{number(effect)} [{number(low)}, {number(high)}]"


def crossing_interval(effect: float, low: float, high: float, first: float, last: float) -> str:
    """``~91 [64, 256]``: a crossing point and its interval over the points ``first``..``last`` studied; -inf
    (ahead from the first point) reads "<=first", +inf (never within them) ">last"."""
    def point(value: float) -> str:
        if value == -math.inf:
            return f"\u2264{first:g}"
        if value == math.inf:
            return f">{last:g}"
        return f"{value:.3g}" if math.isfinite(value) else "-"
    return f"{'~' if math.isfinite(effect) else ''}{point(effect)} [{point(low)}, {point(high)}]"


def level(alpha: float) -> str:
    """The confidence of an interval at error rate ``alpha``: 0.05 -> 95%, 0.0125 -> 98.75%."""
    return f"{100 * (1 - alpha):.4g}%"


def p_value(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return "<1e-6" if value < 1e-6 else f"{value:.2g}"


def lr_ratio(reference_lr: float, lr: float) -> str:
    """Lion's lr against an AdamW lr as people say it: "lr / 3", "lr / 0.9"."""
    return f"lr / {reference_lr / lr:.3g}" if lr > 0 and math.isfinite(reference_lr) else "lr -"


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def would_decide(seeds_needed: int | None, num_seeds: int, runs_per_seed: int, seconds_per_step: float,
                 steps: int, min_steps: int, command: str) -> str:
    """What would decide an inconclusive answer, with the time it would take at the runs' own speed: the seeds
    at the observed spread, and, for runs shorter than ``min_steps``, runs of that length (``command``)."""
    timed = math.isfinite(seconds_per_step) and seconds_per_step > 0

    def takes(num_runs: int, num_steps: int) -> str:
        return f", ~{duration(num_runs * num_steps * seconds_per_step)}" if timed else ""

    parts = []
    if seeds_needed and seeds_needed > num_seeds:
        more = (seeds_needed - num_seeds) * runs_per_seed
        parts.append(f"~{seeds_needed} seeds would decide it at the observed spread ({seeds_needed - num_seeds} more "
                     f"seeds x {runs_per_seed} runs = {more} runs{takes(more, steps)})")
    if steps < min_steps:
        runs = num_seeds * runs_per_seed
        parts.append(f"at toy scale ({steps:,} steps) the spread says little about longer runs: {runs} runs of "
                     f"{min_steps:,} steps{takes(runs, min_steps)} (`{command}`)")
    if parts and timed:
        parts.append(f"times at these runs' own {short_number(seconds_per_step * steps)} s per {steps:,}-step run")
    return "; ".join(parts)
