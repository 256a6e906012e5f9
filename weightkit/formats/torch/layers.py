"""Turning what a PyTorch file holds (`Contents`) into a weightkit `Model`.

The weights become layers grouped by module path (`layers_from_state_dict`); pickled
modules and TorchScript objects lend their class names and plain settings to those
layers (and add their parameter-free leaf modules such as ``ReLU``); other tensor
collections become ``model.extras``; plain values become metadata.
"""

from __future__ import annotations

from typing import Any

from ...model import Layer, Model, Tensor
from ..state_dict import TORCH_LAYOUTS, layers_from_state_dict
from .data import StorageFile, to_tensor
from .pickle import TorchTensor
from .tree import Contents, ModuleRecord, short_class_name

__all__ = ["build_model", "kind_of_torch_class"]

_KINDS = {
    "conv1d": ("Conv1d", "LazyConv1d", "QuantConv1d"),
    "conv2d": ("Conv2d", "LazyConv2d", "QuantConv2d", "Conv2dSame", "StdConv2d"),
    "conv3d": ("Conv3d", "LazyConv3d"),
    "conv_transpose1d": ("ConvTranspose1d",),
    "conv_transpose2d": ("ConvTranspose2d",),
    "dense": ("Linear", "LazyLinear", "NonDynamicallyQuantizableLinear", "QuantLinear", "Bilinear"),
    "batch_norm": ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "FrozenBatchNorm2d"),
    "layer_norm": ("LayerNorm", "RMSNorm"),
    "group_norm": ("GroupNorm",),
    "norm": ("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm"),
    "embedding": ("Embedding", "EmbeddingBag"),
    "lstm": ("LSTM", "LSTMCell"),
    "gru": ("GRU", "GRUCell"),
    "rnn": ("RNN", "RNNCell"),
    "attention": ("MultiheadAttention",),
    "prelu": ("PReLU",),
    "activation": ("ReLU", "ReLU6", "Sigmoid", "Tanh", "GELU", "SiLU", "LeakyReLU", "ELU", "SELU", "CELU",
                   "Softmax", "LogSoftmax", "Softplus", "Hardswish", "Hardsigmoid", "Hardtanh", "Mish",
                   "Threshold", "Softsign", "Tanhshrink", "GLU", "Swish"),
    "pool": ("MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
             "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
             "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool2d"),
    "dropout": ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "DropPath"),
    "reshape": ("Flatten", "Unflatten", "PixelShuffle", "PixelUnshuffle"),
    "resize": ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"),
    "padding": ("ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d",
                "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d"),
}
_KIND_BY_CLASS = {cls: kind for kind, classes in _KINDS.items() for cls in classes}


def kind_of_torch_class(class_name: str) -> str | None:
    """The normalized kind of a ``torch.nn`` module class (``Conv2d`` → ``conv2d``), or None."""
    return _KIND_BY_CLASS.get(short_class_name(class_name))


def build_model(contents: Contents, storages: StorageFile | None, *, format: str, path: str,
                metadata: dict[str, Any]) -> Model:
    """A `Model` of ``contents``: layers from its weights, extras from other collections."""
    module_kind = bool(contents.modules)
    weights = [_tensor(name, record, storages, module_kind, contents) for name, record in contents.weights]
    layers = layers_from_state_dict(weights)
    if contents.modules:
        layers = _with_modules(layers, contents.modules)
    extras = {group: [to_tensor(name, record, storages) for name, record in tensors]
              for group, tensors in contents.extras.items()}
    return Model(layers=layers, format=format, framework="pytorch", has_graph=False, extras=extras,
                 metadata={**metadata, **_contents_metadata(contents)}, source=path)


def _tensor(name: str, record: TorchTensor, storages: StorageFile | None, module_kind: bool,
            contents: Contents) -> Tensor:
    tensor = to_tensor(name, record, storages)
    if module_kind:
        tensor.trainable = False if id(record) in contents.buffers else record.requires_grad
    return tensor


def _with_modules(layers: list[Layer], modules: list[ModuleRecord]) -> list[Layer]:
    """Layers in module order, named by module path, with class names, kinds and settings."""
    by_path = {layer.name: layer for layer in layers}
    ordered: list[Layer] = []
    for record in modules:
        layer = by_path.pop(record.path, None)
        if layer is None and not (record.leaf and record.path):
            continue
        if layer is None:
            layer = Layer(record.path)
        layer.type_name = short_class_name(record.class_name)
        layer.config = {"class": record.class_name, **record.config}
        _set_kind(layer, kind_of_torch_class(record.class_name))
        ordered.append(layer)
    return [layer for layer in layers if layer.name in by_path] + ordered


def _set_kind(layer: Layer, kind: str | None) -> None:
    if kind is None:
        if not layer.tensors:
            layer.kind = "unknown"
        return
    groups = layer.config.get("groups") if layer.config else None
    weight = layer.tensors.get("weight")
    if kind == "conv2d" and isinstance(groups, int) and groups > 1 and weight is not None and weight.shape[1] == 1:
        kind = "depthwise_conv2d"
    layer.kind = kind
    if weight is not None and weight.role == "weight":
        weight.layout = TORCH_LAYOUTS.get((kind, weight.ndim), weight.layout)


def _contents_metadata(contents: Contents) -> dict[str, Any]:
    metadata: dict[str, Any] = {"contents": contents.kind}
    if contents.wrapper:
        metadata["checkpoint"] = contents.wrapper
    if contents.weights_key:
        metadata["weights_from"] = contents.weights_key
    if contents.modules:
        metadata["module_class"] = contents.modules[0].class_name
        metadata["module_classes"] = sorted({record.class_name for record in contents.modules})
    devices = sorted({record.storage.location for _, record in _all_records(contents)
                      if record.storage is not None and record.storage.location != "cpu"})
    if devices:
        metadata["saved_on"] = devices
    unreadable = sum(1 for _, record in _all_records(contents) if record.note)
    if unreadable:
        metadata["unreadable_tensors"] = unreadable
    return metadata


def _all_records(contents: Contents) -> list[tuple[str, TorchTensor]]:
    return [*contents.weights, *(pair for tensors in contents.extras.values() for pair in tensors)]
