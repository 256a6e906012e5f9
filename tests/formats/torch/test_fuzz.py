"""Random damage to real small checkpoints: only weightkit errors come out, never other exceptions or hangs."""

from __future__ import annotations

import io
import zipfile
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightkit.errors import WeightkitError
from weightkit.formats._probe import probe
from weightkit.formats.torch import read as torch_format

torch = pytest.importorskip("torch")


def _checkpoint(legacy: bool) -> bytes:
    torch.manual_seed(0)
    state = OrderedDict(conv=torch.nn.Conv2d(2, 3, 3).state_dict(), epoch=3,
                        view=torch.arange(10.0)[2:8:2], bf=torch.ones(3, dtype=torch.bfloat16))
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


ZIP = _checkpoint(legacy=False)
LEGACY = _checkpoint(legacy=True)
with zipfile.ZipFile(io.BytesIO(ZIP)) as _archive:
    _PICKLE_NAME = next(n for n in _archive.namelist() if n.endswith("data.pkl"))
    PICKLE = _archive.read(_PICKLE_NAME)


def _with_pickle(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(ZIP)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, data if info.filename == _PICKLE_NAME else source.read(info))
    return buffer.getvalue()


def _damaged(original: bytes, edits: list[tuple[int, int]], cut: int | None, span: int) -> bytes:
    data = bytearray(original)
    for position, value in edits:
        data[position % min(span, len(data))] = value
    return bytes(data[:cut] if cut else data)


def _load_everything(path) -> None:
    """Read every tensor of ``path`` with the PyTorch reader (called directly: the damage being
    tested is to checkpoints, not to the zip sniffing every format shares)."""
    try:
        with torch_format.read(probe(path)) as model:
            for tensor in model.tensors() + [t for group in model.extras.values() for t in group]:
                if tensor.loader is not None:
                    tensor.read()
    except WeightkitError:
        pass


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)
CUT = st.one_of(st.none(), st.integers(1, 1 << 20))
FUZZ = settings(max_examples=120, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_damaged_zip(tmp_path, edits, cut):
    path = tmp_path / "damaged.pt"
    path.write_bytes(_damaged(ZIP, edits, cut and cut % len(ZIP), len(ZIP)))
    _load_everything(path)


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_damaged_pickle_in_a_valid_zip(tmp_path, edits, cut):
    path = tmp_path / "damaged_pickle.pt"
    path.write_bytes(_with_pickle(_damaged(PICKLE, edits, cut and cut % len(PICKLE), len(PICKLE))))
    _load_everything(path)


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_damaged_legacy_stream(tmp_path, edits, cut):
    path = tmp_path / "damaged_legacy.pt"
    header = len(LEGACY) - 200  # the pickles, not the raw storages at the end
    path.write_bytes(_damaged(LEGACY, edits, cut and cut % len(LEGACY), header))
    _load_everything(path)
