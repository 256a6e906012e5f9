"""Does a head fit the features a backbone puts out? The layer that produces them and the one that takes them.

`check_junction` is what `weightkit check BACKBONE HEAD` and `merge` ask before the
two parts are joined. With the head's Keras architecture it follows the backbone's
full output shape (batch dim None) through the head's layers in graph order, as Keras
would when the head is called on the backbone's output, and reports the first layer
that would refuse it: the head's declared input (rank and every dimension), a
pooling or convolution on a tensor of the wrong rank, a ``Reshape`` that needs another
number of values, a weighted layer (Dense, Conv, DepthwiseConv, BatchNormalization)
whose kernel expects another number of inputs — through a ``Flatten`` that number is
height·width·channels. It goes on past the first weighted layer, since a detector's
``Reshape`` after its 1×1 convolution fixes the grid too. A layer that refuses the
head's own declared input as well is weightkit's (or the head's own) problem, not the
junction's, and is not reported. A head without an architecture (weights only) is
compared by channels: the backbone's output against its first weighted layer's input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from math import prod

from ..errors import UsageError
from ..formats.keras import ConfigLayer, architecture, infer_shapes
from ..model import Dim, Model
from ..records import recorded_backbone
from .canonical import Unit, in_channels, out_channels, units
from .check import CheckReport, Finding
from .fingerprint import fingerprint

__all__ = ["check_junction"]

Shape = tuple[Dim, ...]

# Layers that need rank N + 2 (batch, N spatial dims, channels): Conv2D, MaxPooling2D, GlobalAveragePooling2D...
_SPATIAL = re.compile(r"^(?:Conv|Convolution|AtrousConvolution|DepthwiseConv|SeparableConv|SeparableConvolution|"
                      r"Deconvolution|MaxPooling|MaxPool|AveragePooling|AvgPool|GlobalAveragePooling|GlobalMaxPooling|"
                      r"GlobalAvgPool|GlobalMaxPool|ZeroPadding|Cropping|UpSampling|SpatialDropout)([123])D"
                      r"(?:Transpose)?$")
# Kinds whose kernel fixes the size of their input's channel (or feature) axis.
_CHANNEL_KINDS = ("dense", "lstm", "gru", "rnn", "batch_norm")


@dataclass
class _Features:
    """What the backbone puts out: the layer, its full shape where its graph gives it, its channel count."""

    layer: str | None
    shape: Shape | None
    channels: int | None
    pooled_by: str | None = None  # the global pooling that made the output (batch, channels)
    root: ConfigLayer | None = field(default=None, repr=False)  # the backbone's architecture
    input: Shape | None = None  # the backbone's input shape that gives ``shape``

    def describe(self) -> str:
        return _show(self.shape) if self.shape is not None else f"{self.channels} channels"


@dataclass
class _Visit:
    """A head layer (or model) in graph order with the shapes it gets; ``feeder`` is the layer feeding it."""

    path: str
    layer: ConfigLayer
    sources: list[Shape | None]
    feeder: _Visit | None = None


@dataclass
class _Problem:
    """Why a head layer refuses what it gets, and what to do."""

    layer: str
    message: str
    fix: str


@dataclass
class _Head:
    """The head as the check walks it: its units by path, the visits from its own declared input."""

    units: dict[str, Unit]
    own: dict[str, _Visit]
    features: _Features

    def unit(self, path: str) -> Unit | None:
        return self.units.get(path) or self.units.get(f"{path}:depthwise")


_UNKNOWN = "unknown"  # a check that needs a dimension nobody states


def check_junction(backbone: Model, head: Model, *, input_shape: tuple[int, ...] | None = None) -> CheckReport:
    """Does ``head`` take what ``backbone`` puts out? Names the layer that would refuse it, both shapes and the fix.

    Args:
        backbone: the model whose output feeds the head.
        head: the model that takes it.
        input_shape: the backbone's input without the batch dim (``(224, 224, 3)``), all of it;
            by default the input its file declares.

    Raises:
        UsageError: ``input_shape`` does not have the rank of the backbone's input.

    Example:
        >>> report = check_junction(weightkit.load("backbone.h5"), weightkit.load("head.h5"))
        >>> [(f.severity, f.message) for f in report.findings]
    """
    report = CheckReport("junction", "junction")
    features = _backbone_features(backbone, input_shape)
    root = architecture(head) if head.has_graph and head.framework == "keras" else None
    finding = _through_head(features, head, root) if root is not None and root.layers else None
    report.findings.append(finding or _by_channels(features, head))
    _provenance(backbone, head, report, fits=report.findings[0].severity == "info")
    return report


# ---- the backbone's side -----------------------------------------------------------------------


def _backbone_features(backbone: Model, input_shape: tuple[int, ...] | None) -> _Features:
    root = architecture(backbone) if backbone.has_graph and backbone.framework == "keras" else None
    if root is not None and root.layers:
        inputs = _backbone_inputs(root, input_shape, backbone)
        name = (root.output_names or [root.layers[-1].name])[0]
        shape = infer_shapes(root, inputs).get(name)
        if shape is not None:
            producer = root.by_name().get(name)
            channels = shape[1] if producer is not None and _channels_first(producer) else shape[-1]
            pooled = name if producer is not None and producer.class_name.startswith("Global") else None
            return _Features(name, shape, channels if isinstance(channels, int) else None, pooled, root,
                             inputs[0] if inputs else None)
    if input_shape is not None and root is None:
        raise UsageError("an input shape needs the backbone's Keras architecture, and this file has none",
                         hint="leave the input shape out: the junction is then compared by channels",
                         path=backbone.source)
    weighted = _weighted_units(backbone)
    return _Features(weighted[-1].path, None, out_channels(weighted[-1])) if weighted else _Features(None, None, None)


def _backbone_inputs(root: ConfigLayer, input_shape: tuple[int, ...] | None, backbone: Model) -> list[Shape | None]:
    """The backbone's input shapes: ``input_shape`` (checked against the declared rank) or the declared ones."""
    declared = [spec.shape for spec in root.input_specs()]
    if input_shape is None:
        return declared
    first = declared[0] if declared else None
    if first is not None and len(input_shape) != len(first) - 1:
        specs = root.input_specs()
        given = ",".join(str(d) for d in input_shape)
        example = ",".join(str(d) for d in (*input_shape, *first[len(input_shape) + 1:])[:len(first) - 1])
        raise UsageError(
            f"the input shape {given} has {len(input_shape)} dimension(s); the backbone's input "
            f"{specs[0].name!r} is {_show(first)}: it needs all {len(first) - 1} besides the batch",
            hint=f"give {_axes_hint(len(first) - 1)}, e.g. {example}", path=backbone.source)
    return [(None, *input_shape), *declared[1:]]


