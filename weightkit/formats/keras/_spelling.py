"""Keras 1 argument names as Keras 2/3 spell them, so that only the config parser knows the old ones.

Keras 2 renamed most layer arguments (``nb_filter`` → ``filters``, ``border_mode`` →
``padding``, ``dim_ordering='th'`` → ``data_format='channels_first'``, ``p`` →
``rate``...) and packed some into one (``nb_row``, ``nb_col`` → ``kernel_size``).
`modern_config` returns a translated copy of one layer's config; the input is never
changed. A name already in its Keras 2 spelling always wins over an old one.
"""

from __future__ import annotations

from typing import Any

__all__ = ["modern_config"]

# Old name → new name, for every class that has the old one.
_RENAMES = {
    "nb_filter": "filters",
    "subsample": "strides",
    "border_mode": "padding",
    "atrous_rate": "dilation_rate",
    "bias": "use_bias",
    "W_regularizer": "kernel_regularizer",
    "b_regularizer": "bias_regularizer",
    "U_regularizer": "recurrent_regularizer",
    "W_constraint": "kernel_constraint",
    "b_constraint": "bias_constraint",
    "U_constraint": "recurrent_constraint",
    "init": "kernel_initializer",
    "inner_init": "recurrent_initializer",
    "beta_init": "beta_initializer",
    "gamma_init": "gamma_initializer",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
}
# Names that other classes (custom ones too) use in their own sense: renamed for these classes only.
_UNITS_CLASSES = ("Dense", "LSTM", "GRU", "SimpleRNN", "TimeDistributedDense", "Highway", "MaxoutDense")
# Class-specific renames, taking precedence over `_RENAMES`.
_CLASS_RENAMES: dict[str, dict[str, str]] = {
    **{cls: {"output_dim": "units"} for cls in _UNITS_CLASSES},
    "Embedding": {"init": "embeddings_initializer", "W_regularizer": "embeddings_regularizer",
                  "W_constraint": "embeddings_constraint"},
    "PReLU": {"init": "alpha_initializer"},
    "GaussianNoise": {"sigma": "stddev"},
    "UpSampling1D": {"length": "size"},
    **{cls: {"p": "rate"} for cls in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                                      "GaussianDropout", "AlphaDropout")},
}
# Keras 1's types for names that Keras 3 layers (custom ones too) may use otherwise.
_OLD_TYPES = {"bias": bool, "init": str}
# One-dimensional layers' scalar options that Keras 2 makes 1-tuples.
_ONE_D = {"filter_length": "kernel_size", "subsample_length": "strides", "pool_length": "pool_size"}
_ONE_D_POOLING = ("MaxPooling1D", "AveragePooling1D")
_DATA_FORMATS = {"th": "channels_first", "tf": "channels_last"}
_IMPLEMENTATIONS = {"cpu": 0, "mem": 1, "gpu": 2}
_RECURRENT = ("LSTM", "GRU", "SimpleRNN")


def modern_config(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with Keras 2 argument names; ``config`` itself when it has no old ones.

    Example:
        >>> modern_config("Convolution2D", {"nb_filter": 8, "nb_row": 3, "nb_col": 3, "dim_ordering": "th"})
        {'filters': 8, 'kernel_size': [3, 3], 'data_format': 'channels_first'}
    """
    modern = dict(config)
    _rename(class_name, modern)
    _pack_kernel(modern)
    _pack_one_d(class_name, modern)
    _translate_values(class_name, modern)
    _wrapped_layer(modern)
    return config if modern == config else modern


def _rename(class_name: str, config: dict[str, Any]) -> None:
    special = _CLASS_RENAMES.get(class_name, {})
    for old in [key for key in config if key in _RENAMES or key in special]:
        new = special[old] if old in special else _RENAMES[old]
        if not isinstance(config[old], _OLD_TYPES.get(old, object)):
            continue
        value = config.pop(old)
        config.setdefault(new, value)


def _pack_kernel(config: dict[str, Any]) -> None:
    """``nb_row``/``nb_col`` (2D) and ``kernel_dim1..3`` (3D) → ``kernel_size``."""
    for keys in (("nb_row", "nb_col"), ("kernel_dim1", "kernel_dim2", "kernel_dim3")):
        if all(key in config for key in keys):
            values = [config.pop(key) for key in keys]
            config.setdefault("kernel_size", values)


def _pack_one_d(class_name: str, config: dict[str, Any]) -> None:
    for old, new in _ONE_D.items():
        if old in config:
            value = config.pop(old)
            config.setdefault(new, [value] if isinstance(value, int) else value)
    if class_name in _ONE_D_POOLING and "stride" in config:
        value = config.pop("stride")
        config.setdefault("strides", [value] if isinstance(value, int) else value)


def _translate_values(class_name: str, config: dict[str, Any]) -> None:
    """Options whose values changed too: dim_ordering, consume_less, dict paddings, a Dense's input_dim."""
    if isinstance(config.get("dim_ordering"), str):  # another type is left for the config's field check
        config.setdefault("data_format", _DATA_FORMATS.get(config.pop("dim_ordering")))
    if isinstance(config.get("consume_less"), str):
        config.setdefault("implementation", _IMPLEMENTATIONS.get(config.pop("consume_less"), 1))
    padding = config.get("padding")
    if class_name.startswith("ZeroPadding") and isinstance(padding, dict):  # Keras 1: top_pad, left_pad, ...
        config["padding"] = _padding_pairs(padding)
    if class_name == "Dense" or class_name in _RECURRENT:
        _input_dim(class_name, config)


def _padding_pairs(padding: dict[str, Any]) -> list[Any]:
    if "left_pad" in padding and "top_pad" not in padding:  # ZeroPadding1D
        return [padding.get("left_pad", 0), padding.get("right_pad", 0)]
    return [[padding.get("top_pad", 0), padding.get("bottom_pad", 0)],
            [padding.get("left_pad", 0), padding.get("right_pad", 0)]]


def _input_dim(class_name: str, config: dict[str, Any]) -> None:
    """Keras 1 Dense/RNN ``input_dim`` (and ``input_length``) are Keras 2's ``input_shape``."""
    dim = config.pop("input_dim", None)
    length = config.pop("input_length", None) if class_name in _RECURRENT else None
    if dim is None or any(key in config for key in ("batch_input_shape", "batch_shape", "input_shape")):
        return
    config["input_shape"] = [length, dim] if class_name in _RECURRENT else [dim]


def _wrapped_layer(config: dict[str, Any]) -> None:
    """Wrappers (Bidirectional, TimeDistributed) hold a layer record: translate it as well."""
    for key in ("layer", "backward_layer"):
        inner = config.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("config"), dict):
            translated = modern_config(str(inner.get("class_name", "")), inner["config"])
            if translated is not inner["config"]:
                config[key] = {**inner, "config": translated}
