"""weightkit.ops.canonical: kernels in the PyTorch/ONNX layout, names without wrapper prefixes, ONNX operands
apart from weights, and a batch norm folded into its convolution."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.model import Tensor
from weightkit.ops.canonical import (
    WRAPPER_PREFIXES,
    batch_norm_epsilon,
    canonical_array,
    canonical_shape,
    fold_batch_norm,
    folds_into,
    normalize_name,
    to_layout_of,
    units,
)

from ..nets import copy_keras_weights_to_torch, keras_cnn, torch_cnn

_RNG = np.random.default_rng(0)


@pytest.mark.parametrize("layout, shape, permutation", [
    ("HWIO", (3, 5, 2, 4), (3, 2, 0, 1)),
    ("IO", (6, 7), (1, 0)),
    ("WIO", (3, 2, 4), (2, 1, 0)),
    ("DHWIO", (2, 3, 3, 2, 4), (4, 3, 0, 1, 2)),
])
def test_layouts_transpose_to_oihw(layout, shape, permutation):
    array = _RNG.standard_normal(shape).astype(np.float32)
    tensor = Tensor.from_array("k", array, layout=layout)
    expected = np.transpose(array, permutation)
    assert canonical_shape(tensor) == expected.shape
    np.testing.assert_array_equal(canonical_array(tensor), expected)
    back = to_layout_of(canonical_array(tensor), tensor)
    np.testing.assert_array_equal(back, array)


def test_depthwise_hwcm_becomes_grouped_oihw():
    array = _RNG.standard_normal((3, 3, 4, 2)).astype(np.float32)  # (h, w, channels, multiplier)
    tensor = Tensor.from_array("dw", array, layout="HWCM")
    # PyTorch's grouped conv: output channel c * multiplier + m reads input channel c.
    expected = array.reshape(3, 3, 8).transpose(2, 0, 1)[:, None]
    assert canonical_shape(tensor) == (8, 1, 3, 3)
    np.testing.assert_array_equal(canonical_array(tensor), expected)
    np.testing.assert_array_equal(to_layout_of(expected, tensor), array)


@pytest.mark.parametrize("layout", ["OIHW", "OI", None])
def test_canonical_layouts_and_plain_tensors_are_left_alone(layout):
    array = _RNG.standard_normal((4, 3, 2, 2) if layout == "OIHW" else (4, 3)).astype(np.float32)
    tensor = Tensor.from_array("t", array, layout=layout)
    assert canonical_shape(tensor) == array.shape
    np.testing.assert_array_equal(canonical_array(tensor), array)


def test_keras_weights_match_torch_weights_of_the_same_layers(tmp_path):
    """A Keras .h5 and a PyTorch checkpoint of one network agree once seen canonically."""
    import torch

    net = keras_cnn()
    for weight in net.weights:
        weight.assign(_RNG.standard_normal(tuple(weight.shape)).astype(np.float32))
    net.save(tmp_path / "cnn.h5")
    module = torch_cnn()
    copy_keras_weights_to_torch(net, module)
    torch.save(module.state_dict(), tmp_path / "cnn.pt")
    # the torch module computes the Keras function: its weights are the Keras ones, transposed
    image = _RNG.standard_normal((2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(module.eval()(torch.from_numpy(image.transpose(0, 3, 1, 2))).detach().numpy(),
                               net.predict(image, verbose=0), rtol=1e-4, atol=1e-4)
    with weightkit.load(tmp_path / "cnn.h5") as keras_model, weightkit.load(tmp_path / "cnn.pt") as torch_model:
        for name in ("conv1", "dw", "pw", "fc"):
            for role in ("weight", "bias"):
                mine = keras_model.layer(f"cnn/{name}" if _nested(keras_model) else name).tensors[role]
                theirs = torch_model.layer(name).tensors[role]
                assert canonical_shape(mine) == theirs.shape, (name, role)
                np.testing.assert_array_equal(canonical_array(mine), theirs.read(), err_msg=f"{name} {role}")
                np.testing.assert_array_equal(to_layout_of(theirs.read(), mine), mine.read())
        keras_units = {u.name.rsplit("/", 1)[-1]: u.signature for u in units(keras_model)}
        torch_units = {u.name: u.signature for u in units(torch_model)}
        assert torch_units == {name: keras_units[name] for name in torch_units}


def _nested(model) -> bool:
    return [path for path, _ in model.walk()][:1] == ["cnn"]


@pytest.mark.parametrize("name, expected", [
    ("module.layer1.0.conv1.weight", "layer1.0.conv1.weight"),
    ("_orig_mod.module.fc.bias", "fc.bias"),
    ("model.ema.backbone.conv.weight", "backbone.conv.weight"),
    ("model_ema.head.weight", "head.weight"),
    ("conv1/kernel:0", "conv1/kernel"),
    ("dense_1/bias:12", "dense_1/bias"),
    ("module.", "module."),  # a prefix alone is a name, not a wrapper
    ("modules.conv.weight", "modules.conv.weight"),
    ("layer:name", "layer:name"),
])
def test_normalize_name(name, expected):
    assert normalize_name(name) == expected


def test_wrapped_checkpoint_has_the_same_units_as_the_plain_one(tmp_path):
    import torch

    state = torch_cnn().state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({f"module._orig_mod.{k}": v for k, v in state.items()}, tmp_path / "wrapped.pt")
    with weightkit.load(tmp_path / "plain.pt") as plain, weightkit.load(tmp_path / "wrapped.pt") as wrapped:
        assert [(u.name, u.signature) for u in units(plain)] == [(u.name, u.signature) for u in units(wrapped)]
    assert "module." in WRAPPER_PREFIXES and "_orig_mod." in WRAPPER_PREFIXES


# ---- a batch norm folded into its convolution ----------------------------------------------------


def _random_norm(norm, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(norm.num_features, generator=generator))
        norm.running_var.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
        norm.weight.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
        norm.bias.copy_(torch.randn(norm.num_features, generator=generator))


@pytest.mark.parametrize("bias, groups", [(True, 1), (False, 1), (True, 4)])
def test_fold_batch_norm_matches_torch_fusion(tmp_path, bias, groups):
    """torch.nn.utils.fusion.fuse_conv_bn_eval is the oracle; a state dict records no ε: PyTorch's 1e-5."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    conv, norm = torch.nn.Conv2d(4, 8, 3, bias=bias, groups=groups), torch.nn.BatchNorm2d(8)
    _random_norm(norm, 0)
    torch.save({**{f"conv.{k}": v for k, v in conv.state_dict().items()},
                **{f"bn.{k}": v for k, v in norm.state_dict().items()}}, tmp_path / "net.pt")
    fused = fuse_conv_bn_eval(conv.eval(), norm.eval())
    with weightkit.load(tmp_path / "net.pt") as model:
        found_conv, found_norm = units(model)
        assert folds_into(found_conv, found_norm)
        assert batch_norm_epsilon(found_norm) == (1e-5, "PyTorch's default")
        view = fold_batch_norm(found_conv, found_norm)
        np.testing.assert_allclose(view.tensors["weight"].read(), fused.weight.detach().numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(view.tensors["bias"].read(), fused.bias.detach().numpy(), rtol=1e-6, atol=1e-6)
    assert view.fold.epsilon_from == "default" and view.path == "conv" and view.fold.norm.path == "bn"


def test_folded_keras_depthwise_conv_computes_what_the_conv_and_its_norm_compute(tmp_path):
    """A Keras HWCM depthwise kernel with a multiplier, and ε from the BatchNormalization's config."""
    import keras

    inputs = keras.Input((6, 6, 3))
    conv = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")
    norm = keras.layers.BatchNormalization(epsilon=0.01, name="bn")
    net = keras.Model(inputs, norm(conv(inputs)))
    for weight in net.weights:
        weight.assign(_RNG.uniform(0.5, 1.5, tuple(weight.shape)).astype(np.float32))
    net.save(tmp_path / "net.keras")
    with weightkit.load(tmp_path / "net.keras") as model:
        found_conv, found_norm = units(model)
        assert folds_into(found_conv, found_norm) and batch_norm_epsilon(found_norm) == (0.01, None)
        view = fold_batch_norm(found_conv, found_norm)
        kernel, bias = view.tensors["weight"].read(), view.tensors["bias"].read()
    folded = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)
    plain = keras.Model(inputs, folded(inputs))
    folded.set_weights([kernel, bias])
    image = _RNG.standard_normal((2, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(plain.predict(image, verbose=0), net.predict(image, verbose=0), rtol=1e-5, atol=1e-5)


def test_a_norm_of_other_channels_or_after_another_layer_does_not_fold(tmp_path):
    import torch

    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3), "bn.weight": torch.ones(4), "bn.bias": torch.zeros(4),
                "bn.running_mean": torch.zeros(4), "bn.running_var": torch.ones(4)}, tmp_path / "net.pt")
    with weightkit.load(tmp_path / "net.pt") as model:
        conv, norm = units(model)
        assert not folds_into(conv, norm)
        assert not folds_into(norm, conv)


