"""merge onto the heads users build, checked with real Keras, and the read-back that vouches for every merged file.

Issue #11 item 2: a ``Sequential`` head merged onto a functional backbone gave a file that
``keras.saving.load_model`` refused (``KeyError: 'name'``), and ``merge`` exited 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import weightkit
from weightkit.cli import main
from weightkit.errors import WeightkitError

keras = pytest.importorskip("keras")

FEATURES = (2, 2, 1280)  # MobileNetV2's out_relu at a 64x64 input
LAYERS = keras.layers


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A MobileNetV2 without its top, saved both ways, with an input batch and the features it puts out."""
    folder = tmp_path_factory.mktemp("notop")
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, weights=None, include_top=False)
    model.save(folder / "notop.keras")
    model.save(folder / "notop.h5")
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype("float32")
    return folder, x, model.predict(x, verbose=0)


def sequential_head():
    """The transfer-learning head of the Keras guides."""
    head = keras.Sequential([LAYERS.GlobalAveragePooling2D(), LAYERS.Dense(5, name="logits")])
    head.build((None, *FEATURES))
    return head


def nested_sequential_head():
    """A Sequential head with a block of its own: the layer after the block calls a model."""
    block = keras.Sequential([LAYERS.Dense(16, activation="relu", name="block_dense"),
                              LAYERS.Dense(8, name="block_out")], name="block")
    head = keras.Sequential([LAYERS.GlobalAveragePooling2D(name="gap"), block, LAYERS.Dense(5, name="nested_logits")])
    head.build((None, *FEATURES))
    return head


def head_ending_in_a_model():
    """A Sequential head whose output is a nested functional model's (Keras counts that call differently)."""
    inputs = keras.Input((1280,))
    classifier = keras.Model(inputs, LAYERS.Dense(5, name="classifier_dense")(inputs), name="classifier")
    head = keras.Sequential([LAYERS.GlobalAveragePooling2D(name="gap_last"), classifier])
    head.build((None, *FEATURES))
    return head


def functional_head():
    inputs = keras.Input(FEATURES)
    x = LAYERS.GlobalAveragePooling2D(name="pool")(inputs)
    x = LAYERS.Dropout(0.2, name="drop")(x)
    return keras.Model(inputs, LAYERS.Dense(5, activation="softmax", name="probs")(x), name="functional_head")


def functional_nested_head():
    block = keras.Sequential([LAYERS.Dense(16, activation="relu", name="fblock_dense")], name="fblock")
    inputs = keras.Input(FEATURES)
    x = block(LAYERS.GlobalAveragePooling2D(name="fpool")(inputs))
    return keras.Model(inputs, LAYERS.Dense(5, name="flogits")(x), name="functional_nested_head")


def saved_head(make, folder, suffix):
    """``make()``'s head saved as ``suffix``, and the head itself (the oracle)."""
    keras.utils.set_random_seed(1)
    head = make()
    head.save(folder / f"{make.__name__}{suffix}")
    return folder / f"{make.__name__}{suffix}", head


def assert_computes(path, x, expected):
    """The file loads in Keras and computes ``expected`` from ``x``."""
    got = keras.saving.load_model(path).predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("back_suffix", [".keras", ".h5"])
