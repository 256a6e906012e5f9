"""One vocabulary for layer kinds and tensor roles across frameworks.

Readers name a tensor's role with `canonical_role` and a layer's kind with
`kind_of_keras_class` (Keras files say their classes) or `infer_kind` (state dicts
and weights-only files say nothing: the roles and shapes tell).

`_KERAS_KINDS` is the one table of Keras layer classes (every generation's names,
aliases and the QKeras ones) and `_KERAS_LAYOUTS` the axis orders of their kernels:
the Keras readers and the Keras → ONNX converter both go by them, and a test checks
that every class the converter handles has a kind here.
"""

from __future__ import annotations

__all__ = [
    "canonical_role",
    "role_in_kind",
    "infer_kind",
    "kind_of_keras_class",
    "keras_layout",
    "keras_classes",
    "NON_TRAINABLE_ROLES",
    "KERAS_CLASSES",
]

_ROLE_ALIASES = {
    "kernel": "weight", "W": "weight", "weight": "weight",
    "bias": "bias", "b": "bias",
    "gamma": "weight", "beta": "bias",
    "moving_mean": "running_mean", "running_mean": "running_mean",
    "moving_variance": "running_var", "running_var": "running_var",
    # Keras 1 BatchNormalization's running_std really holds the variance.
    "running_std": "running_var",
    "depthwise_kernel": "depthwise_weight", "pointwise_kernel": "pointwise_weight",
    "recurrent_kernel": "recurrent_weight", "U": "recurrent_weight",
    "embeddings": "weight", "alpha": "weight",
}

#: Roles that hold statistics or counters, never trained by gradient descent.
NON_TRAINABLE_ROLES = frozenset({"running_mean", "running_var", "num_batches_tracked", "mean", "variance", "count"})

_KERAS_KINDS = {
    "conv1d": ("Conv1D", "Convolution1D", "AtrousConvolution1D"),
    "conv2d": ("Conv2D", "Convolution2D", "AtrousConvolution2D", "QConv2D"),
    "conv3d": ("Conv3D", "Convolution3D"),
    "conv_transpose2d": ("Conv2DTranspose", "Deconvolution2D", "Convolution2DTranspose"),
    "conv_transpose1d": ("Conv1DTranspose",),
    "conv_transpose3d": ("Conv3DTranspose",),
    "depthwise_conv2d": ("DepthwiseConv2D", "DepthwiseConv1D"),
    "separable_conv2d": ("SeparableConv2D", "SeparableConvolution2D", "SeparableConv1D", "SeparableConvolution1D"),
    "dense": ("Dense", "QDense", "EinsumDense"),
    "batch_norm": ("BatchNormalization", "QBatchNormalization"),
    "layer_norm": ("LayerNormalization",),
    "group_norm": ("GroupNormalization",),
    "normalization": ("Normalization",),
    "embedding": ("Embedding",),
    "lstm": ("LSTM", "CuDNNLSTM", "ConvLSTM2D"),
    "gru": ("GRU", "CuDNNGRU"),
    "rnn": ("SimpleRNN", "RNN", "Bidirectional", "TimeDistributed"),
    "attention": ("MultiHeadAttention", "Attention", "AdditiveAttention"),
    "prelu": ("PReLU",),
    "scale": ("LayerScale",),
    "activation": ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "ThresholdedReLU", "QActivation"),
    "pool": (
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
        "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        # Keras 2.x/3 aliases
        "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
        "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
        "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
    ),
    "dropout": ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                "GaussianDropout", "AlphaDropout"),
    "reshape": ("Flatten", "Reshape", "Permute", "RepeatVector"),
    "merge": ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot", "Merge",
              # Inception-ResNet's residual ``x + scale * y`` (tf.keras applications), also as registered custom
              "CustomScaleLayer", "Custom>CustomScaleLayer"),
    "identity": ("Identity", "ActivityRegularization"),
    "padding": ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D"),
    "resize": ("UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing"),
    "rescale": ("Rescaling",),
    "input": ("InputLayer",),
    "lambda": ("Lambda", "TFOpLambda", "SlicingOpLambda"),
    "model": ("Model", "Functional", "Sequential"),
}
_KIND_BY_CLASS = {cls: kind for kind, classes in _KERAS_KINDS.items() for cls in classes}
#: Every Keras layer class weightkit knows by name.
KERAS_CLASSES = frozenset(_KIND_BY_CLASS)

