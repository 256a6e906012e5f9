"""Two architectures side by side: which layers correspond, and how their tensors differ.

Layers are paired by name first (after `normalize_name`), then by structure: an
order-preserving alignment over kinds and canonical shapes, so that a Keras file
and a PyTorch or ONNX file of the same network line up although every name differs,
then, for what is left, without regard to order (a safetensors file keeps its tensors
in alphabetical order). A convolution and its batch norm pair with the one convolution
an exporter folded them into. The models' input and output shapes are compared too.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..model import Dim, Model, Tensor, TensorSpec
from .canonical import Fold, Unit, canonical_array, canonical_shape, fold_batch_norm, folds_into, units

__all__ = ["Change", "Pair", "ShapeChange", "Diff", "diff_models", "align", "diff_document", "VERDICTS"]

# Alignment scores: a name match outweighs a structural one; incompatible pairs are never made.
_NAME, _SAME_WEIGHTS, _SAME_KIND, _NEVER = 4, 3, 1, -1

# Changes that say how the same thing is stored, not that it differs.
_INFORMATIONAL = frozenset({"relaid", "folded", "free"})

# A folded view computed in float64 against an exporter's float32 fold: differences below this share of
# the tensor's largest magnitude are rounding.
_FOLD_TOLERANCE = 1e-5

#: ``Diff.verdict`` values, in the words the CLI prints them with.
VERDICTS = {
    "same_architecture": "the two match in architecture (values not compared)",
    "same_architecture_and_values": "the two match in architecture and values",
    "different": "the two differ",
}


@dataclass
class Change:
    """One difference between paired tensors.

    ``what`` is one of ``added`` (only in B), ``removed`` (only in A), ``reshaped``,
    ``retyped``, ``relaid`` (same canonical shape, other layout: informational),
    ``folded`` (one side's batch norm is folded into the other's convolution: informational;
    ``role`` is ``batch_norm``), ``values`` (with ``max_abs_diff``).
    """

    what: str
    role: str
    a: Tensor | None = None
    b: Tensor | None = None
    detail: str = ""
    max_abs_diff: float | None = None


@dataclass
class Pair:
    """Layer ``a`` of the first model against layer ``b`` of the second (either may be None)."""

    a: Unit | None
    b: Unit | None
    matched_by: str | None = None  # "name", "structure"
    changes: list[Change] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        return self.a is None or self.b is None or any(c.what not in _INFORMATIONAL for c in self.changes)

    @property
    def fold(self) -> Fold | None:
        """How one side is a convolution with its batch norm folded in, where it is."""
        return (self.a.fold if self.a else None) or (self.b.fold if self.b else None)


@dataclass
class ShapeChange:
    """An input or output of the models whose shape differs; the batch dimension (the first) is left out.

    ``what`` is ``reshaped`` (a size or the rank differs), ``added`` (only B has it),
    ``removed`` (only A has it), or, informational, ``relaid`` (the same sizes channels-last
    on one side and channels-first on the other) and ``free`` (a dimension free on one side
    is fixed on the other).
    """

    what: str
    where: str  # "input" or "output"
    index: int
    a: TensorSpec | None
    b: TensorSpec | None
    detail: str = ""

    @property
    def differs(self) -> bool:
        return self.what not in _INFORMATIONAL


@dataclass
class Diff:
    """The result of `diff_models`: pairs in order, input and output shapes, and the verdict."""

    a: Model
    b: Model
    pairs: list[Pair]
    compared_values: bool = False
    shapes: list[ShapeChange] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        return any(pair.differs for pair in self.pairs) or any(change.differs for change in self.shapes)

    @property
    def verdict(self) -> str:
        """``different``, ``same_architecture_and_values`` (``--values``) or ``same_architecture``."""
        if self.differs:
            return "different"
        return "same_architecture_and_values" if self.compared_values else "same_architecture"

    def counts(self) -> dict[str, int]:
        """How many layers matched, were only in A or only in B, and how many tensor changes of each kind."""
        counts = {"matched": 0, "only_a": 0, "only_b": 0}
        for pair in self.pairs:
            key = "matched" if pair.a and pair.b else "only_a" if pair.a else "only_b"
            counts[key] += 1
            for change in pair.changes:
                counts[change.what] = counts.get(change.what, 0) + 1
        return counts


def diff_models(a: Model, b: Model, *, values: bool = False) -> Diff:
    """Align the layers of ``a`` and ``b`` and list every tensor difference.

    Args:
        a, b: models from any formats.
        values: also read paired tensors and compare their data (in canonical layout).

    Example:
        >>> result = diff_models(weightkit.load("a.h5"), weightkit.load("b.pt"))
        >>> result.differs, result.counts()
    """
    weightless = a.has_graph and b.has_graph and a.framework == b.framework
    pairs = align(units(a, weightless=weightless), units(b, weightless=weightless), fold_norms=True)
    for pair in pairs:
        if pair.a and pair.b:
            pair.changes = _tensor_changes(pair.a, pair.b, values)
    return Diff(a, b, pairs, compared_values=values, shapes=_shape_changes(a, b))


def align(left: list[Unit], right: list[Unit], *, fold_norms: bool = False) -> list[Pair]:
    """Pair two unit sequences: equal names first (in any order), then an order-preserving
    structural alignment of the rest, then equal structures among what is left, in any order;
    pairs come out in ``left``'s order.

    With ``fold_norms``, a convolution followed by a batch norm that found no partner is
    tried as the one convolution they fold into (`fold_batch_norm`): paired so, the pair's
    unit on that side is the folded view.
    """
    pairs = _align(left, right)
    if not fold_norms:
        return pairs
    folded_left, folded_right = _fold_lone_norms(left, pairs, "a"), _fold_lone_norms(right, pairs, "b")
    if folded_left is left and folded_right is right:
        return pairs
    return _unfold_lone_views(_align(folded_left, folded_right))


def _align(left: list[Unit], right: list[Unit]) -> list[Pair]:
    names_left, names_right = _comparable_names(left, right), _comparable_names(right, left)
    anchors = _name_anchors(left, right, names_left, names_right)
    rest_left = [i for i in range(len(left)) if i not in anchors]
    rest_right = [j for j in range(len(right)) if j not in set(anchors.values())]
    matches = {**anchors, **_structural(left, right, rest_left, rest_right)}
    rest_left = [i for i in rest_left if i not in matches]
    rest_right = [j for j in rest_right if j not in set(matches.values())]
    matches.update(_unordered(left, right, rest_left, rest_right))
    return _ordered_pairs(left, right, matches, set(anchors))


def _name_anchors(left: list[Unit], right: list[Unit], names_left: list[str], names_right: list[str]) -> dict[int, int]:
    counts_left, counts_right = Counter(names_left), Counter(names_right)
    where = {name: j for j, name in enumerate(names_right) if counts_right[name] == 1}
    anchors = {}
    for i, name in enumerate(names_left):
        j = where.get(name)
        if j is not None and counts_left[name] == 1 and _score(left[i], right[j], True) > 0:
            anchors[i] = j
    return anchors


def _structural(left: list[Unit], right: list[Unit], rows: list[int], cols: list[int]) -> dict[int, int]:
    """Order-preserving alignment (Needleman-Wunsch) of the unpaired units by kind and canonical shapes."""
    score = np.zeros((len(rows) + 1, len(cols) + 1), dtype=np.int64)
    for a in range(len(rows) - 1, -1, -1):
        for b in range(len(cols) - 1, -1, -1):
            pair = _score(left[rows[a]], right[cols[b]], False)
            best = max(score[a + 1, b], score[a, b + 1])
            score[a, b] = max(best, score[a + 1, b + 1] + pair) if pair > 0 else best
    matches = {}
    a = b = 0
    while a < len(rows) and b < len(cols):
        pair = _score(left[rows[a]], right[cols[b]], False)
        if pair > 0 and score[a, b] == score[a + 1, b + 1] + pair:
            matches[rows[a]] = cols[b]
            a, b = a + 1, b + 1
        elif score[a + 1, b] >= score[a, b + 1]:
            a += 1
        else:
            b += 1
    return matches


def _unordered(left: list[Unit], right: list[Unit], rows: list[int], cols: list[int]) -> dict[int, int]:
    """Weighted units the ordered alignment left, paired regardless of order: equal signatures first
    (in order of occurrence), then a unit and the only compatible one left on the other side."""
    by_signature: dict[tuple, list[int]] = {}
    for j in cols:
        if right[j].tensors:
            by_signature.setdefault(right[j].signature, []).append(j)
    matches = {}
    for i in rows:
        candidates = by_signature.get(left[i].signature) if left[i].tensors else None
        if candidates:
            matches[i] = candidates.pop(0)
    rows = [i for i in rows if i not in matches and left[i].tensors]
    cols = [j for j in cols if j not in set(matches.values()) and right[j].tensors]
    for i in rows:
        fits = [j for j in cols if _score(left[i], right[j], False) > 0]
        if len(fits) == 1 and sum(_score(left[k], right[fits[0]], False) > 0 for k in rows) == 1:
            matches[i] = fits[0]
    return matches


def _fold_lone_norms(found: list[Unit], pairs: list[Pair], side: str) -> list[Unit]:
    """``found`` with each convolution whose following batch norm found no partner seen as their fold
    (``found`` itself when there is none)."""
    lone = {id(p.a if side == "a" else p.b) for p in pairs if (p.b if side == "a" else p.a) is None}
    result: list[Unit] = []
    index = 0
    while index < len(found):
        unit = found[index]
        after = found[index + 1] if index + 1 < len(found) else None
        if after is not None and id(after) in lone and folds_into(unit, after):
            result.append(fold_batch_norm(unit, after))
            index += 2
        else:
            result.append(unit)
            index += 1
    return result if len(result) < len(found) else found


def _unfold_lone_views(pairs: list[Pair]) -> list[Pair]:
    """A folded view that found no partner is its convolution and batch norm again, each alone."""
    result = []
    for pair in pairs:
        alone = pair.a if pair.b is None else pair.b if pair.a is None else None
        if alone is None or alone.fold is None:
            result.append(pair)
            continue
        for part in (alone.fold.conv, alone.fold.norm):
            result.append(Pair(part, None) if pair.a is not None else Pair(None, part))
    return result


def _ordered_pairs(left: list[Unit], right: list[Unit], matches: dict[int, int], by_name: set[int]) -> list[Pair]:
    """Pairs in ``left``'s order; a unit only in ``right`` goes after the pair of its predecessor in ``right``."""
    keyed: list[tuple[float, Pair]] = []
    for i, unit in enumerate(left):
        j = matches.get(i)
        how = None if j is None else "name" if i in by_name else "structure"
        keyed.append((float(i), Pair(unit, right[j] if j is not None else None, how)))
    left_of = {j: i for i, j in matches.items()}
    anchor = -0.5
    for j, unit in enumerate(right):
        if j in left_of:
            anchor = left_of[j] + 0.5
        else:
            anchor += 1e-6
            keyed.append((anchor, Pair(None, unit)))
    keyed.sort(key=lambda item: item[0])
    return [pair for _, pair in keyed]


