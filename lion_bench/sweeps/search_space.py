"""Search spaces for the Optuna sweeper (configs/sweep/optuna.yaml), in ratio space.

An Optuna search over Lion's absolute lr and its divisor at once would search one number twice
(Lion's lr is base.lr / lr_divisor), so the space depends on the optimizer: AdamW's lr (base.lr)
for AdamW, the divisor of a fixed base.lr for Lion. Both on a log scale.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def adamw_lr_or_lion_divisor(cfg: DictConfig, trial: Any) -> None:
    """hydra-optuna-sweeper ``custom_search_space``: suggests ``base.lr`` for AdamW and
    ``optimizer.lr_divisor`` for Lion (ranges from ``sweep.search``); the sweeper turns each
    suggestion into a command-line override of that key."""
    search = cfg.sweep.search
    name = cfg.optimizer.name
    if name == "adamw":
        low, high = (float(factor) * float(cfg.task.base_lr) for factor in search.lr_factor)
        trial.suggest_float("base.lr", low, high, log=True)
    elif name == "lion":
        low, high = (float(value) for value in search.lr_divisor)
        trial.suggest_float("optimizer.lr_divisor", low, high, log=True)
    else:
        raise ValueError(f"sweep=optuna searches optimizer=adamw or optimizer=lion, got optimizer={name!r}")
