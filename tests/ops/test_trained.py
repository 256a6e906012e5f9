"""Trained or freshly initialized: models the real libraries initialize (weights=None) are said to be fresh,
in every format; files other people trained are said to be trained; what cannot be told gets no verdict."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import safetensors.torch
import timm
import torch
import torchvision

import weightkit
from weightkit.ops.trained import training_state


def _state(path):
    with weightkit.load(path) as model:
        return training_state(model)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg11", "densenet121", "squeezenet1_0"])
def test_torchvision_models_without_weights_are_fresh(tmp_path, name):
    torch.manual_seed(0)
    path = tmp_path / f"{name}.pth"
    torch.save(getattr(torchvision.models, name)().state_dict(), path)
    state = _state(path)
    assert state.trained is False, state.evidence


def test_an_onnx_export_of_a_fresh_model_is_fresh_though_its_batch_norms_are_folded(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "resnet18.onnx"
    torch.onnx.export(torchvision.models.resnet18().eval(), (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False)
    state = _state(path)
    assert state.trained is False, state.evidence
    assert not any("batch norm" in line for line in state.evidence)


def test_a_vision_transformer_without_batch_norms(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "vit.safetensors"
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    state = _state(path)
    assert state.trained is False, state.evidence


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_keras_applications_without_weights_are_fresh(tmp_path, kind):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3))
    path = tmp_path / f"mobilenet_v2.{kind}"
    model.save(path)
    state = _state(path)
    assert state.trained is False, state.evidence


def test_batch_norm_statistics_moved_by_a_few_steps_of_training_decide(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(8, 3, 64, 64)), torch.randint(0, 4, (8,))).backward()
        optimizer.step()
    path = tmp_path / "stepped.pth"
    torch.save(model.state_dict(), path)
    state = _state(path)
    # Three steps moved the statistics, not yet the kernels' distribution: trained, if briefly.
    assert state.trained is True, state.evidence
    assert any("moved" in line for line in state.evidence)


def test_heavy_tailed_kernels_read_as_trained(tmp_path):
    rng = np.random.default_rng(0)
    # Laplace-distributed kernels (excess kurtosis 3), as trained filters are and no initializer draws.
    tensors = {f"layer{i}.weight": torch.from_numpy(rng.laplace(0, 0.05, (64, 64, 3, 3)).astype(np.float32))
               for i in range(6)}
    path = tmp_path / "trained.safetensors"
    safetensors.torch.save_file(tensors, path)
    assert _state(path).trained is True


def test_a_file_trained_by_someone_else(real_weights):
    state = _state(real_weights / "keras_h5" / "keras2.0.5_fullmodel__face_classification_tiny_XCEPTION_KDEF.hdf5")
    assert state.trained is True, state.evidence


def test_an_unknown_initializer_gets_no_verdict(tmp_path):
    rng = np.random.default_rng(0)
    # Uniform at a scale no initializer uses for these fans: not fresh, and no sign of training either.
    tensors = {f"layer{i}.weight": torch.from_numpy(rng.uniform(-3, 3, (64, 64, 3, 3)).astype(np.float32))
               for i in range(6)}
    path = tmp_path / "odd.safetensors"
    safetensors.torch.save_file(tensors, path)
    assert _state(path).trained is None


def test_the_sample_is_bounded(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with weightkit.load(path) as model:
        read = []
        for tensor in model.tensors():
            loader = tensor.loader
            tensor.loader = (lambda t=tensor, f=loader: read.append(t.nbytes) or f())
        training_state(model, sample_bytes=2**20)
    assert 0 < sum(read) <= 2**20
