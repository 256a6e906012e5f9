"""Shared checks for converter tests: save a Keras model, convert it, run ONNX Runtime, compare with Keras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _keras():
    return pytest.importorskip("keras")


def run_onnx(model_proto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {info.name: x for info, x in zip(session.get_inputs(), inputs)})


def keras_outputs(model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    keras = _keras()
    result = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    outputs = result if isinstance(result, (list, tuple)) else [result]
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in outputs]


def random_inputs(model, seed: int = 0, batch: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, *t.shape[1:])).astype(np.float32) for t in model.inputs]


def assert_close(actual: list[np.ndarray], expected: list[np.ndarray], atol: float = 1e-5) -> float:
    """Largest difference; fails above ``atol`` (relative where outputs exceed 1)."""
    assert len(actual) == len(expected)
    worst = 0.0
    for got, want in zip(actual, expected):
        assert got.shape == want.shape, (got.shape, want.shape)
        difference = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
        scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        assert difference <= atol * scale, f"max abs difference {difference:.3g} (scale {scale:.3g})"
        worst = max(worst, difference)
    return worst


def check_model(model, tmp_path: Path, *, suffixes=(".keras",), inputs=None, atol: float = 1e-5, **options):
    """Save ``model`` (each suffix), convert, validate with the ONNX checker, and compare ORT with Keras.

    Returns the last `Conversion`.
    """
    import onnx

    from weightkit.keras2onnx import convert_keras

    inputs = inputs if inputs is not None else random_inputs(model)
    expected = keras_outputs(model, inputs)
    result = None
    for suffix in suffixes:
        path = tmp_path / f"{model.name}{suffix}"
        model.save(path)
        result = convert_keras(path, **options)
        onnx.checker.check_model(result.model, full_check=True)
        feed = [np.moveaxis(x, -1, 1) if options.get("nchw") and x.ndim >= 3 else x for x in inputs]
        actual = run_onnx(result.model, feed)
        if options.get("nchw"):
            actual = [np.moveaxis(y, 1, -1) if y.ndim >= 3 else y for y in actual]
        assert_close(actual, expected, atol)
    return result


@pytest.fixture
def keras():
    return _keras()


@pytest.fixture
def check(tmp_path):
    """``check(model, **options)``: convert ``model`` from a .keras file and compare with Keras."""
    def run(model, **options):
        return check_model(model, tmp_path, **options)
    run.tmp_path = tmp_path
    return run
