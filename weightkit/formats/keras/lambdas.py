"""The Keras ``Lambda`` layers weightkit knows: what each computes and the shape it puts out.

A Lambda's function is never deserialized or run; its config is read as data, and
`known_lambda` is the one place that decides what it computes (the shape rules in
``formats.keras.shapes``, the Keras → ONNX converter and ``convert --verify`` all ask it).
Today one function is known, keras-yolo2's passthrough ``space_to_depth_x2``
(``return tf.space_to_depth(x, block_size=2)``), in the two ways a config holds it:

- **by name** (Keras 3 ``{"class_name": "function", "config": "space_to_depth_x2"}``, Keras 2
  ``function_type: "function"``): the file holds no code, only the name, so the name decides:
  ``space_to_depth`` or ``space_to_depth_x<N>`` exactly (block size N, 2 without a suffix);
- **as marshalled code** (Keras 1/2 and tf.keras ``[code, defaults, closure]``, Keras 3
  ``{"class_name": "__lambda__", "config": {"code": ...}}``): the code object is read by the small,
  bounded reader below (plain tuples, strings and numbers; never ``marshal.loads``, which only reads its
  own interpreter's layout, builds live code objects, and is documented as unsafe on crafted input),
  and is known only when its bytecode is exactly ``return tf.space_to_depth(x, block_size=N)``
  (also ``tf.nn.``/``tf.compat.v1.``, or after ``import tensorflow as tf`` in the body) as CPython
  2.7 to 3.13 compile it, with no defaults, closure or extra arguments. The block size is the
  constant in the code; the function's name plays no part.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from typing import Any

from ...model import Dim

__all__ = ["KnownLambda", "SPACE_TO_DEPTH", "known_lambda", "lambda_problem", "function_name"]

#: What a known Lambda computes (``KnownLambda.op``): TensorFlow's NHWC ``space_to_depth``.
SPACE_TO_DEPTH = "space_to_depth"

_MAX_CODE_BYTES = 1 << 20  # a longer encoded function is not looked into
_NAMED = re.compile(r"space_to_depth(?:_x(\d+))?")
_BLOCK_SUFFIX = re.compile(r"_x(\d+)$")
_NAME = re.compile(rb"space_to_depth\w*")
_SHORT_STRING = frozenset(b"zZ\xda\xfa")  # marshal's short ASCII string types, with and without its ref flag


@dataclass(frozen=True)
class KnownLambda:
    """A Lambda whose function weightkit recognises.

    Attributes:
        function: the function's name (``space_to_depth_x2``; ``<lambda>`` for a Python lambda's code).
        op: what it computes (`SPACE_TO_DEPTH`).
        block_size: the side of the square blocks moved into channels.
        from_code: True when the file's code was checked; False when only its name was given.
    """

    function: str
    op: str
    block_size: int
    from_code: bool = False

    def output_shape(self, shape: tuple[Dim, ...]) -> tuple[Dim, ...] | None:
        """The output shape (batch dim included) for an input of ``shape``; None where it cannot be told.

        ``space_to_depth`` takes NHWC data: height and width shrink by the block size, channels grow
        by its square. A size the block does not divide (TensorFlow refuses it) or a symbolic one is unknown.
        """
        if len(shape) != 4:
            return None
        batch, height, width, channels = shape
        block = self.block_size
        return (batch, _divided(height, block), _divided(width, block),
                channels * block * block if isinstance(channels, int) else None)


def known_lambda(config: dict[str, Any]) -> KnownLambda | None:
    """What a Lambda layer's ``config`` computes, if weightkit knows it; None for any other function.

    Example:
        >>> known_lambda({"function": {"class_name": "function", "config": "space_to_depth_x2"}})
        KnownLambda(function='space_to_depth_x2', op='space_to_depth', block_size=2, from_code=False)
    """
    found = _recognise(config)
    return found if isinstance(found, KnownLambda) else None


def lambda_problem(config: dict[str, Any]) -> str | None:
    """Why weightkit does not know a Lambda's function, in a few words (None when it does)."""
    found = _recognise(config)
    return None if isinstance(found, KnownLambda) else found


