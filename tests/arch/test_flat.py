"""weightkit.arch.flat: files without a graph, cut by layer order or key prefix, checked with torch."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.arch import architecture_of
from weightkit.arch.flat import FlatLayers, cut_by_prefix, output_shape, reprefixed
from weightkit.errors import UsageError
from weightkit.model import Layer, Tensor

torch = pytest.importorskip("torch")


def _state_file(tmp_path, module, name="net.pt"):
    torch.save(module.state_dict(), tmp_path / name)
    return tmp_path / name


def _net():
    torch.manual_seed(0)
    return torch.nn.ModuleDict({"features": torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8)),
                                "classifier": torch.nn.Linear(8, 3)})


def test_a_state_dict_gets_the_flat_architecture(tmp_path):
    with weightkit.load(_state_file(tmp_path, _net())) as model:
        assert isinstance(architecture_of(model), FlatLayers)


def test_boundaries_follow_the_stored_order_and_leave_the_last_layer_to_the_head(tmp_path):
    with weightkit.load(_state_file(tmp_path, _net())) as model:
        cuts = FlatLayers().boundaries(model)
    assert [c.at for c in cuts] == ["features.0", "features.1"]
    assert cuts[0].shape == (None, 8) and cuts[-1].head == ["classifier"]
    assert cuts[0].backbone == ["features.0"] and cuts[0].head == ["features.1", "classifier"]


def test_the_usual_head_names_are_proposed(tmp_path):
    with weightkit.load(_state_file(tmp_path, _net())) as model:
        proposal = FlatLayers().propose(model)
    assert proposal.head_prefixes == ["classifier."] and "features.* and classifier.*" in proposal.reason
    alone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 8))
    with weightkit.load(_state_file(tmp_path, alone, "alone.pt")) as model:
        assert FlatLayers().propose(model) is None


def test_cut_by_order_and_by_prefix_write_state_dicts_torch_loads(tmp_path):
    net = _net()
    with weightkit.load(_state_file(tmp_path, net)) as model:
        for name, (backbone, head) in {"order": FlatLayers().cut(model, "features"),
                                       "prefix": cut_by_prefix(model, ["classifier."])}.items():
            weightkit.save(backbone, tmp_path / f"{name}_b.pt")
            weightkit.save(head, tmp_path / f"{name}_h.pt")
    for name in ("order", "prefix"):
        back = torch.load(tmp_path / f"{name}_b.pt", weights_only=True)
        head = torch.load(tmp_path / f"{name}_h.pt", weights_only=True)
        assert sorted(head) == ["classifier.bias", "classifier.weight"]
        assert sorted([*back, *head]) == sorted(net.state_dict())
        assert torch.equal(back["features.0.weight"], net.state_dict()["features.0.weight"])


def test_join_puts_back_the_stripped_prefixes(tmp_path):
    net = _net()
    with weightkit.load(_state_file(tmp_path, net)) as model:
        backbone, head = FlatLayers().cut(model, "features")
        backbone.layers = [reprefixed(layer, "features.", "") for layer in backbone.layers]
        joined = FlatLayers().join(backbone, head, backbone_prefix="features.")
        weightkit.save(joined, tmp_path / "joined.pt")
    state = torch.load(tmp_path / "joined.pt", weights_only=True)
    assert list(state) == list(net.state_dict())


def test_join_refuses_a_tensor_held_twice(tmp_path):
    with weightkit.load(_state_file(tmp_path, _net())) as model, pytest.raises(UsageError, match="both hold"):
        FlatLayers().join(model, model)


def test_unknown_layer_and_a_weights_file_without_order_are_refused(tmp_path):
    keras = pytest.importorskip("keras")
    with weightkit.load(_state_file(tmp_path, _net())) as model, pytest.raises(UsageError, match="no layer named"):
        FlatLayers().cut(model, "nothing")
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    small.save_weights(tmp_path / "w.weights.h5")
    with weightkit.load(tmp_path / "w.weights.h5") as model, pytest.raises(UsageError, match="order"):
        FlatLayers().cut(model, model.layers[0].name)


def test_output_shape_reads_the_output_axis_of_each_layout():
    keras_kernel = Tensor.from_array("k", np.zeros((3, 3, 4, 16), "float32"), role="weight", layout="HWIO")
    torch_kernel = Tensor.from_array("w", np.zeros((16, 4, 3, 3), "float32"), role="weight", layout="OIHW")
    depthwise = Tensor.from_array("d", np.zeros((3, 3, 8, 2), "float32"), role="weight", layout="HWCM")
    for tensor, width in ((keras_kernel, 16), (torch_kernel, 16), (depthwise, 16)):
        assert output_shape(Layer("x", tensors={"weight": tensor})) == (None, width)
    assert output_shape(Layer("empty")) is None
