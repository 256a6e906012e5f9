"""The catalog's PyTorch sources: torchvision's classification models and the timm models people download most.

Each model is built on PyTorch's meta device (no memory, no random weights; CPU where an
architecture cannot be built there) and read the way weightkit reads a ``torch.save`` of its
state dict: `layers_from_state_dict` over every key, buffers included. What the weights cannot
tell comes from the model itself: the batch norms an export folds (from a ``torch.fx`` trace),
the preprocessing and input size (torchvision's weights enum, timm's ``pretrained_cfg``),
the backbone's stride (timm's ``feature_info``, or the shapes a meta forward pass gives).
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from weightkit.catalog import PREPROCESSING, Preprocessing
from weightkit.formats.state_dict import layers_from_state_dict
from weightkit.model import Model, Tensor

from . import Built, under, wanted

__all__ = ["builds", "model_of", "TIMM_MODELS", "notes"]

#: The timm architectures in the catalog: the families people download most.
TIMM_MODELS = (
    "resnet18", "resnet26", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet18d", "resnet26d", "resnet34d", "resnet50d",
    "resnext50_32x4d", "resnext101_32x8d", "seresnet50", "seresnext50_32x4d", "wide_resnet50_2", "wide_resnet101_2",
    "resnetv2_50", "resnetv2_101", "resnetv2_50x1_bit", "resnetv2_101x1_bit", "resnetv2_50x3_bit",
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
    *(f"tf_efficientnet_b{n}" for n in range(8)),
    "efficientnetv2_rw_s", "tf_efficientnetv2_s", "tf_efficientnetv2_m", "tf_efficientnetv2_l",
    "convnext_tiny", "convnext_small", "convnext_base", "convnext_large", "convnext_xlarge",
    "mobilenetv3_large_100", "mobilenetv3_small_100", "mobilenetv3_rw",
    *(f"regnet{kind}_{size}" for kind in "xy" for size in ("002", "004", "006", "008", "016", "032")),
    "vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224", "vit_large_patch16_224",
    "vit_base_patch32_224", "deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224",
    "mobilenetv2_100", "densenet121", "inception_v3", "legacy_xception", "efficientnet_lite0", "mixnet_s",
)

#: Builder arguments that differ from the defaults: the released weights have these modules.
_TORCHVISION_ARGUMENTS = {
    "googlenet": {"aux_logits": True, "init_weights": False},
    "inception_v3": {"aux_logits": True, "init_weights": False},
}
#: Training-only modules, by torchvision builder.
_TORCHVISION_AUX = {"googlenet": {"aux1", "aux2"}, "inception_v3": {"AuxLogits"}}
#: The classifier's attribute on torchvision's models, first found wins.
_TORCHVISION_HEADS = ("fc", "classifier", "heads", "head")

#: What went otherwise than planned for a build, by constructor: built on the CPU, folds guessed from the order.
_NOTES: dict[str, list[str]] = {}


def notes() -> dict[str, list[str]]:
    """The builds so far that needed a fallback (the CPU instead of the meta device, a guess where fx could not
    trace), by constructor, with why: for the generation's report."""
    return {name: list(found) for name, found in _NOTES.items()}


def _note(constructor: str, text: str) -> None:
    _NOTES.setdefault(constructor, []).append(text)


@dataclass(frozen=True)
class _Spec:
    """One architecture to build: the library's own name for it and how weightkit names it."""

    key: str  # torchvision builder or timm model name
    source: str  # torchvision | timm
    name: str
    family: str
    variant: str | None

    @property
    def constructor(self) -> str:
        if self.source == "timm":
            return f"timm.create_model({self.key!r})"
        arguments = ", ".join(f"{k}={v!r}" for k, v in _TORCHVISION_ARGUMENTS.get(self.key, {}).items())
        return f"torchvision.models.{self.key}({arguments})"


def builds(only: set[str] | None = None) -> Iterator[Built]:
    """One `Built` per architecture, torchvision's then timm's; with ``only``, just those whose constructor,
    name or library model name is in it. A model that fails to build is reported on stderr and skipped."""
    from ..torchvision_import import import_torchvision

    import_torchvision()  # before timm, which imports torchvision
    for spec in _specs():
        if not wanted(only, spec.constructor, spec.name, spec.key):
            continue
        try:
            yield _build(spec)
        except (RuntimeError, ValueError, TypeError, NotImplementedError, AttributeError, AssertionError) as exc:
            print(f"torch_models: {spec.constructor} not built: {type(exc).__name__}: {exc}", file=sys.stderr)


