"""Pooling against Keras: TF 'same' padding (average excludes padded cells), strides, global pooling."""

from __future__ import annotations

import numpy as np
import pytest


def pooled(keras, layer, shape=(15, 16, 3)):
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(shape[-1], 1)(inputs)
    return keras.Model(inputs, layer(x))


@pytest.mark.parametrize("kind", ["MaxPooling2D", "AveragePooling2D"])
@pytest.mark.parametrize("options", [
    dict(pool_size=2), dict(pool_size=3, strides=1, padding="same"), dict(pool_size=(2, 3), strides=(1, 2)),
])
def test_pooling_2d(keras, check, kind, options):
    keras.utils.set_random_seed(0)
    for shape in ((15, 16, 3), (16, 15, 3)):
        check(pooled(keras, getattr(keras.layers, kind)(**options), shape))


@pytest.mark.parametrize("options",
                         [dict(pool_size=3, strides=2), dict(pool_size=2), dict(pool_size=(4, 3), strides=3)])
def test_same_pooling_pads_like_tensorflow(keras, check, options):
    """Odd pixel at the end; average over real cells only. Keras's torch backend pads asymmetric cases by
    replicating edges (harmless for max, not for average), so the average is checked against TF's rule in numpy;
    fixtures/tfkeras checks it against TensorFlow itself."""
    from ..conftest import convert_to_file

    check(pooled(keras, keras.layers.MaxPooling2D(padding="same", **options)))
    inputs = keras.Input((15, 16, 3))
    model = keras.Model(inputs, keras.layers.AveragePooling2D(padding="same", **options)(inputs))
    model.save(check.tmp_path / "avg.keras")
    x = np.random.default_rng(0).standard_normal((2, 15, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(convert_to_file(check.tmp_path / "avg.keras", check.tmp_path).run([x])[0],
                               tf_same_average_pool(x, options), atol=1e-6)


def tf_same_average_pool(x, options):
    pool = options["pool_size"]
    pool = pool if isinstance(pool, tuple) else (pool, pool)
    strides = options.get("strides", pool)
    strides = strides if isinstance(strides, tuple) else (strides, strides)
    out = []
    for size, k, s in zip(x.shape[1:3], pool, strides):
        count = -(-size // s)
        total = max((count - 1) * s + k - size, 0)
        out.append([(max(i * s - total // 2, 0), min(i * s - total // 2 + k, size)) for i in range(count)])
    result = np.zeros((x.shape[0], len(out[0]), len(out[1]), x.shape[3]), np.float32)
    for i, (top, bottom) in enumerate(out[0]):
        for j, (left, right) in enumerate(out[1]):
            result[:, i, j] = x[:, top:bottom, left:right].mean(axis=(1, 2))
    return result


@pytest.mark.parametrize("kind", ["MaxPooling1D", "AveragePooling1D"])
def test_pooling_1d(keras, check, kind):
    inputs = keras.Input((17, 3))
    check(keras.Model(inputs, getattr(keras.layers, kind)(3, strides=2, padding="same")(inputs)))


@pytest.mark.parametrize("kind", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(keras, check, kind, keepdims):
    keras.utils.set_random_seed(1)
    model = pooled(keras, getattr(keras.layers, kind)(keepdims=keepdims))
    check(model, suffixes=(".keras", ".h5"))


def test_global_pooling_1d(keras, check):
    inputs = keras.Input((9, 4))
    outputs = [keras.layers.GlobalAveragePooling1D()(inputs), keras.layers.GlobalMaxPooling1D()(inputs)]
    check(keras.Model(inputs, outputs))
