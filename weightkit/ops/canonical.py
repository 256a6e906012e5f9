"""The canonical view that lets files of different frameworks be compared.

Kernels are seen in the PyTorch/ONNX layout (``OIHW``, ``OI``), separable
convolutions as their depthwise and pointwise halves, names without the wrappers
frameworks add (``module.``, ``_orig_mod.``, ``:0``), an ONNX node's scalar operands
(Clip's bounds, a Mul by 0.5) apart from the weights. A convolution and the batch
norm after it can be seen as the one convolution an exporter folds them into
(`fold_batch_norm`). The original tensors stay untouched: this is a view computed
on demand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from .. import dtypes
from ..model import Layer, Model, Tensor

__all__ = ["Unit", "Fold", "units", "canonical_shape", "canonical_array", "to_layout_of", "normalize_name",
           "in_channels", "out_channels", "folds_into", "fold_batch_norm", "batch_norm_epsilon", "WRAPPER_PREFIXES"]

#: Prefixes that training wrappers add to every key: DataParallel, torch.compile, Lightning, EMA copies.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "ema.", "model_ema.")

# Axis permutation from each stored layout to the canonical one.
_TO_CANONICAL = {
    "HWIO": (3, 2, 0, 1),
    "WIO": (2, 1, 0),
    "DHWIO": (4, 3, 0, 1, 2),
    "IO": (1, 0),
    "HWOI": (3, 2, 0, 1),  # Keras Conv2DTranspose (h, w, out, in) → PyTorch (in, out, h, w)
    "WOI": (2, 1, 0),
}


# Counters that frameworks keep beside the weights; they carry no architecture.
_BOOKKEEPING = frozenset({"num_batches_tracked"})

# Roles of learned weights and statistics: an ONNX node holding one of them is a layer, not a computation.
_LEARNED_ROLES = frozenset({"weight", "bias", "running_mean", "running_var", "depthwise_weight", "pointwise_weight",
                            "recurrent_weight", "peephole_weight"})
# Inputs of ONNX operators that parametrize the computation (a resize's scales), whatever their size.
_OPERATOR_PARAMETERS = frozenset({("Resize", "roi"), ("Resize", "scales"), ("Resize", "sizes"), ("Upsample", "scales"),
                                  ("Pad", "pads"), ("Pad", "constant_value")})

# Convolutions an exporter folds a following batch norm into (its output channels are axis 0 of the canonical kernel).
_FOLDABLE = frozenset({"conv1d", "conv2d", "conv3d", "depthwise_conv2d"})
# BatchNormalization's epsilon where the file records none: Keras's default, and PyTorch's (also ONNX's).
_DEFAULT_EPSILON = {"keras": (1e-3, "Keras's default")}
_TORCH_EPSILON = (1e-5, "PyTorch's default")


@dataclass
class Unit:
    """One weight-bearing piece of a model, as comparison sees it.

    A layer is one unit, except a separable convolution, which is two (its depthwise
    and pointwise halves), as PyTorch and ONNX store it.
    """

    path: str
    layer: Layer
    kind: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    framework: str | None = None
    fold: Fold | None = None  # set on the view of a convolution with its batch norm folded in

    @property
    def signature(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Roles and canonical shapes: equal signatures mean interchangeable weights."""
        return tuple(sorted((role, canonical_shape(t)) for role, t in self.tensors.items()))

    @property
    def name(self) -> str:
        return normalize_name(self.path)


@dataclass
class Fold:
    """How a unit is a convolution with the batch norm after it folded in, as exporters do for inference.

    ``epsilon_from`` says where ε comes from: ``file`` (a layer config or node attribute) or ``default``
    (the framework's default, ``default_of`` naming it: a state dict records no ε).
    """

    conv: Unit
    norm: Unit
    epsilon: float
    epsilon_from: str
    default_of: str | None = None

    @property
    def epsilon_note(self) -> str:
        """ε and where it comes from, in a few words for a report."""
        if self.epsilon_from == "file":
            return f"ε = {self.epsilon:g} from the file"
        return f"ε = {self.epsilon:g}, {self.default_of}: the file does not record it"


def units(model: Model, *, weightless: bool = False) -> list[Unit]:
    """The model's units in order: every leaf layer with tensors (and, if asked, without).

    An ONNX node's scalar operands (Clip's bounds) and resize parameters are not weights:
    a node holding only those is weightless. A node with weights of its own also gets those
    it shares with an earlier node (an exporter stores equal values once).
    """
    found = []
    by_name: dict[str, Tensor] | None = None
    for path, layer in model.walk():
        if layer.layers and not layer.tensors:
            continue
        operands = _operands(layer)
        if (not layer.tensors or set(layer.tensors) <= operands) and not weightless:
            continue
        if layer.kind == "separable_conv2d":
            found.extend(_separable_halves(path, layer, model.framework))
            continue
        tensors = {role: t for role, t in layer.tensors.items() if role not in _BOOKKEEPING | operands}
        if tensors and (layer.config or {}).get("shared"):
            by_name = by_name if by_name is not None else {t.name: t for t in model.tensors()}
            tensors.update(_shared_weights(layer, tensors, by_name))
        found.append(Unit(path, layer, layer.kind, tensors, model.framework))
    return found