def _recognise(config: dict[str, Any]) -> KnownLambda | str:
    """The known function, or why the config is not one."""
    if config.get("arguments"):
        return "the function takes extra arguments"
    function = config.get("function")
    if isinstance(function, dict) and function.get("class_name") == "__lambda__":
        inner = function.get("config")
        if not isinstance(inner, dict):
            return "its code is unreadable"
        return _from_code(inner.get("code"), inner.get("defaults"), inner.get("closure"))
    if isinstance(function, dict):
        kind = function.get("class_name")
        return _from_name(function.get("config")) if kind == "function" else f"its function is a {kind!r} object"
    if isinstance(function, str) and config.get("function_type") == "function":
        return _from_name(function)
    if isinstance(function, str):
        return _from_code(function, None, None)
    if isinstance(function, list) and function:  # [code, defaults, closure]
        rest = list(function[1:3]) + [None, None]
        return _from_code(function[0], rest[0], rest[1])
    return "its function is not given"


def _from_name(name: Any) -> KnownLambda | str:
    match = _NAMED.fullmatch(name) if isinstance(name, str) else None
    block = int(match.group(1) or 2) if match else 0
    if block < 2:
        return f"function {name!r} is not space_to_depth or space_to_depth_x<N>" if isinstance(name, str) \
            else "its function is not given"
    return KnownLambda(name, SPACE_TO_DEPTH, block)


def _from_code(encoded: Any, defaults: Any, closure: Any) -> KnownLambda | str:
    if defaults or closure:
        return "the function has default values or a closure"
    code = _code_object(encoded)
    if code is None:
        return "its code is not a Python code object weightkit can read"
    block = _space_to_depth_block(code)
    if block is None:
        return "its code is not exactly `return tf.space_to_depth(x, block_size=N)`"
    return KnownLambda(code.name, SPACE_TO_DEPTH, block, from_code=True)


def function_name(config: dict[str, Any]) -> str:
    """What a Lambda's config says its function is called ('' for an anonymous or unreadable one)."""
    function = config.get("function")
    if isinstance(function, dict):
        inner = function.get("config")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return _code_names(inner["code"])
        return ""
    if isinstance(function, str):
        return function if config.get("function_type") == "function" else _code_names(function)
    if isinstance(function, list) and function and isinstance(function[0], str):
        return _code_names(function[0])
    return ""


def _code_names(encoded: str) -> str:
    """The code's own name where it reads as a code object, else a ``space_to_depth…`` name found in its bytes.

    The bytes hold the names the code calls as well as its own (``tf.space_to_depth`` inside
    ``space_to_depth_x2``, or in its docstring): a name with a block suffix wins. For messages only:
    what a function computes is never told from these bytes.
    """
    code = _code_object(encoded)
    if code is not None:
        return "" if code.name == "<lambda>" else code.name
    raw = _decoded(encoded)
    names = [_as_marshalled(raw, match) for match in _NAME.finditer(raw)] if raw else []
    suffixed = [name for name in names if _BLOCK_SUFFIX.search(name)]
    return (suffixed or names or [""])[0]


def _as_marshalled(raw: bytes, match: re.Match[bytes]) -> str:
    """A name found in the bytes, cut to its length where marshal stored it as a short string."""
    start, text = match.start(), match.group()
    if start >= 2 and raw[start - 2] in _SHORT_STRING and raw[start - 1] <= len(text):
        text = text[:raw[start - 1]]  # the byte after the name is the next object's type ('r', ')', ...)
    return text.decode("ascii", "replace")


def _divided(size: Dim, block: int) -> int | None:
    return size // block if isinstance(size, int) and size % block == 0 else None


# --- marshalled code objects, read as data -------------------------------------------------------------------

_MAX_OBJECTS = 4096
_MAX_DEPTH = 8
_FLAG_REF = 0x80
# CO_VARARGS, CO_VARKEYWORDS, CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR
_NOT_A_PLAIN_FUNCTION = 0x04 | 0x08 | 0x20 | 0x80 | 0x100 | 0x200
# The int32 fields that open a code object, per layout (named by the first CPython that wrote it).
_INT_FIELDS = {
    (3, 11): ("argcount", "posonly", "kwonly", "stacksize", "flags"),
    (3, 8): ("argcount", "posonly", "kwonly", "nlocals", "stacksize", "flags"),
    (3, 0): ("argcount", "kwonly", "nlocals", "stacksize", "flags"),
    (2, 7): ("argcount", "nlocals", "stacksize", "flags"),
}


class _Unreadable(Exception):
    """The bytes are not a marshalled code object of a known layout (or exceed the reader's bounds)."""


@dataclass(frozen=True)
class _Code:
    """The fields of a marshalled code object the check needs, as plain data."""

    layout: tuple[int, int]
    argcount: int
    posonly: int
    kwonly: int
    flags: int
    code: bytes
    consts: tuple[Any, ...]
    names: tuple[str, ...]
    varnames: tuple[str, ...]
    cells: tuple[str, ...]  # free and cell variables
    name: str