def _axes_hint(rank: int) -> str:
    return {1: "the features", 2: "steps and channels", 3: "height, width and channels",
            4: "depth, height, width and channels"}.get(rank, f"{rank} dimensions")


# ---- the head's side, with its architecture ----------------------------------------------------


def _through_head(features: _Features, head: Model, root: ConfigLayer) -> Finding | None:
    """The backbone's shape followed through the head: the first refusal, or what the head takes; None: no shapes."""
    declared = [spec.shape for spec in root.input_specs()]
    given = _given(features, declared[0] if declared else None)
    if given is None:
        return None
    state = _Head({unit.path: unit for unit in units(head)}, {}, features)
    state.own = {visit.path: visit for visit in _visits(root, declared or [None])}
    visits = _visits(root, [given, *declared[1:]])
    unknown: _Visit | None = None
    for visit in visits:
        outcome = _examine(visit, state)
        if isinstance(outcome, _Problem) and not _refuses_own(visit, state):
            return _error(features, outcome)
        if outcome == _UNKNOWN and unknown is None:
            unknown = visit
    weighted = next((v for v in visits if state.unit(v.path) is not None and v.sources[0] is not None), None)
    if weighted is None:
        return None
    if unknown is not None:
        return _cannot_tell(features, unknown, state)
    return _fits(features, weighted, state)


