"""The one table of Keras layer classes: every class the converter handles has a kind, layouts follow kinds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from weightkit import kinds
from weightkit.keras2onnx.layers import LAYERS


@pytest.mark.parametrize("class_name", sorted(LAYERS))
def test_every_class_the_converter_handles_has_a_kind(class_name):
    assert kinds.kind_of_keras_class(class_name) != "unknown"
    assert class_name in kinds.KERAS_CLASSES


@pytest.mark.parametrize(("class_name", "kind"), [
    ("Conv2D", "conv2d"), ("Convolution2D", "conv2d"), ("QConv2D", "conv2d"), ("Conv3DTranspose", "conv_transpose3d"),
    ("SeparableConvolution1D", "separable_conv2d"), ("GlobalAvgPool2D", "pool"), ("MaxPool3D", "pool"),
    ("Identity", "identity"), ("ActivityRegularization", "identity"), ("CustomScaleLayer", "merge"),
    ("Functional", "model"), ("MyCustomLayer", "unknown"), (None, "unknown"), ("", "unknown"),
])
def test_kind_of_keras_class(class_name, kind):
    assert kinds.kind_of_keras_class(class_name) == kind


def test_keras_classes_lists_a_kinds_classes_and_every_one_maps_back():
    assert kinds.keras_classes("batch_norm")[0] == "BatchNormalization"
    assert kinds.keras_classes("no such kind") == ()
    for class_name in kinds.KERAS_CLASSES:
        assert class_name in kinds.keras_classes(kinds.kind_of_keras_class(class_name))


@pytest.mark.parametrize(("kind", "role", "layout"), [
    ("conv2d", "weight", "HWIO"), ("conv_transpose2d", "weight", "HWOI"), ("conv_transpose3d", "weight", "DHWOI"),
    ("depthwise_conv2d", "weight", "HWCM"), ("separable_conv2d", "pointwise_weight", "HWIO"), ("dense", "weight", "IO"),
    ("dense", "bias", None), ("pool", "weight", None),
])
def test_keras_layout(kind, role, layout):
    assert kinds.keras_layout(kind, role) == layout


@pytest.mark.parametrize(("name", "layer", "role"), [
    ("conv1/kernel:0", "", "weight"), ("dense_1_W", "dense_1", "weight"), ("bn/moving_variance:0", "bn", "running_var"),
    ("bn_running_std", "bn", "running_var"), ("kernel_scale", "", "kernel_scale"),
])
def test_canonical_role(name, layer, role):
    assert kinds.canonical_role(name, layer) == role


def test_role_in_kind_names_a_depthwise_kernel_weight():
    assert kinds.role_in_kind("depthwise_conv2d", "depthwise_weight") == "weight"
    assert kinds.role_in_kind("separable_conv2d", "depthwise_weight") == "depthwise_weight"


@pytest.mark.parametrize(("shapes", "kind"), [
    ({"weight": (3, 3, 3, 8), "bias": (8,)}, "conv2d"), ({"weight": (4, 2)}, "dense"),
    ({"weight": (8,), "bias": (8,), "running_mean": (8,)}, "batch_norm"),
    ({"weight": (3, 16), "recurrent_weight": (4, 16)}, "lstm"),
    ({"weight": (3, 12), "recurrent_weight": (4, 12)}, "gru"),
    ({"depthwise_weight": (3, 3, 8, 1), "pointwise_weight": (1, 1, 8, 4)}, "separable_conv2d"), ({}, "unknown"),
])
def test_infer_kind(shapes, kind):
    assert kinds.infer_kind(shapes) == kind


def test_kinds_is_the_bottom_layer():
    """kinds.py may import nothing from weightkit but errors, model and dtypes."""
    tree = ast.parse(Path(kinds.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert imported <= {"errors", "model", "dtypes"}
    assert not any(alias.name.startswith("weightkit") for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names)
