"""keras-yolo2's "Full YOLO" networks, rebuilt in Keras 3 at test size.

keras-yolo2 (experiencor/keras-yolo2, ``backend.py`` and ``frontend.py``) builds a
Darknet-19-like feature extractor as a functional model and nests it, as one layer, in
a detector::

    Input(416, 416, 3) → model (the extractor) → DetectionLayer (1×1 Conv2D) → Reshape(13, 13, BOX, 4 + 1 + CLASS)

and the file its users download, ``full_yolo_backend.h5``, is the extractor's weights
alone (``feature_extractor.save_weights``: no architecture). These builders keep
keras-yolo2's layer names — ``conv_1``..``conv_22`` (Conv2D without bias),
``norm_1``..``norm_22``, the passthrough ``conv_21``/``norm_21`` → ``Lambda(space_to_depth_x2)``
concatenated with the main path before ``conv_22``, ``DetectionLayer`` — and shrink the
filter counts (``shrink``) and the input size so that tests stay fast. ``shrink=1,
input_size=416`` is the real network (50M parameters, a 13×13 grid).

Keras is imported inside the functions (the tests run it on the torch backend, see
conftest.py), so importing this module is cheap::

    from tests.yolo_nets import CUSTOM_OBJECTS, save_yolo_files
    files = save_yolo_files(tmp_path)                        # ~1 s at the default size
    parts = weightkit.split(files.detector_h5, at="model")   # backbone: the extractor; head: DetectionLayer, Reshape
    keras.saving.load_model(files.detector_keras, custom_objects=CUSTOM_OBJECTS)

Loading the full-model files in Keras needs ``custom_objects=CUSTOM_OBJECTS`` (Keras must
find ``space_to_depth_x2`` by name) but not ``safe_mode=False``: the Lambda holds a named
function, not a Python lambda's bytecode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BOX", "CLASS", "FULL_YOLO_LAYERS", "CUSTOM_OBJECTS", "YoloFiles", "space_to_depth_x2", "full_yolo_extractor",
    "yolo_detector", "save_legacy_weights", "save_yolo_files", "sample_images",
]

BOX = 5  # anchor boxes per grid cell (keras-yolo2's config default)
CLASS = 3  # object classes (scaled down from keras-yolo2's examples)

# (filters, kernel size, max-pooling after it) of conv_1..conv_20 on the main path, as keras-yolo2 has them;
# conv_13's output is the passthrough (skip) branch's input, and the pooling after it is the main path's.
FULL_YOLO_LAYERS = (
    (32, 3, True), (64, 3, True), (128, 3, False), (64, 1, False), (128, 3, True),
    (256, 3, False), (128, 1, False), (256, 3, True), (512, 3, False), (256, 1, False),
    (512, 3, False), (256, 1, False), (512, 3, True), (1024, 3, False), (512, 1, False),
    (1024, 3, False), (512, 1, False), (1024, 3, False), (1024, 3, False), (1024, 3, False),
)
_SKIP_FILTERS = 64  # conv_21, on the passthrough
_LAST_FILTERS = 1024  # conv_22, after the concatenation


def space_to_depth_x2(x):
    """``tf.nn.space_to_depth(x, block_size=2)`` in keras.ops: 2×2 blocks into channels, TF's channel order.

    A module-level function with keras-yolo2's name, so the Lambda's config names it (Keras 3 stores
    ``{"class_name": "function", "config": "space_to_depth_x2"}``) and Keras can run it on any backend.
    """
    import keras

    _, h, w, c = x.shape
    x = keras.ops.reshape(x, (-1, h // 2, 2, w // 2, 2, c))
    x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return keras.ops.reshape(x, (-1, h // 2, w // 2, 4 * c))


CUSTOM_OBJECTS = {"space_to_depth_x2": space_to_depth_x2}  # for keras.saving.load_model(..., custom_objects=)


def full_yolo_extractor(input_size: int = 96, shrink: int = 16, name: str = "model"):
    """keras-yolo2's ``FullYoloFeature`` model: 22 Conv2D/BatchNormalization/LeakyReLU(0.1) blocks.

    Filter counts are keras-yolo2's divided by ``shrink`` (default: 2 to 64 channels out); the output
    grid is ``input_size // 32`` (96 → 3×3). The last weighted layer is ``norm_22``, with
    ``1024 // shrink`` channels out. Batch-norm statistics are random so that they matter in comparisons.
    """
    import keras

    layers = keras.layers
    image = keras.Input((input_size, input_size, 3), name="input_1")
    x = image
    skip, pools = None, 0
    for index, (filters, kernel, pool) in enumerate(FULL_YOLO_LAYERS, start=1):
        x = _conv_block(x, index, max(filters // shrink, 1), kernel)
        if index == 13:
            skip = x
        if pool:
            pools += 1
            x = layers.MaxPooling2D(2, name=f"max_pooling2d_{pools}")(x)
    skip = _conv_block(skip, 21, max(_SKIP_FILTERS // shrink, 1), 1)
    skip = layers.Lambda(space_to_depth_x2, name="lambda_1")(skip)
    x = layers.Concatenate(name="concatenate_1")([skip, x])
    x = _conv_block(x, 22, max(_LAST_FILTERS // shrink, 1), 3)
    model = keras.Model(image, x, name=name)
    _randomize_batch_norms(model)
    return model


def _conv_block(x, index: int, filters: int, kernel: int):
    """keras-yolo2's block: Conv2D 'same' without bias, BatchNormalization, LeakyReLU(0.1)."""
    import keras

    layers = keras.layers
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"conv_{index}")(x)
    x = layers.BatchNormalization(name=f"norm_{index}")(x)
    return layers.LeakyReLU(negative_slope=0.1, name=f"leaky_re_lu_{index}")(x)


