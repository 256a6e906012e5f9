"""One interface across commands (issue #12): every JSON document versioned and in one vocabulary,
``merge --force`` apart from ``--ignore-junction``, tables that stay rows on an 80-column terminal,
PyTorch parameters counted as torch counts them, a merge result that saves, and ``check --fix`` that
says what it wrote."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import weightkit
from tests.cli import run
from tests.nets import keras_cnn, torch_cnn
from weightkit.cli import main
from weightkit.ops.inspect import SCHEMA_VERSION
from weightkit.ops.merge import merge_models

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

NESTED = "tfkeras/tfk_cnn_full.h5"  # tf.keras: a nested model (inner_block) inside the functional one


def document(capsys, *argv) -> tuple[int, dict]:
    code, out, err = run(capsys, *argv, "--json")
    assert err == "" or code != 0, err
    return code, json.loads(out)


@pytest.fixture(scope="module")
def torch_parts(tmp_path_factory):
    """torch_cnn's state_dict cut at ``fc.`` into two files, and a head made for 32 channels, not 16."""
    folder = tmp_path_factory.mktemp("torch_parts")
    net = torch_cnn()
    torch.save(net.state_dict(), folder / "cnn.pt")
    torch.save({"fc.weight": torch.zeros(4, 32), "fc.bias": torch.zeros(4)}, folder / "misfit.pt")
    assert main(["split", str(folder / "cnn.pt"), "--head-prefix", "fc.", "--out", str(folder), "--json"]) == 0
    return folder


# ---- JSON: one schema version, one vocabulary --------------------------------------------------------


def test_split_and_merge_documents_carry_the_schema_version(capsys, torch_parts, tmp_path):
    folder = torch_parts
    code, listed = document(capsys, "split", folder / "cnn.pt", "--list-boundaries")
    assert code == 0 and isinstance(listed, dict) and listed["schema_version"] == SCHEMA_VERSION
    assert listed["file"] == str(folder / "cnn.pt") and isinstance(listed["boundaries"], list)
    code, split = document(capsys, "split", folder / "cnn.pt", "--head-prefix", "fc.", "--out", tmp_path)
    assert code == 0 and split["schema_version"] == SCHEMA_VERSION
    assert split["backbone"] == str(tmp_path / "backbone.pt") and split["format"] == "torch-zip"
    code, merged = document(capsys, "merge", tmp_path / "backbone.pt", tmp_path / "head.pt", "-o", tmp_path / "m.pt")
    assert code == 0 and merged["schema_version"] == SCHEMA_VERSION
    assert merged["output"] == str(tmp_path / "m.pt") and merged["format"] == "torch-zip"
    assert merged["junction_ignored"] is False and merged["check"]["question"] == "junction"


def test_every_command_names_layers_by_path_and_classes_by_type(capsys, fixtures, tmp_path):
    source = fixtures / NESTED
    _, inspected = document(capsys, "inspect", source)
    nested = next(layer for layer in inspected["layers"] if layer["layers"])
    assert nested["layers"][0]["path"] == f"{nested['path']}/{nested['layers'][0]['path'].split('/')[-1]}"
    assert "inner_block/inner_conv" in {sub["path"] for sub in nested["layers"]}
    assert all("name" not in layer and "type" in layer for layer in inspected["layers"])
    _, converted = document(capsys, "convert", source, "-o", tmp_path / "m.onnx")
    layers = converted["conversion"]["layers"]
    assert converted["schema_version"] == inspected["schema_version"] == SCHEMA_VERSION
    assert layers[0]["path"] == "stem_conv" and layers[0]["type"] == "Conv2D" and "class_name" not in layers[0]
    _, diffed = document(capsys, "diff", source, source)
    unit = diffed["pairs"][0]["a"]
    assert diffed["schema_version"] == SCHEMA_VERSION and {"path", "type"} <= set(unit)


def test_the_batch_dimension_is_named_alike_in_inspect_split_and_convert(capsys, fixtures, tmp_path):
    source = fixtures / NESTED
    _, inspected = document(capsys, "inspect", source)
    _, converted = document(capsys, "convert", source, "-o", tmp_path / "m.onnx")
    _, onnx_inspected = document(capsys, "inspect", tmp_path / "m.onnx")
    _, listed = document(capsys, "split", source, "--list-boundaries")
    batch = {inspected["inputs"][0]["shape"][0], inspected["outputs"][0]["shape"][0],
             converted["conversion"]["inputs"][0]["shape"][0], onnx_inspected["inputs"][0]["shape"][0],
             listed["boundaries"][0]["shape"][0]}
    assert batch == {"batch"}
    assert inspected["inputs"][0]["shape"][1:] == [32, 32, 3]


