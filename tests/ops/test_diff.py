"""diff aligns the same architecture across Keras, PyTorch and ONNX, and finds real changes."""

from __future__ import annotations

import pytest

import weightkit
from tests.nets import copy_keras_weights_to_torch, keras_cnn, torch_cnn
from weightkit.ops.diff import diff_models

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")


def save_state_dict(module, path):
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def same_network(tmp_path_factory):
    """One network with the same weights as a Keras .h5, a PyTorch checkpoint, safetensors and ONNX."""
    folder = tmp_path_factory.mktemp("same")
    keras.utils.set_random_seed(0)
    k_model = keras_cnn()
    k_model.save(folder / "cnn.h5")
    t_model = torch_cnn()
    copy_keras_weights_to_torch(k_model, t_model)
    t_model.eval()
    save_state_dict(t_model, folder / "cnn.safetensors")
    save_state_dict(t_model, folder / "cnn.pt")
    torch.onnx.export(t_model, torch.zeros(1, 3, 16, 16), folder / "cnn.onnx", dynamo=False,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    return folder


@pytest.mark.parametrize("other", ["cnn.safetensors", "cnn.pt", "cnn.onnx"])
def test_same_architecture_aligns_every_layer_across_formats(same_network, other):
    with weightkit.load(same_network / "cnn.h5") as a, weightkit.load(same_network / other) as b:
        result = diff_models(a, b, values=True)
    paired = [(p.a.path, p.b.path) for p in result.pairs if p.a and p.b]
    assert all(p.a and p.b for p in result.pairs), [(p.a and p.a.path, p.b and p.b.path) for p in result.pairs]
    assert [k for k, _ in paired] == ["conv1", "bn1", "dw", "pw", "bn2", "fc"]
    assert [t.rsplit(".", 1)[0] for _, t in paired][0] in ("conv1", "/conv1/Conv")
    whats = {c.what for p in result.pairs for c in p.changes}
    assert whats <= {"relaid"}, [(c.role, c.what, c.detail) for p in result.pairs for c in p.changes]
    assert not result.differs


def test_changed_head_and_added_layer_are_reported(tmp_path):
    keras.utils.set_random_seed(0)
    keras_cnn().save(tmp_path / "a.h5")
    keras_cnn(classes=5, extra_dense=True).save(tmp_path / "b.h5")
    result = weightkit.diff(tmp_path / "a.h5", tmp_path / "b.h5")
    assert result.differs
    only_b = [p.b.path for p in result.pairs if p.a is None]
    assert only_b == ["extra"]
    fc = next(p for p in result.pairs if p.a and p.a.path == "fc")
    assert fc.matched_by == "name"
    assert {c.what for c in fc.changes} == {"reshaped"}


def test_values_flag_finds_different_weights_of_the_same_shape(tmp_path):
    keras.utils.set_random_seed(0)
    keras_cnn().save(tmp_path / "a.h5")
    keras.utils.set_random_seed(1)
    keras_cnn().save(tmp_path / "b.h5")
    assert not weightkit.diff(tmp_path / "a.h5", tmp_path / "b.h5").differs
    result = weightkit.diff(tmp_path / "a.h5", tmp_path / "b.h5", values=True)
    assert result.differs
    conv = next(p for p in result.pairs if p.a and p.a.path == "conv1")
    assert any(c.what == "values" and c.max_abs_diff > 0 for c in conv.changes)


def test_keras_auto_numbered_names_match_by_occurrence(tmp_path):
    """Two builds of one Sequential get conv2d/conv2d_1 and conv2d_2/conv2d_3: still paired by name."""
    def build():
        return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Conv2D(4, 3)])

    build().save(tmp_path / "a.keras")
    build().save(tmp_path / "b.keras")
    result = weightkit.diff(tmp_path / "a.keras", tmp_path / "b.keras")
    assert [p.matched_by for p in result.pairs if p.a and p.a.tensors] == ["name", "name"]
    assert not result.differs


