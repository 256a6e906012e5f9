"""infer_shapes against the shapes Keras itself computes for the same models."""

from __future__ import annotations

import json

import pytest

from weightkit.formats.keras import infer_shapes, output_specs, parse_config

keras = pytest.importorskip("keras")
L = keras.layers


def parsed(model):
    return parse_config(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))


def keras_shapes(model):
    return {layer.name: tuple(layer.output.shape) for layer in model.layers}


def assert_shapes_match(model):
    inferred = infer_shapes(parsed(model))
    for name, shape in keras_shapes(model).items():
        assert inferred[name] == shape, name


def image_model():
    inputs = keras.Input((41, 37, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", name="conv_same")(inputs)
    x = L.Conv2D(8, (3, 2), strides=(1, 2), padding="valid", dilation_rate=1, name="conv_valid")(x)
    x = L.Conv2D(8, 3, dilation_rate=2, padding="valid", name="dilated")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(x)
    x = L.SeparableConv2D(6, 3, padding="same", name="separable")(x)
    x = L.Conv2DTranspose(5, 3, strides=2, padding="same", name="transpose_same")(x)
    x = L.Conv2DTranspose(5, 3, strides=2, padding="valid", name="transpose_valid")(x)
    x = L.ZeroPadding2D(((1, 2), (0, 3)), name="pad")(x)
    x = L.Cropping2D(((1, 0), (2, 1)), name="crop")(x)
    x = L.UpSampling2D((2, 1), name="up")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="max_same")(x)
    x = L.AveragePooling2D(2, name="avg_valid")(x)
    y = L.Conv2D(5, 1, name="side")(x)
    x = L.Add(name="add")([x, y])
    x = L.Concatenate(name="concat")([x, y])
    pooled = L.GlobalAveragePooling2D(name="gap")(x)
    kept = L.GlobalMaxPooling2D(keepdims=True, name="gmp_keep")(x)
    flat = L.Flatten(name="flatten")(kept)
    x = L.Concatenate(name="join")([pooled, flat])
    x = L.Dropout(0.5, name="drop")(x)
    return keras.Model(inputs, L.Dense(4, activation="softmax", name="head")(x))


def test_image_layers():
    assert_shapes_match(image_model())


def test_channels_first_layers():
    inputs = keras.Input((3, 12, 10), name="image")
    x = L.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first", name="conv")(inputs)
    x = L.MaxPooling2D(2, data_format="channels_first", name="pool")(x)
    x = L.ZeroPadding2D(1, data_format="channels_first", name="pad")(x)
    x = L.UpSampling2D(2, data_format="channels_first", name="up")(x)
    x = L.GlobalAveragePooling2D(data_format="channels_first", name="gap")(x)
    assert_shapes_match(keras.Model(inputs, x))


def test_sequence_and_reshape_layers():
    inputs = keras.Input((20, 6), name="seq")
    x = L.Conv1D(8, 5, strides=2, padding="causal", name="causal")(inputs)
    x = L.Conv1D(8, 3, padding="valid", name="conv1d")(x)
    x = L.MaxPooling1D(2, name="pool1d")(x)
    x = L.Dense(12, name="dense3d")(x)
    x = L.Reshape((-1, 4), name="reshape")(x)
    x = L.Permute((2, 1), name="permute")(x)
    x = L.UpSampling1D(3, name="up1d")(x)
    x = L.ZeroPadding1D((1, 2), name="pad1d")(x)
    x = L.Cropping1D(2, name="crop1d")(x)
    x = L.LayerNormalization(name="ln")(x)
    assert_shapes_match(keras.Model(inputs, L.GlobalMaxPooling1D(name="gmp")(x)))


def test_sequential_without_an_input_layer_uses_its_build_shape():
    model = keras.Sequential([L.Dense(5, name="a"), L.Dense(3, name="b")])
    model.build((None, 7))
    config = model.get_config()
    config["layers"] = [layer for layer in config["layers"] if layer["class_name"] != "InputLayer"]
    shapes = infer_shapes(parse_config({"class_name": "Sequential", "config": config}))
    assert shapes == {"a": (None, 5), "b": (None, 3)} == {k: v for k, v in keras_shapes(model).items()}


def test_nested_model_output_and_given_inputs():
    inner = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(3, 3, name="inner_conv")], name="inner")
    inputs = keras.Input((6, 6, 2), name="x")
    model = keras.Model(inputs, L.Flatten(name="flat")(inner(inputs)))
    root = parsed(model)
    assert infer_shapes(root)["inner"] == (None, 4, 4, 3)
    assert_shapes_match(model)
    assert infer_shapes(root, [(2, 10, 10, 2)])["flat"] == (2, 8 * 8 * 3)
    assert [(spec.name, spec.shape) for spec in output_specs(root)] == [("flat", (None, 48))]