def _decoded(encoded: Any) -> bytes | None:
    if not isinstance(encoded, str) or len(encoded) > _MAX_CODE_BYTES:
        return None
    try:
        return base64.b64decode(encoded.encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _code_object(encoded: Any) -> _Code | None:
    """The code object base64 ``encoded`` holds, in whichever CPython layout reads it whole; None if none does."""
    raw = _decoded(encoded)
    if not raw:
        return None
    for layout in _INT_FIELDS:
        try:
            reader = _MarshalReader(raw, layout)
            value = reader.read()
        except (_Unreadable, struct.error, ValueError, IndexError):  # ValueError: bad text or digits
            continue
        if isinstance(value, _Code) and reader.at_end():
            return value
    return None


class _MarshalReader:
    """CPython's marshal format as plain values: tuples, str, bytes, numbers and `_Code` records.

    Bounded in nesting, object count and lengths (a length is checked against the bytes present
    before anything is sliced); anything outside the types code objects use raises `_Unreadable`.
    """

    def __init__(self, data: bytes, layout: tuple[int, int]):
        self.data, self.layout, self.pos = data, layout, 0
        self.refs: list[Any] = []
        self.interned: list[Any] = []  # Python 2's 't' strings, which 'R' refers back to
        self.count = 0

    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def read(self, depth: int = 0) -> Any:
        self.count += 1
        if depth > _MAX_DEPTH or self.count > _MAX_OBJECTS:
            raise _Unreadable("too deep or too many objects")
        code = self._take(1)[0]
        kind = chr(code & ~_FLAG_REF)
        if kind == "r":
            return self._ref(self._int())
        slot = len(self.refs)
        if code & _FLAG_REF:
            self.refs.append(None)  # reserved before the contents, as CPython numbers them
        value = self._value(kind, depth)
        if code & _FLAG_REF:
            self.refs[slot] = value
        return value

    def _value(self, kind: str, depth: int) -> Any:
        simple = {"N": None, "F": False, "T": True, ".": Ellipsis}
        if kind in simple:
            return simple[kind]
        if kind in "ilgfyx":
            return self._number(kind)
        if kind in "stuaAzZR":
            return self._string(kind)
        if kind in "()[<>":
            size = self._take(1)[0] if kind == ")" else self._int()
            if size < 0 or size > len(self.data) - self.pos:
                raise _Unreadable("container longer than the data")
            return tuple(self.read(depth + 1) for _ in range(size))
        if kind == "c":
            return self._code(depth)
        raise _Unreadable(f"type {kind!r}")

    def _number(self, kind: str) -> Any:
        if kind == "i":
            return self._int()
        if kind == "l":
            digits = self._int()
            if abs(digits) > len(self.data) - self.pos:
                raise _Unreadable("long longer than the data")
            value = sum(struct.unpack("<H", self._take(2))[0] << (15 * i) for i in range(abs(digits)))
            return -value if digits < 0 else value
        if kind == "g":
            return struct.unpack("<d", self._take(8))[0]
        if kind == "y":
            return complex(*struct.unpack("<dd", self._take(16)))
        if kind == "f":
            return float(self._take(self._take(1)[0]).decode("ascii"))
        return complex(float(self._take(self._take(1)[0]).decode("ascii")),
                       float(self._take(self._take(1)[0]).decode("ascii")))

    def _string(self, kind: str) -> Any:
        if kind == "R":  # Python 2: a reference to an earlier interned string
            index = self._int()
            if not 0 <= index < len(self.interned):
                raise _Unreadable("bad string reference")
            return self.interned[index]
        raw = self._take(self._take(1)[0] if kind in "zZ" else self._int())
        if kind == "s" or (kind == "t" and self.layout < (3, 0)):
            if kind == "t":
                self.interned.append(raw)
            return raw
        return raw.decode("utf-8", "surrogatepass")

    def _code(self, depth: int) -> _Code:
        ints = {name: self._int() for name in _INT_FIELDS[self.layout]}
        code, consts, names = self.read(depth + 1), self.read(depth + 1), self.read(depth + 1)
        if self.layout >= (3, 11):
            locals_plus, kinds = self.read(depth + 1), self.read(depth + 1)
            if not isinstance(locals_plus, tuple) or not isinstance(kinds, bytes) or len(kinds) != len(locals_plus):
                raise _Unreadable("locals")
            varnames = tuple(n for n, k in zip(locals_plus, kinds) if k & 0x20)  # CO_FAST_LOCAL
            cells = tuple(n for n, k in zip(locals_plus, kinds) if k & 0xD0)  # hidden, cell, free
        else:
            varnames, free, cell = self.read(depth + 1), self.read(depth + 1), self.read(depth + 1)
            cells = _texts(free) + _texts(cell)
        self.read(depth + 1)  # filename
        name = self.read(depth + 1)
        if self.layout >= (3, 11):
            self.read(depth + 1)  # qualname
        self._int()  # first line number
        for _ in range(2 if self.layout >= (3, 11) else 1):
            self.read(depth + 1)  # line table (and exception table)
        if not isinstance(code, bytes) or not isinstance(consts, tuple):
            raise _Unreadable("code fields")
        return _Code(self.layout, ints["argcount"], ints.get("posonly", 0), ints.get("kwonly", 0), ints["flags"],
                     code, tuple(_text(c) if self.layout < (3, 0) else c for c in consts), _texts(names),
                     _texts(varnames), cells, _text(name))

    def _ref(self, index: int) -> Any:
        if not 0 <= index < len(self.refs) or self.refs[index] is None:
            raise _Unreadable("bad reference")
        return self.refs[index]

    def _int(self) -> int:
        return int(struct.unpack("<i", self._take(4))[0])

    def _take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise _Unreadable("truncated")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk


def _text(value: Any) -> Any:
    """Python 2 stores names and string constants as bytes; compare them as text."""
    return value.decode("ascii") if isinstance(value, bytes) else value


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, tuple) or not all(isinstance(_text(v), str) for v in value):
        raise _Unreadable("expected a tuple of names")
    return tuple(_text(v) for v in value)


