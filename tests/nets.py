"""Small networks built the same way in Keras and in PyTorch, for tests that compare formats."""

from __future__ import annotations

import numpy as np


def keras_cnn(classes: int = 10, extra_dense: bool = False):
    """Conv-BN-ReLU, depthwise + pointwise, BN, global pooling, classifier."""
    import keras

    layers = keras.layers
    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.Conv2D(16, 1, name="pw")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if extra_dense:
        x = layers.Dense(16, name="extra")(x)
    outputs = layers.Dense(classes, name="fc")(x)
    return keras.Model(inputs, outputs, name="cnn")


def torch_cnn(classes: int = 10):
    """The same network as `keras_cnn`, as a PyTorch module."""
    import torch
    from torch import nn

    class Cnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.pw = nn.Conv2d(8, 16, 1)
            self.bn2 = nn.BatchNorm2d(16)
            self.fc = nn.Linear(16, classes)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.pw(self.dw(x))))
            return self.fc(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    return Cnn()


def torch_resnet(classes: int = 10, blocks: int = 2):
    """A small ResNet-shaped network: stem, ``layer1..layerN`` of residual blocks, ``fc``."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x):
            return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            for index in range(1, blocks + 1):
                setattr(self, f"layer{index}", nn.Sequential(Block(8), Block(8)))
            self.fc = nn.Linear(8, classes)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            for index in range(1, blocks + 1):
                x = getattr(self, f"layer{index}")(x)
            return self.fc(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    return ResNet()


def copy_keras_weights_to_torch(keras_model, torch_model) -> None:
    """Give the torch `torch_cnn` the Keras `keras_cnn`'s weights (so both compute the same function)."""
    import torch

    def get(name):
        return [np.asarray(w) for w in keras_model.get_layer(name).get_weights()]

    state = {}
    kernel, bias = get("conv1")
    state["conv1.weight"], state["conv1.bias"] = kernel.transpose(3, 2, 0, 1), bias
    kernel, bias = get("dw")
    state["dw.weight"], state["dw.bias"] = kernel.transpose(2, 3, 0, 1).reshape(8, 1, 3, 3), bias
    kernel, bias = get("pw")
    state["pw.weight"], state["pw.bias"] = kernel.transpose(3, 2, 0, 1), bias
    for name in ("bn1", "bn2"):
        gamma, beta, mean, var = get(name)
        state.update({f"{name}.weight": gamma, f"{name}.bias": beta, f"{name}.running_mean": mean,
                      f"{name}.running_var": var})
    kernel, bias = get("fc")
    state["fc.weight"], state["fc.bias"] = kernel.T, bias
    torch_model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                                strict=False)