def _specs() -> Iterator[_Spec]:
    import timm
    import torchvision.models

    for key in torchvision.models.list_models(module=torchvision.models):
        yield _Spec(key, "torchvision", *_torchvision_naming(key))
    known = set(timm.list_models())
    for key in TIMM_MODELS:
        if key in known:
            yield _Spec(key, "timm", *_timm_naming(key))
        else:
            print(f"torch_models: timm has no model {key!r}", file=sys.stderr)


# --- naming: one family and variant per paper-level architecture, whatever library builds it ----------------------

_SIZES = {"tiny": "Tiny", "small": "Small", "base": "Base", "large": "Large", "xlarge": "XLarge"}
_SIZE_LETTERS = {"tiny": "T", "small": "S", "base": "B", "large": "L", "xlarge": "XL"}
_VIT_SIZES = {"tiny": "Ti", "small": "S", "base": "B", "large": "L", "huge": "H", "b": "B", "l": "L", "h": "H"}

_Naming = tuple[str, str, "str | None"]


def _width(text: str) -> str:
    """A width multiplier as the papers write it: ``0_5`` / ``05`` → ``0.5``, ``1_0`` → ``1.0``."""
    digits = text.replace("_", "")
    return f"{digits[0]}.{digits[1:] or '0'}"


def _regnet_size(text: str) -> str:
    """RegNet's size in flops: torchvision's ``1_6gf`` / ``400mf``, timm's ``016`` / ``002`` → ``1.6GF`` / ``200MF``."""
    if text.isdigit():  # timm: hundreds of megaflops
        hundreds = int(text)
        return f"{hundreds * 100}MF" if hundreds < 10 else f"{hundreds / 10:g}GF"
    return text.replace("_", ".").upper()


#: (pattern, naming from its groups); the first match names a torchvision builder.
_TORCHVISION_RULES: list[tuple[str, Callable[..., _Naming]]] = [
    (r"alexnet", lambda: ("AlexNet", "AlexNet", None)),
    (r"googlenet", lambda: ("GoogLeNet", "GoogLeNet", None)),
    (r"inception_v3", lambda: ("InceptionV3", "InceptionV3", None)),
    (r"convnext_(\w+)", lambda s: (f"ConvNeXt-{_SIZE_LETTERS[s]}", "ConvNeXt", _SIZES[s])),
    (r"densenet(\d+)", lambda n: (f"DenseNet-{n}", "DenseNet", n)),
    (r"efficientnet_b(\d)", lambda n: (f"EfficientNet-B{n}", "EfficientNet", f"B{n}")),
    (r"efficientnet_v2_([sml])", lambda s: (f"EfficientNetV2-{s.upper()}", "EfficientNetV2", s.upper())),
    (r"maxvit_t", lambda: ("MaxViT-T", "MaxViT", "T")),
    (r"mnasnet(\d_\d+)", lambda w: (f"MnasNet α={_width(w)}", "MnasNet", f"α={_width(w)}")),
    (r"mobilenet_v2", lambda: ("MobileNetV2 α=1.0", "MobileNetV2", "α=1.0")),
    (r"mobilenet_v3_(large|small)", lambda s: (f"MobileNetV3-{_SIZES[s]}", "MobileNetV3", _SIZES[s])),
    (r"regnet_([xy])_(\w+)", lambda k, s: (f"RegNet{k.upper()}-{_regnet_size(s)}", f"RegNet{k.upper()}",
                                           _regnet_size(s))),
    (r"resnet(\d+)", lambda n: (f"ResNet{n}", "ResNet", n)),
    (r"resnext(\d+)_(\d+x\d+d)", lambda n, g: (f"ResNeXt{n}-{g}", "ResNeXt", f"{n}-{g}")),
    (r"wide_resnet(\d+)_(\d+)", lambda n, k: (f"Wide ResNet{n}-{k}", "Wide ResNet", f"{n}-{k}")),
    (r"shufflenet_v2_x(\d_\d)", lambda w: (f"ShuffleNetV2 x{_width(w)}", "ShuffleNetV2", f"x{_width(w)}")),
    (r"squeezenet(\d_\d)", lambda v: (f"SqueezeNet {_width(v)}", "SqueezeNet", _width(v))),
    (r"swin_([tsb])", lambda s: (f"Swin-{s.upper()}", "Swin", s.upper())),
    (r"swin_v2_([tsb])", lambda s: (f"SwinV2-{s.upper()}", "SwinV2", s.upper())),
    (r"vgg(\d+)", lambda n: (f"VGG{n}", "VGG", n)),
    (r"vgg(\d+)_bn", lambda n: (f"VGG{n}-BN", "VGG", f"{n}-BN")),
    (r"vit_([blh])_(\d+)", lambda s, p: (f"ViT-{_VIT_SIZES[s]}/{p}", "ViT", f"{_VIT_SIZES[s]}/{p}")),
]

