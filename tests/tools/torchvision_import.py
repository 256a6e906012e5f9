"""Importing torchvision's model definitions beside the CPU build of torch (tests and the catalog script only).

torchvision 0.28.0, the release that pairs with torch 2.13, comes from the registry as a
CUDA build whose compiled operators (``torchvision::nms`` ...) do not load with the CPU
torch, and its import stops at the first fake-kernel registration for one of them. The
model definitions need none of those operators: registrations for operators that do not
exist are skipped while torchvision is imported, and only then.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_torchvision"]


def import_torchvision() -> ModuleType:
    """``torchvision``, imported with its registrations for operators torch lacks skipped."""
    import torch.library

    register_fake = torch.library.register_fake

    def tolerant(op, func=None, /, **kwargs):
        def register(function):
            try:
                return register_fake(op, function, **kwargs)
            except RuntimeError:  # "operator torchvision::nms does not exist": the CUDA build's compiled op
                return function
        return register(func) if func is not None else register

    torch.library.register_fake = tolerant
    try:
        return importlib.import_module("torchvision")
    finally:
        torch.library.register_fake = register_fake