def _randomize_batch_norms(model, seed: int = 0) -> None:
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))


def yolo_detector(extractor=None, input_size: int = 96, shrink: int = 16, box: int = BOX, classes: int = CLASS,
                  true_boxes: int = 0):
    """keras-yolo2's detector: the extractor nested as layer ``model``, ``DetectionLayer``, then ``Reshape``.

    The output is ``(None, grid, grid, box, 4 + 1 + classes)``. With ``true_boxes=N``, keras-yolo2's exact
    graph: a second input ``input_2`` of shape ``(1, 1, 1, N, 4)`` (the boxes its loss needs) joined to the
    output by ``Lambda(lambda args: args[0])``, an anonymous function weightkit does not know (so the output
    shape is unknown), through which the second input reaches the head (so no cut is possible).
    """
    import keras

    extractor = extractor or full_yolo_extractor(input_size, shrink)
    size = extractor.input_shape[1]
    grid_h, grid_w = extractor.output_shape[1:3]
    image = keras.Input((size, size, 3), name="input_image")
    features = extractor(image)
    output = keras.layers.Conv2D(box * (4 + 1 + classes), 1, padding="same", name="DetectionLayer")(features)
    output = keras.layers.Reshape((grid_h, grid_w, box, 4 + 1 + classes), name="reshape_1")(output)
    if not true_boxes:
        return keras.Model(image, output, name="yolo")
    boxes = keras.Input((1, 1, 1, true_boxes, 4), name="input_2")
    output = keras.layers.Lambda(lambda args: args[0], name="lambda_2")([output, boxes])
    return keras.Model([image, boxes], output, name="yolo")


def save_legacy_weights(model, path: str | Path) -> Path:
    """``model``'s weights as a legacy weights-only ``.h5``, the way ``full_yolo_backend.h5`` was written.

    Keras 3's ``save_weights`` only writes ``.weights.h5`` stores; this is Keras 2's layout (root attrs
    ``layer_names``, one group per layer), written by Keras 3's own legacy writer.
    """
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    path = Path(path)
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return path


@dataclass
class YoloFiles:
    """The files `save_yolo_files` writes, and the Keras models they came from."""

    detector: object  # keras.Model: the detector, with the extractor nested as layer "model"
    extractor: object  # keras.Model: the feature extractor (the same layer object as detector's "model")
    detector_h5: Path  # full model, legacy HDF5
    detector_keras: Path  # full model, .keras archive
    backend_h5: Path  # the extractor's weights only, legacy layout: like keras-yolo2's full_yolo_backend.h5
    backend_weights_h5: Path  # the extractor's weights only, Keras 3 store (extractor.save_weights)


def save_yolo_files(folder: str | Path, input_size: int = 96, shrink: int = 16) -> YoloFiles:
    """Build the detector once and write it and its extractor's weights in every form tests need.

    Files in ``folder``: ``yolo_detector.h5``, ``yolo_detector.keras``, ``full_yolo_backend.h5`` (legacy
    weights-only) and ``full_yolo_backend.weights.h5`` (Keras 3 weights store).
    """
    import keras

    folder = Path(folder)
    keras.utils.set_random_seed(0)
    extractor = full_yolo_extractor(input_size, shrink)
    detector = yolo_detector(extractor)
    detector.save(folder / "yolo_detector.h5")
    detector.save(folder / "yolo_detector.keras")
    extractor.save_weights(folder / "full_yolo_backend.weights.h5")
    backend = save_legacy_weights(extractor, folder / "full_yolo_backend.h5")
    return YoloFiles(detector, extractor, folder / "yolo_detector.h5", folder / "yolo_detector.keras", backend,
                     folder / "full_yolo_backend.weights.h5")


def sample_images(input_size: int = 96, count: int = 2, seed: int = 3) -> np.ndarray:
    """A float32 batch of standard-normal images the size the networks take."""
    return np.random.default_rng(seed).standard_normal((count, input_size, input_size, 3)).astype(np.float32)