def _shared_weights(layer: Layer, own: dict[str, Tensor], by_name: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights an ONNX node shares with an earlier node because an exporter stored equal values once (a
    bias of zeros); only for a node with weights of its own: a shared layer's second call has none."""
    shared = (layer.config or {}).get("shared")
    if not isinstance(shared, dict):
        return {}
    return {role: by_name[name] for role, name in shared.items()
            if role in _LEARNED_ROLES and role not in own and isinstance(name, str) and name in by_name}


def _operands(layer: Layer) -> set[str]:
    """Roles of an ONNX node's constants that parametrize its computation rather than hold learned weights."""
    config = layer.config or {}
    op_type = config.get("op_type")
    if not isinstance(op_type, str) or not isinstance(config.get("attributes"), dict):
        return set()  # not an ONNX node: every tensor of a Keras or PyTorch layer is a variable
    if any(role in _LEARNED_ROLES for role in layer.tensors):
        return set()
    return {role for role, t in layer.tensors.items() if t.size <= 1 or (op_type, role) in _OPERATOR_PARAMETERS}


def _separable_halves(path: str, layer: Layer, framework: str | None) -> list[Unit]:
    depthwise = {"weight": layer.tensors["depthwise_weight"]} if "depthwise_weight" in layer.tensors else {}
    pointwise = {role.replace("pointwise_", ""): t for role, t in layer.tensors.items() if role != "depthwise_weight"}
    return [Unit(f"{path}:depthwise", layer, "depthwise_conv2d", depthwise, framework),
            Unit(f"{path}:pointwise", layer, "conv2d", pointwise, framework)]


def canonical_shape(tensor: Tensor) -> tuple[int, ...]:
    """The tensor's shape in the PyTorch/ONNX layout."""
    shape = tensor.shape
    if tensor.layout == "HWCM" and len(shape) == 4:
        height, width, channels, multiplier = shape
        return (channels * multiplier, 1, height, width)
    if tensor.layout == "OIHW" or tensor.layout not in _TO_CANONICAL or len(shape) != len(_TO_CANONICAL[tensor.layout]):
        return shape
    return tuple(shape[axis] for axis in _TO_CANONICAL[tensor.layout])


def canonical_array(tensor: Tensor) -> np.ndarray:
    """The tensor's data in the PyTorch/ONNX layout (reads the data)."""
    array = tensor.read()
    if tensor.layout == "HWCM" and array.ndim == 4:
        height, width, channels, multiplier = array.shape
        return np.ascontiguousarray(array.reshape(height, width, 1, channels * multiplier).transpose(3, 2, 0, 1))
    permutation = _TO_CANONICAL.get(tensor.layout or "")
    if permutation is None or array.ndim != len(permutation):
        return array
    return np.ascontiguousarray(array.transpose(permutation))


def to_layout_of(array: np.ndarray, target: Tensor) -> np.ndarray:
    """A canonical-layout array rearranged into ``target``'s layout and shape."""
    if target.layout == "HWCM" and array.ndim == 4:
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0).reshape(target.shape))
    permutation = _TO_CANONICAL.get(target.layout or "")
    if permutation is None or array.ndim != len(permutation):
        return array
    return np.ascontiguousarray(array.transpose(np.argsort(permutation)))


def normalize_name(name: str) -> str:
    """A name without what frameworks add around it: wrapper prefixes, ``:0``, Keras 1 suffixes."""
    name = name.split(":", 1)[0] if re.search(r":\d+$", name) else name
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                name, changed = name[len(prefix):], True
    return name


def out_channels(unit: Unit) -> int | None:
    """How many channels (features) the unit puts out, from its kernel or norm statistics.

    A Keras depthwise kernel ``(h, w, channels, multiplier)`` puts out channels·multiplier;
    a transposed convolution's canonical kernel is ``(in, out / groups, ...)``.
    """
    tensor = unit.tensors.get("weight") or unit.tensors.get("running_mean")
    if tensor is None or not tensor.ndim:
        return None
    if tensor.layout == "HWCM" and tensor.ndim >= 3:
        return tensor.shape[-2] * tensor.shape[-1]
    shape = canonical_shape(tensor)
    if unit.kind.startswith("conv_transpose") and len(shape) >= 2:
        return shape[1] * (_groups(unit.layer) or 1)
    return shape[0]


def in_channels(unit: Unit) -> int | None:
    """How many channels the unit takes in (a norm layer takes what it puts out).

    A Keras depthwise kernel ``(h, w, channels, multiplier)`` takes ``channels``; a grouped
    (or PyTorch/ONNX depthwise) kernel ``(out, in / groups, ...)`` takes ``in / groups · groups``.
    """
    tensor = unit.tensors.get("weight")
    if tensor is None or unit.kind in ("batch_norm", "layer_norm", "norm"):
        tensor = tensor or unit.tensors.get("running_mean")
        return canonical_shape(tensor)[0] if tensor is not None and tensor.ndim else None
    if tensor.layout == "HWCM" and tensor.ndim >= 3:
        return tensor.shape[-2]
    shape = canonical_shape(tensor)
    if len(shape) < 2:
        return None
    if unit.kind.startswith("conv_transpose"):
        return shape[0]
    groups = _groups(unit.layer)
    if unit.kind == "depthwise_conv2d" and groups is None:
        return shape[0]  # (channels · multiplier, 1, h, w) of a file that does not say: a multiplier of 1
    return shape[1] * (groups or 1)


