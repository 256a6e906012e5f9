"""What `check --fix` writes: the checkpoint in a form the model's framework loads with its plain call.

PyTorch and ONNX load by key, so their fix is the checkpoint itself with keys renamed,
tensors dropped and kernels re-laid out. Keras loads into layers it builds itself
(legacy ``.h5`` by layer position, Keras 3 stores by layer path), so its fix is the
*model's own layout*: the model's layers, config and graph, each tensor reading the
checkpoint tensor `CheckReport.pairs` gives it, and the model's own value where the
checkpoint has none (a head it lacks, a mis-shaped classifier). ``model.load_weights(OUT)``
then succeeds whatever the suffix of ``OUT`` (``.h5``, ``.weights.h5``, ``.keras``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import dtypes
from .._version import __version__
from ..errors import UsageError
from ..formats.state_dict import layers_from_state_dict
from ..model import Layer, Model, Tensor
from ..records import FIXED_FROM_KEY, LAYOUT_OF_KEY, PROVENANCE_KEY, WRITER_KEY, recorded_backbone
from .canonical import canonical_array, canonical_shape, to_layout_of
from .check import CheckReport

__all__ = ["fixed_checkpoint", "writes_model_layout", "kept_layers"]


def fixed_checkpoint(checkpoint: Model, model: Model, report: CheckReport) -> Model:
    """The checkpoint with the fixes weightkit can apply, ready for `weightkit.save`.

    For a Keras ``model``: the model's own structure filled with the checkpoint's paired
    tensors (see `writes_model_layout`); otherwise the checkpoint's tensors named as
    ``model`` names them, unexpected ones dropped, kernels re-laid out. Data is read
    lazily, one tensor at a time, when the result is saved; the result keeps both inputs'
    files open until it is closed.

    Raises:
        UsageError: a Keras model none of whose tensors the checkpoint fills.

    Example:
        >>> report = check_into(checkpoint, model)
        >>> with fixed_checkpoint(checkpoint, model, report) as fixed:
        ...     weightkit.save(fixed, "fixed.weights.h5")
    """
    fixed = _in_model_layout(checkpoint, model, report) if writes_model_layout(model) else \
        _renamed(checkpoint, model, report)
    fixed.share_resources(checkpoint)
    fixed.share_resources(model)
    return fixed


def writes_model_layout(model: Model) -> bool:
    """True when a fix for ``model`` is written in the model's own layout (Keras), not as renamed keys."""
    return model.framework == "keras"


def kept_layers(model: Model, report: CheckReport) -> list[str]:
    """Paths of ``model``'s layers that keep (some of) their own values: no checkpoint tensor pairs with them."""
    paired = {id(want) for want, _ in report.pairs}
    return [path for path, layer in model.walk()
            if any(id(tensor) not in paired for tensor in layer.tensors.values())]


# ---- PyTorch, ONNX: the checkpoint with keys renamed ----------------------------------------------


def _renamed(checkpoint: Model, model: Model, report: CheckReport) -> Model:
    wanted = {t.name: t for t in model.tensors()}
    fixed = []
    for tensor in checkpoint.tensors():
        name = report.renames.get(tensor.name, tensor.name)
        if tensor.name in report.drops or name in report.drops:
            continue
        fixed.append(_relaid(tensor, name, wanted.get(name)))
    return Model(layers=layers_from_state_dict(fixed), format="state-dict", framework=model.framework,
                 metadata={"fixed_from": checkpoint.source})


def _relaid(tensor: Tensor, name: str, target: Tensor | None) -> Tensor:
    """``tensor`` renamed ``name``, in ``target``'s axis order where it holds the same kernel in another layout
    (a tensor that does not fit ``target`` is written as it is: the check reports the mismatch)."""
    if target is None or not _relaid_between(tensor, target) or canonical_shape(tensor) != canonical_shape(target):
        return Tensor(name, tensor.shape, tensor.dtype, layout=tensor.layout, loader=tensor.loader)
    return Tensor(name, target.shape, tensor.dtype, layout=target.layout,
                  loader=lambda: to_layout_of(canonical_array(tensor), target))


# ---- Keras: the model's own layers, filled from the checkpoint -----------------------------------


def _in_model_layout(checkpoint: Model, model: Model, report: CheckReport) -> Model:
    received = {id(want): have for want, have in report.pairs if _fits(have, want)}
    if not received:
        raise UsageError(f"no tensor of {_name(checkpoint, 'the checkpoint')} fits {_name(model, 'the model')}: a "
                         "fixed file would hold only the model's own values",
                         hint="run `weightkit check` without --fix to see why")
    return Model(
        layers=[_filled_layer(layer, received) for layer in model.layers],
        format=model.format, framework="keras", framework_version=model.framework_version,
        has_graph=model.has_graph, inputs=list(model.inputs), outputs=list(model.outputs),
        config=model.config, metadata=_fixed_metadata(checkpoint, model),
    )


def _fits(have: Tensor, want: Tensor) -> bool:
    """The checkpoint tensor holds the model tensor's values (in another axis order where their layouts differ)."""
    if _relaid_between(have, want):
        return canonical_shape(have) == canonical_shape(want)
    return have.shape == want.shape


def _relaid_between(have: Tensor, want: Tensor) -> bool:
    """Both are kernels in known, different layouts (a square kernel too: its shape alone cannot tell)."""
    return bool(have.layout and want.layout and have.layout != want.layout)


def _filled_layer(layer: Layer, received: dict[int, Tensor]) -> Layer:
    """A copy of ``layer`` (name, class, config, sublayers) whose paired tensors read the checkpoint's."""
    tensors = {role: _filled_tensor(tensor, received.get(id(tensor))) for role, tensor in layer.tensors.items()}
    return replace(layer, tensors=tensors, layers=[_filled_layer(sub, received) for sub in layer.layers])


def _filled_tensor(target: Tensor, source: Tensor | None) -> Tensor:
    """``target`` as the model has it, its data read from ``source`` in ``target``'s layout and dtype."""
    if source is None:
        return target

    def load() -> np.ndarray:
        array = to_layout_of(canonical_array(source), target) if _relaid_between(source, target) else source.read()
        if source.dtype != target.dtype:
            array = np.asarray(array).astype(dtypes.to_numpy(target.dtype))
        return array

    return replace(target, loader=load)


def _fixed_metadata(checkpoint: Model, model: Model) -> dict[str, str]:
    """What the model says of its Keras and backend, and weightkit's records of how the file was made."""
    metadata = {key: value for key, value in model.metadata.items() if key == "backend" and isinstance(value, str)}
    provenance = recorded_backbone(checkpoint)  # the weights are the checkpoint's, and so is their backbone
    if provenance:
        metadata[PROVENANCE_KEY] = provenance
    version = f", Keras {model.framework_version}" if model.framework_version else ""
    metadata[WRITER_KEY] = f"weightkit {__version__}"
    metadata[FIXED_FROM_KEY] = _name(checkpoint, "the checkpoint")
    metadata[LAYOUT_OF_KEY] = f"{_name(model, 'the model')} ({model.format}{version})"
    return metadata


def _name(model: Model, default: str) -> str:
    return Path(model.source).name if model.source else default