@pytest.mark.parametrize("head_suffix", [".keras", ".h5"])
def test_merge_cli_onto_a_sequential_head_writes_a_model_keras_loads(backbone, tmp_path, capsys, back_suffix,
                                                                     head_suffix):
    """The issue's case: `weightkit merge NOTOP HEAD -o OUT`, then load_model(OUT) predicts head(backbone(x))."""
    folder, x, features = backbone
    head_path, head = saved_head(sequential_head, tmp_path, head_suffix)
    out = tmp_path / f"merged{back_suffix}"
    assert main(["merge", str(folder / f"notop{back_suffix}"), str(head_path), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert_computes(out, x, head.predict(features, verbose=0))


@pytest.mark.parametrize("make, back_suffix, head_suffix", [
    (nested_sequential_head, ".keras", ".h5"), (head_ending_in_a_model, ".h5", ".keras"),
    (functional_head, ".keras", ".keras"), (functional_nested_head, ".h5", ".h5")],
    ids=["nested-sequential", "ending-in-a-model", "functional", "functional-nested"])
def test_merged_heads_of_every_class_load_and_compute_head_of_backbone(backbone, tmp_path, make, back_suffix,
                                                                       head_suffix):
    folder, x, features = backbone
    head_path, head = saved_head(make, tmp_path, head_suffix)
    out = tmp_path / f"merged{back_suffix}"
    with weightkit.merge(folder / f"notop{back_suffix}", head_path, out) as result:
        assert not result.report.errors()
    assert_computes(out, x, head.predict(features, verbose=0))


def test_a_merged_sequential_head_model_converts_and_runs_in_onnxruntime(backbone, tmp_path):
    import onnxruntime as ort

    folder, x, _ = backbone
    head_path, _ = saved_head(sequential_head, tmp_path, ".keras")
    out = tmp_path / "merged.h5"
    weightkit.merge(folder / "notop.h5", head_path, out).close()
    weightkit.convert(out, tmp_path / "merged.onnx")
    session = ort.InferenceSession(tmp_path / "merged.onnx")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, keras.saving.load_model(out).predict(x, verbose=0), atol=1e-4)


@pytest.mark.slow
def test_resnet50_without_top_takes_a_sequential_head(tmp_path):
    keras.utils.set_random_seed(0)
    resnet = keras.applications.ResNet50(input_shape=(32, 32, 3), weights=None, include_top=False)
    resnet.save(tmp_path / "resnet.h5")
    head = keras.Sequential([LAYERS.GlobalAveragePooling2D(), LAYERS.Dense(3, name="resnet_logits")])
    head.build((None, 1, 1, 2048))
    head.save(tmp_path / "head.keras")
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    weightkit.merge(tmp_path / "resnet.h5", tmp_path / "head.keras", tmp_path / "merged.h5").close()
    assert_computes(tmp_path / "merged.h5", x, head.predict(resnet.predict(x, verbose=0), verbose=0))


# ---- the read-back ---------------------------------------------------------------------------


def _writing(monkeypatch, change):
    """Make merge write ``change(model)`` instead of the model it merged (a writer with a bug)."""
    from weightkit.ops import merge as merge_module

    real_write = merge_module.write

    def broken(model, path, format=None, *, force=False):
        real_write(change(model), path, format, force=force)

    monkeypatch.setattr(merge_module, "write", broken)


def _without_last_layer(model):
    return dataclasses.replace(model, layers=model.layers[:-1], _held=[])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_written_keras_file_missing_a_layer_fails_the_merge_and_is_removed(backbone, tmp_path, capsys,
                                                                              monkeypatch, suffix):
    folder, _, _ = backbone
    head_path, _ = saved_head(sequential_head, tmp_path, suffix)
    _writing(monkeypatch, _without_last_layer)
    out = tmp_path / f"merged{suffix}"
    with pytest.raises(WeightkitError, match="does not read back.*'logits' is missing"):
        weightkit.merge(folder / f"notop{suffix}", head_path, out)
    assert not out.exists()
    assert main(["merge", str(folder / f"notop{suffix}"), str(head_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not read back as the merged model" in err and "bug in weightkit" in err
    assert "Traceback" not in err and not out.exists()


def test_a_written_graph_whose_head_nothing_calls_fails_the_merge(backbone, tmp_path, capsys, monkeypatch):
    """Today's bug, as the read-back sees it: head layers without inbound nodes."""
    folder, _, _ = backbone
    head_path, _ = saved_head(sequential_head, tmp_path, ".keras")

    def uncalled_head(model):
        config = model.config
        broken = {**config, "config": {**config["config"], "layers": [
            {k: v for k, v in entry.items() if k != "inbound_nodes"} if entry["config"]["name"] == "logits" else entry
            for entry in config["config"]["layers"]]}}
        return dataclasses.replace(model, config=broken, _held=[])

    _writing(monkeypatch, uncalled_head)
    out = tmp_path / "merged.keras"
    assert main(["merge", str(folder / "notop.keras"), str(head_path), "-o", str(out)]) == 2
    assert "layer 'logits' has no inbound nodes" in capsys.readouterr().err
    assert not out.exists()


def _torch_parts(folder, suffix):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
            self.head = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.head(self.backbone(x).mean(dim=(2, 3)))

    torch.manual_seed(0)
    net = Net().eval()
    if suffix == ".onnx":
        torch.onnx.export(net, torch.zeros(1, 3, 8, 8), folder / "net.onnx", dynamo=False,
                          input_names=["x"], output_names=["y"])
    elif suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "net.safetensors")
    else:
        torch.save(net.state_dict(), folder / "net.pt")
    return folder / f"net{suffix}"


def _keras_weights_parts(folder, suffix):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from tests.nets import keras_cnn

    with h5py.File(folder / "net.h5", "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, keras_cnn())
    return folder / "net.h5"


@pytest.mark.parametrize("suffix, make", [(".pt", _torch_parts), (".safetensors", _torch_parts),
                                          (".onnx", _torch_parts), (".h5", _keras_weights_parts)],
                         ids=["torch", "safetensors", "onnx", "keras-weights-h5"])
def test_merge_of_every_format_reads_back_and_a_dropped_layer_is_caught(tmp_path, monkeypatch, capsys, suffix, make):
    path = make(tmp_path, suffix)
    assert main(["split", str(path), "--out", str(tmp_path / "parts")]) == 0
    parts = [str(tmp_path / "parts" / f"{side}{suffix}") for side in ("backbone", "head")]
    capsys.readouterr()
    assert main(["merge", *parts, "-o", str(tmp_path / f"merged{suffix}")]) == 0
    assert not weightkit.diff(path, tmp_path / f"merged{suffix}", values=True).differs
    if suffix == ".onnx":
        return  # the ONNX writer writes the graph it was given, whatever the layers say
    _writing(monkeypatch, _without_last_layer)
    assert main(["merge", *parts, "-o", str(tmp_path / f"broken{suffix}")]) == 2
    assert "is missing" in capsys.readouterr().err
    assert not (tmp_path / f"broken{suffix}").exists()