#: The same for timm's model names; timm's own variants (ResNet-D, TF ports, RW) are marked in name and variant.
_TIMM_RULES: list[tuple[str, Callable[..., _Naming]]] = [
    (r"resnet(\d+)", lambda n: (f"ResNet{n}", "ResNet", n)),
    (r"resnet(\d+)d", lambda n: (f"ResNet{n}-D", "ResNet", f"{n}-D")),
    (r"resnext(\d+)_(\d+x\d+d)", lambda n, g: (f"ResNeXt{n}-{g}", "ResNeXt", f"{n}-{g}")),
    (r"seresnet(\d+)", lambda n: (f"SE-ResNet{n}", "SE-ResNet", n)),
    (r"seresnext(\d+)_(\d+x\d+d)", lambda n, g: (f"SE-ResNeXt{n}-{g}", "SE-ResNeXt", f"{n}-{g}")),
    (r"wide_resnet(\d+)_(\d+)", lambda n, k: (f"Wide ResNet{n}-{k}", "Wide ResNet", f"{n}-{k}")),
    (r"resnetv2_(\d+)", lambda n: (f"ResNet{n}V2", "ResNetV2", n)),
    (r"resnetv2_(\d+)x(\d+)_bit", lambda n, k: (f"BiT-R{n}x{k}", "BiT", f"R{n}x{k}")),
    (r"efficientnet_b(\d)", lambda n: (f"EfficientNet-B{n}", "EfficientNet", f"B{n}")),
    (r"tf_efficientnet_b(\d)", lambda n: (f"EfficientNet-B{n} (TF port)", "EfficientNet", f"B{n}")),
    (r"efficientnetv2_rw_s", lambda: ("EfficientNetV2-S-RW", "EfficientNetV2", "S-RW")),
    (r"tf_efficientnetv2_([sml])", lambda s: (f"EfficientNetV2-{s.upper()} (TF port)", "EfficientNetV2", s.upper())),
    (r"efficientnet_lite(\d)", lambda n: (f"EfficientNet-Lite{n}", "EfficientNet-Lite", f"Lite{n}")),
    (r"convnext_(\w+)", lambda s: (f"ConvNeXt-{_SIZE_LETTERS[s]}", "ConvNeXt", _SIZES[s])),
    (r"mobilenetv3_(large|small)_100", lambda s: (f"MobileNetV3-{_SIZES[s]}", "MobileNetV3", _SIZES[s])),
    (r"mobilenetv3_rw", lambda: ("MobileNetV3-Large-RW", "MobileNetV3", "Large-RW")),
    (r"mobilenetv2_(\d+)", lambda w: (f"MobileNetV2 α={int(w) / 100:.1f}", "MobileNetV2", f"α={int(w) / 100:.1f}")),
    (r"regnet([xy])_(\d+)", lambda k, s: (f"RegNet{k.upper()}-{_regnet_size(s)}", f"RegNet{k.upper()}",
                                          _regnet_size(s))),
    (r"vit_(\w+)_patch(\d+)_224", lambda s, p: (f"ViT-{_VIT_SIZES[s]}/{p}", "ViT", f"{_VIT_SIZES[s]}/{p}")),
    # DeiT is ViT's architecture trained another way: one family, told apart by nothing in a file of weights.
    (r"deit_(\w+)_patch(\d+)_224", lambda s, p: (f"DeiT-{_VIT_SIZES[s]}/{p}", "ViT", f"{_VIT_SIZES[s]}/{p}")),
    (r"densenet(\d+)", lambda n: (f"DenseNet-{n}", "DenseNet", n)),
    (r"inception_v3", lambda: ("InceptionV3", "InceptionV3", None)),
    (r"legacy_xception", lambda: ("Xception", "Xception", None)),
    (r"mixnet_([sml])", lambda s: (f"MixNet-{s.upper()}", "MixNet", s.upper())),
]


