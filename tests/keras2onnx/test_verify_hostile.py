"""convert --verify on hostile files: Keras is never given the file's code nor any part of Keras that loads or
runs something else, and the test batch the declared input shape asks for is bounded by ``limits.VERIFY_BYTES``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.hostile.keras_cases import (
    _cve_2024_3660_h5,
    _verify_batch_bomb,
    dense_config,
    legacy_config,
    legacy_h5,
)
from weightkit import convert, limits
from weightkit.errors import UnsafeFileError
from weightkit.keras2onnx.verify import _check_batch_size, _Refused, _sanitized_config, verify


def _with_activation(record: dict) -> dict:
    config = dense_config()
    config["config"]["layers"][1]["config"]["activation"] = record
    return config


@pytest.mark.parametrize(("config", "named"), [
    (_with_activation({"module": "keras.config", "class_name": "function",  # CVE-2025-9906
                       "config": "enable_unsafe_deserialization"}), "keras.config"),
    (_with_activation({"module": "keras.utils", "class_name": "function", "config": "get_file"}),  # CVE-2025-8747
     "keras.utils"),
    (_with_activation({"module": "keras.src.saving.serialization_lib", "class_name": "function",
                       "config": "enable_unsafe_deserialization"}), "keras.src.saving"),
    (dense_config({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"name": "t", "filepath": "/x"}}),
     "TFSMLayer"),  # CVE-2026-1462
    (_with_activation({"module": "builtins", "class_name": "function", "config": "exec"}), "builtins"),
    (dense_config({"module": "os", "class_name": "system", "config": "touch CANARY"}), "'os'"),  # CVE-2025-1550
])
def test_a_config_naming_keras_parts_that_load_or_run_other_code_is_refused(config, named):
    with pytest.raises(_Refused, match=named):
        _sanitized_config(config)


def test_a_config_of_keras_layers_initializers_and_dtype_policies_is_kept():
    config = dense_config()
    config["config"]["layers"][1]["config"]["kernel_initializer"] = {
        "module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None}}
    config["config"]["layers"][1]["config"]["activation"] = {
        "module": "keras.src.activations.activations", "class_name": "function", "config": "relu"}
    sanitized, functions, substituted = _sanitized_config({**config, "module": "keras.src.models.functional"})
    assert sanitized["config"]["layers"][1]["config"]["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert functions == {} and substituted == []


def test_a_test_batch_larger_than_the_limit_is_refused_before_it_is_allocated(tmp_path):
    """An .h5 of a few KB declaring (None, 40000, 40000, 1): the batch would be 2 x 1.6e9 values (38 GB drawn)."""
    path = _verify_batch_bomb(tmp_path)
    assert path.stat().st_size < 16_000
    convert(path, tmp_path / "m.onnx")
    with pytest.raises(UnsafeFileError, match="verify_bytes") as error:
        verify(path, tmp_path / "m.onnx")
    assert "WEIGHTKIT_MAX_VERIFY_BYTES" in str(error.value) and str(path) in str(error.value)


def test_the_batch_limit_counts_every_input_and_can_be_raised():
    session = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="a", shape=["N", 1000, 1000]),
                                                  SimpleNamespace(name="b", shape=[2**62, 2**62, 2**62])])
    with pytest.raises(UnsafeFileError, match="verify_bytes"):
        _check_batch_size(session, 2, "m.h5")
    small = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="a", shape=["N", 1000, 1000])])
    _check_batch_size(small, 2, "m.h5")  # 24 MB
    with limits.raised(verify_bytes=1000), pytest.raises(UnsafeFileError, match="verify_bytes"):
        _check_batch_size(small, 2, "m.h5")


def test_a_legacy_h5_lambda_never_runs_under_verify(keras, tmp_path):
    """CVE-2025-9905: Keras < 3.11.3 ran a legacy .h5 Lambda's bytecode whatever safe_mode said; verify refuses it."""
    clean = legacy_h5(tmp_path, legacy_config(), name="clean.h5")
    convert(clean, tmp_path / "clean.onnx")
    hostile = _cve_2024_3660_h5(tmp_path)
    result = verify(hostile, tmp_path / "clean.onnx")
    assert not result.ran and result.reason.startswith("refused")
    assert not (tmp_path / "CANARY").exists()
