"""Every Keras file in ../shared/real-weights shows the facts its catalog lists."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.ops.inspect import totals


def load(real_weights, name):
    return weightkit.load(real_weights / name)


def test_keras1_weights_file_has_no_version_and_keras1_names(real_weights):
    with load(real_weights, "keras_h5/keras1_weights__ddpg_actormodel.h5") as model:
        assert model.format == "keras-weights-h5" and not model.has_graph
        assert model.framework_version is None
        assert "Keras 1" in model.metadata["writer"] and "no version" in model.metadata["writer"]
        dense = model.layer("dense_1")
        assert dense.kind == "dense"
        assert dense.tensors["weight"].name == "dense_1_W:0" and dense.tensors["bias"].name == "dense_1_b:0"
        assert dense.tensors["weight"].shape == (29, 300)
        assert "merge_1" in [layer.name for layer in model.layers]


def test_keras1_theano_kernel_is_channels_first(real_weights):
    with load(real_weights, "keras_h5/keras1_theano_weights__isr_SR_Weights_2X.h5") as model:
        kernel = model.layer("level1").tensors["weight"]
        assert kernel.name == "level1_W"
        assert kernel.shape == (64, 3, 9, 9)
        assert kernel.layout == "OIHW"
        assert model.layer("level1").kind == "conv2d"


def test_keras2_weights_file_has_hwio_kernels(real_weights):
    with load(real_weights, "keras_h5/keras2.1.1_weights__isr_DistilledResNetSR_2X.h5") as model:
        assert model.framework_version == "2.1.1"
        kernel = model.layer("student_sr_res_conv1").tensors["weight"]
        assert kernel.layout == "HWIO" and kernel.shape == (3, 3, 3, 32)
        assert model.layer("student_sr_res_batchnorm_1_1").kind == "batch_norm"


def test_keras2_full_model_with_optimizer_and_training_config(real_weights):
    name = "keras_h5/keras2.0.5_fullmodel__face_classification_tiny_XCEPTION_KDEF.hdf5"
    with load(real_weights, name) as model:
        assert model.format == "keras-h5" and model.has_graph
        assert model.config["class_name"] == "Model"
        assert len(model.layers) == 46
        assert len(model.tensors()) == 80
        assert model.metadata["training_config"]["optimizer"] == "Adam"
        assert model.extras["optimizer"]
        assert sum(t.size for t in model.extras["optimizer"]) > 0
        separable = [layer for layer in model.layers if layer.type_name == "SeparableConv2D"]
        assert separable and set(separable[0].tensors) >= {"depthwise_weight", "pointwise_weight"}
        assert sum(layer.type_name == "Add" for layer in model.layers) >= 4
        assert model.inputs[0].shape == (None, 64, 64, 1)
        assert model.outputs[0].shape == (None, 7)


def test_keras2_weights_with_separate_json(real_weights):
    with load(real_weights, "keras_h5/keras2.0.0_weights__hls4ml_KERAS_3layer_weights.h5") as model:
        assert not model.has_graph
        assert [layer.kind for layer in model.layers if layer.tensors] == ["dense"] * 4
        assert model.num_params == 4389


def test_tfkeras_weights_with_custom_classes(real_weights):
    with load(real_weights, "keras_h5/tfkeras2.4.0_weights__hls4ml_qkeras_3layer_weights.h5") as model:
        assert model.metadata["writer"] == "tf.keras 2.4.0"
        assert model.layer("fc1").tensors["weight"].shape == (16, 64)


def test_tfkeras_named_weights_file_that_is_a_full_model(real_weights):
    with load(real_weights, "keras_h5/tfkeras2.2.4-tf_fullmodel__hls4ml_garnet_1layer.h5") as model:
        assert model.format == "keras-h5" and model.has_graph
        assert model.framework_version == "2.2.4-tf"
        assert model.layer("gar_1").type_name == "GarNet"
        assert model.layer("gar_1").tensors  # a custom layer's weights keep their own names as roles


def test_tfkeras_2_13_str_attributes_unprefixed_names_and_int8(real_weights):
    with load(real_weights, "keras_h5/tfkeras2.13.1_fullmodel__hls4ml_hgq_jet_classifier.h5") as model:
        assert model.config["class_name"] == "Functional"
        quantizer = model.layer("inp_q_quantizer")
        assert [t.name for t in quantizer.tensors.values()] == ["keep_negative:0", "bits:0", "integers:0"]
        assert quantizer.tensors["bits"].dtype == "int8"
        assert quantizer.tensors["bits"].read().dtype == np.int8
        assert "int8" in totals(model).bytes_by_dtype


def test_keras3_archive_with_custom_layers(real_weights):
    with load(real_weights, "keras3/keras3.14.1__hls4ml_qkeras-v3_3layer.keras") as model:
        assert model.format == "keras-zip"
        assert model.framework_version == "3.14.1"
        assert [layer.name for layer in model.layers][:2] == ["fc1", "relu1"]
        assert model.layer("fc1").type_name == "QDense"
        assert model.layer("fc1").tensors["weight"].shape == (16, 64)
        assert model.outputs[0].shape == (None, 5)


@pytest.mark.parametrize("name", [
    "keras_h5/keras1_weights__ddpg_actormodel.h5",
    "keras_h5/keras1_theano_weights__isr_SR_Weights_2X.h5",
    "keras_h5/keras2.1.1_weights__isr_DistilledResNetSR_2X.h5",
    "keras_h5/keras2.0.5_fullmodel__face_classification_tiny_XCEPTION_KDEF.hdf5",
    "keras_h5/keras2.0.0_weights__hls4ml_KERAS_3layer_weights.h5",
    "keras_h5/tfkeras2.4.0_weights__hls4ml_qkeras_3layer_weights.h5",
    "keras_h5/tfkeras2.2.4-tf_fullmodel__hls4ml_garnet_1layer.h5",
    "keras_h5/tfkeras2.13.1_fullmodel__hls4ml_hgq_jet_classifier.h5",
    "keras3/keras3.14.1__hls4ml_qkeras-v3_3layer.keras",
])
def test_every_tensor_reads_with_its_declared_shape_and_dtype(real_weights, name):
    with load(real_weights, name) as model:
        for tensor in model.tensors() + [t for ts in model.extras.values() for t in ts]:
            array = tensor.read()
            assert array.shape == tensor.shape and array.dtype.name == tensor.dtype, tensor.name