def _named(key: str, rules: list[tuple[str, Callable[..., _Naming]]]) -> _Naming:
    for pattern, naming in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return naming(*match.groups())
    print(f"torch_models: no naming rule for {key!r}; it is named as the library names it", file=sys.stderr)
    return key, key, None


def _torchvision_naming(key: str) -> _Naming:
    return _named(key, _TORCHVISION_RULES)


def _timm_naming(key: str) -> _Naming:
    return _named(key, _TIMM_RULES)


# --- building --------------------------------------------------------------------------------------------------------


def _build(spec: _Spec) -> Built:
    net = _on_meta(lambda: _construct(spec), spec.constructor).eval()
    model = model_of(net.state_dict())
    if spec.source == "timm":
        head, aux = _timm_head(net), set()
        input_size, preprocessing = _timm_input(net)
        stride, channels = _timm_feature_map(net, head, input_size)
    else:
        head, aux = _torchvision_head(net), _TORCHVISION_AUX.get(spec.key, set())
        input_size, preprocessing = _torchvision_input(spec.key, net)
        stride, channels = _torchvision_feature_map(net, head | aux, input_size)
    return Built(model, spec.name, spec.family, spec.variant, spec.source, spec.constructor, head=head, aux=aux,
                 folds=_folds(net, model, spec.constructor), input_size=input_size, preprocessing=preprocessing,
                 epsilon=_epsilon(net), stride=stride, backbone_end=_backbone_end(model, head | aux), channels=channels,
                 head_kind="classifier", classes=_classes(model, head))


def _construct(spec: _Spec) -> Any:
    if spec.source == "timm":
        import timm

        return timm.create_model(spec.key, pretrained=False)
    import torchvision.models

    return torchvision.models.get_model(spec.key, weights=None, **_TORCHVISION_ARGUMENTS.get(spec.key, {}))


def _on_meta(construct: Callable[[], Any], constructor: str) -> Any:
    """The module ``construct`` makes, on the meta device (no memory used); built on the CPU and moved there where
    building on it fails (an initializer that reads values, such as a ``tolist()`` of a drop-path schedule)."""
    import torch

    try:
        with torch.device("meta"):
            return construct()
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        _note(constructor, f"built on the CPU: {_first_line(exc)}")
        return construct().to("meta")


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def model_of(state_dict: dict[str, Any]) -> Model:
    """The weightkit model of a state dict, made as weightkit's torch reader makes it from a ``torch.save`` file."""
    tensors = [Tensor(name, tuple(value.shape), _dtype_name(value.dtype)) for name, value in state_dict.items()]
    return Model(layers=layers_from_state_dict(tensors), format="torch-zip", framework="pytorch")


def _dtype_name(dtype: Any) -> str:
    """weightkit's name of a torch dtype: ``torch.float32`` → ``float32`` (weightkit keeps numpy's names)."""
    return str(dtype).removeprefix("torch.")


# --- what the weights cannot tell ------------------------------------------------------------------------------------


def _torchvision_head(net: Any) -> set[str]:
    for name in _TORCHVISION_HEADS:
        if hasattr(net, name) and list(getattr(net, name).parameters()):
            return {name}
    raise AttributeError(f"{type(net).__name__} has none of {_TORCHVISION_HEADS}")


def _timm_head(net: Any) -> set[str]:
    classifier = net.pretrained_cfg.get("classifier")
    return {classifier} if isinstance(classifier, str) else set(classifier)


def _classes(model: Model, head: set[str]) -> int | None:
    """The classifier's out features: the last head kernel's first axis (PyTorch keeps out channels first)."""
    kernels = [t for layer in model.layers if under(layer.name, head) for t in layer.tensors.values() if t.ndim >= 2]
    return kernels[-1].shape[0] if kernels else None


