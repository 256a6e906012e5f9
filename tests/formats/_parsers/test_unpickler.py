"""The restricted unpickler: plain data as Python's pickle builds it; nothing named is imported or called."""

from __future__ import annotations

import collections
import pickle
import sys

import pytest

from weightkit import limits
from weightkit.errors import FileFormatError, UnsafeFileError, UnsupportedError
from weightkit.formats._parsers.unpickler import (
    BASE_ALLOWLIST,
    ClassRef,
    PickledDict,
    PickledObject,
    Unpickler,
    unpickle,
)

PLAIN = [
    None, True, False, 0, 1, -1, 255, 256, 65535, 65536, -(2**31), 2**31, 2**70, -(2**70), 1.5, float("inf"),
    "text", "ünïcode ✓", "x" * 300, b"bytes", b"\x00" * 300, (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4),
    [], [1, [2, [3]]], {}, {"a": 1, 2: "b", (1, 2): [3]}, {1, 2, 3}, frozenset({4, 5}), bytearray(b"ab"),
    complex(1, 2), slice(1, 10, 2), {"nested": {"deep": [{"x": (1.0, None)}]}},
]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("value", PLAIN, ids=lambda v: type(v).__name__)
def test_plain_values_match_pickle(value, protocol):
    assert unpickle(pickle.dumps(value, protocol=protocol)) == value


def test_shared_references_stay_shared():
    inner = [1, 2]
    result = unpickle(pickle.dumps({"a": inner, "b": inner}, protocol=2))
    assert result["a"] is result["b"]


def test_ordered_dict_and_counter_become_dicts_with_their_state():
    ordered = collections.OrderedDict(b=1, a=2)
    ordered._metadata = {"": {"version": 1}}
    result = unpickle(pickle.dumps(ordered, protocol=2))
    assert isinstance(result, PickledDict) and list(result.items()) == [("b", 1), ("a", 2)]
    assert result.attrs == {"_metadata": {"": {"version": 1}}}
    counter = unpickle(pickle.dumps(collections.Counter("aab"), protocol=2))
    assert counter == {"a": 2, "b": 1} and counter.class_name == "collections.Counter"


class Settings:
    def __init__(self):
        self.lr = 0.1
        self.layers = [64, 64]


class Items(dict):
    pass


@pytest.mark.parametrize("protocol", [0, 1, 2, 4])
def test_unknown_classes_are_recorded_by_name_not_imported(protocol):
    result = unpickle(pickle.dumps(Settings(), protocol=protocol))
    assert isinstance(result, PickledObject)
    assert result.class_name == f"{__name__}.Settings"
    assert result.attributes() == {"lr": 0.1, "layers": [64, 64]}


def test_dict_subclass_keeps_its_items():
    value = Items(a=1)
    value.extra = True
    result = unpickle(pickle.dumps(value, protocol=2))
    assert result.items == {"a": 1} and result.attributes() == {"extra": True}


def test_strict_mode_refuses_unknown_classes():
    with pytest.raises(UnsafeFileError, match=f"{__name__}.Settings"):
        Unpickler(pickle.dumps(Settings(), protocol=2), BASE_ALLOWLIST, record_classes=False).load()


