"""Keras files of every generation: legacy HDF5 (``.h5``), Keras 3 weight stores (``.weights.h5``)
and ``.keras`` archives, and the architectures their configs describe.

The config parser (`parse_config`, one tree for Keras 1 to 3 in Keras 2/3 spelling;
`architecture(model)` parses a model's config once and caches it) and its shape rules
(`infer_shapes`) live here because reading a file needs them; cutting and joining
architectures builds on them in `weightkit.arch.keras`.
"""

from __future__ import annotations

from .. import Format
from . import archive, h5, store
from .config import MODEL_CLASSES, ConfigLayer, architecture, parse_config
from .shapes import infer_shapes, output_specs

__all__ = ["FORMATS", "ConfigLayer", "parse_config", "architecture", "MODEL_CLASSES", "infer_shapes", "output_specs"]

FORMATS = (
    Format("keras-weights", "Keras 3 weight stores (.weights.h5)", (".weights.h5",), write=store.write,
           writes_back=()),
    Format("keras-h5", h5.LABEL, (".h5", ".hdf5"), h5.sniff, h5.read, h5.write,
           writes_back=("keras-h5", "keras-weights-h5", "keras-v3-weights")),
    Format("keras", archive.LABEL, (".keras",), archive.sniff, archive.read, archive.write,
           writes_back=("keras-zip",)),
)