#: Keras kernel layouts by kind (Keras 1 Theano files differ: see the Keras reader).
_KERAS_LAYOUTS = {
    ("conv1d", "weight"): "WIO",
    ("conv2d", "weight"): "HWIO",
    ("conv3d", "weight"): "DHWIO",
    ("conv_transpose1d", "weight"): "WOI",
    ("conv_transpose2d", "weight"): "HWOI",
    ("conv_transpose3d", "weight"): "DHWOI",
    ("depthwise_conv2d", "weight"): "HWCM",
    ("separable_conv2d", "depthwise_weight"): "HWCM",
    ("separable_conv2d", "pointwise_weight"): "HWIO",
    ("dense", "weight"): "IO",
    ("lstm", "weight"): "IO",
    ("lstm", "recurrent_weight"): "IO",
    ("gru", "weight"): "IO",
    ("gru", "recurrent_weight"): "IO",
    ("rnn", "weight"): "IO",
    ("rnn", "recurrent_weight"): "IO",
}


def canonical_role(weight_name: str, layer_name: str = "") -> str:
    """The role of a weight from its stored name: ``conv1/kernel:0`` → ``weight``.

    Keras 1 names repeat the layer (``dense_1_W``); that prefix is dropped first.
    Unknown names keep their last path component (``kernel_scale``, ``bits``).
    """
    leaf = weight_name.rsplit("/", 1)[-1]
    leaf = leaf.split(":", 1)[0]
    if layer_name:
        short = layer_name.rsplit("/", 1)[-1]
        if leaf.startswith(short + "_") and len(leaf) > len(short) + 1:
            leaf = leaf[len(short) + 1 :]
    return _ROLE_ALIASES.get(leaf, leaf)


def role_in_kind(kind: str, role: str) -> str:
    """Adjust a role to its layer's kind: a depthwise conv's only kernel is its ``weight``."""
    if kind == "depthwise_conv2d" and role == "depthwise_weight":
        return "weight"
    return role


def kind_of_keras_class(class_name: str | None) -> str:
    """The normalized kind of a Keras layer class (``Conv2D`` → ``conv2d``)."""
    if not class_name:
        return "unknown"
    return _KIND_BY_CLASS.get(class_name, "unknown")


def keras_classes(kind: str) -> tuple[str, ...]:
    """The Keras layer classes of a normalized kind (``pool`` → ``MaxPooling2D``, ...); () for unknown kinds."""
    return _KERAS_KINDS.get(kind, ())


def keras_layout(kind: str, role: str) -> str | None:
    """The axis order Keras stores a tensor in, or None for vectors and unknown kinds."""
    return _KERAS_LAYOUTS.get((kind, role))


def infer_kind(shapes: dict[str, tuple[int, ...]]) -> str:
    """A layer's kind from its tensors' roles and shapes, when the file names no class.

    Args:
        shapes: tensor shape by canonical role.
    """
    if "depthwise_weight" in shapes:
        return "separable_conv2d" if "pointwise_weight" in shapes else "depthwise_conv2d"
    if "recurrent_weight" in shapes:
        return _infer_recurrent_kind(shapes)
    if "running_mean" in shapes or "running_var" in shapes:
        return "batch_norm"
    weight = shapes.get("weight")
    if weight is None:
        return "unknown"
    if len(weight) in (3, 4, 5):
        return {3: "conv1d", 4: "conv2d", 5: "conv3d"}[len(weight)]
    if len(weight) == 2:
        return "dense"
    if len(weight) == 1 and shapes.get("bias", weight) == weight:
        return "norm"
    return "unknown"


def _infer_recurrent_kind(shapes: dict[str, tuple[int, ...]]) -> str:
    recurrent = shapes["recurrent_weight"]
    if len(recurrent) == 2 and recurrent[1] == 4 * recurrent[0]:
        return "lstm"
    if len(recurrent) == 2 and recurrent[1] == 3 * recurrent[0]:
        return "gru"
    return "rnn"