class Calls:
    """Pickles as a call of ``target(*args)``."""

    def __init__(self, target, *args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


@pytest.mark.parametrize("target, named", [
    (print, "builtins.print"), (getattr, "builtins.getattr"), (eval, "builtins.eval"), (exec, "builtins.exec"),
    (__import__, "builtins.__import__"), (open, "io.open"), (sys.exit, "sys.exit"),
    (pickle.loads, "pickle.loads"), (collections.namedtuple, "collections.namedtuple"),
])
def test_calls_outside_the_allowlist_are_refused_by_name(target, named):
    with pytest.raises(UnsafeFileError, match=named.replace(".", r"\.")):
        unpickle(pickle.dumps(Calls(target, "x"), protocol=2), path="f.pt")


def test_calling_a_recorded_class_is_refused():
    with pytest.raises(UnsafeFileError, match=rf"calls {__name__}\.Settings"):
        unpickle(pickle.dumps(Calls(Settings), protocol=2))


OPCODE_ATTACKS = {
    "INST": b"(ios\nsystem\n.",
    "OBJ": b"(ccollections\nOrderedDict\no.",
    "EXT1": b"\x80\x02\x82\x01.",
    "REDUCE on an instance": b"\x80\x02ccollections\nOrderedDict\n)R)R.",
    "BUILD on a global": b"\x80\x02ccollections\nOrderedDict\n}b.",
    "SETITEMS on a global": b"\x80\x02ccollections\nOrderedDict\n(K\x01K\x02u.",
    "APPEND to a global": b"\x80\x02ccollections\nOrderedDict\nK\x01a.",
    "dotted STACK_GLOBAL": b"\x80\x04\x8c\x0bcollections\x8c\x1dOrderedDict.__init__.__call__\x93.",
    "module with a NUL": b"\x80\x02cos\x00x\nsystem\n.",
    "copyreg on a blocked class": b"\x80\x02ccopy_reg\n_reconstructor\ncposix\nsystem\nc__builtin__\nobject\nN\x87R.",
}


@pytest.mark.parametrize("name", OPCODE_ATTACKS)
def test_dangerous_opcodes_are_refused(name):
    with pytest.raises(UnsafeFileError):
        unpickle(OPCODE_ATTACKS[name])


CORRUPT = {
    "empty": b"",
    "no STOP": b"\x80\x02K\x01",
    "truncated string": b"\x80\x02X\xff\x00\x00\x00abc",
    "stack underflow": b"\x80\x02R.",
    "unknown memo": b"\x80\x02h\x07.",
    "odd SETITEMS": b"\x80\x02}(K\x01u.",
    "POP_MARK without MARK": b"\x80\x021.",
    "unknown opcode": b"\x80\x02\xff.",
    "unhashable key": b"\x80\x02}]K\x01s.",
    "protocol 9": b"\x80\x09N.",
    "huge LONG4": b"\x80\x02\x8b\xff\xff\xff\x7f.",
    "bad int text": b"Inope\n.",
    "bytearray of a size": b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x40\x85R.",
    "codecs with a bad codec": b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.",
}


@pytest.mark.parametrize("name", CORRUPT)
def test_corrupt_pickles_raise_one_clear_error(name):
    with pytest.raises(FileFormatError, match="f.pt"):
        unpickle(CORRUPT[name], path="f.pt")


def test_deeply_nested_tuples_are_refused_before_hashing():
    data = b"\x80\x02)" + b"\x85" * 100_000 + b"}\x94K\x01s."
    with pytest.raises(UnsafeFileError, match="nesting"):
        unpickle(data)


def test_memo_dag_is_built_in_linear_time_and_refused_by_its_expanded_size():
    """Each level refers twice to the one below: 2**60 paths, 60 objects; printing it would never end."""
    data = bytearray(b"\x80\x02]q\x00")
    for level in range(1, 61):
        data += b"(h%ch%cl" % (level - 1, level - 1) + b"q%c" % level
    with pytest.raises(UnsafeFileError, match="object_size"):
        unpickle(bytes(data + b"."), path="f.pt")
    with limits.raised(object_size=2**62):
        result = unpickle(bytes(data + b"."))
    assert result[0] is result[1]


def test_out_of_band_buffers_are_unsupported():
    with pytest.raises(UnsupportedError):
        unpickle(b"\x80\x05\x97.")


def test_class_refs_are_inert():
    ref = unpickle(b"\x80\x02csome.module\nThing\n.")
    assert isinstance(ref, ClassRef) and ref.qualname == "some.module.Thing"
    assert not callable(ref)


def test_paths_and_dates_become_text():
    import datetime
    import pathlib

    value = {"dir": pathlib.PurePosixPath("/data/run1"), "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 10),
             "day": datetime.date(2020, 1, 2), "took": datetime.timedelta(seconds=90)}
    for protocol in (0, 2, 4):
        result = unpickle(pickle.dumps(value, protocol=protocol))
        assert result == {"dir": "/data/run1", "when": "2024-05-06T07:08:09.000010", "day": "2020-01-02",
                          "took": 90.0}


# --- bounds (issue 13): opcodes, memo, nesting, expanded size, key size, hash floods -------------


def _colliding_keys(count: int) -> list[bytes]:
    """Int keys i*(2**61-1): all hash to 0, so a dict of them costs O(count**2) to build."""
    return [pickle.dumps(i * (2**61 - 1), protocol=2)[2:-1] for i in range(count)]


@pytest.mark.parametrize("build", [
    lambda keys: b"\x80\x02}(" + b"".join(key + b"N" for key in keys) + b"u.",  # SETITEMS
    lambda keys: b"\x80\x02}" + b"".join(key + b"Ns" for key in keys) + b".",  # SETITEM, one by one
    lambda keys: b"\x80\x04(" + b"".join(keys) + b"\x91.",  # FROZENSET
    lambda keys: b"\x80\x04\x8f(" + b"".join(keys) + b"\x90.",  # ADDITEMS
    lambda keys: b"\x80\x02cbuiltins\nset\n(](" + b"".join(keys) + b"etR.",  # builtins.set
    lambda keys: b"\x80\x02ccollections\nOrderedDict\n(](" + b"".join(k + b"N\x86" for k in keys) + b"etR.",
], ids=["setitems", "setitem", "frozenset", "additems", "set", "OrderedDict"])
def test_hash_floods_are_refused_after_a_few_collisions(build):
    with pytest.raises(UnsafeFileError, match="hash_collisions"):
        unpickle(build(_colliding_keys(2000)), path="f.pt")


def test_text_keys_are_never_counted_as_collisions():
    big = {f"layer{i}.weight": i for i in range(50_000)}
    assert unpickle(pickle.dumps(big, protocol=2)) == big
    ints = {i: i for i in range(5000)}  # distinct hashes: no flood
    assert unpickle(pickle.dumps(ints, protocol=2)) == ints


def test_a_tuple_dag_key_is_refused_before_it_is_hashed():
    data = bytearray(b"\x80\x02}(\x29q\x000")
    for level in range(1, 121):
        data += b"h%ch%c\x86q%c0" % (level - 1, level - 1, level)
    with pytest.raises(UnsafeFileError, match="object_size"):
        unpickle(bytes(data + b"h\x78Nu."))


def test_keys_bigger_than_key_size_are_refused():
    key = tuple(range(100))
    data = pickle.dumps({key: 1}, protocol=2)
    assert unpickle(data) == {key: 1}
    with limits.raised(key_size=50), pytest.raises(UnsafeFileError, match="key_size"):
        unpickle(data)


def test_opcodes_and_memo_are_bounded_and_the_limits_raisable(monkeypatch):
    data = b"\x80\x02" + b"N0" * 1000 + b"N."
    monkeypatch.setenv("WEIGHTKIT_MAX_PICKLE_OPCODES", "500")
    with pytest.raises(UnsafeFileError, match="WEIGHTKIT_MAX_PICKLE_OPCODES"):
        unpickle(data, path="f.pt")
    monkeypatch.setenv("WEIGHTKIT_MAX_PICKLE_OPCODES", "5000")
    assert unpickle(data) is None
    memo = b"\x80\x02N" + b"".join(b"r" + i.to_bytes(4, "little") for i in range(200)) + b"."
    with limits.raised(pickle_memo=100), pytest.raises(UnsafeFileError, match="pickle_memo"):
        unpickle(memo)
    assert unpickle(memo) is None


def test_deep_lists_are_refused_by_the_nesting_limit():
    data = b"\x80\x02" + b"]" * 1000 + b"a" * 999 + b"."
    with pytest.raises(UnsafeFileError, match="nesting"):
        unpickle(data)
    with limits.raised(nesting=2000):
        assert isinstance(unpickle(data), list)


def test_values_are_shown_in_messages_without_being_walked():
    from weightkit.formats._parsers.unpickler import shown
    dag: list = []
    for _ in range(60):
        dag = [dag, dag]
    assert shown(dag) == "<list>"
    assert shown("x" * 1000).endswith("…") and len(shown("x" * 1000)) == 81
    assert shown(3) == "3" and shown(2**100) == "<int>" and shown(b"ab") == "ab"
    long_module = "a" * 100_000
    data = b"\x80\x02c" + long_module.encode() + b"\nB\n)R."
    with pytest.raises(UnsafeFileError) as caught:
        unpickle(data)
    assert len(str(caught.value)) < 500
