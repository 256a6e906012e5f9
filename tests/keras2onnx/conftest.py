"""Shared checks for converter tests: every conversion goes through the file `weightkit.convert` writes,
read back with onnx (loaded, ``check_model(full_check=True)``) and run by ONNX Runtime, then compared with
Keras or with outputs TensorFlow stored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _keras():
    return pytest.importorskip("keras")


@dataclass
class Written:
    """A conversion as the user gets it: the report `weightkit.convert` returned, and the file it wrote as
    onnx reads it (``model``) and as ONNX Runtime runs it (`run`)."""

    report: Any
    path: Path
    model: Any
    session: Any

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """ONNX Runtime's outputs of the written file, inputs given in graph-input order."""
        return self.session.run(None, {info.name: x for info, x in zip(self.session.get_inputs(), inputs)})


def convert_to_file(source, folder: Path, *, allow_unused: bool = False, **options) -> Written:
    """``weightkit.convert(source, folder/<name>.onnx, **options)``, then the file read back by the real tools.

    The output name is fresh in ``folder`` (a test may convert one source several ways). Unless
    ``allow_unused``, every weight of the file must have been used.
    """
    import onnx
    import onnxruntime

    import weightkit

    output = _fresh(folder, Path(source).name)
    report = weightkit.convert(source, output, **options)
    assert report.output_path == str(output)
    onnx.checker.check_model(str(output), full_check=True)  # from the path: also past 2 GB
    if not allow_unused:
        assert report.unused_weights == [], report.unused_weights
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    return Written(report, output, onnx.load(output), session)


def _fresh(folder: Path, name: str) -> Path:
    output, counter = folder / f"{name}.onnx", 0
    while output.exists():
        counter += 1
        output = folder / f"{name}.{counter}.onnx"
    return output


def run_onnx(model_proto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """ONNX Runtime on an in-memory ModelProto (for graphs a test has changed after reading the file)."""
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


def check_model(model, tmp_path: Path, *, suffixes=(".keras",), inputs=None, atol: float = 1e-5,
                **options) -> Written:
    """Save ``model`` (each suffix), convert it to a file, and compare ONNX Runtime on that file with Keras.

    Returns the last `Written`.
    """
    inputs = inputs if inputs is not None else random_inputs(model)
    expected = keras_outputs(model, inputs)
    result = None
    for suffix in suffixes:
        path = tmp_path / f"{model.name}{suffix}"
        model.save(path)
        result = convert_to_file(path, tmp_path, **options)
        feed = [np.moveaxis(x, -1, 1) if options.get("nchw") and x.ndim >= 3 else x for x in inputs]
        actual = result.run(feed)
        if options.get("nchw"):
            actual = [np.moveaxis(y, 1, -1) if y.ndim >= 3 else y for y in actual]
        assert_close(actual, expected, atol)
    assert result is not None
    return result


@pytest.fixture
def keras():
    return _keras()


@pytest.fixture
def check(tmp_path):
    """``check(model, **options)``: convert ``model`` from a .keras file to an ONNX file and compare with Keras."""
    def run(model, **options):
        return check_model(model, tmp_path, **options)
    run.tmp_path = tmp_path
    return run