def _score(a: Unit, b: Unit, same_name: bool) -> int:
    same_weights = bool(a.tensors) and a.signature == b.signature
    if not a.tensors or not b.tensors:  # weightless layers pair with weightless ones of their class only
        if a.tensors or b.tensors or a.layer.type_name != b.layer.type_name:
            return _NEVER
        return _NAME if same_name else _SAME_KIND
    if same_name:
        return _NAME + (1 if same_weights else 0)
    if same_weights:
        return _SAME_WEIGHTS
    if _compatible_kinds(a.kind, b.kind) and set(a.tensors) == set(b.tensors):
        return _SAME_KIND
    return _NEVER


def _compatible_kinds(a: str, b: str) -> bool:
    convs = {"conv2d", "depthwise_conv2d"}
    return a == b or {a, b} <= convs or "unknown" in (a, b)


def _comparable_names(found: list[Unit], other: list[Unit]) -> list[str]:
    """Normalized names; Keras's auto-numbered names compared by occurrence instead: ``conv2d`` in
    one build is ``conv2d_1`` in the next, so a base numbered on either side is counted on both."""
    names = [unit.name for unit in found]
    numbered = {base for unit in (*found, *other) if (base := re.sub(r"_\d+$", "", unit.name)) != unit.name}
    seen: dict[str, int] = {}
    result = []
    for name in names:
        base = re.sub(r"_\d+$", "", name)
        if base in numbered:
            index = seen.get(base, 0)
            seen[base] = index + 1
            result.append(f"{base}#{index}")
        else:
            result.append(name)
    return result


