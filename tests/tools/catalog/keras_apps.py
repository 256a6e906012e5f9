"""Catalog source: every keras.applications architecture, built by Keras 3 and read back from a legacy ``.h5``.

Each architecture is built twice, with its classifier (``include_top=True``, 1000 classes) and
without: the layers the second one lacks are the entry's head, and the second one's output gives
the stride, the channels and the backbone's last layer. The first is saved with ``model.save``
to a temporary legacy ``.h5`` and read back with `weightkit.load`, as a user's file would be.

The helpers here (`save_and_load`, `folds_of`, `epsilon_of`, `stride_of`, `weighted_paths`) are
shared with the keras-yolo2 source (``yolo2.py``).
"""

from __future__ import annotations

import gc
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from math import log2
from pathlib import Path
from typing import Any

import weightkit
from weightkit.catalog import PREPROCESSING
from weightkit.model import Model

from . import Built, wanted

__all__ = ["builds", "builder", "application", "SPECS", "Spec", "save_and_load", "folds_of", "epsilon_of", "stride_of",
           "weighted_layers", "kept_layers", "weighted_paths", "import_keras"]

SOURCE = "keras.applications"
CLASSES = 1000


@dataclass(frozen=True)
class Spec:
    """One keras.applications architecture: the function that builds it, its arguments, what its weights expect."""

    function: str  # the keras.applications attribute: "MobileNetV2"
    family: str
    variant: str | None
    preprocessing: str  # a key of PREPROCESSING, as the function's preprocess_input has it
    arguments: dict[str, Any] = field(default_factory=dict)
    suffix: str = ""  # what the name adds to the function's: " α=0.35", " minimalistic"
    size: int | None = None  # the native input size, for a function whose default input is any size

    @property
    def name(self) -> str:
        return self.function + self.suffix

    @property
    def constructor(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.arguments.items())
        return f"{SOURCE}.{self.function}({arguments})"


def _alpha_specs(function: str, alphas: tuple[float, ...], preprocessing: str) -> list[Spec]:
    """MobileNet and MobileNetV2: one entry per width multiplier α, named by it."""
    return [Spec(function, function, f"α={alpha}", preprocessing, {"alpha": alpha}, f" α={alpha}") for alpha in alphas]


def _mobilenet_v3_specs() -> list[Spec]:
    """MobileNetV3 Small and Large, α 0.75 and 1.0, with and without the minimalistic blocks."""
    specs = []
    for size in ("Small", "Large"):
        for alpha in (0.75, 1.0):
            for minimalistic in (False, True):
                words = ([f"α={alpha}"] if alpha != 1.0 else []) + (["minimalistic"] if minimalistic else [])
                arguments: dict[str, Any] = {"alpha": alpha} if alpha != 1.0 else {}
                if minimalistic:
                    arguments["minimalistic"] = True
                suffix = "".join(f" {word}" for word in words)
                specs.append(Spec(f"MobileNetV3{size}", "MobileNetV3", size + suffix, "inside", arguments, suffix,
                                  size=224))
    return specs


def _numbered(prefix: str, family: str, variants: tuple[str, ...], preprocessing: str, end: str = "") -> list[Spec]:
    """Families whose function name is the family's plus the variant: ResNet50, EfficientNetB3, ConvNeXtTiny."""
    return [Spec(f"{prefix}{variant}{end}", family, variant, preprocessing) for variant in variants]


#: Every architecture this source builds, smallest families first.
SPECS: tuple[Spec, ...] = (
    *_alpha_specs("MobileNet", (0.25, 0.5, 0.75, 1.0), "tf"),
    *_alpha_specs("MobileNetV2", (0.35, 0.5, 0.75, 1.0, 1.3, 1.4), "tf"),
    *_mobilenet_v3_specs(),
    *_numbered("ResNet", "ResNet", ("50", "101", "152"), "caffe"),
    *_numbered("ResNet", "ResNetV2", ("50", "101", "152"), "tf", end="V2"),
    *_numbered("VGG", "VGG", ("16", "19"), "caffe"),
    *_numbered("DenseNet", "DenseNet", ("121", "169", "201"), "torch"),
    Spec("InceptionV3", "InceptionV3", None, "tf"),
    Spec("InceptionResNetV2", "InceptionResNetV2", None, "tf"),
    Spec("Xception", "Xception", None, "tf"),
    *_numbered("NASNet", "NASNet", ("Mobile", "Large"), "tf"),
    *_numbered("EfficientNet", "EfficientNet", tuple(f"B{i}" for i in range(8)), "inside"),
    *_numbered("EfficientNetV2", "EfficientNetV2", ("B0", "B1", "B2", "B3", "S", "M", "L"), "inside"),
    *_numbered("ConvNeXt", "ConvNeXt", ("Tiny", "Small", "Base", "Large", "XLarge"), "inside"),
)


def builds(only: set[str] | None = None) -> Iterator[Built]:
    """One `Built` per keras.applications architecture (``only``: those whose constructor or name is in it)."""
    for spec in SPECS:
        if wanted(only, spec.name, spec.constructor):
            yield build(spec)


