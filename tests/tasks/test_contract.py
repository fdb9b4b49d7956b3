"""The contract's promises that types cannot show (lion-bench-tasks --check): every built-in task keeps
them, and a task that breaks one is told which, in words that say what to do."""

from __future__ import annotations

import pytest
import torch
from plugin_packages import LINE_TASK
from test_every_task import OVERRIDES

from lion_bench import user_tasks
from lion_bench.tasks import TASKS
from lion_bench.tasks.contract import contract_checks

CPU = torch.device("cpu")
namespace: dict = {}
exec(compile(LINE_TASK, "line_task", "exec"), namespace)  # the plugin tests' task, as a class here
LineTask = namespace["LineTask"]


class Described(LineTask):
    def describe(self):
        return {**super().describe(), "source": "synthetic:line", "sha256": "0" * 64}


class UnseededBatches(Described):
    def train_batch(self):
        x = torch.randn(self.batch_size, 1)  # the global stream, not self.generator
        return x, 2 * x + 1


class NoisyEvaluation(Described):
    def evaluate(self, model):
        return {"val_loss": super().evaluate(model)["val_loss"] + torch.rand(()).item()}


class SeededEvaluation(Described):
    def evaluate(self, model):  # a validation set drawn from the run's seed
        x = torch.randn(64, 1, generator=torch.Generator().manual_seed(self.seed))
        return {"val_loss": torch.nn.functional.mse_loss(model(x), 2 * x + 1).item()}


class ForgetfulPosition(Described):
    def __init__(self, cfg, **kwargs):
        super().__init__(cfg, **kwargs)
        self.drawn = 0

    def train_batch(self):  # a position the state dict does not hold
        self.drawn += 1
        x = torch.full((self.batch_size, 1), float(self.drawn)) + torch.randn(1, generator=self.generator)
        return x, 2 * x + 1


class FrozenLoss(Described):
    def loss(self, model, batch):
        return torch.zeros((), requires_grad=True) + 0 * sum(p.sum() for p in model.parameters()).detach()


CONFIG = {"name": "line", **LineTask.default_config}


@pytest.mark.parametrize("task_class, promise, problem", [
    (UnseededBatches, "seed", "train_batch gives other batches for the same seed: draw them from self.generator"),
    (NoisyEvaluation, "evaluate", "evaluate gives other numbers for the same model"),
    (SeededEvaluation, "evaluate", "evaluate depends on the run seed: hold out a split that no seed changes"),
    (ForgetfulPosition, "resume", "after load_state_dict the batches differ"),
    (FrozenLoss, "loss", "the loss gives the model's parameters no gradient"),
    (LineTask, "record", "describe() lacks source, sha256"),
])
def test_a_broken_promise_is_named(task_class, promise, problem):
    results = dict((name.split(":")[0], found) for name, found in contract_checks(task_class, CONFIG, batch_size=4,
                                                                                  device=CPU))
    assert results[promise] is not None and results[promise].startswith(problem)
    assert all(found is None for name, found in results.items() if name != promise)


def test_the_plugin_tests_task_keeps_every_promise():
    assert [problem for _, problem in contract_checks(Described, CONFIG, batch_size=4, device=CPU)] == [None] * 6


# Smaller models than test_every_task's, so that three builds and evaluations stay quick.
SMALLER = {"lstm_conv": ["task.model.embed_dim=8", "task.model.hidden_size=16", "task.eval.num_windows=4"],
           "image": ["task.model.channels=[4]", "task.data.val_fraction=0.05"],
           "text": ["task.eval.num_windows=4"]}


@pytest.mark.parametrize("name", sorted(set(TASKS) - {"enwik8"}))
def test_every_built_in_task_keeps_the_contract(name, capsys):
    with pytest.raises(SystemExit) as stopped:
        user_tasks.main(["--check", name, "device=cpu", *OVERRIDES[name], *SMALLER.get(name, [])])
    out = capsys.readouterr().out
    assert stopped.value.code == 0, out
    assert out.count("ok  ") == 6
