"""Where a Keras 3 weights store keeps each layer: groups named after the layer class, as Keras replays them."""

from __future__ import annotations

import re

from .config import ConfigLayer

__all__ = ["replay_names", "saved_layers", "snake_case"]


def replay_names(config: ConfigLayer) -> dict[str, str]:
    """Keras's own group names for ``config``'s layers: snake_case class, made unique with _1, _2."""
    used: dict[str, int] = {}
    names = {}
    for sub in saved_layers(config):
        base = snake_case(sub.class_name)
        count = used.get(base, 0)
        used[base] = count + 1
        names[sub.name] = base if count == 0 else f"{base}_{count}"
    return names


def saved_layers(config: ConfigLayer) -> list[ConfigLayer]:
    """The config's entries that are in Keras's ``model.layers`` (and so in the store)."""
    sequential = config.class_name == "Sequential"
    return [sub for sub in config.layers
            if not sub.is_operation and not (sequential and sub.class_name == "InputLayer")]


def snake_case(name: str) -> str:
    """Keras's to_snake_case: ``DepthwiseConv2D`` → ``depthwise_conv2d``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
