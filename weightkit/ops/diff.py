"""Two architectures side by side: which layers correspond, and how their tensors differ.

Layers are paired by name first (after `normalize_name`), then by structure: an
order-preserving alignment over kinds and canonical shapes, so that a Keras file
and a PyTorch or ONNX file of the same network line up although every name differs.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..model import Model, Tensor
from .canonical import Unit, canonical_array, canonical_shape, units

__all__ = ["Change", "Pair", "Diff", "diff_models", "align", "diff_document"]

# Alignment scores: a name match outweighs a structural one; incompatible pairs are never made.
_NAME, _SAME_WEIGHTS, _SAME_KIND, _NEVER = 4, 3, 1, -1


@dataclass
class Change:
    """One difference between paired tensors.

    ``what`` is one of ``added`` (only in B), ``removed`` (only in A), ``reshaped``,
    ``retyped``, ``relaid`` (same canonical shape, other layout: informational),
    ``values`` (with ``max_abs_diff``).
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
        return self.a is None or self.b is None or any(c.what != "relaid" for c in self.changes)


@dataclass
class Diff:
    """The result of `diff_models`: pairs in order, and whether anything differs."""

    a: Model
    b: Model
    pairs: list[Pair]
    compared_values: bool = False

    @property
    def differs(self) -> bool:
        return any(pair.differs for pair in self.pairs)

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
    pairs = align(units(a, weightless=weightless), units(b, weightless=weightless))
    for pair in pairs:
        if pair.a and pair.b:
            pair.changes = _tensor_changes(pair.a, pair.b, values)
    return Diff(a, b, pairs, compared_values=values)


def align(left: list[Unit], right: list[Unit]) -> list[Pair]:
    """Pair two unit sequences: equal names first (in any order), then an order-preserving
    structural alignment of the rest; pairs come out in ``left``'s order."""
    names_left, names_right = _comparable_names(left), _comparable_names(right)
    anchors = _name_anchors(left, right, names_left, names_right)
    taken = set(anchors.values())
    rest_left = [i for i in range(len(left)) if i not in anchors]
    rest_right = [j for j in range(len(right)) if j not in taken]
    matches = {**anchors, **_structural(left, right, rest_left, rest_right)}
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
    if not a.tensors or not b.tensors:  # weightless layers pair only by name and class
        return _NAME if same_name and a.layer.type_name == b.layer.type_name else _NEVER
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


def _comparable_names(found: list[Unit]) -> list[str]:
    """Normalized names; Keras's auto-numbered twins (``conv2d_7``) compared by occurrence instead."""
    names = [unit.name for unit in found]
    seen: dict[str, int] = {}
    result = []
    for name in names:
        base = re.sub(r"_\d+$", "", name)
        if base != name or f"{base}_1" in names:
            index = seen.get(base, 0)
            seen[base] = index + 1
            result.append(f"{base}#{index}")
        else:
            result.append(name)
    return result


def _tensor_changes(a: Unit, b: Unit, values: bool) -> list[Change]:
    changes = []
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
        if values:
            change = _value_change(role, ta, tb)
            if change:
                changes.append(change)
    return changes


def _value_change(role: str, a: Tensor, b: Tensor) -> Change | None:
    left, right = canonical_array(a), canonical_array(b)
    if left.tobytes() == right.tobytes() and left.dtype == right.dtype:
        return None
    difference = np.abs(left.astype(np.float64) - right.astype(np.float64))
    largest = float(np.nanmax(difference)) if difference.size else 0.0
    if largest == 0.0 and left.dtype == right.dtype:
        return None
    return Change("values", role, a, b, f"largest difference {largest:.6g}", max_abs_diff=largest)


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
        "counts": result.counts(),
        "pairs": [{"a": unit(p.a), "b": unit(p.b), "matched_by": p.matched_by,
                   "changes": [change(c) for c in p.changes]} for p in result.pairs],
    }
