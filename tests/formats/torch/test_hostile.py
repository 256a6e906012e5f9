"""Hostile and broken PyTorch files: refused with exit 2, naming what was refused; nothing runs.

Every payload would create a canary file if it ran (the liveness test shows they do
under Python's own pickle); after ``weightkit inspect`` the canary must not exist.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import pytest

from tests.hostile.torch_cases import legacy_bytes, payloads, write_zip
from weightkit.cli import main

torch = pytest.importorskip("torch")

def assert_refused(path, capsys, named: str | None = None) -> str:
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("weightkit: error: ") and err.count("\n") == 1, err
    assert str(path) in err
    if named:
        assert named in err, err
    return err


def test_payloads_are_live_under_pythons_pickle(tmp_path):
    """The canary mechanism works: Python's pickle runs the payload (weightkit never does)."""
    canary = tmp_path / "canary"
    pickle.loads(payloads(canary)["os.system"])
    assert canary.exists()


@pytest.mark.parametrize("name", list(payloads("c")))
def test_hostile_data_pkl_is_refused(tmp_path, capsys, name):
    canary = tmp_path / "canary"
    path = tmp_path / "hostile.pt"
    write_zip(path, payloads(canary)[name])
    err = assert_refused(path, capsys)
    expected = {"os.system": "posix.system", "py2 __builtin__.eval": "builtins.eval", "nt.system": "nt.system",
                "torch.hub.load": "torch.hub.load", "torch.load": "torch.load",
                "builtins.getattr": "builtins.", "INST opcode": "INST", "OBJ opcode": "OBJ",
                "EXT2 opcode": "EXT2", "STACK_GLOBAL with dotted name": "OrderedDict.__init__",
                "torch.storage._load_from_bytes": "torch.storage._load_from_bytes",
                "numpy runstring": "numpy.testing._private.utils.runstring"}.get(name)
    if expected:
        assert expected in err, err
    assert not canary.exists()


@pytest.mark.parametrize("where", ["sys_info", "keys", "before object", "object", "trailer"])
def test_hostile_legacy_streams_are_refused(tmp_path, capsys, where):
    canary = tmp_path / "canary"
    evil = payloads(canary)["os.system"]
    plain = pickle.dumps({"epoch": 1}, protocol=2)
    parts = {
        "sys_info": legacy_bytes(plain, sys_info=evil),
        "keys": legacy_bytes(plain, keys=evil),
        "before object": legacy_bytes(plain, before_object=evil),
        "object": legacy_bytes(evil),
        "trailer": legacy_bytes(plain, trailer=evil),
    }
    path = tmp_path / "legacy.pt"
    path.write_bytes(parts[where])
    assert_refused(path, capsys, "extra pickle" if where == "trailer" else "posix.system")
    assert not canary.exists()


def test_torchscript_code_never_runs_and_hostile_constants_are_refused(tmp_path, capsys):
    canary = tmp_path / "canary"
    module = torch.jit.script(torch.nn.Linear(2, 2))
    path = tmp_path / "script.pt"
    torch.jit.save(module, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("script/code/__torch__/evil.py", f"open({str(canary)!r}, 'w')\n")
    assert main(["inspect", str(path)]) == 0
    capsys.readouterr()
    evil = tmp_path / "evil_constants.pt"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(evil, "w") as target:
        for info in source.infolist():
            data = payloads(canary)["os.system"] if info.filename.endswith("constants.pkl") else source.read(info)
            target.writestr(info.filename.replace("script/", "evil_constants/"), data)
    assert_refused(evil, capsys, "posix.system")
    assert not canary.exists()


def _saved(tmp_path, legacy=False) -> bytes:
    buffer = io.BytesIO()
    torch.save(collections.OrderedDict(w=torch.arange(12.0).reshape(3, 4), b=torch.ones(3)), buffer,
               _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


@pytest.mark.parametrize("cut", [10, 100, 0.5, -20, -1])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_files_fail_with_one_line(tmp_path, capsys, cut, legacy):
    data = _saved(tmp_path, legacy)
    size = int(len(data) * cut) if isinstance(cut, float) else cut
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:size])
    code = main(["inspect", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unexpected" not in err, err


def test_storage_smaller_than_the_pickle_says(tmp_path, capsys):
    path = tmp_path / "short.pt"
    with zipfile.ZipFile(io.BytesIO(_saved(tmp_path))) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info.filename, data[:8] if info.filename.endswith("data/0") else data)
    assert_refused(path, capsys, "declares 48")


def test_tensor_outside_its_storage(tmp_path, capsys):
    bad = collections.OrderedDict(w=torch.ones(4))
    path = tmp_path / "outside.pt"
    torch.save(bad, path)
    with zipfile.ZipFile(path) as source:
        records = {info.filename: source.read(info) for info in source.infolist()}
    name = "outside/data.pkl"
    records[name] = records[name].replace(b"K\x04\x85", b"K\x09\x85", 1)  # size (4,) -> (9,)
    with zipfile.ZipFile(path, "w") as target:
        for record, data in records.items():
            target.writestr(record, data)
    assert_refused(path, capsys, "runs past the end of its storage")


def test_missing_storage_member(tmp_path, capsys):
    path = tmp_path / "missing.pt"
    with zipfile.ZipFile(io.BytesIO(_saved(tmp_path))) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            if not info.filename.endswith("data/1"):
                target.writestr(info.filename, source.read(info))
    assert_refused(path, capsys, "does not hold")


def test_cycles_and_huge_dags_finish(tmp_path, capsys):
    cyclic = b"\x80\x02]q\x00h\x00a."  # a list that contains itself
    write_zip(tmp_path / "cycle.pt", cyclic)
    assert main(["inspect", str(tmp_path / "cycle.pt")]) == 0
    dag = bytearray(b"\x80\x02}q\x00")
    for level in range(1, 200):
        dag += b"}(X\x01\x00\x00\x00ah%cX\x01\x00\x00\x00bh%cuq%c" % (level - 1, level - 1, level)
    write_zip(tmp_path / "dag.pt", bytes(dag + b"."))
    assert main(["inspect", str(tmp_path / "dag.pt")]) == 2  # 2**200 objects when walked: refused at once
    assert "object_size" in capsys.readouterr().err
