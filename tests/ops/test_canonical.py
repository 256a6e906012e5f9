"""weightkit.ops.canonical: kernels in the PyTorch/ONNX layout and names without wrapper prefixes."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.model import Tensor
from weightkit.ops.canonical import (
    WRAPPER_PREFIXES,
    canonical_array,
    canonical_shape,
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