def test_inspect_json_with_a_view_option_prints_the_document(capsys, fixtures):
    code, tensors = document(capsys, "inspect", fixtures / NESTED, "--tensors")
    assert code == 0 and tensors["schema_version"] == SCHEMA_VERSION


# ---- merge: --force replaces OUT, --ignore-junction joins a head that does not fit ---------------------


def test_merge_force_replaces_the_output_but_does_not_skip_the_junction_check(capsys, torch_parts, tmp_path):
    backbone, misfit = torch_parts / "backbone.pt", torch_parts / "misfit.pt"
    code, _, err = run(capsys, "merge", backbone, misfit, "-o", tmp_path / "m.pt", "--force")
    assert code == 2 and "does not fit" in err and "--ignore-junction" in err and not (tmp_path / "m.pt").exists()
    code, merged = document(capsys, "merge", backbone, misfit, "-o", tmp_path / "m.pt", "--ignore-junction")
    assert code == 0 and merged["junction_ignored"] is True and merged["check"]["ok"] is False
    assert torch.load(tmp_path / "m.pt", weights_only=True)["fc.weight"].shape == (4, 32)
    code, _, err = run(capsys, "merge", backbone, torch_parts / "head.pt", "-o", tmp_path / "m.pt")
    assert code == 2 and "already exists" in err
    code, _, _ = run(capsys, "merge", backbone, torch_parts / "head.pt", "-o", tmp_path / "m.pt", "--force")
    assert code == 0 and torch.load(tmp_path / "m.pt", weights_only=True)["fc.weight"].shape == (10, 16)


def test_library_merge_keeps_the_two_options_apart(torch_parts, tmp_path):
    backbone, misfit = torch_parts / "backbone.pt", torch_parts / "misfit.pt"
    with pytest.raises(weightkit.UsageError, match="does not fit"):
        weightkit.merge(backbone, misfit, tmp_path / "m.pt", force=True)
    with weightkit.merge(backbone, misfit, tmp_path / "m.pt", ignore_junction=True) as result:
        assert result.output == str(tmp_path / "m.pt") and result.output_format == "torch-zip"
    with weightkit.load(backbone) as b, weightkit.load(misfit) as h:
        with pytest.raises(weightkit.UsageError, match="does not fit"):
            merge_models(b, h)
        with merge_models(b, h, ignore_junction=True) as joined:
            assert joined.report.errors() and "fc" in {layer.name for layer in joined.model.layers}


def test_save_takes_a_merge_result_and_refuses_a_split_result_in_a_sentence(torch_parts, tmp_path):
    with weightkit.merge(torch_parts / "backbone.pt", torch_parts / "head.pt") as result:
        weightkit.save(result, tmp_path / "merged.pt")
    expected = torch_cnn().state_dict()
    saved = torch.load(tmp_path / "merged.pt", weights_only=True)
    assert set(saved) == set(expected) and all(torch.equal(saved[k], expected[k]) for k in expected)
    with weightkit.split(torch_parts / "cnn.pt", head_prefixes=["fc."]) as parts:
        with pytest.raises(weightkit.UsageError, match="result.backbone and result.head"):
            weightkit.save(parts, tmp_path / "parts.pt")


# ---- tables in an 80-column terminal ---------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mobilenet")
    keras.utils.set_random_seed(0)
    for classes in (1000, 10):
        model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=classes)
        model.save(folder / f"mnv2_{classes}.h5")
    return folder, [layer.name for layer in model.layers]


