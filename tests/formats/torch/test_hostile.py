"""Hostile and broken PyTorch files: refused with exit 2, naming what was refused; nothing runs.

Every payload would create a canary file if it ran (the liveness test shows they do
under Python's own pickle); after ``weightkit inspect`` the canary must not exist.
"""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import subprocess
import zipfile

import pytest

from weightkit.cli import main

torch = pytest.importorskip("torch")

MAGIC = 0x1950A86A20F9469CFC6C


class Calls:
    """Pickles as ``target(*args)``: the classic pickle payload."""

    def __init__(self, target, *args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args

    def __call__(self, *args):  # pickle wants the callable of a REDUCE to look callable
        raise AssertionError("never called")


def reduce_payload(module: str, name: str, *args) -> bytes:
    """GLOBAL module.name, args tuple, REDUCE — written by hand so any name can be used."""
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
            + pickle.dumps(args, protocol=2)[2:-1] + b"R.")


def payloads(canary) -> dict[str, bytes]:
    touch = f"touch {canary}"
    create = f"open({str(canary)!r}, 'w')"
    return {
        "os.system": pickle.dumps(Calls(os.system, touch), protocol=2),
        "subprocess.Popen": pickle.dumps(Calls(subprocess.Popen, ["touch", str(canary)]), protocol=2),
        "subprocess.check_call": pickle.dumps(Calls(subprocess.check_call, ["touch", str(canary)]), protocol=2),
        "builtins.eval": pickle.dumps(Calls(builtins.eval, create), protocol=2),
        "builtins.exec": pickle.dumps(Calls(builtins.exec, create), protocol=2),
        "builtins.getattr": pickle.dumps(Calls(Calls(getattr, Calls(__import__, "os"), "system"), touch), protocol=2),
        "builtins.__import__": pickle.dumps(Calls(__import__, "os"), protocol=2),
        "py2 __builtin__.eval": reduce_payload("__builtin__", "eval", create),
        "nt.system": reduce_payload("nt", "system", touch),
        "torch.hub.load": reduce_payload("torch.hub", "load", "evil/repo", "model"),
        "torch.load": reduce_payload("torch", "load", str(canary)),
        "torch.storage._load_from_bytes": reduce_payload("torch.storage", "_load_from_bytes", b"x"),
        "numpy runstring": reduce_payload("numpy.testing._private.utils", "runstring", create, {}),
        "payload inside an OrderedDict": pickle.dumps(
            collections.OrderedDict(w=Calls(os.system, touch)), protocol=2),
        "payload as a rebuild argument": reduce_payload("torch._utils", "_rebuild_tensor_v2",
                                                        Calls(os.system, touch), 0, (1,), (1,)),
        "_rebuild_from_type_v2 wrapping eval": reduce_payload("torch._tensor", "_rebuild_from_type_v2",
                                                              eval, None, (create,), None),
        "copyreg._reconstructor of os": b"\x80\x02ccopy_reg\n_reconstructor\ncposix\nsystem\n"
        b"c__builtin__\nobject\nN\x87R.",
        "INST opcode": b"(S'" + touch.encode() + b"'\nios\nsystem\n.",
        "OBJ opcode": b"(ccollections\nOrderedDict\no.",
        "STACK_GLOBAL with dotted name": b"\x80\x04\x8c\x0bcollections\x8c\x14OrderedDict.__init__\x93.",
        "STACK_GLOBAL of posix": b"\x80\x04\x8c\x05posix\x8c\x06system\x93" + pickle.dumps((touch,), 4)[2:-1]
        + b"R.",
        "EXT2 opcode": b"\x80\x02\x83\x01\x00.",
        "memo: REDUCE on a memoized dict": b"\x80\x02}q\x00h\x00)R.",
        "memo: BUILD on a memoized global": b"\x80\x02ccollections\nOrderedDict\nq\x00h\x00}b.",
        "memo: unknown index": b"\x80\x02h\x09h\x09R.",
        "persistent id naming a module": b"\x80\x02(X\x06\x00\x00\x00modulecposix\nsystem\nNNtQ.",
    }


def write_zip(path, data_pkl: bytes, extra: dict[str, bytes] | None = None, folder="archive") -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{folder}/data.pkl", data_pkl)
        for name, data in (extra or {}).items():
            archive.writestr(f"{folder}/{name}", data)
        archive.writestr(f"{folder}/version", "3\n")


def legacy_bytes(object_pickle: bytes, *, keys: bytes | None = None, sys_info: bytes | None = None,
                 before_object: bytes = b"", trailer: bytes = b"") -> bytes:
    header = pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
    info = sys_info or pickle.dumps({"protocol_version": 1001, "little_endian": True,
                                     "type_sizes": {"short": 2, "int": 4, "long": 8}}, protocol=2)
    return header + info + before_object + object_pickle + (keys or pickle.dumps([], protocol=2)) + trailer


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
    assert main(["inspect", str(tmp_path / "dag.pt")]) == 0
    capsys.readouterr()
