"""diff raises no false alarm where two files hold the same network (issue #12), and still finds real changes.

Each file is made by the real tool: Keras builds and saves, weightkit.convert converts,
torch.onnx.export exports (folding batch norms into convolutions, as it does in eval mode).
"""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from tests.cli import run
from tests.nets import copy_keras_weights_to_torch, keras_cnn, torch_cnn, torch_resnet
from weightkit.ops.check import check_into
from weightkit.ops.diff import diff_models
from weightkit.ops.fix import fixed_checkpoint

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")


def one_sided(result) -> list[str]:
    return [f"{'A' if p.a else 'B'}: {(p.a or p.b).path}" for p in result.pairs if p.a is None or p.b is None]


def randomize_norms(module, seed: int = 0, eps: float | None = None):
    """Batch norm statistics and affine parameters far from their initial values, so that folding changes weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in module.modules():
            if isinstance(norm, torch.nn.BatchNorm2d):
                norm.running_mean.copy_(torch.randn(norm.num_features, generator=generator))
                norm.running_var.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
                norm.weight.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
                norm.bias.copy_(torch.randn(norm.num_features, generator=generator))
                norm.eps = norm.eps if eps is None else eps
    return module.eval()


def export(module, path, **options):
    torch.onnx.export(module, torch.zeros(1, 3, 16, 16), path, dynamo=False, **options)
    return path


# ---- Keras auto-numbered names -----------------------------------------------------------------


def test_one_builder_run_twice_pairs_its_auto_numbered_layers_by_name(tmp_path):
    """input_layer / input_layer_1 and global_average_pooling2d / global_average_pooling2d_1 are the same layers."""
    def build():
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Conv2D(4, 3)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(2)(x))

    keras.backend.clear_session()
    build().save(tmp_path / "a.keras")
    build().save(tmp_path / "b.keras")
    result = weightkit.diff(tmp_path / "a.keras", tmp_path / "b.keras")
    names = [(p.a.path, p.b.path) for p in result.pairs if p.a and p.b]
    assert ("input_layer", "input_layer_1") in names
    assert ("global_average_pooling2d", "global_average_pooling2d_1") in names
    assert one_sided(result) == [] and {p.matched_by for p in result.pairs} == {"name"}
    assert not result.differs and result.verdict == "same_architecture"


# ---- a Keras file and weightkit's own conversion -----------------------------------------------


def test_keras_file_and_its_conversion_have_the_same_layers_and_values(tmp_path):
    """ReLU6's Clip bounds and UpSampling2D's Resize scales are constants of the ONNX graph, not layers."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.UpSampling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3)(x)).save(tmp_path / "net.keras")
    weightkit.convert(tmp_path / "net.keras", tmp_path / "net.onnx")

    result = weightkit.diff(tmp_path / "net.keras", tmp_path / "net.onnx", values=True)
    assert one_sided(result) == []
    assert result.verdict == "same_architecture_and_values"
    report = weightkit.check(tmp_path / "net.keras", into=tmp_path / "net.onnx")
    assert not [f.message for f in report.findings if f.kind in ("missing", "unexpected")]


# ---- torch.onnx.export folds batch norms into convolutions ---------------------------------------


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    """torch_cnn (convolutions with bias) and torch_resnet (without) as state dicts and as their eval-mode
    exports, in which torch has folded every BatchNorm into the Conv before it."""
    folder = tmp_path_factory.mktemp("folded")
    for name, module in (("cnn", randomize_norms(torch_cnn())), ("resnet", randomize_norms(torch_resnet()))):
        torch.save(module.state_dict(), folder / f"{name}.pt")
        export(module, folder / f"{name}.onnx")
    return folder


@pytest.mark.parametrize("name, norms", [("cnn", 2), ("resnet", 9)])
def test_torch_checkpoint_and_its_folded_export_pair_every_layer_and_agree(folded, name, norms):
    with weightkit.load(folded / f"{name}.pt") as a, weightkit.load(folded / f"{name}.onnx") as b:
        assert not any(layer.kind == "batch_norm" for _, layer in b.walk())  # torch did fold them
        result = diff_models(a, b, values=True)
    assert one_sided(result) == []
    folds = [p for p in result.pairs if p.fold]
    assert len(folds) == norms and all(p.a.fold and p.a.fold.norm.kind == "batch_norm" for p in folds)
    notes = [c.detail for p in folds for c in p.changes if c.what == "folded"]
    assert len(notes) == norms and all("1e-05, PyTorch's default: the file does not record it" in n for n in notes)
    assert not [(p.a.path, c.role, c.detail) for p in result.pairs for c in p.changes if c.what == "values"]
    assert result.verdict == "same_architecture_and_values"


