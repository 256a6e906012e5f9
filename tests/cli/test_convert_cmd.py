"""``weightkit convert`` end to end: the summary, --json, --verify and its exit codes, one-line errors."""

from __future__ import annotations

import json

import onnx
import pytest

from tests.cli import run

CNN = "tfkeras/tfk_cnn_full.h5"


@pytest.fixture
def keras():
    return pytest.importorskip("keras")



def test_convert_prints_a_summary(capsys, fixtures, tmp_path):
    code, out, err = run(capsys, "convert", fixtures / CNN, "-o", tmp_path / "cnn.onnx")
    assert code == 0 and err == ""
    assert "cnn.onnx" in out and "opset 20" in out and "image (batch, 32, 32, 3)" in out and "probs (batch, 10)" in out
    onnx.checker.check_model(onnx.load(tmp_path / "cnn.onnx"), full_check=True)


def test_convert_json_and_options(capsys, fixtures, tmp_path):
    code, out, _ = run(capsys, "convert", fixtures / CNN, "-o", tmp_path / "cnn.onnx", "--json", "--nchw",
                       "--opset", "17", "--batch-size", "4")
    document = json.loads(out)
    assert code == 0 and document["schema_version"] == 2
    conversion = document["conversion"]
    assert conversion["opset"] == 17 and conversion["inputs"][0]["shape"] == [4, 3, 32, 32]
    assert conversion["layers"][0]["path"] == "stem_conv"


def test_weights_only_with_arch(capsys, fixtures, tmp_path):
    folder = fixtures / "tfkeras"
    code, out, _ = run(capsys, "convert", folder / "tfk_cnn_weights.h5", "--arch", folder / "tfk_cnn_full.h5",
                       "-o", tmp_path / "w.onnx")
    assert code == 0 and "architecture" in out
    code, _, err = run(capsys, "convert", folder / "tfk_cnn_weights.h5", "-o", tmp_path / "x.onnx")
    assert code == 2 and "weights only" in err and "--arch" in err and "Traceback" not in err


def test_existing_output_and_force(capsys, fixtures, tmp_path):
    output = tmp_path / "cnn.onnx"
    output.write_text("keep")
    code, _, err = run(capsys, "convert", fixtures / CNN, "-o", output)
    assert code == 2 and "--force" in err and output.read_text() == "keep"
    assert run(capsys, "convert", fixtures / CNN, "-o", output, "--force")[0] == 0


def test_verify_ok_and_skipped(keras, capsys, fixtures, tmp_path):
    inputs = keras.Input((5, 5, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(tmp_path / "m.keras")
    code, out, _ = run(capsys, "convert", tmp_path / "m.keras", "-o", tmp_path / "m.onnx", "--verify")
    assert code == 0 and "verify" in out and "ok: largest difference" in out and "of the output's scale" in out
    code, out, _ = run(capsys, "convert", fixtures / CNN, "-o", tmp_path / "cnn.onnx", "--verify", "--json")
    verification = json.loads(out)["verification"]
    assert code == 0 and verification["ran"] is False and "cannot load" in verification["reason"]


def test_verify_failure_exits_1(capsys, fixtures, tmp_path, monkeypatch):
    from weightkit.keras2onnx import verify as verify_module

    failed = verify_module.Verification(True, max_abs_diff=0.5, max_rel_diff=0.5, max_abs_output=1.0, passed=False,
                                        keras="Keras 3")
    monkeypatch.setattr(verify_module, "verify", lambda *args, **kwargs: failed)
    code, out, _ = run(capsys, "convert", fixtures / CNN, "-o", tmp_path / "m.onnx", "--verify")
    assert code == 1 and "FAILED, above tolerance" in out and "0.5" in out
    assert (tmp_path / "m.onnx").exists()  # kept for inspection


def test_unsupported_layers_one_line(keras, capsys, tmp_path):
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: t * 3, name="triple")(inputs)
    keras.Model(inputs, x).save(tmp_path / "l.keras")
    code, _, err = run(capsys, "convert", tmp_path / "l.keras", "-o", tmp_path / "l.onnx")
    assert code == 2 and err.count("\n") == 1 and "triple (Lambda)" in err
    assert not (tmp_path / "l.onnx").exists()


@pytest.mark.parametrize("content", [b"", b"not a model at all"])
def test_bad_files_are_one_line(capsys, tmp_path, content):
    (tmp_path / "bad.h5").write_bytes(content)
    code, _, err = run(capsys, "convert", tmp_path / "bad.h5", "-o", tmp_path / "bad.onnx")
    assert code == 2 and err.startswith("weightkit: error:") and err.count("\n") == 1


def test_verify_failure_names_where_keras_departs_from_tensorflow(keras, capsys, tmp_path):
    """Same-padded average pooling on an even input: the ONNX follows TensorFlow, Keras's torch backend does not."""
    inputs = keras.Input((8, 8, 2))
    outputs = keras.layers.AveragePooling2D(3, strides=2, padding="same", name="pool")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "pool.keras")
    code, out, _ = run(capsys, "convert", tmp_path / "pool.keras", "-o", tmp_path / "pool.onnx", "--verify")
    text = " ".join(out.split())
    assert code == 1 and "FAILED" in text and "pool (AveragePooling2D" in text and "TensorFlow" in text
