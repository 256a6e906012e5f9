"""Graph walking: nested Sequential and Functional models, shared layers and models, several inputs and outputs."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import convert_to_file, keras_outputs


def test_nested_sequential_and_functional(keras, check):
    keras.utils.set_random_seed(0)
    block = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Conv2D(4, 3, padding="same", name="inner_conv"),
                              keras.layers.BatchNormalization(name="inner_bn"), keras.layers.ReLU()], name="block")
    inner_in = keras.Input((8, 8, 4))
    inner_out = keras.layers.Add()([keras.layers.Conv2D(4, 1, name="proj")(inner_in), block(inner_in)])
    residual = keras.Model(inner_in, inner_out, name="residual")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = residual(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    result = check(keras.Model(inputs, keras.layers.Dense(2)(x)), suffixes=(".keras", ".h5"))
    paths = [layer.path for layer in result.report.layers]
    assert "residual/block/inner_conv" in paths and "residual/proj" in paths


def test_shared_layers_and_models_store_weights_once(keras, check):
    keras.utils.set_random_seed(1)
    shared_conv = keras.layers.Conv2D(3, 3, padding="same", name="shared_conv")
    tower_in = keras.Input((6, 6, 3))
    tower = keras.Model(tower_in, keras.layers.Conv2D(3, 1, name="tower_conv")(tower_in), name="tower")
    a, b = keras.Input((6, 6, 3), name="a"), keras.Input((6, 6, 3), name="b")
    left = tower(shared_conv(a))
    right = tower(shared_conv(b))
    twice = shared_conv(shared_conv(a))
    model = keras.Model([a, b], [keras.layers.Subtract()([left, right]), twice])
    result = check(model, suffixes=(".keras", ".h5"), inputs=[np.random.default_rng(i).standard_normal((2, 6, 6, 3))
                                                          .astype(np.float32) for i in range(2)])
    names = [init.name for init in result.model.graph.initializer]
    assert sum(name.startswith("shared_conv/kernel") for name in names) == 1
    assert sum(name.startswith("tower/tower_conv/kernel") for name in names) == 1
    assert sum(node.op_type == "Conv" for node in result.model.graph.node) == 6


def test_several_inputs_and_outputs_keep_keras_names(keras, check):
    keras.utils.set_random_seed(2)
    image, meta = keras.Input((5, 5, 3), name="image"), keras.Input((4,), name="meta")
    features = keras.layers.Conv2D(2, 3, name="features")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    joined = keras.layers.Concatenate()([pooled, meta])
    model = keras.Model([image, meta], [keras.layers.Dense(3, name="score")(joined), features])
    result = check(model, inputs=[np.ones((2, 5, 5, 3), np.float32), np.ones((2, 4), np.float32)])
    assert [i.name for i in result.model.graph.input] == ["image", "meta"]
    assert [o.name for o in result.model.graph.output] == ["score", "features"]
    assert result.report.outputs[1].layout == "keras (channels-last)"


def test_nchw_option_and_fixed_batch(keras, check):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((7, 6, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c")(inputs)
    model = keras.Model(inputs, [x, keras.layers.Flatten()(x)])
    result = check(model, nchw=True)
    graph = result.model.graph
    dims = [d.dim_value or d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 7, 6] and graph.node[0].op_type == "Conv"
    fixed = check(model, batch_size=2)
    assert fixed.model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_sequential_without_input_layer_uses_build_shape(keras, check):
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)], name="mlp")
    model.build((None, 3))
    check(model, suffixes=(".keras", ".h5"))


def test_config_listed_out_of_order_and_nested_node_indices(keras, tmp_path):
    """Keras 3 numbers a nested Functional model's calls from 0 in layer inputs but from 1 in output_layers;
    layers may also be listed after the layers that use them."""
    import json

    keras.utils.set_random_seed(5)
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(3, name="d")(inner_in), name="inner")
    inputs = keras.Input((4,))
    first, second = inner(inputs), inner(keras.layers.Dense(4, name="pre")(inputs))
    third = inner(keras.layers.Dense(4, name="other")(inputs))
    model = keras.Model(inputs, [keras.layers.Subtract()([first, second]), third])
    path = tmp_path / "m.keras"
    model.save(path)
    config = model.get_config()
    subtract = next(layer for layer in config["layers"] if layer["class_name"] == "Subtract")
    assert [t["config"]["keras_history"][1] for t in subtract["inbound_nodes"][0]["args"][0]] == [0, 1]
    assert config["output_layers"][1] == ["inner", 3, 0]
    config["layers"] = config["layers"][::-1]  # every layer after its users
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"class_name": "Functional", "config": config, "module": "keras.src.models.functional"}))
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    expected = keras_outputs(model, [x])
    for result in (convert_to_file(path, tmp_path), convert_to_file(path, tmp_path, arch=arch)):
        for got, want in zip(result.run([x]), expected):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_dangling_reference_is_a_clear_error(keras, tmp_path):
    import json

    from weightkit.errors import FileFormatError

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    model.save(tmp_path / "m.keras")
    config = model.get_config()
    config["layers"][1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "nowhere"
    (tmp_path / "a.json").write_text(json.dumps({"class_name": "Functional", "config": config}))
    with pytest.raises(FileFormatError, match="nowhere"):
        convert_to_file(tmp_path / "m.keras", tmp_path, arch=tmp_path / "a.json")
    assert not list(tmp_path.glob("*.onnx"))
