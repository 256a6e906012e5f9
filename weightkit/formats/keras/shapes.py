"""Output shapes of a Keras graph, computed from its config alone.

Files record input shapes but rarely output shapes; this walks the config in graph
order and applies each layer class's shape rule (the parser gives every generation's
config in Keras 2/3 spelling). A Lambda's rule is its known function's (`lambdas.known_lambda`).
A layer whose class has no rule here (a custom layer, a Lambda weightkit does not know)
makes everything downstream of it unknown (None) rather than wrong. So does a size past
an int64's range (a declared (None, 2**62, 2**62) flattened): no arithmetic here grows
without bound, and nobody downstream is handed a size no tensor can have.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil
from typing import Any

from ...model import Dim, TensorSpec
from .config import ConfigLayer
from .lambdas import known_lambda

__all__ = ["infer_shapes", "output_specs", "layer_output_shape", "broadcast_shape"]

Shape = tuple[Dim, ...]
Size = int | None  # a dimension that arithmetic applies to: known, or unknown
_LARGEST = 2**63 - 1  # an int64: a larger size is unknown

_SAME_SHAPE = {
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization", "Activation", "ReLU",
    "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Rescaling", "LayerScale", "Identity",
    "ActivityRegularization", "Masking", "UnitNormalization", "QActivation", "CustomScaleLayer",
    "Custom>CustomScaleLayer",
}
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
_OPS = {"Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power"}


def infer_shapes(root: ConfigLayer, inputs: list[Shape | None] | None = None) -> dict[str, Shape | None]:
    """Output shape (batch dim included) of every layer of ``root`` by name; None where unknown.

    Args:
        root: a parsed Keras model config.
        inputs: shapes for the model's inputs; by default the ones its config states.
    """
    if inputs is None:
        inputs = [spec.shape for spec in root.input_specs()]
    shapes: dict[str, Shape | None] = {}
    input_names = root.input_names or [layer.name for layer in root.layers[:1] if layer.class_name == "InputLayer"]
    for name, shape in zip(input_names, inputs):
        shapes[name] = shape
    previous: Shape | None = inputs[0] if inputs and not input_names else None
    for layer in root.layers:
        if layer.name in shapes:
            previous = shapes[layer.name]
            continue
        sources = [shapes.get(name) for name in layer.inbound] if layer.inbound else [previous]
        shapes[layer.name] = _layer_shape(layer, sources)
        previous = shapes[layer.name]
    return shapes


def output_specs(root: ConfigLayer) -> list[TensorSpec]:
    """The model's outputs with the shapes `infer_shapes` finds for them."""
    shapes = infer_shapes(root)
    names = root.output_names or [root.layers[-1].name] if root.layers else []
    return [TensorSpec(name, shapes.get(name)) for name in names]


def layer_output_shape(layer: ConfigLayer, sources: list[Shape | None]) -> Shape | None:
    """Output shape of one (non-model) layer from its input shapes; None where unknown."""
    return _layer_shape(layer, sources)


def _layer_shape(layer: ConfigLayer, sources: list[Shape | None]) -> Shape | None:
    known = [shape for shape in sources if shape is not None]
    if not sources or len(known) != len(sources):
        return None
    try:
        shape = _rule(layer, known)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError):
        return None
    return None if shape is None else tuple(_in_range(d) for d in shape)


def _in_range(size: Any) -> Dim:
    """A computed size as a Dim: None where it is not a size a tensor can have."""
    if isinstance(size, str):
        return size
    return size if type(size) is int and 0 <= size <= _LARGEST else None


def _rule(layer: ConfigLayer, sources: list[Shape]) -> Shape | None:
    cls, config, shape = layer.class_name, layer.config, sources[0]
    if layer.is_model:
        return _nested(layer, sources)
    if layer.is_operation:
        return broadcast_shape(sources) if cls in _OPS else None
    if cls in _SAME_SHAPE:
        return shape
    if cls in _MERGE or (cls == "Merge" and config.get("mode") in ("sum", "mul", "ave", "max")):
        return broadcast_shape(sources)
    if cls in ("Concatenate", "Merge"):
        return _concatenate(sources, config.get("axis", config.get("concat_axis", -1)))
    if cls in ("Dense", "QDense"):
        return (*shape[:-1], config.get("units"))
    if cls in ("Flatten",):
        return (shape[0], _product(shape[1:]))
    if cls == "Reshape":
        return _reshape(shape, config["target_shape"])
    if cls == "Lambda":
        return _lambda(config, shape)
    if cls == "Permute":
        return (shape[0], *(shape[d] for d in config["dims"]))
    if cls.startswith("Global"):
        return _global_pool(shape, config)
    return _spatial(cls, config, shape)


def _spatial(cls: str, config: dict[str, Any], shape: Shape) -> Shape | None:
    first = _channels_first(config)
    sizes = _sizes(shape[2:] if first else shape[1:-1])
    if sizes is None:
        return None
    spatial: list[Size] = sizes
    channels = shape[1] if first else shape[-1]
    rank = len(spatial)
    if "Conv" in cls or "Convolution" in cls:
        spatial, channels = _conv(cls, config, spatial, channels, rank)
    elif "Pooling" in cls or cls in ("MaxPool2D", "AvgPool2D"):
        pool = _tuple(config.get("pool_size", 2), rank)
        strides = _tuple(config.get("strides") or pool, rank)
        padding = config.get("padding", "valid")
        spatial = [_window(n, k, s, 1, padding) for n, k, s in zip(spatial, pool, strides)]
    elif cls.startswith("ZeroPadding"):
        pads = _pairs(config.get("padding", 1), rank)
        spatial = [None if n is None else n + a + b for n, (a, b) in zip(spatial, pads)]
    elif cls.startswith("Cropping"):
        crops = _pairs(config.get("cropping", 0), rank)
        spatial = [None if n is None else n - a - b for n, (a, b) in zip(spatial, crops)]
    elif cls.startswith("UpSampling"):
        size = _tuple(config.get("size", 2), rank)
        spatial = [None if n is None else n * f for n, f in zip(spatial, size)]
    else:
        return None
    return (shape[0], channels, *spatial) if first else (shape[0], *spatial, channels)