def _torchvision_input(key: str, net: Any) -> tuple[tuple[int, int], Preprocessing]:
    """Input size and normalization of the released weights: the weights enum's transforms (nothing downloaded).

    A ViT's position embedding fixes its input size, so its weights are those trained at the size it is built for.
    """
    import torchvision.models

    weights = torchvision.models.get_model_weights(key)
    chosen = weights.DEFAULT
    built_for = getattr(net, "image_size", None)
    if built_for is not None:
        chosen = next((w for w in weights if w.transforms().crop_size[0] == built_for), chosen)
    transforms = chosen.transforms()
    size = transforms.crop_size[0]
    return (size, size), _preprocessing(tuple(transforms.mean), tuple(transforms.std))


def _timm_input(net: Any) -> tuple[tuple[int, int], Preprocessing]:
    config = net.pretrained_cfg
    _, height, width = config["input_size"]
    return (height, width), _preprocessing(tuple(config["mean"]), tuple(config["std"]))


def _preprocessing(mean: tuple[float, ...], std: tuple[float, ...]) -> Preprocessing:
    """The ``torch`` preset where mean and std are ImageNet's, else a custom normalization of RGB / 255."""
    preset = PREPROCESSING["torch"]
    if _close(mean, preset.mean) and _close(std, preset.std):
        return preset
    same_as = " (the same as x / 127.5 - 1)" if _close(mean, (0.5,) * 3) and _close(std, (0.5,) * 3) else ""
    return Preprocessing("custom", f"RGB / 255, minus mean {_listed(mean)} over std {_listed(std)}{same_as}",
                         mean, std)


def _close(values: tuple[float, ...] | None, expected: tuple[float, ...] | None) -> bool:
    return values is not None and expected is not None and len(values) == len(expected) and all(
        abs(a - b) < 1e-4 for a, b in zip(values, expected))


