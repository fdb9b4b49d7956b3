from lion_bench.optimizers.lion import Lion, lion_update_foreach, lion_update_torch
from lion_bench.optimizers.registry import OPTIMIZERS, build_optimizer, param_groups
from lion_bench.optimizers.schedules import SCHEDULES, build_scheduler

__all__ = [
    "Lion",
    "lion_update_torch",
    "lion_update_foreach",
    "OPTIMIZERS",
    "build_optimizer",
    "param_groups",
    "SCHEDULES",
    "build_scheduler",
]