def _sizes(dims: tuple[Dim, ...]) -> list[Size] | None:
    """``dims`` for arithmetic; None when one is symbolic (an ONNX ``dim_param``): the result is then unknown."""
    if any(isinstance(d, str) for d in dims):
        return None
    return [d for d in dims if not isinstance(d, str)]


def _conv(cls: str, config: dict[str, Any], spatial: list[Size], channels: Dim, rank: int) -> tuple[list[Size], Dim]:
    kernel = _tuple(config.get("kernel_size", 1), rank)
    strides = _tuple(config.get("strides", 1), rank)
    dilation = _tuple(config.get("dilation_rate", 1), rank)
    padding = config.get("padding", "valid")
    if "Transpose" in cls or cls.startswith("Deconvolution"):
        extra = config.get("output_padding")
        extras = _tuple(extra, rank) if extra is not None else (None,) * rank
        out = [_transposed(n, k, s, padding, p) for n, k, s, p in zip(spatial, kernel, strides, extras)]
        return out, config.get("filters")
    out = [_window(n, k, s, d, padding) for n, k, s, d in zip(spatial, kernel, strides, dilation)]
    if cls.startswith("Depthwise"):  # a symbolic channel count times the multiplier is unknown
        return out, channels * config.get("depth_multiplier", 1) if isinstance(channels, int) else None
    return out, config.get("filters")


def _transposed(size: Size, kernel: int, stride: int, padding: str, extra: int | None) -> Size:
    """Keras's deconv_output_length."""
    if size is None:
        return None
    if extra is None:
        return size * stride if padding == "same" else size * stride + max(kernel - stride, 0)
    pad = kernel // 2 if padding == "same" else 0
    return (size - 1) * stride + kernel - 2 * pad + extra


def _window(size: Size, kernel: int, stride: int, dilation: int, padding: str) -> Size:
    if size is None:
        return None
    if padding in ("same", "causal"):
        return ceil(size / stride)
    span = dilation * (kernel - 1) + 1
    return (size - span) // stride + 1


def _global_pool(shape: Shape, config: dict[str, Any]) -> Shape:
    first = _channels_first(config)
    channels = shape[1] if first else shape[-1]
    if config.get("keepdims"):
        ones = (1,) * (len(shape) - 2)
        return (shape[0], channels, *ones) if first else (shape[0], *ones, channels)
    return (shape[0], channels)


def _lambda(config: dict[str, Any], shape: Shape) -> Shape | None:
    known = known_lambda(config)
    return known.output_shape(shape) if known is not None else None


def _nested(layer: ConfigLayer, sources: list[Shape]) -> Shape | None:
    shapes = infer_shapes(layer, list(sources))
    outputs = layer.output_names or ([layer.layers[-1].name] if layer.layers else [])
    return shapes.get(outputs[0]) if outputs else None


def broadcast_shape(sources: Sequence[Shape | None]) -> Shape | None:
    """NumPy broadcasting of Keras shapes (None: a shape, or the result, is unknown)."""
    known = [shape for shape in sources if shape is not None]
    if len(known) != len(sources):
        return None
    rank = max(len(s) for s in known)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in known]
    result = []
    for dims in zip(*padded):
        sizes = {d for d in dims if d not in (1, None)}
        result.append(sizes.pop() if len(sizes) == 1 else (None if None in dims else max(dims)))
    return tuple(result)


def _concatenate(sources: list[Shape], axis: int) -> Shape | None:
    rank = len(sources[0])
    axis = axis % rank
    sizes = _sizes(tuple(s[axis] for s in sources))
    if sizes is None:
        return None
    joined = None if any(size is None for size in sizes) else sum(size or 0 for size in sizes)
    return (*sources[0][:axis], joined, *sources[0][axis + 1:])


def _reshape(shape: Shape, target: list[int]) -> Shape:
    dims: list[Dim] = list(target)
    if -1 in target:
        known = _product(shape[1:])
        rest = _product(tuple(d for d in target if d != -1))
        if rest is None:
            return (shape[0], *(None if d == -1 else d for d in dims))
        dims[target.index(-1)] = None if known is None else known // rest
    return (shape[0], *dims)


def _product(dims: tuple[Dim, ...]) -> int | None:
    """The number of elements; None when a dim is unknown or symbolic, or the product passes an int64's range."""
    total = 1
    for dim in dims:
        if not isinstance(dim, int):
            return None
        total *= dim
        if total > _LARGEST:
            return None  # stopped before the product grows with the number of dims
    return total


def _channels_first(config: dict[str, Any]) -> bool:
    return config.get("data_format") == "channels_first"


def _tuple(value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * rank


def _pairs(value: Any, rank: int) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * rank
    if rank == 1 and len(value) == 2 and all(isinstance(item, int) for item in value):  # 1D: (before, after)
        return [(value[0], value[1])]
    return [(item, item) if isinstance(item, int) else tuple(item) for item in value]
