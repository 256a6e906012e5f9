"""Shared pieces of the hostile-file tests: the benign companions, made once per session."""

from __future__ import annotations

import pytest

from .benign import Benign, shared

# Filled in by test_corpus.py: how long the corpus took, for the summary at the end of the run.
CORPUS_TIMING: dict[str, float] = {}


@pytest.fixture(scope="session")
def benign() -> Benign:
    """Small valid files of every format (Keras, torch, safetensors, sharded, ONNX), made once per process."""
    return shared()


def pytest_terminal_summary(terminalreporter) -> None:
    if CORPUS_TIMING:
        terminalreporter.write_line(
            f"hostile corpus: {CORPUS_TIMING['cases']:.0f} cases in {CORPUS_TIMING['seconds']:.1f} s "
            f"({CORPUS_TIMING['workers']:.0f} at a time; children's CPU time {CORPUS_TIMING['cpu']:.0f} s)")
