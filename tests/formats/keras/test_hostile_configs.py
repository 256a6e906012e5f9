"""Hostile Keras configs and .keras archives: one clear WeightkitError naming the file and the field."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

import weightkit
from tests.hostile.keras_cases import (
    _deflated,
    _nested_models,
    dense_config,
    keras_archive,
    legacy_config,
    legacy_h5,
)
from weightkit import limits
from weightkit.arch.keras import cut_config, cut_points, graph_problems
from weightkit.errors import FileFormatError, UnsafeFileError, UsageError, WeightkitError
from weightkit.formats.keras.arch_file import read_architecture
from weightkit.formats.keras.config import ConfigError, parse_config
from weightkit.formats.keras.shapes import infer_shapes, output_specs

_BAD_VALUES: list[Any] = [None, 0, -1, 2**70, 1.5, True, "x", [], {}, [1, "a"], {"a": 1}, [[]], [None], ["relu"],
                          {"class_name": 3}, [2**64, 2**64]]


def _functional() -> dict[str, Any]:
    def node(source: str) -> dict[str, Any]:
        return {"args": [{"class_name": "__keras_tensor__", "config": {"shape": [None, 8], "dtype": "float32",
                                                                       "keras_history": [source, 0, 0]}}],
                "kwargs": {}}
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "name": "x", "inbound_nodes": [],
               "config": {"batch_shape": [None, 8], "dtype": "float32", "name": "x"}},
              {"module": "keras.layers", "class_name": "Dense", "name": "a", "inbound_nodes": [node("x")],
               "config": {"name": "a", "units": 8}},
              {"module": "keras.layers", "class_name": "Reshape", "name": "r", "inbound_nodes": [node("a")],
               "config": {"name": "r", "target_shape": [2, 4]}},
              {"module": "keras.layers", "class_name": "Flatten", "name": "f", "inbound_nodes": [node("r")],
               "config": {"name": "f"}},
              {"module": "keras.layers", "class_name": "Dense", "name": "b", "inbound_nodes": [node("f")],
               "config": {"name": "b", "units": 2, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                                            "config": {"name": "float32"}}}}]
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": "m", "layers": layers, "input_layers": [["x", 0, 0]], "output_layers": [["b", 0, 0]]}}


def _conv_legacy() -> dict[str, Any]:
    return legacy_config({"class_name": "Convolution2D", "config": {"name": "c", "nb_filter": 4, "nb_row": 3,
                                                                    "nb_col": 3, "dim_ordering": "tf",
                                                                    "border_mode": "same", "subsample": [1, 1]}},
                         input_shape=[None, 8, 8, 3])


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found += _paths(child, (*path, key))
    return found


def _with(config: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return copy.deepcopy(value)
    changed = copy.deepcopy(config)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = copy.deepcopy(value)
    return changed


def _exercise(config: Any) -> None:
    """Every config reader weightkit has, on ``config``: parse, shapes, cut points, cutting, graph checks."""
    try:
        root = parse_config(config)
    except ConfigError as exc:
        assert str(exc)
        return
    root.input_specs()
    infer_shapes(root)
    output_specs(root)
    if not isinstance(config, dict) or not isinstance(config.get("config"), (dict, list)):
        return
    graph_problems(config)
    for point in cut_points(config)[:3]:
        try:
            cut_config(config, point, head_input_shape=(8,))
        except UsageError:
            pass


@pytest.mark.parametrize("make", [dense_config, _functional, legacy_config, _conv_legacy])
def test_every_field_of_a_config_set_to_a_wrong_type_is_a_config_error_or_read(make):
    """A fast, deterministic form of the issue's mutation fuzz: each path of the config, three wrong values."""
    config = make()
    rng = random.Random(13)
    for path in _paths(config):
        for value in rng.sample(_BAD_VALUES, 4):
            mutated = _with(config, path, value)
            try:
                _exercise(mutated)
            except WeightkitError:
                pass
            except Exception as exc:  # noqa: BLE001  # the test's point: name the path that raised it
                pytest.fail(f"{'.'.join(map(str, path))} = {value!r}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize(("path", "value", "field"), [
    (("config", "layers"), "layers", "'layers' as a string"),
    (("config", "layers", 1, "config"), [1, 2], None),
    (("config", "layers", 1, "config", "name"), 12, "config.layers[1].config.name"),
    (("config", "layers", 1, "config", "units"), "four", "config.layers[1].config.units"),
    (("config", "layers", 1, "config", "dtype"), {"class_name": 3}, "config.layers[1].config.dtype.class_name"),
    (("config", "layers", 0, "config", "batch_shape"), [None, -8], "config.layers[0].config.batch_shape[1]"),
    (("config", "layers", 0, "config", "batch_shape"), [None, 2**70], "batch_shape[1]"),
    (("config", "layers", 0, "config", "batch_shape"), [None, True], "batch_shape[1]"),
    (("config", "layers", 1, "inbound_nodes"), "x", "config.layers[1].inbound_nodes"),
])
def test_load_names_the_file_and_the_bad_field(tmp_path, path, value, field):
    archive = keras_archive(tmp_path, _with(dense_config(), path, value))
    with pytest.raises(FileFormatError) as error:
        weightkit.load(archive)
    assert str(archive) in str(error.value) and "config.json" in str(error.value)
    assert field is None or field in str(error.value)
    assert isinstance(error.value.__cause__, ConfigError)


