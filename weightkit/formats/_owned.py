"""Models own the open files their lazy tensors read from."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..model import Model, Resource

__all__ = ["owned_by_model"]

Source = TypeVar("Source", bound=Resource)


def owned_by_model(source: Source, build: Callable[[Source], Model]) -> Model:
    """``build(source)``, with ``source`` closed when the Model is, or at once if building fails."""
    try:
        model = build(source)
    except BaseException:
        source.close()
        raise
    model.adopt(source)
    return model