def test_values_compare_in_canonical_layout_across_frameworks(same_network):
    with weightkit.load(same_network / "cnn.h5") as a, weightkit.load(same_network / "cnn.safetensors") as b:
        result = diff_models(a, b, values=True)
    assert not any(c.what == "values" for p in result.pairs for c in p.changes)
    dw = next(p for p in result.pairs if p.a and p.a.path == "dw")
    assert dw.a.tensors["weight"].shape == (3, 3, 8, 1) and dw.b.tensors["weight"].shape == (8, 1, 3, 3)


def test_real_keras_weights_and_their_onnx_export_hold_the_same_values(real_weights):
    """hls4ml's KERAS_3layer weights and the onnxmltools export of that model, written by other people."""
    result = weightkit.diff(real_weights / "keras_h5/keras2.0.0_weights__hls4ml_KERAS_3layer_weights.h5",
                            real_weights / "onnx/op9_onnxmltools_floatdata__hls4ml_three_layer_keras.onnx",
                            values=True)
    assert [p.matched_by for p in result.pairs] == ["structure"] * 4
    assert not result.differs


def test_verdict_separates_architecture_only_from_values_and_differences(tmp_path, capsys):
    """Without --values a match says nothing of the weights; with it, it does; a difference is a difference."""
    from tests.cli import run
    from weightkit.ops.diff import diff_document
    from weightkit.ops.inspect import SCHEMA_VERSION

    keras.utils.set_random_seed(0)
    net = keras_cnn()
    net.save(tmp_path / "a.h5")
    net.save(tmp_path / "same.keras")
    keras.utils.set_random_seed(1)
    keras_cnn().save(tmp_path / "other.h5")
    assert weightkit.diff(tmp_path / "a.h5", tmp_path / "same.keras").verdict == "same_architecture"
    same = weightkit.diff(tmp_path / "a.h5", tmp_path / "same.keras", values=True)
    assert same.verdict == "same_architecture_and_values"
    assert weightkit.diff(tmp_path / "a.h5", tmp_path / "other.h5").verdict == "same_architecture"
    other = weightkit.diff(tmp_path / "a.h5", tmp_path / "other.h5", values=True)
    assert other.verdict == "different"
    document = diff_document(same)
    assert document["schema_version"] == SCHEMA_VERSION and document["verdict"] == "same_architecture_and_values"
    code, out, _ = run(capsys, "diff", tmp_path / "a.h5", tmp_path / "same.keras")
    assert code == 0 and out.rstrip().endswith("the two match in architecture (values not compared)")
    code, out, _ = run(capsys, "diff", tmp_path / "a.h5", tmp_path / "other.h5", "--values")
    assert code == 1 and out.rstrip().endswith("the two differ")


def test_input_shapes_across_layouts_are_noted_and_sizes_compared(same_network, tmp_path):
    """Keras NHWC against the NCHW export is the same input; a free size against a fixed one is a note; another
    size is a difference."""
    with weightkit.load(same_network / "cnn.h5") as a, weightkit.load(same_network / "cnn.onnx") as b:
        result = diff_models(a, b)
    assert [(s.where, s.what) for s in result.shapes] == [("input", "relaid")] and not result.differs

    def build(size):
        inputs = keras.Input((size, size, 3), name="image")
        x = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
        return keras.Model(inputs, keras.layers.Dense(2, name="fc")(x))

    for size in (None, 16, 24):
        build(size).save(tmp_path / f"{size}.keras")
    free = weightkit.diff(tmp_path / "None.keras", tmp_path / "16.keras")
    assert [(s.what, s.a.shape, s.b.shape) for s in free.shapes] == [("free", (None, None, None, 3),
                                                                       (None, 16, 16, 3))]
    assert not free.differs
    bigger = weightkit.diff(tmp_path / "16.keras", tmp_path / "24.keras")
    assert [(s.where, s.what) for s in bigger.shapes] == [("input", "reshaped")] and bigger.differs
