"""The Task contract's promises that types cannot show, checked on a built task (``lion-bench-tasks
--check NAME``): the seed fixes the model and the batches, evaluation is deterministic and does not
depend on the run seed, the data position survives a checkpoint (loaded with ``weights_only=True``),
the loss trains, and the record can say what the data was. A plugin author runs it before a sweep;
a failed promise would otherwise show up as runs that do not resume, or verdicts over noise.
"""

from __future__ import annotations

import io
import math
from typing import Any, Callable, Mapping

import torch

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import Task

# Batches drawn to compare two streams.
NUM_BATCHES = 2


def _same(first: Any, second: Any) -> bool:
    """Batches (tuples of tensors) or metric dicts, compared exactly."""
    if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor):
        return first.shape == second.shape and bool(torch.equal(first, second))
    if isinstance(first, (tuple, list)) and isinstance(second, (tuple, list)):
        return len(first) == len(second) and all(_same(a, b) for a, b in zip(first, second))
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        return first.keys() == second.keys() and all(_same(first[key], second[key]) for key in first)
    return first == second


def contract_checks(task_class: type[Task], cfg: Any, *, batch_size: int,
                    device: torch.device) -> list[tuple[str, str | None]]:
    """(promise, None when kept or what is wrong) for each promise of the contract, in order; the data
    and seed checks build what the rest use, so the checks stop when one of them fails."""
    results: list[tuple[str, str | None]] = []

    def check(promise: str, test: Callable[[], str | None]) -> bool:
        try:
            problem = test()
        except BadInput as error:
            problem = str(error)
        except Exception as error:  # noqa: BLE001 - any failure of the task is what this reports
            problem = f"raised {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        results.append((promise, problem))
        return problem is None

    def build(seed: int) -> Task:
        return task_class(cfg, batch_size=batch_size, seed=seed, device=device)

    built: dict[str, Any] = {}

    def data() -> str | None:
        task_class.check_data(cfg)
        identity = task_class.data_identity(cfg)
        return None if identity == task_class.data_identity(cfg) else "data_identity differs between two calls"

    def seeded() -> str | None:
        first, again, other = build(0), build(0), build(1)
        built.update(task=first, other=other)
        models = [first.build_model(), again.build_model()]
        if not all(_same(a, b) for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values())):
            return "build_model gives other weights for the same seed: call torch.manual_seed(self.seed) first"
        built["model"] = models[0].to(device)
        batches = [[task.train_batch() for _ in range(NUM_BATCHES)] for task in (first, again, other)]
        if not _same(batches[0], batches[1]):
            return "train_batch gives other batches for the same seed: draw them from self.generator"
        if _same(batches[0], batches[2]):
            return "train_batch gives the same batches for seeds 0 and 1: draw them from self.generator"
        return None

    def evaluation() -> str | None:
        model, task, other = built["model"], built["task"], built["other"]
        first = task.evaluate(model)
        if not _same(first, task.evaluate(model)):
            return "evaluate gives other numbers for the same model: evaluate on a fixed split, in a fixed order"
        if not _same(first, other.evaluate(model)):
            return "evaluate depends on the run seed: hold out a split that no seed changes"
        return None

    def resumable() -> str | None:
        task, again = built["task"], build(0)
        buffer = io.BytesIO()
        torch.save(task.state_dict(), buffer)
        buffer.seek(0)
        try:
            state = torch.load(buffer, weights_only=True)
        except Exception as error:  # noqa: BLE001 - what weights_only refuses
            return f"state_dict holds what a checkpoint cannot load with weights_only=True ({type(error).__name__})"
        again.load_state_dict(state)
        if not _same(task.train_batch(), again.train_batch()):
            return "after load_state_dict the batches differ: state_dict must hold the whole data position"
        return None

    def trains() -> str | None:
        model, task = built["model"], built["task"]
        loss = task.loss(model, task.train_batch())
        if not math.isfinite(float(loss.detach())):
            return f"loss is {float(loss.detach())} on the first batch"
        loss.backward()
        if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters()):
            return "the loss gives the model's parameters no gradient"
        return None

    def described() -> str | None:
        missing = [key for key in ("source", "sha256") if key not in built["task"].describe()]
        return f"describe() lacks {', '.join(missing)}: the report labels contexts by them" if missing else None

    # The first two build what the others use: they end the checks when they fail.
    for promise, test, needed in (("data: check_data passes, data_identity is stable", data, True),
                                  ("seed: same seed, same model and batches; another seed, other batches", seeded, True),
                                  ("evaluate: deterministic, independent of the run seed", evaluation, False),
                                  ("resume: the data position survives a checkpoint (weights_only=True)", resumable, False),
                                  ("loss: finite, with gradients", trains, False),
                                  ("record: describe() names the source and a sha256 of the data", described, False)):
        if not check(promise, test) and needed:
            break
    return results


__all__ = ["contract_checks"]