def table_rows(text: str) -> list[str]:
    """The lines between a table's rule and the blank line that ends it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("───"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].strip())
    return lines[start + 1:end]


def test_inspect_at_80_columns_keeps_each_layer_on_one_line_with_distinct_names(capsys, monkeypatch, mobilenets):
    folder, names = mobilenets
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "inspect", folder / "mnv2_1000.h5")
    rows = table_rows(out)
    assert code == 0 and len(rows) == len(names) and all(len(line) <= 80 for line in out.splitlines())
    shown = [re.match(r"\s*(\d+)\s+(\S+)", row).groups() for row in rows]
    assert [int(index) for index, _ in shown] == list(range(len(names)))
    assert len({name for _, name in shown}) == len(names)
    assert any("…" in name for _, name in shown) and "(1280,)×4" in out


def test_diff_at_80_columns_keeps_each_pair_on_one_line_with_distinct_names(capsys, monkeypatch, mobilenets):
    folder, names = mobilenets
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "diff", "--all", folder / "mnv2_1000.h5", folder / "mnv2_10.h5")
    rows = table_rows(out)
    assert code == 1 and len(rows) == len(names) and all(len(line) <= 80 for line in out.splitlines())
    assert len({row.split()[0] for row in rows}) == len(names)
    assert "reshaped" in next(row for row in rows if row.split()[0] == "predictions")


# ---- PyTorch parameters and buffers ---------------------------------------------------------------


@pytest.mark.parametrize("saved", ["state_dict", "torchscript", "safetensors"])
def test_torch_parameters_are_counted_as_torch_counts_them(capsys, tmp_path, saved):
    net = torch_cnn()
    path = tmp_path / ("cnn.safetensors" if saved == "safetensors" else "cnn.pt")
    if saved == "safetensors":
        from safetensors.torch import save_file

        save_file(net.state_dict(), path)
    elif saved == "torchscript":
        torch.jit.script(net).save(path)
    else:
        torch.save(net.state_dict(), path)
    parameters = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() for b in net.buffers())
    _, inspected = document(capsys, "inspect", path)
    assert (inspected["totals"]["params"], inspected["totals"]["buffers"]) == (parameters, buffers)
    bn1 = next(layer for layer in inspected["layers"] if layer["path"] == "bn1")
    assert bn1["params"] == sum(p.numel() for p in net.bn1.parameters())
    code, out, _ = run(capsys, "inspect", path)
    assert code == 0 and re.search(rf"parameters\s+{parameters:,}\b", out) and re.search(rf"buffers\s+{buffers}\b", out)


def test_keras_counts_every_weight_and_has_no_buffers(capsys, tmp_path):
    model = keras_cnn()
    model.save(tmp_path / "cnn.keras")
    _, inspected = document(capsys, "inspect", tmp_path / "cnn.keras")
    assert inspected["totals"]["params"] == model.count_params() and inspected["totals"]["buffers"] is None


# ---- check --fix says what it wrote ---------------------------------------------------------------


def test_check_fix_reports_the_written_file_and_exits_0_when_it_loads(capsys, tmp_path):
    net = torch_cnn()
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "ckpt.pt")
    torch.save(net.state_dict(), tmp_path / "model.pt")
    code, checked = document(capsys, "check", tmp_path / "ckpt.pt", "--into", tmp_path / "model.pt",
                             "--fix", tmp_path / "fixed.pt")
    assert checked["ok"] is False  # the checkpoint as given does not load
    assert checked["fix"] == {"output": str(tmp_path / "fixed.pt"), "format": "torch-zip", "kept_layers": [],
                              "ok": True, "complete": True, "findings": []}
    assert code == 0
    torch_cnn().load_state_dict(torch.load(tmp_path / "fixed.pt", weights_only=True), strict=True)


def test_check_fix_exits_1_and_names_the_layers_that_kept_the_model_values(capsys, tmp_path):
    keras.utils.set_random_seed(1)
    source = keras_cnn()
    keras.Model(source.input, source.get_layer("pool").output).save(tmp_path / "notop.keras")
    keras_cnn().save(tmp_path / "model.keras")
    code, checked = document(capsys, "check", tmp_path / "notop.keras", "--into", tmp_path / "model.keras",
                             "--fix", tmp_path / "fixed.weights.h5")
    fix = checked["fix"]
    assert code == 1 and fix["kept_layers"] == ["fc"] and fix["ok"] is True and fix["complete"] is False
    assert fix["format"] == "keras-v3-weights" and fix["output"] == str(tmp_path / "fixed.weights.h5")
    model = keras.saving.load_model(tmp_path / "model.keras")
    model.load_weights(tmp_path / "fixed.weights.h5")
    assert np.array_equal(np.asarray(model.get_layer("conv1").kernel), np.asarray(source.get_layer("conv1").kernel))
    code, out, _ = run(capsys, "check", tmp_path / "notop.keras", "--into", tmp_path / "model.keras",
                       "--fix", tmp_path / "fixed.weights.h5", "--force")
    assert code == 1 and f"wrote {tmp_path / 'fixed.weights.h5'} (keras-v3-weights)" in out and ": fc\n" in out
