"""Keras 1 and 2 config spellings (Convolution2D, border_mode, subsample, nb_filter, dim_ordering, Merge, ...)
with Keras 1 weights-only files, checked against the same network built in Keras 3 with the same weights."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from weightkit.formats.keras import parse_config
from weightkit.keras2onnx import unsupported_layers

from .conftest import assert_close, convert_to_file, keras_outputs


def layer(class_name, name, inbound=None, **config):
    record = {"class_name": class_name, "name": name, "config": {"name": name, "trainable": True, **config}}
    if inbound is not None:
        record["inbound_nodes"] = [[[source, 0, 0] for source in inbound]] if inbound else []
    return record


def write_keras1_weights(path, weights):
    """A Keras 1 ``save_weights`` file: root ``layer_names``, ``{layer}_W`` names, no version attributes."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [name.encode() for name in weights]
        for name, arrays in weights.items():
            group = file.create_group(name)
            group.attrs["weight_names"] = [f"{name}_{role}".encode() for role in arrays]
            for role, array in arrays.items():
                group.create_dataset(f"{name}_{role}", data=array)


def keras1_functional(dim_ordering):
    shape = [None, 3, 9, 10] if dim_ordering == "th" else [None, 9, 10, 3]
    axis = 1 if dim_ordering == "th" else -1
    layers = [
        layer("InputLayer", "input_1", [], batch_input_shape=shape, input_dtype="float32"),
        layer("Convolution2D", "conv1", ["input_1"], nb_filter=4, nb_row=3, nb_col=3, border_mode="same",
              subsample=[2, 2], dim_ordering=dim_ordering, activation="linear", bias=True, init="glorot_uniform"),
        layer("BatchNormalization", "bn1", ["conv1"], mode=0, axis=axis, epsilon=0.001, momentum=0.99),
        layer("Activation", "relu1", ["bn1"], activation="relu"),
        layer("AtrousConvolution2D", "atrous", ["relu1"], nb_filter=4, nb_row=3, nb_col=3, border_mode="same",
              atrous_rate=[2, 2], subsample=[1, 1], dim_ordering=dim_ordering, activation="relu", bias=False),
        layer("Merge", "merge_1", ["relu1", "atrous"], mode="sum", concat_axis=-1),
        layer("MaxPooling2D", "pool", ["merge_1"], pool_size=[2, 2], strides=[2, 2], border_mode="valid",
              dim_ordering=dim_ordering),
        layer("ZeroPadding2D", "pad", ["pool"], padding=[1, 1], dim_ordering=dim_ordering),
        layer("Merge", "concat", ["pad", "pad"], mode="concat", concat_axis=axis),
        layer("Flatten", "flatten", ["concat"]),
        layer("Dropout", "drop", ["flatten"], p=0.5),
        layer("Dense", "dense", ["drop"], output_dim=5, bias=True, activation="softmax"),
    ]
    return {"class_name": "Model", "keras_version": "1.2.2", "config": {
        "name": "model_1", "layers": layers, "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}


def random_weights(dim_ordering, rng):
    def kernel(out, inp):
        hwio = rng.normal(0, 0.3, (3, 3, inp, out)).astype(np.float32)
        return hwio, (hwio.transpose(3, 2, 0, 1) if dim_ordering == "th" else hwio)

    conv1, conv1_stored = kernel(4, 3)
    atrous, atrous_stored = kernel(4, 4)
    bn = [rng.normal(0, 0.5, 4).astype(np.float32) for _ in range(3)] + [rng.uniform(0.5, 2, 4).astype(np.float32)]
    dense = rng.normal(0, 0.3, (4 * 4 * 8 if dim_ordering == "tf" else 8 * 4 * 4, 5)).astype(np.float32)
    dense_bias = rng.normal(0, 0.3, 5).astype(np.float32)
    stored = {"input_1": {}, "conv1": {"W": conv1_stored, "b": bn[0]},
              "bn1": {"gamma": bn[1], "beta": bn[2], "running_mean": bn[0], "running_std": bn[3]},
              "relu1": {}, "atrous": {"W": atrous_stored}, "merge_1": {}, "pool": {}, "pad": {}, "concat": {},
              "flatten": {}, "drop": {}, "dense": {"W": dense, "b": dense_bias}}
    keras3 = {"conv1": [conv1, bn[0]], "bn1": [bn[1], bn[2], bn[0], bn[3]], "atrous": [atrous],
              "dense": [dense, dense_bias]}
    return stored, keras3


def keras3_equivalent(keras, dim_ordering):
    fmt = "channels_first" if dim_ordering == "th" else "channels_last"
    axis = 1 if dim_ordering == "th" else -1
    inputs = keras.Input((3, 9, 10) if dim_ordering == "th" else (9, 10, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", data_format=fmt, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(axis=axis, name="bn1")(x)
    x = keras.layers.Activation("relu")(x)
    y = keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2, data_format=fmt, activation="relu",
                            use_bias=False, name="atrous")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling2D(2, data_format=fmt)(x)
    x = keras.layers.ZeroPadding2D(1, data_format=fmt)(x)
    x = keras.layers.Concatenate(axis=axis)([x, x])
    x = keras.layers.Flatten(data_format="channels_last")(x)  # Keras 1 flattened channels-first tensors as they are
    return keras.Model(inputs, keras.layers.Dense(5, activation="softmax", name="dense")(x))


@pytest.mark.parametrize("dim_ordering", ["tf", "th"])
def test_keras1_functional_model(keras, tmp_path, dim_ordering):
    rng = np.random.default_rng(0)
    stored, keras3_weights = random_weights(dim_ordering, rng)
    write_keras1_weights(tmp_path / "weights.h5", stored)
    (tmp_path / "model.json").write_text(json.dumps(keras1_functional(dim_ordering)))
    reference = keras3_equivalent(keras, dim_ordering)
    for name, values in keras3_weights.items():
        reference.get_layer(name).set_weights(values)
    result = convert_to_file(tmp_path / "weights.h5", tmp_path, arch=tmp_path / "model.json")
    x = rng.standard_normal((2, *reference.input_shape[1:])).astype(np.float32)
    assert_close(result.run([x]), keras_outputs(reference, [x]), atol=1e-5)
    assert result.report.keras_major == 1


def test_keras1_merge_of_sequential_branches_is_reported():
    record = {"class_name": "Sequential", "config": [
        {"class_name": "Merge", "config": {"name": "merge_1", "mode": "concat", "layers": []}},
        {"class_name": "Dense", "config": {"name": "d", "output_dim": 2}},
    ]}
    assert "Merge of Sequential branches" in unsupported_layers(parse_config(record))[0]