def _tensor_changes(a: Unit, b: Unit, values: bool) -> list[Change]:
    fold = a.fold or b.fold
    changes = [_fold_change(fold, "A" if a.fold else "B")] if fold else []
    tolerance = _FOLD_TOLERANCE if fold else 0.0
    rounding = 0.0
    for role in dict.fromkeys([*a.tensors, *b.tensors]):
        ta, tb = a.tensors.get(role), b.tensors.get(role)
        if ta is None or tb is None:
            changes.append(Change("added" if ta is None else "removed", role, ta, tb))
            continue
        shape_a, shape_b = canonical_shape(ta), canonical_shape(tb)
        if shape_a != shape_b:
            changes.append(Change("reshaped", role, ta, tb, f"{shape_a} → {shape_b}"))
            continue
        if ta.dtype != tb.dtype:
            changes.append(Change("retyped", role, ta, tb, f"{ta.dtype} → {tb.dtype}"))
        if ta.shape != tb.shape:
            note = f"{ta.layout or '?'} {ta.shape} ↔ {tb.layout or '?'} {tb.shape}"
            changes.append(Change("relaid", role, ta, tb, note))
        found = _value_difference(ta, tb) if values else None
        if found is not None and found[0] > tolerance * found[1]:
            changes.append(Change("values", role, ta, tb, f"largest difference {found[0]:.6g}", max_abs_diff=found[0]))
        elif found is not None:
            rounding = max(rounding, found[0])
    if fold and values and not any(change.what not in _INFORMATIONAL for change in changes):
        changes[0].detail += f"; the values agree after folding (largest difference {rounding:.3g})"
    return changes