def test_a_changed_batch_norm_still_differs_after_folding(folded, tmp_path):
    state = torch.load(folded / "cnn.pt", weights_only=True)
    state["bn2.running_var"] = state["bn2.running_var"] * 2
    torch.save(state, tmp_path / "changed.pt")
    result = weightkit.diff(tmp_path / "changed.pt", folded / "cnn.onnx", values=True)
    changed = {p.a.fold.norm.path for p in result.pairs if p.fold and any(c.what == "values" for c in p.changes)}
    assert changed == {"bn2"} and result.verdict == "different"


@pytest.mark.parametrize("torch_eps, agree", [(1e-3, True), (1e-5, False)])
def test_epsilon_comes_from_the_keras_config(tmp_path, torch_eps, agree):
    """A Keras BatchNormalization records ε = 1e-3; a torch export of its weights folded with another ε differs."""
    keras.utils.set_random_seed(0)
    net = keras_cnn()
    for weight in net.weights:
        weight.assign(np.random.default_rng(1).uniform(0.5, 1.5, weight.shape).astype("float32"))
    net.save(tmp_path / "cnn.h5")
    module = torch_cnn()
    copy_keras_weights_to_torch(net, module)
    export(_with_eps(module, torch_eps), tmp_path / "cnn.onnx")
    result = weightkit.diff(tmp_path / "cnn.h5", tmp_path / "cnn.onnx", values=True)
    assert one_sided(result) == [] and len([p for p in result.pairs if p.fold]) == 2
    assert all("ε = 0.001 from the file" in c.detail for p in result.pairs for c in p.changes if c.what == "folded")
    assert (result.verdict == "same_architecture_and_values") is agree


def _with_eps(module, eps: float):
    for norm in (module.bn1, module.bn2):
        norm.eps = eps
    return module.eval()


def test_cli_diff_of_a_folded_export(capsys, folded):
    code, out, _ = run(capsys, "diff", folded / "cnn.pt", folded / "cnn.onnx", "--values")
    assert code == 0, out
    assert "folded" in out and "bn1" in out and "0 only in A, 0 only in B" in out
    assert "the two match in architecture and values" in out


def test_check_says_a_checkpoint_with_batch_norms_does_not_load_into_the_folded_graph(tmp_path):
    """A Keras file into a folded ONNX graph (cross-format semantics): one `folded` finding, no unexpected bn."""
    keras.utils.set_random_seed(0)
    net = keras_cnn()
    net.save(tmp_path / "cnn.h5")
    module = torch_cnn()
    copy_keras_weights_to_torch(net, module)
    export(_with_eps(module, 1e-3), tmp_path / "cnn.onnx")
    with weightkit.load(tmp_path / "cnn.h5") as a, weightkit.load(tmp_path / "cnn.onnx") as b:
        report = check_into(a, b)
    folded = [f for f in report.findings if f.kind == "folded"]
    assert len(folded) == 1 and "conv1 + bn1 → /conv1/Conv" in folded[0].message
    assert "ε = 0.001 from the file" in folded[0].fix and "do_constant_folding=False" in folded[0].fix
    assert not [f for f in report.findings if f.kind in ("missing", "unexpected")]
    # the unfolded kernels must not be renamed into the folded convolutions' initializers
    assert "conv1/kernel:0" not in report.renames and not any(k.startswith(("bn1", "conv1")) for k in report.renames)


def test_check_of_a_torch_checkpoint_into_its_folded_export(folded, capsys):
    """`check net.pt --into net.onnx` names every folded pair instead of 8 key errors with strict=False advice."""
    with weightkit.load(folded / "resnet.pt") as a, weightkit.load(folded / "resnet.onnx") as b:
        report = check_into(a, b)
    assert [f.kind for f in report.errors()] == ["folded"]
    assert "strict=False" not in " ".join(f.fix or "" for f in report.findings)
    assert report.findings[0].message.startswith("9 convolution(s)")
    assert "PyTorch's default" in report.findings[0].fix


