"""keras.applications saved by real Keras 3 in all four layouts read as Keras reports them.

Layouts: legacy full-model ``.h5``, legacy weights-only ``.h5``, Keras 3 ``.weights.h5``
and ``.keras``. For each, the parameter count, every layer's tensor shapes and values,
and (with a config) the trainable split equal what Keras itself says.
"""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.ops.inspect import totals

keras = pytest.importorskip("keras")

APPS = {
    "MobileNet": (32, 32, 3),
    "MobileNetV2": (32, 32, 3),
    "MobileNetV3Small": (32, 32, 3),
    "ResNet50": (32, 32, 3),
    "VGG16": (32, 32, 3),
    "DenseNet121": (32, 32, 3),
    "InceptionV3": (75, 75, 3),
    "Xception": (71, 71, 3),
    "EfficientNetB0": (32, 32, 3),
    "ConvNeXtTiny": (32, 32, 3),
}
LAYOUTS = [".h5", ".legacy-weights.h5", ".weights.h5", ".keras"]


def save_all_layouts(model, stem) -> dict[str, str]:
    """Save ``model`` the four ways Keras 3 can; returns path by layout."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    paths = {layout: f"{stem}{layout}" for layout in LAYOUTS}
    model.save(paths[".h5"])
    model.save(paths[".keras"])
    model.save_weights(paths[".weights.h5"])
    with h5py.File(paths[".legacy-weights.h5"], "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return paths


def keras_facts(model) -> dict:
    def size(weights):
        return sum(int(np.prod(w.shape)) for w in weights)

    return {
        "params": model.count_params(),
        "trainable": size(model.trainable_weights),
        "non_trainable": size(model.non_trainable_weights),
        "layers": dict(_leaf_layers(model)),
        "input_shape": tuple(model.input_shape),
        "output_shape": tuple(model.output_shape),
    }


def _leaf_layers(model, prefix=""):
    """(path, weights) of every layer, nested models expanded (``convnext_tiny_stem/conv``)."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer, path + "/")
        else:
            yield path, [np.asarray(w) for w in layer.get_weights()]


@pytest.fixture(scope="module", params=list(APPS))
def saved_app(request, tmp_path_factory):
    name = request.param
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=APPS[name], classes=10)
    stem = tmp_path_factory.mktemp(name) / name
    paths = save_all_layouts(model, stem)
    facts = keras_facts(model)
    del model
    return name, paths, facts


@pytest.mark.parametrize("layout", LAYOUTS)
def test_parameter_count_and_every_tensor_match_keras(saved_app, layout):
    name, paths, facts = saved_app
    with weightkit.load(paths[layout]) as model:
        assert model.num_params == facts["params"]
        for layer_name, arrays in facts["layers"].items():
            if not arrays:
                continue
            ours = list(model.layer(layer_name).tensors.values())
            assert [t.shape for t in ours] == [a.shape for a in arrays], layer_name
            for tensor, array in zip(ours, arrays):
                assert np.array_equal(tensor.read(), array), f"{layer_name} {tensor.name}"


@pytest.mark.parametrize("layout", [".h5", ".keras"])
def test_trainable_split_and_io_shapes_match_keras(saved_app, layout):
    name, paths, facts = saved_app
    with weightkit.load(paths[layout]) as model:
        assert model.has_graph
        total = totals(model)
        assert (total.trainable, total.non_trainable) == (facts["trainable"], facts["non_trainable"])
        assert model.inputs[0].shape == facts["input_shape"]
        assert [spec.shape for spec in model.outputs] == [facts["output_shape"]]


@pytest.mark.parametrize("layout", [".legacy-weights.h5", ".weights.h5"])
def test_weights_only_layouts_say_so(saved_app, layout):
    _, paths, _ = saved_app
    with weightkit.load(paths[layout]) as model:
        assert not model.has_graph
        assert model.format in ("keras-weights-h5", "keras-v3-weights")