def _given(features: _Features, declared: Shape | None) -> Shape | None:
    """What the head's input gets: the backbone's shape, its unknown dims taken from the head's declared input.

    Keras checks the declared input whenever the head runs, so a dim the backbone leaves open
    is the declared one or the head refuses it there. A backbone known only by its channel
    count gives the declared shape with those channels.
    """
    if features.shape is None:
        if features.channels is None or declared is None:
            return None
        return (*declared[:-1], features.channels)
    shape = features.shape
    if declared is None or len(declared) != len(shape):
        return shape
    return (shape[0], *(have if isinstance(have, int) else want for have, want in zip(shape[1:], declared[1:])))


def _visits(model: ConfigLayer, inputs: list[Shape | None], prefix: str = "") -> list[_Visit]:
    """The model (its declared inputs) and then every layer it holds, in graph order, with the shapes each gets."""
    found = [_Visit(prefix, model, list(inputs))]
    shapes = infer_shapes(model, list(inputs))
    seen: dict[str, _Visit] = {}
    previous: Shape | None = inputs[0] if inputs else None
    previous_name: str | None = None
    for layer in model.layers:
        path = f"{prefix}/{layer.name}" if prefix else layer.name
        if layer.class_name == "InputLayer":
            previous, previous_name = shapes.get(layer.name), layer.name
            continue
        names = layer.inbound or ([previous_name] if previous_name else [])
        sources = [shapes.get(name) for name in names] if names else [previous]
        if layer.is_model:
            found.extend(_visits(layer, sources, path))
        else:
            visit = _Visit(path, layer, sources, seen.get(names[0]) if len(names) == 1 else None)
            seen[layer.name] = visit
            found.append(visit)
        previous, previous_name = shapes.get(layer.name), layer.name
    return found


def _refuses_own(visit: _Visit, state: _Head) -> bool:
    """The layer refuses the shapes of the head's own declared input too: not the junction's doing."""
    own = state.own.get(visit.path)
    return own is not None and isinstance(_examine(own, state), _Problem)


def _examine(visit: _Visit, state: _Head) -> _Problem | str | None:
    """Why this layer refuses its input (a `_Problem`), `_UNKNOWN` when that cannot be told, None when it takes it."""
    if visit.layer.is_model:
        return _declared_problem(visit, state)
    if len(visit.sources) != 1:
        return None
    shape = visit.sources[0]
    if shape is None:
        return None
    return _rank_problem(visit, shape, state) or _reshape_problem(visit, shape, state) or _weights_problem(
        visit, shape, state)


def _declared_problem(visit: _Visit, state: _Head) -> _Problem | None:
    """Keras 3 refuses a model called on a tensor whose rank or any stated dim differs from its declared input."""
    specs = visit.layer.input_specs()
    declared, got = (specs[0].shape if specs else None), visit.sources[0] if visit.sources else None
    if declared is None or got is None:
        return None
    name = specs[0].name if not visit.path else f"{visit.path}/{specs[0].name}"
    want, have = _squeezed(declared, got)
    where = (f"the head's input {name!r} is declared {_show(declared)}; backbone layer {state.features.layer!r} "
             f"puts out {state.features.describe()}")
    if visit.path and state.features.shape is not None and tuple(got) != tuple(state.features.shape):
        where += f", which reaches {visit.path!r} as {_show(got)}"
    if len(want) != len(have):
        return _rank_mismatch(name, where, declared, got, state.features)
    differ = [axis for axis in range(1, len(want)) if isinstance(want[axis], int) and isinstance(have[axis], int)
              and want[axis] != have[axis]]
    if not differ:
        return None
    if _is_transposed(want, have):
        return _Problem(name, f"{where}: the head takes channels first, the backbone puts them last",
                        "use a head built channels_last, or a backbone that puts out channels first")
    return _dims_problem(name, where, want, have, differ, state)