def _onnx_file(path, nodes, initializers, output_shape):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
                              [onnx.numpy_helper.from_array(array, name) for name, array in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_onnx_scalar_operands_and_resize_scales_are_not_weights(tmp_path):
    """Clip's bounds, a Mul by 0.5 and Resize's scales parametrize the computation: only the Conv has weights."""
    from onnx import helper

    f32 = np.float32
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
             helper.make_node("Clip", ["c", "low", "high"], ["r"], name="relu6"),
             helper.make_node("Resize", ["r", "", "scales"], ["u"], name="up", mode="nearest"),
             helper.make_node("Mul", ["u", "half"], ["y"], name="half")]
    path = _onnx_file(tmp_path / "net.onnx", nodes, {
        "w": np.ones((4, 3, 3, 3), f32), "b": np.zeros(4, f32), "low": np.array(0, f32), "high": np.array(6, f32),
        "scales": np.array([1, 1, 2, 2], f32), "half": np.array([0.5], f32)}, [1, 4, 12, 12])
    with weightkit.load(path) as model:
        assert [(u.path, sorted(u.tensors)) for u in units(model)] == [("conv", ["bias", "weight"])]
        assert [(u.path, sorted(u.tensors)) for u in units(model, weightless=True)] == [
            ("conv", ["bias", "weight"]), ("relu6", []), ("up", []), ("half", [])]


def test_a_weight_an_exporter_stored_once_belongs_to_each_conv_using_it(tmp_path):
    """torch.onnx.export keeps equal initializers once (two zero biases): the second Conv still has its bias;
    a Conv that has no weight of its own (a shared layer called again) stays without."""
    from onnx import helper

    f32 = np.float32
    nodes = [helper.make_node("Conv", ["x", "w1", "zeros"], ["a"], name="first"),
             helper.make_node("Conv", ["a", "w2", "zeros"], ["b"], name="second"),
             helper.make_node("Conv", ["b", "w2", "zeros"], ["y"], name="again")]
    path = _onnx_file(tmp_path / "net.onnx", nodes, {
        "w1": np.ones((3, 3, 1, 1), f32), "w2": np.full((3, 3, 1, 1), 2, f32), "zeros": np.zeros(3, f32)}, [1, 3, 8, 8])
    with weightkit.load(path) as model:
        found = {u.path: {role: t.name for role, t in u.tensors.items()} for u in units(model)}
    assert found == {"first": {"weight": "w1", "bias": "zeros"}, "second": {"weight": "w2", "bias": "zeros"}}