def _groups(layer: Layer) -> int | None:
    """The convolution's ``groups`` (Keras, PyTorch) or ``group`` (ONNX), where the layer's config states it."""
    config = layer.config or {}
    attributes = config.get("attributes")
    groups = config.get("groups", attributes.get("group") if isinstance(attributes, dict) else None)
    return groups if isinstance(groups, int) and groups > 0 else None


# ---- a batch norm folded into the convolution before it ------------------------------------------


def folds_into(conv: Unit, norm: Unit) -> bool:
    """True when ``norm`` is a batch norm an exporter could fold into ``conv``: a float convolution whose
    output channels it normalizes (and, where the file has a graph, whose output it takes)."""
    weight = conv.tensors.get("weight")
    if conv.kind not in _FOLDABLE or conv.fold or weight is None or not weight.dtype.startswith("float"):
        return False
    if norm.kind != "batch_norm" or norm.fold or not {"running_mean", "running_var"} <= set(norm.tensors):
        return False
    if norm.layer.inbound and norm.layer.inbound != [conv.layer.name]:
        return False
    channels = out_channels(conv)
    vectors = [*norm.tensors.values(), *([conv.tensors["bias"]] if "bias" in conv.tensors else [])]
    return channels is not None and all(t.shape == (channels,) for t in vectors)


def batch_norm_epsilon(norm: Unit) -> tuple[float, str | None]:
    """The batch norm's ε, and whose default it is where the file does not record it (None where it does).

    Keras configs say ``epsilon``, ONNX nodes have the attribute (1e-5 when absent, by the
    operator's definition); a state dict says nothing: Keras's 1e-3 or PyTorch's 1e-5, by framework.
    """
    config = norm.layer.config or {}
    attributes = config.get("attributes")
    if config.get("op_type") == "BatchNormalization" and isinstance(attributes, dict):
        return float(attributes.get("epsilon", 1e-5)), None
    for key in ("epsilon", "eps"):
        if isinstance(config.get(key), (int, float)):
            return float(config[key]), None
    return _DEFAULT_EPSILON.get(norm.framework or "", _TORCH_EPSILON)


def fold_batch_norm(conv: Unit, norm: Unit) -> Unit:
    """``conv`` with ``norm`` folded in, read lazily: weight W·γ/√(σ²+ε), bias (b−μ)·γ/√(σ²+ε)+β.

    The view keeps the convolution's path, layer and kernel layout, and names the bias after
    the convolution's (or, without one, the norm's β); its ``fold`` holds both units and ε.
    Check `folds_into` first.
    """
    epsilon, default_of = batch_norm_epsilon(norm)
    fold = Fold(conv, norm, epsilon, "default" if default_of else "file", default_of)
    weight, bias, beta = conv.tensors["weight"], conv.tensors.get("bias"), norm.tensors.get("bias")
    note = f"{conv.path} with {norm.path} folded in ({fold.epsilon_note})"
    bias_name = bias.name if bias is not None else beta.name if beta is not None else f"{norm.path}.bias"
    tensors = {
        "weight": replace(weight, note=note, loader=lambda: _folded_weight(fold)),
        "bias": Tensor(bias_name, norm.tensors["running_mean"].shape, weight.dtype, role="bias", note=note,
                       loader=lambda: _folded_bias(fold)),
    }
    return Unit(conv.path, conv.layer, conv.kind, tensors, conv.framework, fold)


def _norm_factor(fold: Fold) -> np.ndarray:
    """γ/√(σ²+ε), per channel, in float64."""
    variance = fold.norm.tensors["running_var"].read().astype(np.float64)
    gamma = fold.norm.tensors.get("weight")
    scale = gamma.read().astype(np.float64) if gamma is not None else 1.0
    return scale / np.sqrt(variance + fold.epsilon)


def _folded_weight(fold: Fold) -> np.ndarray:
    weight = fold.conv.tensors["weight"]
    kernel = canonical_array(weight)
    factor = _norm_factor(fold).reshape((-1,) + (1,) * (kernel.ndim - 1))
    return to_layout_of((kernel.astype(np.float64) * factor).astype(kernel.dtype), weight)


def _folded_bias(fold: Fold) -> np.ndarray:
    bias, beta = fold.conv.tensors.get("bias"), fold.norm.tensors.get("bias")
    mean = fold.norm.tensors["running_mean"].read().astype(np.float64)
    shifted = (bias.read().astype(np.float64) if bias is not None else 0.0) - mean
    offset = beta.read().astype(np.float64) if beta is not None else 0.0
    return (shifted * _norm_factor(fold) + offset).astype(dtypes.to_numpy(fold.conv.tensors["weight"].dtype))
