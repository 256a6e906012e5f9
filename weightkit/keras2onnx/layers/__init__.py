"""One emitter per Keras layer class family, found by class name.

Each module registers its classes in `base.LAYERS` (or `base.OPS` for Keras 3
operations) when imported; importing this package imports them all.
"""

from __future__ import annotations

from ...formats.keras import ConfigLayer
from ..nodes import Call
from . import activations, conv, core, dense, merge, norm, ops, pool, recurrent, reshape, tf_ops
from .base import LAYERS, OPS, Emitter, LayerCall
from .ops import is_operation_call

#: The family modules: imported for their side effect, each registers its emitters in LAYERS or OPS.
_FAMILIES = (activations, conv, core, dense, merge, norm, ops, pool, recurrent, reshape, tf_ops)

__all__ = ["LayerCall", "Emitter", "emitter_for", "problem", "is_operation_call", "LAYERS", "OPS"]


def emitter_for(layer: ConfigLayer, call: Call | None = None) -> Emitter | None:
    """The emitter for ``call`` of ``layer`` (a layer class, or a Keras 3 operation), or None if it has none."""
    if is_operation_call(layer, call):
        return OPS.get(layer.class_name)
    return LAYERS.get(layer.class_name)


def problem(layer: ConfigLayer) -> str | None:
    """Why ``layer`` cannot be converted (None if it can), judged from its config alone."""
    if layer.is_operation:
        emitter = OPS.get(layer.class_name)
        return None if emitter else f"the Keras operation {layer.module}.{layer.class_name} is not supported"
    if is_operation_call(layer):  # a Keras 3 operation in an .h5 config (no module recorded)
        return None
    emitter = LAYERS.get(layer.class_name)
    if emitter is None:
        where = f" from {layer.module}" if layer.module and not layer.module.startswith("keras.layers") else ""
        return f"no converter for layer class {layer.class_name}{where}"
    try:
        return emitter.problem(layer)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return f"its config cannot be read ({type(exc).__name__}: {exc})"
