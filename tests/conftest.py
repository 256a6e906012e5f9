"""Shared test setup: Keras runs on the torch backend; real files come from ../shared/real-weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_configure(config: pytest.Config) -> None:
    """torchvision's model definitions import beside the CPU torch (see tests/tools/torchvision_import.py)."""
    from tests.tools.torchvision_import import import_torchvision

    import_torchvision()


ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
REAL_WEIGHTS = ROOT.parent / "shared" / "real-weights"


@pytest.fixture
def real_weights() -> Path:
    """The folder of real files written by other people (beside the repo, as in CI).

    Skipped where the folder is absent, except in CI (``CI=true``), where its absence
    would silently pass every test of real files: there it fails.
    """
    if not REAL_WEIGHTS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REAL_WEIGHTS} is not present, and CI must test the real files")
        pytest.skip(f"{REAL_WEIGHTS} is not present")
    return REAL_WEIGHTS


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