def _squeezed(declared: Shape, got: Shape) -> tuple[Shape, Shape]:
    """Keras's allowance: a rank that differs by one trailing 1 is squeezed before comparing."""
    if len(got) == len(declared) + 1 and got[-1] == 1:
        return declared, got[:-1]
    if len(declared) == len(got) + 1 and declared[-1] == 1:
        return declared[:-1], got
    return declared, got


def _is_transposed(want: Shape, have: Shape) -> bool:
    """The head declares (channels, height, width) where the backbone gives (height, width, channels)."""
    moved = (have[-1], *have[1:-1])
    return len(want) > 2 and want[1] == have[-1] and all(w is None or w == m for w, m in zip(want[1:], moved))


def _rank_mismatch(name: str, where: str, declared: Shape, got: Shape, features: _Features) -> _Problem:
    pooled = ", already pooled" if features.pooled_by and len(got) == 2 else ""
    message = f"{where}{pooled}: rank {len(got)} where the head needs rank {len(declared)}"
    if pooled:
        return _Problem(name, message, f"use the backbone without its pooling layer {features.pooled_by!r} "
                        f"(keras.applications: pooling=None), or a head that takes {_show(got)}")
    return _Problem(name, message, f"use a head whose input has rank {len(got)}, or cut the backbone where it "
                    f"puts out rank-{len(declared)} tensors")


def _dims_problem(name: str, where: str, want: Shape, have: Shape, differ: list[int], state: _Head) -> _Problem:
    """Which dims differ, in words: the grid (height×width) and the channels."""
    channel_axis = len(want) - 1
    parts, fixes = [], []
    grid = [axis for axis in differ if axis != channel_axis]
    if grid:
        need = tuple(want[1:channel_axis])
        parts.append(f"a {_grid(have[1:channel_axis])} grid where the head needs {_grid(need)}")
        fixes.append(_grid_fix(state.features, need, have[1:channel_axis]))
    if channel_axis in differ:
        noun = "channels" if len(want) > 2 else "features"
        parts.append(f"{have[channel_axis]} {noun} where the head needs {want[channel_axis]}"
                     + _expected_by(state, want[channel_axis]))
        fixes.append(f"use a head made for a {have[channel_axis]}-{noun[:-1]} backbone, or a backbone that "
                     f"puts out {want[channel_axis]} {noun}")
    return _Problem(name, f"{where}: {' and '.join(parts)}", "; ".join(fixes))


def _expected_by(state: _Head, count: Dim) -> str:
    """`` (head layer 'fc' expects 32)`` when the head's first weighted layer is what needs ``count``."""
    first = next(iter(state.units.values()), None)
    if first is None or in_channels(first) != count:
        return ""
    return f" (head layer {first.path.split(':')[0]!r} expects {count})"


def _rank_problem(visit: _Visit, shape: Shape, state: _Head) -> _Problem | None:
    match = _SPATIAL.match(visit.layer.class_name)
    if match is None or len(shape) == int(match.group(1)) + 2:
        return None
    spatial = int(match.group(1))
    axes = ("steps",) if spatial == 1 else ("depth", "height", "width")[3 - spatial:]
    order = ("channels", *axes) if _channels_first(visit.layer) else (*axes, "channels")
    pooled = ""
    if state.features.pooled_by and len(shape) == 2:
        pooled = f", already pooled by {state.features.pooled_by!r}"
    message = (f"head layer {visit.path!r} ({visit.layer.class_name}) needs a rank-{spatial + 2} input "
               f"(batch, {', '.join(order)}); it gets {_show(shape)}{pooled}{_from(state.features, shape)}")
    fix = (f"use the backbone without its pooling layer {state.features.pooled_by!r} (keras.applications: "
           f"pooling=None), or a head without {visit.path!r}" if pooled else
           f"use a head that takes rank-{len(shape)} tensors, or cut the backbone where it puts out rank {spatial + 2}")
    return _Problem(visit.path, message, fix)