# --- the one function body weightkit knows ------------------------------------------------------------------

# Bytecode families (the first CPython of each) and the opcode numbers the pattern uses, from CPython's
# Lib/opcode.py (3.13: Include/opcode_ids.h); "bytes" families have 1-byte opcodes with 2-byte arguments.
_OPCODES: dict[tuple[int, int], dict[int, str]] = {
    (2, 7): {100: "LOAD_CONST", 106: "LOAD_ATTR", 108: "IMPORT_NAME", 116: "LOAD_GLOBAL", 124: "LOAD_FAST",
             125: "STORE_FAST", 83: "RETURN_VALUE", 131: "CALL_FUNCTION"},  # also 3.0-3.5
    (3, 6): {100: "LOAD_CONST", 106: "LOAD_ATTR", 108: "IMPORT_NAME", 116: "LOAD_GLOBAL", 124: "LOAD_FAST",
             125: "STORE_FAST", 83: "RETURN_VALUE", 141: "CALL_FUNCTION_KW"},  # to 3.10
    (3, 11): {0: "CACHE", 151: "RESUME", 100: "LOAD_CONST", 106: "LOAD_ATTR", 160: "LOAD_METHOD",
              108: "IMPORT_NAME", 116: "LOAD_GLOBAL", 124: "LOAD_FAST", 125: "STORE_FAST", 83: "RETURN_VALUE",
              172: "KW_NAMES", 166: "PRECALL", 171: "CALL"},
    (3, 12): {0: "CACHE", 151: "RESUME", 100: "LOAD_CONST", 106: "LOAD_ATTR", 108: "IMPORT_NAME",
              116: "LOAD_GLOBAL", 124: "LOAD_FAST", 125: "STORE_FAST", 83: "RETURN_VALUE", 172: "KW_NAMES",
              171: "CALL"},
    (3, 13): {0: "CACHE", 149: "RESUME", 83: "LOAD_CONST", 82: "LOAD_ATTR", 75: "IMPORT_NAME", 91: "LOAD_GLOBAL",
              85: "LOAD_FAST", 110: "STORE_FAST", 111: "STORE_FAST_LOAD_FAST", 36: "RETURN_VALUE", 57: "CALL_KW"},
}
_FAMILIES = {(2, 7): ((2, 7),), (3, 0): ((2, 7), (3, 6)), (3, 8): ((3, 6),), (3, 11): ((3, 11), (3, 12), (3, 13))}
_MODULE_PATHS = ((), ("nn",), ("compat", "v1"), ("compat", "v1", "nn"))
_KEYWORD = "block_size"

_Instruction = tuple[str, int]


def _space_to_depth_block(code: _Code) -> int | None:
    """N if ``code`` is exactly ``return tf.space_to_depth(x, block_size=N)`` (see the module docstring)."""
    if (code.argcount, code.posonly, code.kwonly, code.cells) != (1, 0, 0, ()) \
            or code.flags & _NOT_A_PLAIN_FUNCTION or _module_path(code) is None:
        return None
    blocks = [c for c in code.consts if type(c) is int and c > 1]  # TensorFlow's block_size is at least 2
    if len(blocks) != 1:
        return None
    for family in _FAMILIES[code.layout]:
        expected = _expected(code, family, blocks[0])
        if expected is not None and _instructions(code.code, family) == expected:
            return blocks[0]
    return None


