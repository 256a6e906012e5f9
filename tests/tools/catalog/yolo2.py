"""Catalog source: keras-yolo2's feature extractors (``backend.py``), rebuilt in Keras 3 at 416×416.

experiencor/keras-yolo2 builds each detector's backbone as a Keras model, ``feature_extractor``:
Full YOLO and Tiny YOLO (Darknet-style Conv2D without bias, ``norm_i``, LeakyReLU 0.1),
a SqueezeNet 1.1 (``fireN/squeeze1x1``, ``fireN/expand1x1``, ``fireN/expand3x3``, biased, no batch
norm; here ``fireN_squeeze1x1``..., as Keras 3 refuses a ``/`` in a layer name), and four
keras.applications models without their top, nested as one layer of the extractor
(``Model(input_image, mobilenet(input_image))``). These are backbones only: no head.

The keras.applications-based extractors keep that family and variant, so that a tie between
one of them and the keras.applications entry is the same architecture. keras-yolo2's
``ResNet50Feature`` pops ResNet50's last layer (its average pooling in Keras 2): no weights
go with it, and Keras 3's ``include_top=False`` has no pooling to begin with.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.yolo_nets import full_yolo_extractor
from weightkit.catalog import PREPROCESSING

from . import Built, wanted
from .keras_apps import epsilon_of, folds_of, import_keras, save_and_load, stride_of, weighted_paths

__all__ = ["builds", "SPECS", "YoloSpec", "tiny_yolo_extractor", "squeezenet_extractor", "nested_extractor"]

SOURCE = "keras-yolo2"
INPUT_SIZE = 416  # keras-yolo2's config default

# keras-yolo2's SqueezeNet fire modules after conv1: (id, squeeze filters, expand filters, max-pooling after it).
_FIRES = ((2, 16, 64, False), (3, 16, 64, True), (4, 32, 128, False), (5, 32, 128, True),
          (6, 48, 192, False), (7, 48, 192, False), (8, 64, 256, False), (9, 64, 256, False))


def tiny_yolo_extractor(input_size: int = INPUT_SIZE) -> Any:
    """keras-yolo2's ``TinyYoloFeature``: conv_1..conv_8 (3×3, no bias) with norm_i, LeakyReLU 0.1, max pools.

    Filters 16, 32, ..., 512, 1024, 1024; a 2×2 pooling of stride 2 after conv_1..conv_5, of stride 1
    ('same') after conv_6, none after conv_7 and conv_8: a grid of ``input_size // 32``.
    """
    keras = import_keras()
    layers = keras.layers
    image = keras.Input((input_size, input_size, 3), name="input_1")
    x = image
    for index, filters in enumerate((16, 32, 64, 128, 256, 512, 1024, 1024), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv_{index}")(x)
        x = layers.BatchNormalization(name=f"norm_{index}")(x)
        x = layers.LeakyReLU(negative_slope=0.1, name=f"leaky_re_lu_{index}")(x)
        if index <= 5:
            x = layers.MaxPooling2D(2, name=f"max_pooling2d_{index}")(x)
        elif index == 6:
            x = layers.MaxPooling2D(2, strides=1, padding="same", name=f"max_pooling2d_{index}")(x)
    return keras.Model(image, x, name="model")


def squeezenet_extractor(input_size: int = INPUT_SIZE) -> Any:
    """keras-yolo2's ``SqueezeNetFeature``: SqueezeNet 1.1 without its classifier (conv10), biased convs, no norms."""
    keras = import_keras()
    layers = keras.layers
    image = keras.Input((input_size, input_size, 3), name="input_1")
    x = layers.Conv2D(64, 3, strides=2, padding="valid", name="conv1")(image)
    x = layers.Activation("relu", name="relu_conv1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for fire, squeeze, expand, pool in _FIRES:
        x = _fire_module(x, fire, squeeze, expand)
        if pool:
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{fire}")(x)
    return keras.Model(image, x, name="model")


def _fire_module(x: Any, fire: int, squeeze: int, expand: int) -> Any:
    """A fire module: a 1×1 squeeze, then 1×1 and 3×3 expands side by side, concatenated."""
    keras = import_keras()
    layers = keras.layers
    prefix = f"fire{fire}_"  # keras-yolo2's "fire2/squeeze1x1": Keras 3 refuses a "/" in a layer name
    x = layers.Conv2D(squeeze, 1, padding="valid", name=f"{prefix}squeeze1x1")(x)
    x = layers.Activation("relu", name=f"{prefix}relu_squeeze1x1")(x)
    left = layers.Conv2D(expand, 1, padding="valid", name=f"{prefix}expand1x1")(x)
    left = layers.Activation("relu", name=f"{prefix}relu_expand1x1")(left)
    right = layers.Conv2D(expand, 3, padding="same", name=f"{prefix}expand3x3")(x)
    right = layers.Activation("relu", name=f"{prefix}relu_expand3x3")(right)
    return layers.Concatenate(axis=3, name=f"{prefix}concat")([left, right])


def nested_extractor(function: str, input_size: int = INPUT_SIZE, **arguments: Any) -> Any:
    """A keras.applications model without its top, nested as one layer of the extractor, as keras-yolo2 does.

    keras-yolo2's MobileNet is built at 224×224 and called on the 416×416 input (Keras 2 allowed it);
    Keras 3 checks the shape, so it is built for any size and keeps the 224 name Keras 2 gave it.
    """
    keras = import_keras()
    backbone = getattr(keras.applications, function)(include_top=False, weights=None, **arguments)
    image = keras.Input((input_size, input_size, 3), name="input_1")
    return keras.Model(image, backbone(image), name="model")


@dataclass(frozen=True)
class YoloSpec:
    """One keras-yolo2 feature extractor: its class, how to build it, the family it is, its ``normalize``."""

    feature: str  # keras-yolo2's class: "TinyYoloFeature"
    name: str
    family: str
    variant: str | None
    preprocessing: str  # a key of PREPROCESSING, as the class's normalize() does it
    make: Callable[[], Any]

    @property
    def constructor(self) -> str:
        return f"keras-yolo2 backend.{self.feature}(input_size={INPUT_SIZE})"


def _at_input_size(size: int = INPUT_SIZE) -> dict[str, Any]:
    return {"input_shape": (size, size, 3)}


#: keras-yolo2's extractors. normalize(): x / 255 (Full, Tiny), x / 127.5 - 1 (MobileNet, Inception3),
#: BGR minus the ImageNet mean (SqueezeNet, VGG16, ResNet50): Keras's "caffe" mode exactly.
SPECS: tuple[YoloSpec, ...] = (
    YoloSpec("FullYoloFeature", "Full YOLO backend", "YOLOv2", "Full YOLO backend", "raw",
             lambda: full_yolo_extractor(input_size=INPUT_SIZE, shrink=1)),
    YoloSpec("TinyYoloFeature", "Tiny YOLO backend", "YOLOv2", "Tiny YOLO backend", "raw",
             tiny_yolo_extractor),
    YoloSpec("SqueezeNetFeature", "SqueezeNet backend", "SqueezeNet", "1.1", "caffe",
             squeezenet_extractor),
    YoloSpec("MobileNetFeature", "MobileNet backend", "MobileNet", "α=1.0", "tf",
             lambda: nested_extractor("MobileNet", input_shape=(None, None, 3), name="mobilenet_1.00_224")),
    YoloSpec("Inception3Feature", "Inception3 backend", "InceptionV3", None, "tf",
             lambda: nested_extractor("InceptionV3", **_at_input_size())),
    YoloSpec("VGG16Feature", "VGG16 backend", "VGG", "16", "caffe",
             lambda: nested_extractor("VGG16", **_at_input_size())),
    YoloSpec("ResNet50Feature", "ResNet50 backend", "ResNet", "50", "caffe",
             lambda: nested_extractor("ResNet50", **_at_input_size())),
)


def builds(only: set[str] | None = None) -> Iterator[Built]:
    """One `Built` per keras-yolo2 feature extractor (``only``: those whose constructor or name is in it)."""
    for spec in SPECS:
        if wanted(only, spec.name, spec.constructor):
            yield build(spec)


def build(spec: YoloSpec) -> Built:
    """Build the extractor, save it as a legacy ``.h5``, read it back: a backbone, with no head."""
    keras = import_keras()
    keras.backend.clear_session()
    extractor = spec.make()
    output_shape = extractor.output_shape
    folds, epsilon = folds_of(extractor), epsilon_of(extractor)
    model = save_and_load(extractor)
    del extractor
    keras.backend.clear_session()
    gc.collect()
    input_size = (INPUT_SIZE, INPUT_SIZE)
    return Built(model, spec.name, spec.family, spec.variant, SOURCE, spec.constructor, folds=folds,
                 input_size=input_size, preprocessing=PREPROCESSING[spec.preprocessing], epsilon=epsilon,
                 stride=stride_of(input_size, output_shape), backbone_end=weighted_paths(model)[-1],
                 channels=int(output_shape[-1]))
