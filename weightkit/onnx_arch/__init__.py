"""ONNX graphs as architectures: where they can be cut, cutting them, and joining parts.

The counterpart of `weightkit.keras_arch` for ONNX models read by
`weightkit.formats.onnx`, whose `Model.graph` is the parsed ModelProto.
"""

from .surgery import cut_model, cut_points, join_models, propose_cut

__all__ = ["cut_points", "cut_model", "join_models", "propose_cut"]