def test_legacy_h5_config_of_wrong_types_is_a_file_format_error(tmp_path):
    config = legacy_config()
    config["config"]["layers"][1]["config"]["dim_ordering"] = ["th"]
    config["config"]["layers"][1]["config"]["units"] = 4.5
    with pytest.raises(FileFormatError, match=r"units is a number \(4.5\), not a whole number"):
        weightkit.load(legacy_h5(tmp_path, config))


def test_a_real_config_still_parses_unchanged():
    root = parse_config(_functional())
    assert [layer.name for layer in root.layers] == ["x", "a", "r", "f", "b"]
    assert infer_shapes(root)["b"] == (None, 2)


# --- JSON in .keras archives and architecture files --------------------------------------------------------

def test_config_json_over_the_json_limit_is_refused_by_its_declared_size(tmp_path, monkeypatch):
    text = json.dumps(dense_config()) + " " * 5000
    archive = keras_archive(tmp_path, config_member=_deflated("config.json", text.encode()))
    monkeypatch.setenv(limits.JSON_BYTES.env, "4096")
    with pytest.raises(UnsafeFileError, match="json_bytes") as error:
        weightkit.load(archive)
    assert "WEIGHTKIT_MAX_JSON_BYTES" in str(error.value)
    monkeypatch.setenv(limits.JSON_BYTES.env, "100000")
    with weightkit.load(archive) as model:  # raised: read
        assert "d" in [layer.name for layer in model.layers]


def test_config_json_that_decodes_past_its_declared_size_stops_at_the_limit(tmp_path, monkeypatch):
    name, method, data, crc, _ = _deflated("config.json", b"[" + b"0," * 100_000 + b"0]")
    archive = keras_archive(tmp_path, config_member=(name, method, data, crc, 1000))  # declares 1000 bytes
    monkeypatch.setenv(limits.JSON_BYTES.env, "5000")
    with pytest.raises(WeightkitError) as error:
        weightkit.load(archive)
    assert str(archive) in str(error.value)


def test_json_of_empty_lists_is_refused_by_the_entries_limit(tmp_path):
    archive = keras_archive(tmp_path, config_member=_deflated("config.json", b"[" + b"[]," * 5000 + b"[]]"))
    with limits.raised(entries=1000), pytest.raises(UnsafeFileError, match="entries"):
        weightkit.load(archive)


@pytest.mark.parametrize("member", ["config", "metadata"])
def test_deep_json_in_a_keras_archive_is_refused_by_the_nesting_limit(tmp_path, member):
    deep = "[" * 50_000 + "]" * 50_000
    archive = keras_archive(tmp_path, **{member: deep})
    with pytest.raises(UnsafeFileError, match="nesting"):
        weightkit.load(archive)


def test_nested_models_deeper_than_the_nesting_limit_are_refused(tmp_path):
    archive = keras_archive(tmp_path, _nested_models(300))
    with pytest.raises(UnsafeFileError, match="nesting"):
        weightkit.load(archive)


def test_metadata_of_wrong_types_is_ignored(tmp_path):
    archive = keras_archive(tmp_path, metadata={"keras_version": [3], "date_saved": {"a": 1}})
    with weightkit.load(archive) as model:
        assert model.framework_version is None and "date_saved" not in model.metadata


def test_architecture_file_json_is_parsed_under_the_limits(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(UnsafeFileError, match="nesting"):
        read_architecture(deep)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(json.dumps(_with(dense_config(), ("config", "layers", 1, "name"), 5))))
    with pytest.raises(FileFormatError, match=r"config.layers\[1\].name is a number"):
        read_architecture(wrong)
    big = tmp_path / "big.json"
    big.write_text(json.dumps(dense_config()) + " " * 3000)
    with limits.raised(json_bytes=1000), pytest.raises(UnsafeFileError, match="json_bytes"):
        read_architecture(big)
