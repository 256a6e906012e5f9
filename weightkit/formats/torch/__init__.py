"""PyTorch checkpoints: zip (``torch.save`` since 1.6), legacy and tar pickles, TorchScript archives.

Pickles are read by weightkit's restricted unpickler (`weightkit.formats._parsers.unpickler`):
nothing a file names is imported or called. Written files are plain zip state_dicts.
"""

from __future__ import annotations

from .. import Format
from . import read, write

__all__ = ["FORMATS"]

FORMATS = (
    Format("torch", read.LABEL, (".pt", ".pth", ".bin", ".ckpt"), read.sniff, read.read, write.write,
           writes_back=("torch-zip", "torch-legacy", "torchscript")),
)