def _fold_change(fold: Fold, side: str) -> Change:
    other = "B" if side == "A" else "A"
    detail = (f"{side}'s {fold.norm.path} is folded into {other}'s convolution: W·γ/√(σ²+ε), (b−μ)·γ/√(σ²+ε)+β, "
              f"{fold.epsilon_note}")
    return Change("folded", "batch_norm", detail=detail)


def _value_difference(a: Tensor, b: Tensor) -> tuple[float, float] | None:
    """The largest absolute difference of the data in canonical layout, and the largest magnitude
    on either side; None where the data are equal (and of one dtype)."""
    left, right = canonical_array(a), canonical_array(b)
    if left.tobytes() == right.tobytes() and left.dtype == right.dtype:
        return None
    left64, right64 = left.astype(np.float64), right.astype(np.float64)
    if not left64.size:
        return None if left.dtype == right.dtype else (0.0, 0.0)
    largest = float(np.nanmax(np.abs(left64 - right64)))
    if largest == 0.0 and left.dtype == right.dtype:
        return None
    return largest, float(max(np.nanmax(np.abs(left64)), np.nanmax(np.abs(right64))))


# ---- the models' inputs and outputs -------------------------------------------------------------


def _shape_changes(a: Model, b: Model) -> list[ShapeChange]:
    """Inputs and outputs compared by position, where both models declare them."""
    changes = []
    for where, left, right in (("input", a.inputs, b.inputs), ("output", a.outputs, b.outputs)):
        if not left or not right:
            continue
        for index in range(max(len(left), len(right))):
            first = left[index] if index < len(left) else None
            second = right[index] if index < len(right) else None
            change = _spec_change(where, index, first, second)
            if change is not None:
                changes.append(change)
    return changes


