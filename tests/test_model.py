"""weightkit.model: Tensor, Layer and Model, and who owns the files a model reads from.

Parts cut from a model, and models joined from parts, read from the same open files as
the models they came from: closing one of them must leave the others readable, and the
files close with the last of them (issue #10: ``head.close()`` used to close the parent's file).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import weightkit
from weightkit.model import Layer, Model, Tensor
from weightkit.ops.split import split_model

from .nets import keras_cnn, torch_cnn

# ---- files to split ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """A small conv net exported by torch.onnx (TorchScript exporter), and its weights by ONNX name."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 32)).eval()
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"])
    return path


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "cnn.h5"
    keras_cnn().save(path)
    return path


@pytest.fixture(scope="module")
def torch_file(tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("torch") / "cnn.pt"
    torch.save(torch_cnn().state_dict(), path)
    return path


def _split(path, at=None):
    parent = weightkit.load(path)
    result = split_model(parent, at)
    assert result.backbone.tensors() and result.head.tensors()
    return parent, result.backbone, result.head


def _expected(path) -> dict[str, np.ndarray]:
    """Every tensor's values, read by a model opened and closed on its own."""
    with weightkit.load(path) as model:
        return {t.name: t.read() for t in model.tensors()}


def _assert_readable(model: Model, expected: dict[str, np.ndarray]) -> None:
    for tensor in model.tensors():
        np.testing.assert_array_equal(tensor.read(), expected[tensor.name], err_msg=tensor.name)


def _assert_closed(model: Model) -> None:
    """Tensors read from the file refuse once it is closed (ONNX keeps tensors under 1 KB in memory)."""
    in_file = [t for t in model.tensors() if model.format != "onnx" or t.nbytes >= 1024]
    assert in_file
    for tensor in in_file:
        with pytest.raises(weightkit.ModelClosedError, match="closed"):
            tensor.read()


# ---- split: closing one model leaves the others readable --------------------------------------------


def test_onnx_head_close_leaves_parent_and_backbone_readable(onnx_file):
    expected = _expected(onnx_file)
    parent, backbone, head = _split(onnx_file)
    head.close()
    _assert_readable(parent, expected)
    _assert_readable(backbone, expected)
    parent.close()
    backbone.close()


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=lambda o: "-".join(map(str, o)))
def test_onnx_split_closes_in_any_order(onnx_file, order):
    expected = _expected(onnx_file)
    _close_in_order(_split(onnx_file), order, expected)  # parent, backbone, head


@pytest.mark.parametrize("which", ["keras", "torch"])
@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)],
                         ids=["parent-first", "head-first", "backbone-first"])
def test_keras_and_torch_splits_close_in_any_order(keras_file, torch_file, which, order):
    path, at = (keras_file, "relu1") if which == "keras" else (torch_file, "bn1")
    expected = _expected(path)
    _close_in_order(_split(path, at), order, expected)


def _close_in_order(models, order, expected) -> None:
    """Close the models in ``order``: each one still open reads as before; all closed, none reads."""
    for step, index in enumerate(order):
        models[index].close()
        for other in order[step + 1:]:
            _assert_readable(models[other], expected)
    for model in models:
        _assert_closed(model)


