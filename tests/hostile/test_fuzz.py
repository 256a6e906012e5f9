"""Property-based fuzzing of every reader, CI-sized: mutated valid seeds give a result or a WeightkitError.

Each example mutates a small valid file (benign.py: Keras 3 .keras / .h5 / .weights.h5, torch zip
and legacy .pt, safetensors, ONNX with and without external data, a sharded index) by byte flips,
truncation, splicing, zip-member or JSON-field mutations, then loads it, inspects it and reads
every tensor in this process (fuzz_long.exercise). Any exception other than a WeightkitError
fails, and so does an example slower than the deadline. fuzz_long.py runs the same mutations
for much longer in child processes.
"""

from __future__ import annotations

import importlib.util
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightkit.errors import WeightkitError

from .fuzz_long import (
    Seed,
    exercise,
    flip,
    json_field,
    keras_config,
    safetensors_header,
    seeds,
    splice,
    truncate,
    zip_member,
)

# HDF5 is read with pyfive (pure Python) once that change lands; before it, libhdf5 could crash pytest itself.
HDF5_IN_PROCESS = importlib.util.find_spec("pyfive") is not None
HDF5_KINDS = ("keras", "h5", "weights_h5")  # a .keras holds its weights as an HDF5 member
KINDS = ("keras", "h5", "weights_h5", "torch", "torch_legacy", "safetensors", "onnx", "onnx_external", "sharded")
EXAMPLES = {"keras": 50, "h5": 60, "weights_h5": 60}  # the slower seeds; the others get DEFAULT_EXAMPLES
DEFAULT_EXAMPLES = 200
FUZZ = settings(deadline=timedelta(seconds=3), suppress_health_check=[HealthCheck.too_slow], database=None)

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def seed_by_kind() -> dict[str, Seed]:
    return {seed.kind: seed for seed in seeds()}


@st.composite
def mutations(draw: Any, seed: Seed, donors: list[bytes]) -> tuple[str, str, tuple[Any, ...]]:
    """(file, mutation, its parameters): small to print when an example fails, applied by `apply`."""
    name = draw(st.sampled_from(seed.mutable))
    data = seed.files[name]
    kinds = ["flip", "truncate", "splice"]
    kinds += ["zip"] if data.startswith(b"PK") else []
    kinds += ["keras-json"] if seed.kind == "keras" else []
    kinds += ["st-json"] if name.endswith(".safetensors") else []
    kinds += ["json"] if name.endswith(".json") else []
    kind = draw(st.sampled_from(kinds))
    if kind == "flip":
        params: tuple[Any, ...] = (draw(EDITS),)
    elif kind == "truncate":
        params = (draw(st.integers(0, len(data))),)
    elif kind == "splice":
        params = (draw(st.integers(0, len(donors))), draw(st.integers(0, 1 << 20)), draw(st.integers(1, 512)),
                  draw(st.integers(0, 1 << 20)), draw(st.booleans()))
    elif kind == "zip":
        params = (draw(st.integers(0, 63)),
                  draw(st.sampled_from(["bytes", "drop", "duplicate", "stored", "deflate", "bzip2", "lzma"])),
                  draw(EDITS))
    else:
        params = (draw(st.integers(0, 10_000)), draw(JSON))
    return name, kind, params


def apply(seed: Seed, donors: list[bytes], mutation: tuple[str, str, tuple[Any, ...]]) -> dict[str, bytes]:
    """The seed's files with `mutation` applied to one of them."""
    name, kind, params = mutation
    files = dict(seed.files)
    data = files[name]
    if kind == "flip":
        data = flip(data, *params)
    elif kind == "truncate":
        data = truncate(data, *params)
    elif kind == "splice":
        donor_index, start, length, at, overwrite = params
        donor = donors[donor_index] if donor_index < len(donors) else data
        data = splice(data, donor, start, length, at, overwrite)
    elif kind == "zip":
        member, action, edits = params
        data = zip_member(data, member, action, lambda content: flip(content, edits))
    else:
        mutate = {"keras-json": keras_config, "st-json": safetensors_header, "json": json_field}[kind]
        data = mutate(data, *params)
    files[name] = data
    return files


def _check(seed: Seed, files: dict[str, bytes], *, refusal_allowed: bool = True) -> None:
    """Write the files to a fresh folder and exercise the main one: a result or (if allowed) a WeightkitError."""
    with tempfile.TemporaryDirectory(prefix="weightkit-fuzz-") as folder:
        for name, data in files.items():
            (Path(folder) / name).write_bytes(data)
        try:
            exercise(Path(folder) / seed.main)
        except WeightkitError:
            if not refusal_allowed:
                raise


@pytest.mark.parametrize("kind", KINDS)
def test_mutated_seed_reads_or_refuses(kind: str, seed_by_kind: dict[str, Seed]):
    if kind in HDF5_KINDS and not HDF5_IN_PROCESS:
        pytest.skip("HDF5 is still read with libhdf5 (no pyfive): a crash here would kill pytest")
    seed = seed_by_kind[kind]
    donors = [data for other in seed_by_kind.values() for data in other.files.values()]

    @settings(FUZZ, max_examples=EXAMPLES.get(kind, DEFAULT_EXAMPLES))
    @given(mutation=mutations(seed, donors))
    def fuzz(mutation: tuple[str, str, tuple[Any, ...]]) -> None:
        _check(seed, apply(seed, donors, mutation))

    # The seed itself reads (and warms the imports up before the deadline applies).
    _check(seed, seed.files, refusal_allowed=False)
    fuzz()