def _reshape_problem(visit: _Visit, shape: Shape, state: _Head) -> _Problem | str | None:
    if visit.layer.class_name != "Reshape":
        return None
    target = [int(d) for d in visit.layer.config.get("target_shape") or []]
    known = _count(shape)
    if known is None:
        return _UNKNOWN
    fixed = prod(d for d in target if d != -1)
    need, have = _grid_of(target, shape), tuple(shape[1:-1])
    if (known % fixed == 0) if -1 in target else known == fixed:
        return None if need is None or need == have else _regridded(visit, shape, need, state)
    wants = (f"a multiple of {fixed} values per sample (target {target})" if -1 in target else
             f"{'·'.join(str(d) for d in target)} = {fixed} values per sample")
    message = f"head layer {visit.path!r} needs {wants}; it gets {_show(shape)} = {known}"
    if need is None:
        return _Problem(visit.path, message + _from(state.features, shape),
                        f"use a head built for {state.features.describe()}")
    message += f": the head was built for a {_grid(need)} grid and gets {_grid(have)}{_from(state.features, shape)}"
    return _Problem(visit.path, message, _grid_fix(state.features, need, have))


def _regridded(visit: _Visit, shape: Shape, need: tuple[int, ...], state: _Head) -> _Problem:
    """A ``Reshape`` that gets as many values as it needs, but lays another grid over them: Keras computes nonsense."""
    have = tuple(d for d in shape[1:-1] if isinstance(d, int))
    moved = _first_moved_cell(need, have)
    where = f" (its cell {moved[0]} holds the values of cell {moved[1]})" if moved else ""
    return _Problem(visit.path, f"head layer {visit.path!r} lays a {_grid(need)} grid over {_show(shape)}, a "
                    f"{_grid(have)} grid{_from(state.features, shape)}: the counts agree, so Keras runs, but the "
                    f"cells are mixed up{where}", _grid_fix(state.features, need, have))