def build(spec: Spec) -> Built:
    """Build ``spec`` with and without its classifier, and describe it as a catalog source does."""
    keras = import_keras()
    function = builder(spec)
    keras.backend.clear_session()  # the same automatic layer names in both builds
    top = _top_model(function, spec)
    input_size = (int(top.input_shape[1]), int(top.input_shape[2]))
    folds, epsilon, top_layers = folds_of(top), epsilon_of(top), weighted_layers(top)
    model = save_and_load(top)
    del top
    keras.backend.clear_session()
    no_top = function(include_top=False, weights=None, input_shape=(*input_size, 3), **spec.arguments)
    output_shape, no_top_layers = no_top.output_shape, weighted_layers(no_top)
    del no_top
    keras.backend.clear_session()
    gc.collect()
    as_in_top = kept_layers(top_layers, no_top_layers)
    head = {path for path in weighted_paths(model) if path not in as_in_top.values()}
    end = as_in_top[list(no_top_layers)[-1]]  # named as in the top model, whose file the entry describes
    return Built(model, spec.name, spec.family, spec.variant, SOURCE, spec.constructor, head=head, folds=folds,
                 input_size=input_size, preprocessing=PREPROCESSING[spec.preprocessing], epsilon=epsilon,
                 stride=stride_of(input_size, output_shape), backbone_end=end, channels=int(output_shape[-1]),
                 head_kind="classifier", classes=CLASSES)


def _top_model(function: Any, spec: Spec) -> Any:
    shape = {"input_shape": (spec.size, spec.size, 3)} if spec.size else {}
    return function(include_top=True, weights=None, classes=CLASSES, **shape, **spec.arguments)


def _nasnet_mobile(**arguments: Any) -> Any:
    """NASNetMobile as keras.applications defines it, through the NASNet builder it calls.

    Keras 3 refuses NASNetMobile on the torch backend for a bug in running it; building it
    (which the catalog needs: its weights' shapes and layers) works.
    """
    from keras.src.applications.nasnet import NASNet

    arguments.setdefault("input_shape", (224, 224, 3))
    return NASNet(penultimate_filters=1056, num_blocks=4, stem_block_filters=32, skip_reduction=False,
                  filter_multiplier=2, default_size=224, name="nasnet_mobile", **arguments)


_NOT_ON_TORCH = {"NASNetMobile": _nasnet_mobile}


def builder(spec: Spec) -> Any:
    """The function that builds ``spec``."""
    return application(spec.function)


def application(function: str) -> Any:
    """keras.applications' ``function`` (``"MobileNetV2"``), or for NASNetMobile the equivalent above."""
    return _NOT_ON_TORCH.get(function) or getattr(import_keras().applications, function)


# ---- shared with yolo2.py ----------------------------------------------------------------------------------------


def import_keras() -> Any:
    """Keras on its torch backend, without the warning that every legacy ``.h5`` save logs."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("absl").setLevel(logging.ERROR)
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"the catalog is made with Keras on its torch backend, not {keras.backend.backend()}")
    return keras


def save_and_load(keras_model: Any) -> Model:
    """``keras_model`` saved as a legacy ``.h5`` and read back by weightkit; the file is deleted.

    The returned Model's structure (paths, shapes, configs) stays readable; its tensors' data does not.
    """
    with tempfile.TemporaryDirectory(prefix="weightkit-catalog-") as folder:
        path = Path(folder) / f"{keras_model.name}.h5"
        keras_model.save(path)
        model = weightkit.load(path)
        list(model.walk())  # read the whole structure while the file exists
        model.close()
    return model


def weighted_layers(keras_model: Any) -> dict[str, tuple[str, tuple[tuple[int, ...], ...]]]:
    """Each layer holding weights, by its path as weightkit names it: its class and its weights' shapes."""
    return {path: (type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights))
            for layer, path in _layers(keras_model) if layer.weights and not hasattr(layer, "layers")}


def kept_layers(top: dict[str, Any], no_top: dict[str, Any]) -> dict[str, str]:
    """Which top-model layer each weighted layer of the no-top model is: the one of its name, or else the
    dropped one of the same class and shapes (ConvNeXt's ``head_layernorm``, which ``include_top=False``
    keeps as an unnamed ``layer_normalization`` on the feature map)."""
    dropped = [path for path in top if path not in no_top]
    found = {}
    for path, description in no_top.items():
        if path in top:
            found[path] = path
            continue
        same = [candidate for candidate in dropped if top[candidate] == description]
        if not same:
            raise ValueError(f"the no-top model's layer {path} is none of the top model's")
        found[path] = same[0]
        dropped.remove(same[0])
    return found


def _layers(keras_model: Any, prefix: str = "") -> Iterator[tuple[Any, str]]:
    for layer in keras_model.layers:
        path = f"{prefix}{layer.name}"
        yield layer, path
        if hasattr(layer, "layers"):
            yield from _layers(layer, f"{path}/")


def weighted_paths(model: Model) -> list[str]:
    """Paths of the layers of weightkit's ``model`` that hold tensors, in the file's order."""
    return [path for path, layer in model.walk() if layer.tensors]


def folds_of(keras_model: Any) -> set[str]:
    """Paths of the batch norms whose only input is a convolution's output that feeds nothing else.

    Read from the Keras graph: such a batch norm an inference export folds into its convolution.
    """
    keras = import_keras()
    convolutions = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    found = set()
    for layer, path in _layers(keras_model):
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        inputs = layer._inbound_nodes[0].input_tensors
        if len(inputs) != 1:
            continue
        source = inputs[0]._keras_history.operation
        if isinstance(source, convolutions) and len(source._outbound_nodes) == 1:
            found.add(path)
    return found


def epsilon_of(keras_model: Any) -> float | None:
    """The most common ε of the model's batch and layer norms (None when it has none)."""
    keras = import_keras()
    norms = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)
    counts = Counter(float(layer.epsilon) for layer, _ in _layers(keras_model) if isinstance(layer, norms))
    return counts.most_common(1)[0][0] if counts else None


def stride_of(input_size: tuple[int, int], output_shape: tuple[Any, ...]) -> int:
    """Input size over the feature map's, to the nearest power of two (299 → 8×8 is InceptionV3's stride 32)."""
    return 2 ** round(log2(input_size[0] / int(output_shape[1])))