def test_unknown_layers_make_what_follows_unknown():
    inputs = keras.Input((4,), name="x")
    x = L.Lambda(lambda t: t * 2, output_shape=(4,), name="double")(inputs)
    model = keras.Model(inputs, L.Dense(2, name="after")(x))
    shapes = infer_shapes(parsed(model))
    assert shapes["double"] is None and shapes["after"] is None


@pytest.mark.parametrize("dim_ordering", ["th", "tf"])
def test_keras1_config_shapes_match_its_keras3_equivalent(dim_ordering):
    """A Keras 1 config (old spellings) gets the shapes Keras 3 computes for the same network."""
    first = dim_ordering == "th"
    layers = [
        {"class_name": "Convolution2D", "name": "conv", "inbound_nodes": [], "config": {
            "name": "conv", "nb_filter": 4, "nb_row": 3, "nb_col": 5, "subsample": [2, 1], "border_mode": "valid",
            "dim_ordering": dim_ordering, "batch_input_shape": [None, 3, 13, 11] if first else [None, 13, 11, 3]}},
        {"class_name": "AtrousConvolution2D", "name": "atrous", "inbound_nodes": [[["conv", 0, 0]]], "config": {
            "name": "atrous", "nb_filter": 2, "nb_row": 3, "nb_col": 3, "atrous_rate": [2, 2], "border_mode": "valid",
            "dim_ordering": dim_ordering}},
        {"class_name": "MaxPooling2D", "name": "pool", "inbound_nodes": [[["atrous", 0, 0]]], "config": {
            "name": "pool", "pool_size": [2, 2], "strides": None, "border_mode": "same",
            "dim_ordering": dim_ordering}},
        {"class_name": "Flatten", "name": "flatten", "inbound_nodes": [[["pool", 0, 0]]],
         "config": {"name": "flatten"}},
        {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["flatten", 0, 0]]],
         "config": {"name": "dense", "output_dim": 7}},
    ]
    root = parse_config({"class_name": "Sequential", "config": [{"class_name": layer["class_name"],
                                                                 "config": layer["config"]} for layer in layers]})
    fmt = "channels_first" if first else "channels_last"
    reference = keras.Sequential([
        keras.Input((3, 13, 11) if first else (13, 11, 3)),
        L.Conv2D(4, (3, 5), strides=(2, 1), data_format=fmt, name="conv"),
        L.Conv2D(2, 3, dilation_rate=2, data_format=fmt, name="atrous"),
        L.MaxPooling2D(2, padding="same", data_format=fmt, name="pool"),
        L.Flatten(name="flatten"),
        L.Dense(7, name="dense"),
    ])
    assert infer_shapes(root) == keras_shapes(reference)


def test_symbolic_spatial_dims_make_the_shape_unknown_not_wrong():
    """ONNX inputs can name a dim ('height'): arithmetic on it is unknown, and a symbolic batch passes through."""
    inputs = keras.Input((8, 8, 4), name="image")
    x = L.Conv2DTranspose(5, 3, strides=2, padding="same", name="transpose")(inputs)
    x = L.UpSampling2D(2, name="up")(x)
    model = keras.Model(inputs, L.ReLU(name="relu")(x))
    shapes = infer_shapes(parsed(model), [("batch", "height", "width", 4)])
    assert shapes["transpose"] is None and shapes["up"] is None and shapes["relu"] is None
    assert infer_shapes(parsed(model), [("batch", 8, 8, 4)])["up"] == ("batch", 32, 32, 5)


def test_products_of_huge_declared_sizes_are_unknown_not_huge_integers():
    """(None, 2**62 x 4000) flattened would be a 250,000-bit integer; past an int64 a size is unknown."""
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, *([2**62] * 4000)], "name": "x"}},
        {"class_name": "Flatten", "config": {"name": "f"}},
        {"class_name": "Reshape", "config": {"name": "r", "target_shape": [-1, *([2**62] * 4000)]}},
        {"class_name": "UpSampling1D", "config": {"name": "u", "size": 2**62}}]}}
    shapes = infer_shapes(parse_config(config))
    assert shapes["f"] == (None, None)
    assert shapes["r"][0] is None and shapes["r"][1] is None


@pytest.mark.parametrize("shape", [[None, "8"], [None, -1], [None, 2**64], [None, True], "8", {"a": 1}])
def test_a_declared_shape_of_the_wrong_type_is_a_config_error(shape):
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": shape, "name": "x"}}]}}
    with pytest.raises(ValueError, match="batch_shape"):
        parse_config(config)