def _first_moved_cell(need: tuple[int, ...], have: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The first cell of the reshaped grid that reads another cell of the backbone's (row-major order)."""
    for index in range(min(prod(need), prod(have))):
        ours, theirs = _cell(index, need), _cell(index, have)
        if ours != theirs:
            return ours, theirs
    return None


def _cell(index: int, grid: tuple[int, ...]) -> tuple[int, ...]:
    cell = []
    for size in reversed(grid):
        index, position = divmod(index, size)
        cell.append(position)
    return tuple(reversed(cell))


def _grid_of(target: list[int], shape: Shape) -> tuple[int, ...] | None:
    """The grid a ``Reshape`` target starts with, when the rest of it holds the input's channels (13, 13, 5, 25)."""
    spatial = len(shape) - 2
    if spatial < 1 or len(target) <= spatial or -1 in target or not isinstance(shape[-1], int):
        return None
    return tuple(target[:spatial]) if prod(target[spatial:]) == shape[-1] else None


def _weights_problem(visit: _Visit, shape: Shape, state: _Head) -> _Problem | str | None:
    """A weighted layer whose kernel (or norm statistics) expects another size on its channel axis."""
    unit = state.unit(visit.path)
    if unit is None or not (unit.kind in _CHANNEL_KINDS or unit.kind.startswith(("conv", "depthwise"))):
        return None
    expected = in_channels(unit)
    axis = _channel_axis(visit.layer, unit)
    if expected is None or not -len(shape) <= axis < len(shape):
        return None
    got = shape[axis]
    if not isinstance(got, int):
        return _UNKNOWN
    if got == expected:
        return None
    if axis == 1 and len(shape) > 2 and shape[-1] == expected:
        return _Problem(visit.path, f"head layer {visit.path!r} is channels_first: it reads axis 1 ({got}) as its "
                        f"{expected} input channels, but {_show(shape)}{_from(state.features, shape)} has its "
                        "channels last",
                        "rebuild the head with data_format='channels_last', or use a channels_first backbone")
    noun = _noun(unit)
    feeder = visit.feeder
    flattened = feeder.sources[0] if feeder is not None and feeder.layer.class_name in ("Flatten", "Reshape") else None
    after = f" after {feeder.path!r} of {_show(flattened)}" if feeder is not None and flattened is not None else ""
    return _Problem(visit.path, f"head layer {visit.path!r} expects {expected} {noun}; it gets {_show(shape)}{after}"
                    f"{_from(state.features, flattened or shape)}",
                    f"use a head made for {state.features.describe()}, or a backbone that puts out {expected} "
                    f"{noun.removeprefix('input ')}")


def _noun(unit: Unit) -> str:
    """What a unit's input axis counts: a Dense's input features, a convolution's channels, a norm's features."""
    if unit.kind in ("dense", "lstm", "gru", "rnn"):
        return "input features"
    return "channels" if unit.kind.startswith(("conv", "depthwise")) else "features"


def _channel_axis(layer: ConfigLayer, unit: Unit) -> int:
    if unit.kind == "batch_norm":
        axis = layer.config.get("axis", -1)
        return axis[0] if isinstance(axis, list) and len(axis) == 1 else axis if isinstance(axis, int) else -1
    return 1 if _channels_first(layer) else -1


def _grid_fix(features: _Features, need: tuple[Dim, ...], have: tuple[Dim, ...]) -> str:
    """Run the backbone at the input size that gives the head's grid (checked on its own config), or change the head."""
    size = _input_for_grid(features, need)
    instead = f"or use a head built for a {_grid(have)} grid"
    if size is None:
        return f"give the backbone an input size at which it puts out a {_grid(need)} grid, {instead}"
    return (f"run the backbone on {_grid(size[:-1])} inputs (rebuild it with input_shape={tuple(size)}; "
            f"--input-shape {','.join(str(d) for d in size)} checks it), {instead}")


def _input_for_grid(features: _Features, need: tuple[Dim, ...]) -> tuple[int, ...] | None:
    """The backbone input (no batch dim) that gives the grid ``need``: today's scaled, checked on its config."""
    shape, source = features.shape, features.input
    if features.root is None or shape is None or source is None or len(source) != len(shape):
        return None
    wanted, have, today = _ints(need), _ints(shape[1:-1]), _ints(source[1:])
    if wanted is None or have is None or today is None or 0 in have:
        return None
    scaled = [size * n // h for size, n, h in zip(today, wanted, have)]
    if any(size * n % h for size, n, h in zip(today, wanted, have)):
        return None
    candidate = (*scaled, *today[len(scaled):])
    got = infer_shapes(features.root, [(None, *candidate)]).get(features.layer or "")
    return candidate if got is not None and tuple(got[1:-1]) == wanted else None


def _ints(dims: tuple[Dim, ...]) -> tuple[int, ...] | None:
    """The dims as ints; None when one is unknown or symbolic."""
    known = tuple(d for d in dims if isinstance(d, int))
    return known if len(known) == len(dims) else None


def _fits(features: _Features, weighted: _Visit, state: _Head) -> Finding:
    unit = state.unit(weighted.path)
    expected = in_channels(unit) if unit is not None else None
    shape, feeder = weighted.sources[0], weighted.feeder
    takes = f"takes {_show(shape)}"
    if feeder is not None and feeder.layer.class_name in ("Flatten", "Reshape") and feeder.sources[0] is not None:
        flattened = feeder.sources[0]
        takes = f"takes them as {'·'.join(str(d) for d in flattened[1:])} = {_count(flattened)} values after " \
            f"{feeder.path!r}"
    elif expected is not None:
        takes += f" ({expected} {_noun(unit)})" if unit is not None else ""
    return Finding("fits", "info", f"backbone layer {features.layer!r} puts out {features.describe()}; head layer "
                   f"{weighted.path!r} {takes}")


def _cannot_tell(features: _Features, visit: _Visit, state: _Head) -> Finding:
    return Finding("junction", "warning", f"cannot tell whether head layer {visit.path!r} takes what backbone layer "
                   f"{features.layer!r} puts out ({features.describe()}): the size it needs depends on dims the "
                   "backbone leaves open", [n for n in (features.layer, visit.path) if n],
                   fix="give the backbone's input size (--input-shape H,W,C; input_shape= in Python)")


def _error(features: _Features, problem: _Problem) -> Finding:
    return Finding("junction", "error", problem.message, [n for n in (features.layer, problem.layer) if n],
                   fix=problem.fix)


# ---- the head's side, weights only -------------------------------------------------------------


def _by_channels(features: _Features, head: Model) -> Finding:
    """A head without an architecture: its first weighted layer's input channels against the backbone's output."""
    first = _weighted_units(head)[:1]
    expected, consumer = (in_channels(first[0]), first[0].path) if first else (None, None)
    produced, producer = features.channels, features.layer
    tensors = [n for n in (producer, consumer) if n is not None]
    if produced is None or expected is None:
        return Finding("junction", "warning", "cannot tell the channels at the junction: "
                       f"backbone {producer or '?'} puts out {produced or '?'}, head {consumer or '?'} "
                       f"takes {expected or '?'}", tensors)
    if produced == expected:
        return Finding("fits", "info", f"backbone layer {producer!r} puts out {features.describe()}, head layer "
                       f"{consumer!r} takes {expected}")
    shape = features.shape
    if shape is not None and len(shape) > 2 and _count(shape) == expected:
        return Finding("fits", "info", f"backbone layer {producer!r} puts out {_show(shape)} = {expected} values, "
                       f"head layer {consumer!r} takes {expected}: it fits if the head flattens them (the head file "
                       "has no architecture to tell)")
    return Finding("junction", "error", f"backbone layer {producer!r} puts out {produced} channels"
                   + (f" (feature map {_show(shape)})" if shape is not None else "")
                   + f"; head layer {consumer!r} expects {expected}", tensors,
                   fix=f"use a head made for a {produced}-channel backbone, or a backbone that puts out {expected} "
                   "channels")


def _weighted_units(model: Model) -> list[Unit]:
    return [unit for unit in units(model) if "weight" in unit.tensors or "running_mean" in unit.tensors]


# ---- provenance --------------------------------------------------------------------------------


def _provenance(backbone: Model, head: Model, report: CheckReport, *, fits: bool) -> None:
    """Was the head cut from this backbone? Only a head that fits is promised to load."""
    recorded = recorded_backbone(head)
    if recorded is None:
        return
    actual = fingerprint(backbone)
    if actual == recorded:
        report.findings.append(Finding("provenance", "info", "the head was cut from this very backbone"))
        return
    consequence = "loading will succeed, accuracy will not" if fits else "even with a fitting junction its " \
        "accuracy would not carry over"
    report.findings.append(Finding(
        "provenance", "warning", "the head was trained on another backbone (its recorded fingerprint "
        f"{recorded[:19]}… differs from this backbone's {actual[:19]}…): {consequence}",
        fix="pair the head with the backbone it was cut from, or fine-tune it on this one"))


# ---- words -------------------------------------------------------------------------------------


def _show(shape: Shape | None) -> str:
    return "[?]" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def _grid(dims: tuple[Dim, ...] | Shape) -> str:
    return "×".join("?" if d is None else str(d) for d in dims)


def _count(shape: Shape) -> int | None:
    """Values per sample; None when a dim is unknown."""
    dims = shape[1:]
    return prod(d for d in dims if isinstance(d, int)) if all(isinstance(d, int) for d in dims) else None


def _from(features: _Features, got: Shape) -> str:
    """`` from backbone layer 'x'`` or, when the head changed it on the way, ``(backbone layer 'x' puts out [..])``."""
    if features.shape is not None and tuple(features.shape) == tuple(got):
        return f" from backbone layer {features.layer!r}"
    return f" (backbone layer {features.layer!r} puts out {features.describe()})"


def _channels_first(layer: ConfigLayer) -> bool:
    return layer.config.get("data_format") == "channels_first"