def test_onnx_merge_stays_readable_after_parts_close(onnx_file, tmp_path):
    from weightkit.ops.merge import merge_models

    expected = _expected(onnx_file)
    parent, backbone, head = _split(onnx_file)
    merged = merge_models(backbone, head).model
    for model in (parent, backbone, head):
        model.close()
    _assert_readable(merged, expected)
    assert sorted(t.name for t in merged.tensors()) == sorted(expected)
    weightkit.save(merged, tmp_path / "merged.onnx")
    merged.close()
    _assert_closed(merged)

    import onnx
    import onnxruntime

    onnx.checker.check_model(onnx.load(tmp_path / "merged.onnx"))
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    want = onnxruntime.InferenceSession(str(onnx_file)).run(None, {"x": x})[0]
    got = onnxruntime.InferenceSession(str(tmp_path / "merged.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---- resources ----------------------------------------------------------------------------------------


class _File:
    """A stand-in resource that counts how often it is closed."""

    def __init__(self, path=None):
        self.path = path
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


def test_adopted_resource_closes_with_its_last_holder(tmp_path):
    resource = _File(tmp_path / "weights.bin")
    first, second, third = Model(), Model(), Model()
    first.adopt(resource)
    second.share_resources(first)
    third.share_resources(second)
    third.share_resources(first)  # sharing twice holds once
    first.close()
    second.close()
    assert resource.closes == 0
    third.close()
    third.close()  # closing again releases nothing more
    assert resource.closes == 1


def test_resources_by_kind_and_input_files(tmp_path):
    class Other(_File):
        def input_files(self):
            return [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]

    model = Model(source=str(tmp_path / "index.json"))
    plain, other = _File(tmp_path / "a.safetensors"), Other()
    model.adopt(plain)
    model.adopt(other)
    assert model.resources(Other) == [other]
    assert model.resources(_File) == [plain, other]
    assert model.input_files() == [tmp_path / "index.json", tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    part = Model()
    part.share_resources(model)  # a part cut from the model: its files, the index included, are its inputs too
    assert sorted(part.input_files()) == sorted(model.input_files())
    with model:
        pass
    assert plain.closes == 0
    part.close()
    assert (plain.closes, other.closes) == (1, 1)


# ---- Tensor, Layer, Model basics --------------------------------------------------------------------


def _model() -> Model:
    kernel = Tensor.from_array("conv/kernel:0", np.ones((3, 3, 2, 4), np.float32), role="weight", layout="HWIO")
    bias = Tensor.from_array("conv/bias:0", np.zeros(4, np.float32), role="bias")
    dense = Tensor.from_array("fc/kernel:0", np.ones((4, 5), np.float32), role="weight", layout="IO")
    conv = Layer("conv", "conv2d", "Conv2D", tensors={"weight": kernel, "bias": bias})
    inner = Layer("block", "unknown", "Functional", layers=[conv])
    return Model([inner, Layer("act", "activation"), Layer("fc", "dense", "Dense", tensors={"weight": dense})],
                 format="keras-h5")


def test_tensor_from_array_reads_back_and_counts():
    array = np.arange(12, dtype=np.float16).reshape(3, 4)
    tensor = Tensor.from_array("t", array, role="weight")
    assert (tensor.shape, tensor.dtype, tensor.ndim, tensor.size, tensor.nbytes) == ((3, 4), "float16", 2, 12, 24)
    np.testing.assert_array_equal(tensor.read(), array)
    assert repr(tensor) == "<Tensor 't' float16[3, 4]>"
    assert repr(Tensor("k", (3, 3, 2, 4), "float32", layout="HWIO")) == "<Tensor 'k' float32[3, 3, 2, 4] HWIO>"


def test_tensor_without_data_says_so():
    with pytest.raises(weightkit.UnsupportedError, match="'q'"):
        Tensor("q", (2,), "int4", note="quantized").read()


def test_walk_layer_and_num_params():
    model = _model()
    assert [path for path, _ in model.walk()] == ["block", "block/conv", "act", "fc"]
    assert model.layer("block/conv").kind == "conv2d"
    assert model.layer("fc").tensors["weight"].layout == "IO"
    with pytest.raises(KeyError):
        model.layer("conv")  # nested layers are found by their path only
    assert [t.name for t in model.tensors()] == ["conv/kernel:0", "conv/bias:0", "fc/kernel:0"]
    assert model.layer("block").num_params == 3 * 3 * 2 * 4 + 4
    assert model.num_params == 3 * 3 * 2 * 4 + 4 + 20
    assert [path for path, _ in model.layer("block").walk("outer")] == ["outer/block", "outer/block/conv"]


def test_reprs_are_one_line():
    model = _model()
    assert repr(model) == "<Model keras-h5 layers=3 params=96>"
    assert repr(model.layer("block/conv")) == "<Layer 'conv' Conv2D tensors=2 sublayers=0>"
    assert repr(model.layer("act")) == "<Layer 'act' activation tensors=0 sublayers=0>"
    assert repr(model.layer("block")) == "<Layer 'block' Functional tensors=0 sublayers=1>"


@pytest.mark.parametrize("which", ["keras", "torch"])
def test_keras_and_torch_merges_stay_readable_after_parts_close(keras_file, torch_file, which, tmp_path):
    from weightkit.ops.merge import merge_models

    path, at = (keras_file, "relu1") if which == "keras" else (torch_file, "bn1")
    expected = _expected(path)
    parent, backbone, head = _split(path, at)
    with merge_models(backbone, head, ignore_junction=True) as result:  # a mid-block cut: the check would refuse it
        for model in (parent, backbone, head):
            model.close()
        _assert_readable(result.model, expected)
        weightkit.save(result.model, tmp_path / f"merged{path.suffix}")
    _assert_closed(result.model)
    with weightkit.load(tmp_path / f"merged{path.suffix}") as merged:
        _assert_readable(merged, expected)


def test_split_of_a_path_returns_parts_that_read_on_their_own(torch_file):
    expected = _expected(torch_file)
    with weightkit.split(torch_file, "bn1") as parts:  # the file was opened and closed inside split
        for part in (parts.backbone, parts.head):
            for tensor in part.tensors():
                np.testing.assert_array_equal(tensor.read(), expected[tensor.name])
    _assert_closed(parts.backbone)