def test_fix_into_a_keras_model_without_batch_norms_writes_the_folded_weights(tmp_path):
    """torch conv + BN into a Keras model of the folded network: the fixed file predicts as torch does."""
    module = randomize_norms(torch_cnn())
    torch.save(module.state_dict(), tmp_path / "cnn.pt")
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.ReLU()(layers.Conv2D(8, 3, padding="same", name="conv1")(inputs))
    x = layers.Conv2D(16, 1, name="pw")(layers.DepthwiseConv2D(3, padding="same", name="dw")(x))
    outputs = layers.Dense(10, name="fc")(layers.GlobalAveragePooling2D()(layers.ReLU()(x)))
    target = keras.Model(inputs, outputs)
    target.save(tmp_path / "folded.keras")
    with weightkit.load(tmp_path / "cnn.pt") as a, weightkit.load(tmp_path / "folded.keras") as b:
        report = check_into(a, b)
        assert [f.kind for f in report.findings if f.kind == "folded"] == ["folded"]
        assert "`--fix OUT` writes the folded weights" in report.findings[0].fix
        with fixed_checkpoint(a, b, report) as fixed:
            weightkit.save(fixed, tmp_path / "fixed.weights.h5")
    target.load_weights(tmp_path / "fixed.weights.h5")
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    with torch.no_grad():
        expected = module(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    assert np.abs(target.predict(x, verbose=0) - expected).max() < 1e-4


# ---- safetensors keeps no order ------------------------------------------------------------------


@pytest.fixture(scope="module")
def unordered(tmp_path_factory):
    """torch_cnn as safetensors (keys in alphabetical order), its unfolded export, and Keras with its own names."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("unordered")
    keras.utils.set_random_seed(0)
    named = keras_cnn()
    module = torch_cnn()
    copy_keras_weights_to_torch(named, module)
    module.eval()
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, folder / "cnn.safetensors")
    export(module, folder / "cnn.onnx", do_constant_folding=False)
    auto_named_cnn().save(folder / "auto.keras")
    return folder


def auto_named_cnn():
    """keras_cnn with the names Keras gives (conv2d, batch_normalization, ..., dense)."""
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inputs)))
    x = layers.Conv2D(16, 1)(layers.DepthwiseConv2D(3, padding="same")(x))
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.BatchNormalization()(x)))
    return keras.Model(inputs, layers.Dense(10)(x))


@pytest.mark.parametrize("other", ["cnn.onnx", "auto.keras"])
def test_safetensors_pairs_every_layer_with_a_file_of_other_names(unordered, other):
    result = weightkit.diff(unordered / "cnn.safetensors", unordered / other)
    assert one_sided(result) == []
    fc = next(p for p in result.pairs if p.a.path == "fc")
    assert fc.b.kind == "dense" and result.verdict == "same_architecture"


def test_safetensors_and_the_export_hold_the_same_values(unordered):
    result = weightkit.diff(unordered / "cnn.safetensors", unordered / "cnn.onnx", values=True)
    assert one_sided(result) == [] and result.verdict == "same_architecture_and_values"


# ---- one architecture at two input sizes ---------------------------------------------------------


def test_one_architecture_at_two_input_sizes_differs_by_its_input_shape(fixtures, tmp_path, capsys):
    """tf.keras MobileNetV2 at 32×32 against Keras 3's at 96×96: the layers pair, the input shape differs."""
    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10).save(
        tmp_path / "mnv2_96.keras")
    source = fixtures / "tfkeras" / "tfk_mobilenetv2_full.h5"
    result = weightkit.diff(source, tmp_path / "mnv2_96.keras")
    assert one_sided(result) == [] and not any(p.differs for p in result.pairs)
    assert [(s.where, s.what, s.a.shape, s.b.shape) for s in result.shapes] == [
        ("input", "reshaped", (None, 32, 32, 3), (None, 96, 96, 3))]
    assert result.verdict == "different"
    code, out, _ = run(capsys, "diff", source, tmp_path / "mnv2_96.keras")
    assert code == 1 and "input 0: reshaped input_1 (None, 32, 32, 3) → input_layer" in out
