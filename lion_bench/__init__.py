"""lion_bench: when, and with which hyperparameters, does Lion beat AdamW?"""

from lion_bench.optimizers import Lion

__all__ = ["Lion", "SweepResult", "run_sweep"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``run_sweep`` and ``SweepResult`` (lion_bench/api.py) load on first use: they need the report's
    extra (pandas, scipy), which ``from lion_bench import Lion`` does not."""
    if name in ("run_sweep", "SweepResult"):
        from lion_bench import api  # noqa: PLC0415 - the package root reaching down, on demand

        return getattr(api, name)
    raise AttributeError(f"module 'lion_bench' has no attribute {name!r}")
