"""check reproduces real framework failures, reports every tensor they complain about, and its fix works."""

from __future__ import annotations

import re

import numpy as np
import pytest

import weightkit
from tests.nets import keras_cnn, torch_resnet
from weightkit.ops.check import check_into
from weightkit.ops.fingerprint import fingerprint
from weightkit.ops.fix import fixed_checkpoint
from weightkit.ops.junction import check_junction
from weightkit.records import PROVENANCE_KEY

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")


def save_state(state, path):
    state = {k: v.detach().contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save(state, path)
    return path


def torch_complaints(module, state) -> set[str]:
    """Every key PyTorch's strict load_state_dict names in its error."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        text = str(error)
        return set(re.findall(r'"([^"]+)"', text)) | set(re.findall(r"size mismatch for ([^:]+):", text))
    return set()


def reported(report) -> set[str]:
    return {name for finding in report.findings for name in finding.tensors}


def load_fixed(path, module, strict):
    fixed = weightkit.load(path)
    with fixed:
        state = {t.name: torch.from_numpy(np.array(t.read())) for t in fixed.tensors()}
    return module.load_state_dict(state, strict=strict)


SUFFIXES = [".pt", ".safetensors"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_dataparallel_prefix_is_found_and_stripping_it_loads(tmp_path, suffix):
    model = torch_resnet()
    checkpoint = {f"module.{k}": v for k, v in torch_resnet().state_dict().items()}
    complaints = torch_complaints(model, checkpoint)
    assert complaints
    ckpt = save_state(checkpoint, tmp_path / f"ckpt{suffix}")
    target = save_state(model.state_dict(), tmp_path / f"model{suffix}")
    with weightkit.load(ckpt) as a, weightkit.load(target) as b:
        report = check_into(a, b)
        assert complaints <= reported(report)
        prefix = [f for f in report.findings if f.kind == "prefix"]
        assert prefix and "strip 'module.'" in prefix[0].message
        weightkit.save(fixed_checkpoint(a, b, report), tmp_path / f"fixed{suffix}")
    result = load_fixed(tmp_path / f"fixed{suffix}", torch_resnet(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_1000_class_head_into_10_class_model(tmp_path, suffix):
    model = torch_resnet(classes=10)
    checkpoint = torch_resnet(classes=1000).state_dict()
    complaints = torch_complaints(model, checkpoint)
    assert complaints == {"fc.weight", "fc.bias"}
    ckpt = save_state(checkpoint, tmp_path / f"ckpt{suffix}")
    target = save_state(model.state_dict(), tmp_path / f"model{suffix}")
    with weightkit.load(ckpt) as a, weightkit.load(target) as b:
        report = check_into(a, b)
        assert complaints <= reported(report)
        head = [f for f in report.findings if f.kind == "head"]
        assert head and "load the backbone only" in head[0].fix and "strict=False" in head[0].fix
        weightkit.save(fixed_checkpoint(a, b, report), tmp_path / f"fixed{suffix}")
    result = load_fixed(tmp_path / f"fixed{suffix}", torch_resnet(classes=10), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_block_is_named(tmp_path, suffix):
    model = torch_resnet(blocks=3)
    checkpoint = torch_resnet(blocks=2).state_dict()
    complaints = torch_complaints(model, checkpoint)
    ckpt = save_state(checkpoint, tmp_path / f"ckpt{suffix}")
    target = save_state(model.state_dict(), tmp_path / f"model{suffix}")
    with weightkit.load(ckpt) as a, weightkit.load(target) as b:
        report = check_into(a, b)
    assert complaints <= reported(report)
    missing = [f for f in report.findings if f.kind == "missing"]
    assert {f.message.rsplit(": ", 1)[-1] for f in missing} == {"layer3.0", "layer3.1"}
    result = torch_resnet(blocks=3).load_state_dict(checkpoint, strict=False)  # the fix: strict=False
    assert set(result.missing_keys) <= {name for f in missing for name in f.tensors}
    assert not result.unexpected_keys


def keras_error(model, path) -> str:
    with pytest.raises(ValueError) as error:
        model.load_weights(path)
    return str(error.value)


def test_keras_changed_classes(tmp_path):
    keras.utils.set_random_seed(0)
    keras_cnn(classes=5).save(tmp_path / "five.h5")
    model = keras_cnn(classes=10)
    message = keras_error(model, tmp_path / "five.h5")
    model.save(tmp_path / "ten.h5")
    with weightkit.load(tmp_path / "five.h5") as a, weightkit.load(tmp_path / "ten.h5") as b:
        report = check_into(a, b)
    shape = [f for f in report.findings if f.kind == "shape"]
    assert shape and "'fc'" in shape[0].message and "fc" in message
    assert "skip_mismatch=True" in shape[0].fix
    model.load_weights(tmp_path / "five.h5", by_name=True, skip_mismatch=True)  # the fix loads


def test_keras_layer_added(tmp_path):
    keras.utils.set_random_seed(0)
    keras_cnn().save(tmp_path / "plain.h5")
    model = keras_cnn(extra_dense=True)
    message = keras_error(model, tmp_path / "plain.h5")
    assert "Layer count mismatch" in message
    model.save(tmp_path / "extra.h5")
    with weightkit.load(tmp_path / "plain.h5") as a, weightkit.load(tmp_path / "extra.h5") as b:
        report = check_into(a, b)
    count = [f for f in report.findings if f.kind == "layer_count"]
    assert count and "6 layers with weights, the model 7" in count[0].message
    assert "'extra'" in count[0].message and "#5" in count[0].message
    assert "by_name=True" in count[0].fix
    model.load_weights(tmp_path / "plain.h5", by_name=True, skip_mismatch=True)


def test_keras_weights_from_another_architecture(tmp_path):
    keras.utils.set_random_seed(0)
    other = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 5, name="a"),
                              keras.layers.Flatten(), keras.layers.Dense(3, name="b")])
    other.save(tmp_path / "other.h5")
    model = keras_cnn()
    keras_error(model, tmp_path / "other.h5")
    model.save(tmp_path / "cnn.h5")
    with weightkit.load(tmp_path / "other.h5") as a, weightkit.load(tmp_path / "cnn.h5") as b:
        report = check_into(a, b)
    count = [f for f in report.findings if f.kind == "layer_count"]
    assert count and "another architecture" in count[0].fix


def test_keras_kernel_into_pytorch_model_is_a_layout_problem_and_fix_transposes(tmp_path):
    from tests.nets import copy_keras_weights_to_torch, torch_cnn

    keras.utils.set_random_seed(0)
    k_model = keras_cnn()
    k_model.save(tmp_path / "cnn.h5")
    t_model = torch_cnn()
    save_state(t_model.state_dict(), tmp_path / "model.pt")
    with weightkit.load(tmp_path / "cnn.h5") as a, weightkit.load(tmp_path / "model.pt") as b:
        report = check_into(a, b)
        assert report.semantics == "cross-format"
        assert any(f.kind == "layout" and "HWIO" in f.message for f in report.findings)
        weightkit.save(fixed_checkpoint(a, b, report), tmp_path / "fixed.pt")
    fresh = torch_cnn()
    load_fixed(tmp_path / "fixed.pt", fresh, strict=False)
    expected = torch_cnn()
    copy_keras_weights_to_torch(k_model, expected)
    for name, value in expected.state_dict().items():
        if "num_batches" not in name:
            assert torch.equal(fresh.state_dict()[name], value), name


def test_junction_mobilenetv2_backbone_with_resnet50_head(tmp_path):
    backbone = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3))
    backbone.save(tmp_path / "backbone.h5")
    head = keras.Sequential([keras.Input((1, 1, 2048)), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(10, name="logits")])
    head.save(tmp_path / "head.h5")
    with weightkit.load(tmp_path / "backbone.h5") as a, weightkit.load(tmp_path / "head.h5") as b:
        report = check_junction(a, b)
    junction = [f for f in report.findings if f.kind == "junction"]
    assert junction and junction[0].severity == "error"
    assert "'out_relu'" in junction[0].message and "1280" in junction[0].message
    assert "'logits'" in junction[0].message and "2048" in junction[0].message


def test_head_recorded_on_another_backbone_of_the_same_shape_is_warned(tmp_path):
    from safetensors.numpy import save_file

    keras.utils.set_random_seed(0)
    keras_cnn().save(tmp_path / "x.h5")
    keras.utils.set_random_seed(1)
    keras_cnn().save(tmp_path / "y.h5")
    with weightkit.load(tmp_path / "x.h5") as x:
        recorded = fingerprint(x)
    save_file({"fc.weight": np.zeros((10, 10), "float32"), "fc.bias": np.zeros(10, "float32")},
              tmp_path / "head.safetensors", metadata={PROVENANCE_KEY: recorded})
    for backbone, warned in (("x.h5", False), ("y.h5", True)):
        report = weightkit.check(tmp_path / backbone, tmp_path / "head.safetensors")
        provenance = [f for f in report.findings if f.kind == "provenance"]
        assert provenance and (provenance[0].severity == "warning") == warned