def _spec_change(where: str, index: int, a: TensorSpec | None, b: TensorSpec | None) -> ShapeChange | None:
    if a is None or b is None:
        return ShapeChange("added" if a is None else "removed", where, index, a, b,
                           _spec_text(b if a is None else a))
    if a.shape is None or b.shape is None:
        return None
    left, right = a.shape[1:], b.shape[1:]
    detail = f"{_spec_text(a)} → {_spec_text(b)}"
    if _same_dims(left, right, strict=True):
        return None
    if _same_dims(left, right, strict=False):
        return ShapeChange("free", where, index, a, b, detail + ": free on one side, fixed on the other")
    if len(left) >= 3 and (_same_dims(left[-1:] + left[:-1], right, strict=False)
                           or _same_dims(left[1:] + left[:1], right, strict=False)):
        return ShapeChange("relaid", where, index, a, b, detail + ": channels last on one side, first on the other")
    return ShapeChange("reshaped", where, index, a, b, detail)


def _same_dims(left: tuple[Dim, ...], right: tuple[Dim, ...], strict: bool) -> bool:
    """Equal ranks and sizes; a free dimension (None, a symbolic name) equals any other free one, and,
    unless ``strict``, any size."""
    def free(dim: Dim) -> bool:
        return not isinstance(dim, int)

    return len(left) == len(right) and all(
        (free(x) and free(y)) or (not strict and (free(x) or free(y))) or x == y for x, y in zip(left, right))


def _spec_text(spec: TensorSpec | None) -> str:
    if spec is None:
        return ""
    shape = "?" if spec.shape is None else "(" + ", ".join("None" if d is None else str(d) for d in spec.shape) + ")"
    return f"{spec.name} {shape}"


def diff_document(result: Diff) -> dict:
    """The diff as JSON-ready data (``weightkit diff --json``; see docs/json.md)."""
    from .inspect import SCHEMA_VERSION

    def unit(found: Unit | None) -> dict | None:
        if found is None:
            return None
        return {"path": found.path, "kind": found.kind, "type": found.layer.type_name,
                "tensors": {role: {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "layout": t.layout}
                            for role, t in found.tensors.items()}}

    def change(item: Change) -> dict:
        return {"what": item.what, "role": item.role, "a": item.a.name if item.a else None,
                "b": item.b.name if item.b else None, "detail": item.detail, "max_abs_diff": item.max_abs_diff}

    return {
        "schema_version": SCHEMA_VERSION,
        "a": result.a.source,
        "b": result.b.source,
        "differs": result.differs,
        "compared_values": result.compared_values,
        "verdict": result.verdict,
        "counts": result.counts(),
        "shapes": [_shape_document(item) for item in result.shapes],
        "pairs": [{"a": unit(p.a), "b": unit(p.b), "matched_by": p.matched_by, "folded": _fold_document(p),
                   "changes": [change(c) for c in p.changes]} for p in result.pairs],
    }


def _fold_document(pair: Pair) -> dict | None:
    fold = pair.fold
    if fold is None:
        return None
    return {"side": "a" if pair.a and pair.a.fold else "b", "conv": fold.conv.path, "norm": fold.norm.path,
            "epsilon": fold.epsilon, "epsilon_from": fold.epsilon_from, "default_of": fold.default_of}


def _shape_document(item: ShapeChange) -> dict:
    def spec(found: TensorSpec | None) -> dict | None:
        if found is None:
            return None
        return {"name": found.name, "shape": None if found.shape is None else list(found.shape)}

    return {"what": item.what, "where": item.where, "index": item.index, "a": spec(item.a), "b": spec(item.b),
            "detail": item.detail}
