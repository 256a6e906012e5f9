"""split and merge, checked with the real frameworks: the parts load, compute the original, and rejoin bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.errors import UsageError
from weightkit.ops.inspect import totals
from weightkit.ops.merge import merge_models
from weightkit.ops.split import boundaries, propose_boundary, split_model

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnv2")
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=7, alpha=0.35)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(1).normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(np.random.default_rng(2).uniform(0.5, 1.5, layer.moving_variance.shape))
    model.save(folder / "m.h5")
    model.save(folder / "m.keras")
    x = np.random.default_rng(3).standard_normal((2, 32, 32, 3)).astype("float32")
    features = keras.Model(model.input, model.get_layer("out_relu").output).predict(x, verbose=0)
    return folder, x, features, model.predict(x, verbose=0)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_keras_parts_load_and_compute_the_original(mobilenet, tmp_path, suffix):
    folder, x, features, expected = mobilenet
    with weightkit.load(folder / f"m{suffix}") as model:
        assert propose_boundary(model).at == "out_relu"
        result = split_model(model)
        weightkit.save(result.backbone, tmp_path / f"backbone{suffix}")
        weightkit.save(result.head, tmp_path / f"head{suffix}")
    backbone = keras.saving.load_model(tmp_path / f"backbone{suffix}")
    head = keras.saving.load_model(tmp_path / f"head{suffix}")
    got = backbone.predict(x, verbose=0)
    assert np.array_equal(got, features)
    assert np.array_equal(head.predict(got, verbose=0), expected)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_keras_split_then_merge_is_bit_identical(mobilenet, tmp_path, suffix):
    folder, x, _, expected = mobilenet
    with weightkit.load(folder / f"m{suffix}") as model:
        result = split_model(model, "block_13_expand_relu")
        weightkit.save(result.backbone, tmp_path / f"b{suffix}")
        weightkit.save(result.head, tmp_path / f"h{suffix}")
    with weightkit.load(tmp_path / f"b{suffix}") as b, weightkit.load(tmp_path / f"h{suffix}") as h:
        merged = merge_models(b, h)
        assert not merged.report.errors()
        assert any(f.kind == "provenance" and f.severity == "info" for f in merged.report.findings)
        weightkit.save(merged.model, tmp_path / f"merged{suffix}")
    assert np.array_equal(keras.saving.load_model(tmp_path / f"merged{suffix}").predict(x, verbose=0), expected)
    result = weightkit.diff(folder / f"m{suffix}", tmp_path / f"merged{suffix}", values=True)
    assert not result.differs


def test_a_cut_across_a_skip_connection_is_refused(mobilenet):
    folder, _, _, _ = mobilenet
    with weightkit.load(folder / "m.keras") as model, pytest.raises(UsageError, match="comes before the cut"):
        split_model(model, "block_2_project_BN")  # block_2_add also takes block_1_project_BN
    with weightkit.load(folder / "m.keras") as model:
        assert "block_2_add" in [b.at for b in boundaries(model)]
        assert "block_2_project_BN" not in [b.at for b in boundaries(model)]


def test_keras_weights_only_file_splits_into_two_weights_files(mobilenet, tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    folder, x, features, expected = mobilenet
    full = keras.saving.load_model(folder / "m.keras")
    with h5py.File(tmp_path / "w.h5", "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, full)
    with weightkit.load(tmp_path / "w.h5") as model:
        result = split_model(model, "out_relu")
        weightkit.save(result.backbone, tmp_path / "b.h5")
        weightkit.save(result.head, tmp_path / "h.h5")
    backbone = keras.Model(full.input, full.get_layer("out_relu").output)
    head_input = keras.Input((1, 1, 1280))
    head = keras.Model(head_input, full.layers[-1](full.layers[-2](head_input)))
    for part, path in ((backbone, "b.h5"), (head, "h.h5")):
        for weight in part.weights:
            weight.assign(np.zeros(weight.shape, weight.dtype))
        part.load_weights(tmp_path / path)
    assert np.array_equal(backbone.predict(x, verbose=0), features)
    assert np.array_equal(head.predict(features, verbose=0), expected)


def test_keras3_weights_file_without_its_order_is_refused(mobilenet, tmp_path):
    folder, _, _, _ = mobilenet
    keras.saving.load_model(folder / "m.keras").save_weights(tmp_path / "w.weights.h5")
    with weightkit.load(tmp_path / "w.weights.h5") as model, pytest.raises(UsageError, match="order"):
        split_model(model, "out_relu")


class Net(torch.nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                            torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3), torch.nn.BatchNorm2d(16))
        self.head = torch.nn.Linear(16, classes)

    def forward(self, x):
        return self.head(self.backbone(x).mean(dim=(2, 3)))


def save_state(module, path):
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save(state, path)


def load_state(path):
    with weightkit.load(path) as model:
        return {t.name: torch.from_numpy(np.array(t.read())) for t in model.tensors()}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_pytorch_parts_load_into_backbone_and_head_modules(tmp_path, suffix):
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.backbone[1].running_mean.uniform_(-1, 1)
    save_state(net, tmp_path / f"net{suffix}")
    with weightkit.load(tmp_path / f"net{suffix}") as model:
        proposal = propose_boundary(model)
        assert proposal.head_prefixes == ["head."]
        result = split_model(model, strip_prefixes=True)
        weightkit.save(result.backbone, tmp_path / f"b{suffix}")
        weightkit.save(result.head, tmp_path / f"h{suffix}")
    backbone, head = Net().backbone.eval(), torch.nn.Linear(16, 5)
    backbone.load_state_dict(load_state(tmp_path / f"b{suffix}"), strict=True)
    head.load_state_dict(load_state(tmp_path / f"h{suffix}"), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(head(backbone(x).mean(dim=(2, 3))), net(x))
    with weightkit.load(tmp_path / f"b{suffix}") as b, weightkit.load(tmp_path / f"h{suffix}") as h:
        weightkit.save(merge_models(b, h).model, tmp_path / f"merged{suffix}")
    original, merged = net.state_dict(), load_state(tmp_path / f"merged{suffix}")
    assert list(merged) == list(original) or sorted(merged) == sorted(original)
    for name, value in original.items():
        assert torch.equal(merged[name], value), name


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_head_cut_from_another_backbone_of_the_same_shape_is_warned(tmp_path, suffix):
    torch.manual_seed(0)
    save_state(Net(), tmp_path / f"x{suffix}")
    torch.manual_seed(1)
    save_state(Net(), tmp_path / f"y{suffix}")
    for name in ("x", "y"):
        with weightkit.load(tmp_path / f"{name}{suffix}") as model:
            result = split_model(model)
            weightkit.save(result.backbone, tmp_path / f"{name}_backbone{suffix}")
            weightkit.save(result.head, tmp_path / f"{name}_head{suffix}")
    with weightkit.load(tmp_path / f"y_backbone{suffix}") as y, weightkit.load(tmp_path / f"x_head{suffix}") as x:
        report = merge_models(y, x).report
    warning = [f for f in report.findings if f.kind == "provenance"]
    assert warning and warning[0].severity == "warning"
    with weightkit.load(tmp_path / f"x_backbone{suffix}") as b, weightkit.load(tmp_path / f"x_head{suffix}") as h:
        assert [f.severity for f in merge_models(b, h).report.findings if f.kind == "provenance"] == ["info"]
    torch.load(tmp_path / f"x_head{suffix}", weights_only=True) if suffix == ".pt" else None  # torch still loads it


def test_merge_refuses_a_head_that_does_not_fit(tmp_path, mobilenet):
    folder, _, _, _ = mobilenet
    head = keras.Sequential([keras.Input((2048,)), keras.layers.Dense(3, name="other_head")])
    head.save(tmp_path / "head.h5")
    with weightkit.load(folder / "m.h5") as m:
        weightkit.save(split_model(m).backbone, tmp_path / "backbone.h5")
    with weightkit.load(tmp_path / "backbone.h5") as b, weightkit.load(tmp_path / "head.h5") as h:
        with pytest.raises(UsageError, match="does not fit"):
            merge_models(b, h)


def test_onnx_parts_run_in_onnxruntime_chain_to_the_output_and_rejoin(tmp_path):
    import onnx
    import onnxruntime as ort

    from tests.nets import torch_resnet

    net = torch_resnet().eval()
    x = torch.randn(2, 3, 16, 16)
    torch.onnx.export(net, x, tmp_path / "net.onnx", dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    with weightkit.load(tmp_path / "net.onnx") as model:
        proposal = propose_boundary(model)
        assert proposal.at.endswith("Relu_1_output_0") and proposal.shape == ("batch", 8, 16, 16)
        result = split_model(model)
        weightkit.save(result.backbone, tmp_path / "backbone.onnx")
        weightkit.save(result.head, tmp_path / "head.onnx")
        result.backbone.close(), result.head.close()  # ONNX parts hold the file until closed
    for name in ("backbone.onnx", "head.onnx"):
        onnx.checker.check_model(str(tmp_path / name), full_check=True)
    inputs = {"x": x.numpy()}
    expected = ort.InferenceSession(tmp_path / "net.onnx").run(None, inputs)[0]
    features = ort.InferenceSession(tmp_path / "backbone.onnx").run(None, inputs)[0]
    head = ort.InferenceSession(tmp_path / "head.onnx")
    assert np.array_equal(head.run(None, {head.get_inputs()[0].name: features})[0], expected)
    with weightkit.load(tmp_path / "backbone.onnx") as b, weightkit.load(tmp_path / "head.onnx") as h:
        merged = merge_models(b, h)
        assert [f.severity for f in merged.report.findings if f.kind == "provenance"] == ["info"]
        weightkit.save(merged.model, tmp_path / "merged.onnx")
        merged.model.close()
    onnx.checker.check_model(str(tmp_path / "merged.onnx"), full_check=True)
    assert np.array_equal(ort.InferenceSession(tmp_path / "merged.onnx").run(None, inputs)[0], expected)
    assert not weightkit.diff(tmp_path / "net.onnx", tmp_path / "merged.onnx", values=True).differs


def test_onnx_cut_inside_a_residual_block_is_refused(tmp_path):
    from tests.nets import torch_resnet

    torch.onnx.export(torch_resnet().eval(), torch.randn(1, 3, 8, 8), tmp_path / "net.onnx", dynamo=False)
    with weightkit.load(tmp_path / "net.onnx") as model, pytest.raises(UsageError, match="cross"):
        split_model(model, "/layer1/layer1.0/conv1/Conv_output_0")


def test_state_dict_boundaries_leave_a_head(tmp_path):
    torch.manual_seed(0)
    save_state(Net(), tmp_path / "net.pt")
    with weightkit.load(tmp_path / "net.pt") as model:
        found = boundaries(model)
        assert [b.at for b in found] == ["backbone.0", "backbone.1", "backbone.3", "backbone.4"]
        assert found[-1].shape == (None, 16) and found[-1].head_params == 16 * 5 + 5


# ---- the rules every cut shares, on each kind of model ------------------------------------------


def _keras_sequential(folder):
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(4, 3), layers.BatchNormalization(),
                              layers.ReLU(), layers.Conv2D(8, 3), layers.BatchNormalization(), layers.ReLU(),
                              layers.GlobalAveragePooling2D(), layers.Dense(10)])
    model.save(folder / "m.keras")
    return folder / "m.keras", model.layers[-1].name, np.random.default_rng(0).standard_normal((2, 32, 32, 3))


def _onnx_graph(folder):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), folder / "m.onnx", dynamo=False,
                      input_names=["x"], output_names=["y"])
    return folder / "m.onnx", "y", np.random.default_rng(0).standard_normal((1, 3, 16, 16))


def _state_dict(folder):
    torch.manual_seed(0)
    torch.save(Net().state_dict(), folder / "m.pt")
    return folder / "m.pt", "head", None


@pytest.fixture(scope="module", params=[_keras_sequential, _onnx_graph, _state_dict],
                ids=["keras", "onnx", "state_dict"])
def every_kind(request, tmp_path_factory):
    return request.param(tmp_path_factory.mktemp(request.param.__name__.strip("_")))


def test_no_boundary_after_the_last_layer_or_at_an_input(every_kind):
    path, last, _ = every_kind
    with weightkit.load(path) as model:
        found = boundaries(model)
        inputs = [spec.name for spec in model.inputs]
    assert found and last not in [b.at for b in found]
    assert not set(inputs) & {b.at for b in found}
    assert all(b.head_params or b.backbone_params or path.suffix == ".onnx" for b in found)


def test_a_cut_at_the_last_layer_is_refused_naming_it(every_kind, tmp_path):
    path, last, _ = every_kind
    with weightkit.load(path) as model, pytest.raises(UsageError, match=f"'{last}' is the last layer"):
        split_model(model, last)


def test_the_parts_hold_every_parameter_of_the_model(every_kind):
    path, _, _ = every_kind
    with weightkit.load(path) as model:
        result = split_model(model)
        total = totals(model).params  # torch: parameters only, buffers apart (as inspect counts)
        assert result.boundary.backbone_params + result.boundary.head_params == total
        assert result.boundary.backbone_params == totals(result.backbone).params > 0
        assert result.boundary.head_params == totals(result.head).params > 0
        for found in boundaries(model):
            assert found.backbone_params + found.head_params in (total, 0)  # 0: ONNX does not count when listing
        result.backbone.close(), result.head.close()


def test_the_parts_load_in_their_framework(every_kind, tmp_path):
    import onnxruntime as ort

    path, _, x = every_kind
    suffix = path.suffix
    with weightkit.load(path) as model:
        result = split_model(model)
        weightkit.save(result.backbone, tmp_path / f"b{suffix}")
        weightkit.save(result.head, tmp_path / f"h{suffix}")
        result.backbone.close(), result.head.close()
    if suffix == ".keras":
        expected = keras.saving.load_model(path).predict(x, verbose=0)
        features = keras.saving.load_model(tmp_path / "b.keras").predict(x, verbose=0)
        assert np.array_equal(keras.saving.load_model(tmp_path / "h.keras").predict(features, verbose=0), expected)
    elif suffix == ".onnx":
        inputs = {"x": x.astype("float32")}
        expected = ort.InferenceSession(path).run(None, inputs)[0]
        features = ort.InferenceSession(tmp_path / "b.onnx").run(None, inputs)[0]
        head = ort.InferenceSession(tmp_path / "h.onnx")
        assert np.array_equal(head.run(None, {head.get_inputs()[0].name: features})[0], expected)
    else:
        parts = [torch.load(tmp_path / name, weights_only=True) for name in ("b.pt", "h.pt")]
        assert sorted(parts[1]) == ["head.bias", "head.weight"]
        assert sorted([*parts[0], *parts[1]]) == sorted(torch.load(path, weights_only=True))


def test_keras_sequential_lists_no_inverted_input_and_refuses_an_empty_head(tmp_path, capsys):
    """The bug of issue #10: the input was listed as backbone 94 / head 0, the last layer offered as a cut."""
    from weightkit.cli import main

    path, last, _ = _keras_sequential(tmp_path)
    with weightkit.load(path) as model:
        total, first, entry = model.num_params, model.layers[0].name, model.inputs[0].name
        found = boundaries(model)
    assert found[0].at == first and entry not in [b.at for b in found] and last not in [b.at for b in found]
    assert all(b.backbone_params + b.head_params == total and b.head_params > 0 for b in found)
    assert main(["split", str(path), "--at", last, "--out", str(tmp_path / "parts")]) == 2
    assert "is the last layer" in capsys.readouterr().err
    assert not (tmp_path / "parts").exists()
    with weightkit.load(path) as model, pytest.raises(UsageError, match="is an input"):
        split_model(model, entry)


def test_torch_split_counts_parameters_as_torch_does(tmp_path):
    """Both sides' counts are sum(p.numel() for p in parameters()): running statistics are buffers, not parameters."""
    import torch

    from tests.nets import torch_cnn

    net = torch_cnn()
    torch.save(net.state_dict(), tmp_path / "cnn.pt")
    with weightkit.split(tmp_path / "cnn.pt", at="bn2") as parts:
        boundary = parts.boundary
    assert boundary.backbone_params + boundary.head_params == sum(p.numel() for p in net.parameters())
    assert boundary.head_params == sum(p.numel() for p in net.fc.parameters())
