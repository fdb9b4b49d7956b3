"""Puts tests/ on sys.path (pytest's rootdir conftest), so test modules can ``from compose import ...``."""

from __future__ import annotations

import pytest

from compose import compose_config


@pytest.fixture
def make_config():
    return compose_config
