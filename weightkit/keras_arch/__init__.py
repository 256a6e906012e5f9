"""Keras architectures as the files describe them: configs parsed into one tree, and their shapes.

Shared by the Keras readers (inputs and outputs for inspect) and by the
converter to ONNX, which needs the same graph and the same shape rules.
"""

from .config import MODEL_CLASSES, ConfigLayer, parse_config
from .shapes import infer_shapes, output_specs

__all__ = ["ConfigLayer", "parse_config", "MODEL_CLASSES", "infer_shapes", "output_specs"]
