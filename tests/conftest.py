"""Puts tests/ on sys.path (pytest's rootdir conftest), so test modules can ``from compose import ...``.

Without CUDA, Lion's Triton kernel runs through Triton's interpreter. The variable must be set before
the kernel module is imported (triton.jit reads it when decorating), and ``import lion_bench``
imports it (``optimizers.lion`` imports ``lion_triton`` at the top), so it is set here, before any
test module is collected."""

from __future__ import annotations

import os

import pytest
import torch

from compose import compose_config

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def make_config():
    return compose_config


@pytest.fixture(autouse=True)
def no_inherited_sweep_run(monkeypatch):
    """A sweep run in this process tags the attempts of later trials (SweepSummary sets the variable for its
    launchers' workers to inherit); each test starts untagged, as a fresh command does."""
    from lion_bench.sweeps.resume import SWEEP_RUN_VARIABLE

    monkeypatch.delenv(SWEEP_RUN_VARIABLE, raising=False)
