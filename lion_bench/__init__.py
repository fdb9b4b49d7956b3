"""lion_bench: when, and with which hyperparameters, does Lion beat AdamW?"""

from lion_bench.optimizers import Lion

__all__ = ["Lion"]
__version__ = "0.1.0"