def _listed(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _epsilon(net: Any) -> float | None:
    """The most common ε of the batch norms, or of the other norms where there is no batch norm (a ViT)."""
    import torch.nn as nn

    batch = Counter(m.eps for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    other = Counter(m.eps for m in net.modules() if isinstance(m, nn.LayerNorm | nn.GroupNorm)
                    or (type(m).__name__.endswith("Norm2d") and hasattr(m, "eps")))
    counts = batch or other
    return float(counts.most_common(1)[0][0]) if counts else None


def _timm_feature_map(net: Any, head: set[str], input_size: tuple[int, int]) -> tuple[int | None, int | None]:
    """(stride, channels) of what ``forward_features`` outputs: its stride as timm's ``feature_info`` records it, its
    channels from a meta forward pass (``feature_info`` stops before a model's last 1×1 convolution)."""
    import torch

    info = getattr(net, "feature_info", None)
    if not info:
        return _measured_feature_map(net, head, input_size)
    height, width = input_size
    with torch.no_grad():
        features = net.forward_features(torch.empty(1, 3, height, width, device=next(net.parameters()).device))
    return int(info[-1]["reduction"]), int(features.shape[1] if features.ndim == 4 else features.shape[-1])


def _torchvision_feature_map(net: Any, excluded: set[str],
                             input_size: tuple[int, int]) -> tuple[int | None, int | None]:
    patch, width = getattr(net, "patch_size", None), getattr(net, "hidden_dim", None)
    if isinstance(patch, int) and isinstance(width, int):  # a ViT: its patches are its feature map
        return patch, width
    return _measured_feature_map(net, excluded, input_size)


def _measured_feature_map(net: Any, excluded: set[str], input_size: tuple[int, int]) -> tuple[int | None, int | None]:
    """(stride, channels) of the last feature map (an NCHW output larger than 1×1) of a module outside ``excluded``
    in a forward pass on the meta device (shapes only, nothing computed), at 224 where the model takes it.

    The stride is rounded to a power of two: ceil-mode pools and odd sizes leave a map a pixel larger than the
    stride divides to (SqueezeNet's 13×13 of 224, Inception's 8×8 of 299).
    """
    import torch

    shapes: list[tuple[int, ...]] = []

    def record(_module: Any, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[2] > 1:
            shapes.append(tuple(output.shape))

    hooks = [module.register_forward_hook(record) for path, module in net.named_modules()
             if path and not under(path, excluded)]
    try:
        for height, width in ((224, 224), input_size):
            shapes.clear()
            try:
                with torch.no_grad():
                    net(torch.empty(1, 3, height, width, device=next(net.parameters()).device))
            except (RuntimeError, ValueError, AssertionError, NotImplementedError):
                continue
            if shapes:
                return 2 ** round(math.log2(height / shapes[-1][2])), shapes[-1][1]
        return None, None
    finally:
        for hook in hooks:
            hook.remove()


def _backbone_end(model: Model, excluded: set[str]) -> str | None:
    """The last module of the state dict outside the head and the auxiliary classifiers."""
    return next((layer.name for layer in reversed(model.layers) if not under(layer.name, excluded)), None)


# --- batch norms an export folds ------------------------------------------------------------------------------------


def _folds(net: Any, model: Model, constructor: str) -> set[str]:
    """Batch norms whose input is a convolution's output that nothing else uses, from an fx trace of ``net``;
    from the layer order where fx cannot trace it (recorded in `notes`)."""
    import torch

    try:
        traced, hidden = _traced_folds(net)
    except (torch.fx.proxy.TraceError, RuntimeError, TypeError, ValueError, AttributeError, AssertionError,
            NotImplementedError) as exc:
        _note(constructor, f"folds guessed from the layer order, fx failed: {_first_line(exc)}")
        return _ordered_folds(model, None)
    if hidden:
        _note(constructor, f"folds guessed for {len(hidden)} batch norms inside modules fx keeps whole: "
                           f"{sorted(hidden)[:3]}")
        traced |= _ordered_folds(model, hidden)
    return traced


def _traced_folds(net: Any) -> tuple[set[str], set[str]]:
    """(folding batch norms, batch norms inside other modules the trace keeps whole) by a trace that keeps convs
    and batch norms whole. Batch norms the forward pass never calls (an auxiliary classifier's) are in neither."""
    import torch.fx
    import torch.nn as nn

    convolutions = (nn.modules.conv._ConvNd,)
    batch_norms = (nn.modules.batchnorm._BatchNorm,)
    graph = _tracer((*convolutions, *batch_norms)).trace(net)
    modules = dict(net.named_modules())
    folds, seen = set(), set()
    called = {node.target for node in graph.nodes if node.op == "call_module"}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), batch_norms):
            continue
        seen.add(node.target)
        source = node.args[0] if node.args else None
        if (isinstance(source, torch.fx.Node) and source.op == "call_module"
                and isinstance(modules.get(source.target), convolutions) and len(source.users) == 1):
            folds.add(node.target)
    inside = {path for path, module in modules.items() if isinstance(module, batch_norms) and path not in seen
              and under(path, called)}
    return folds, inside


def _tracer(leaves: tuple[type, ...]) -> Any:
    """An fx tracer that keeps ``leaves`` whole, with timm's untraceable modules and functions as leaves too."""
    import torch.fx
    from timm.layers import get_notrace_functions, get_notrace_modules

    whole = (*leaves, *get_notrace_modules())

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, module: Any, qualified_name: str) -> bool:
            return isinstance(module, whole) or super().is_leaf_module(module, qualified_name)

    return Tracer(autowrap_functions=tuple(f for f in get_notrace_functions() if callable(f)))


def _ordered_folds(model: Model, candidates: set[str] | None) -> set[str]:
    """Batch norms (of ``candidates``, or all) right after a convolution of as many output channels in the file's
    order: a guess where no trace tells (right for a plain conv-BN chain, wrong for a pre-activation block's first
    norm)."""
    folds = set()
    previous = None
    for layer in model.layers:
        if (layer.kind == "batch_norm" and (candidates is None or layer.name in candidates)
                and previous is not None):
            channels = layer.tensors.get("running_mean") or layer.tensors.get("weight")
            kernel = previous.tensors.get("weight")
            if (previous.kind.startswith("conv") and kernel is not None and channels is not None
                    and kernel.shape[0] == channels.shape[0]):
                folds.add(layer.name)
        previous = layer
    return folds