def _module_path(code: _Code) -> tuple[str, ...] | None:
    """The attributes between the module and ``space_to_depth`` (``("nn",)``), if the names fit the pattern."""
    if len(code.names) < 2 or code.names[-1] != SPACE_TO_DEPTH or code.names[1:-1] not in _MODULE_PATHS:
        return None
    imported = len(code.varnames) == 2  # `import tensorflow as tf` in the body: the alias is the second local
    if len(code.varnames) not in (1, 2) or code.names[0] not in (("tensorflow",) if imported else ("tf", "tensorflow")):
        return None
    return code.names[1:-1]


def _expected(code: _Code, family: tuple[int, int], block: int) -> list[_Instruction] | None:
    """The instructions CPython ``family`` compiles the known body to, given this code's names and constants."""
    consts = code.consts
    keyword = _const_index(consts, _KEYWORD if family == (2, 7) else (_KEYWORD,))
    value, none = _const_index(consts, block), _const_index(consts, None)
    if keyword is None or value is None:
        return None
    ops: list[_Instruction] = [("RESUME", 0)] if family >= (3, 11) else []
    if len(code.varnames) == 2:
        level = _const_index(consts, 0)
        level = level if level is not None or family != (2, 7) else _const_index(consts, -1)
        if level is None or none is None:
            return None
        ops += [("LOAD_CONST", level), ("LOAD_CONST", none), ("IMPORT_NAME", 0), ("STORE_FAST", 1), ("LOAD_FAST", 1)]
    else:
        ops.append(("LOAD_GLOBAL", 0))  # name 0; from 3.11 the low bit (push NULL) is 0 too
    last = len(code.names) - 1
    ops += [("LOAD_ATTR", index << 1 if family >= (3, 12) else index) for index in range(1, last)]
    ops.append(("LOAD_METHOD", last) if family == (3, 11) else
               ("LOAD_ATTR", last << 1 | 1) if family >= (3, 12) else ("LOAD_ATTR", last))
    ops.append(("LOAD_FAST", 0))
    ops += _keyword_call(family, keyword, value)
    return ops + [("RETURN_VALUE", 0)]


def _keyword_call(family: tuple[int, int], keyword: int, value: int) -> list[_Instruction]:
    """``f(x, block_size=N)`` once ``f`` and ``x`` are on the stack."""
    if family == (2, 7):
        return [("LOAD_CONST", keyword), ("LOAD_CONST", value), ("CALL_FUNCTION", 1 | 1 << 8)]
    if family == (3, 6):
        return [("LOAD_CONST", value), ("LOAD_CONST", keyword), ("CALL_FUNCTION_KW", 2)]
    if family == (3, 11):
        return [("LOAD_CONST", value), ("KW_NAMES", keyword), ("PRECALL", 2), ("CALL", 2)]
    if family == (3, 12):
        return [("LOAD_CONST", value), ("KW_NAMES", keyword), ("CALL", 2)]
    return [("LOAD_CONST", value), ("LOAD_CONST", keyword), ("CALL_KW", 2)]


def _const_index(consts: tuple[Any, ...], wanted: Any) -> int | None:
    for index, const in enumerate(consts):
        if type(const) is type(wanted) and const == wanted:
            return index
    return None


def _instructions(code: bytes, family: tuple[int, int]) -> list[_Instruction] | None:
    """``code`` as (opcode name, argument) pairs, inline caches left out; None at any opcode the pattern lacks."""
    table, result, pos = _OPCODES[family], [], 0
    while pos < len(code):
        opcode = code[pos]
        if family == (2, 7):
            width = 3 if opcode >= 90 else 1  # HAVE_ARGUMENT
            arg = int.from_bytes(code[pos + 1:pos + 3], "little") if width == 3 else 0
        else:
            width, arg = 2, code[pos + 1] if pos + 1 < len(code) else -1
        name = table.get(opcode)
        if name is None or arg < 0 or pos + width > len(code):
            return None
        pos += width
        if name == "STORE_FAST_LOAD_FAST":  # 3.13 fuses the two when on one line
            result += [("STORE_FAST", arg >> 4), ("LOAD_FAST", arg & 15)]
        elif name != "CACHE":
            result.append((name, arg))
    return result
