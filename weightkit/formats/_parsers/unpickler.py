"""A restricted pickle interpreter: reads pickled data without importing or calling anything it names.

Python's `pickle` imports every global a file names and calls whatever the file
asks it to call, so a pickle can run any code. This module interprets the opcodes
itself. A global resolves only through an explicit allowlist (`Allowlist`) to one
of weightkit's own builder functions, never to the real object; every other name
is either refused (`UnsafeFileError`, naming it) or, for class names, kept as an
inert `ClassRef` that can only become a `PickledObject` record of its state.
Calling a `ClassRef` (REDUCE), the INST/OBJ opcodes, extension codes and names
from modules such as ``os``, ``sys``, ``subprocess`` or ``builtins`` are refused.

Malformed input of every kind ends in `FileFormatError`; nothing here allocates
more than the pickle's own bytes justify. The work is bounded by `weightkit.limits`:
opcodes run, memo entries, nesting, the expanded size of what is built (a part
shared through the memo counts every time it appears, as printing or hashing
would walk it), the size of dictionary keys and set items, and keys per hash value.
"""

from __future__ import annotations

import codecs
import datetime
import inspect
import mmap
import pathlib
import re
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import limits
from ...errors import FileFormatError, UnsafeFileError, UnsupportedError, WeightkitError

__all__ = [
    "Allowlist",
    "Global",
    "ClassRef",
    "PickledObject",
    "PickledDict",
    "Unpickler",
    "unpickle",
    "BASE_ALLOWLIST",
    "BLOCKED_MODULES",
    "shown",
]

#: Modules whose names are refused outright, even as inert class references.
BLOCKED_MODULES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "importlib", "runpy", "pickle",
    "_pickle", "cPickle", "pickletools", "marshal", "ctypes", "code", "codeop", "types", "functools",
    "operator", "pty", "webbrowser", "io", "_io", "pathlib", "tempfile", "multiprocessing",
    "threading", "_thread", "asyncio", "signal", "inspect", "pdb", "bdb", "timeit", "platform",
    "commands", "popen2", "posixpath", "ntpath", "glob", "zipimport", "pkgutil", "site",
    "imp", "gc", "weakref", "copy", "dill", "cloudpickle", "joblib", "ast", "compileall",
    "py_compile", "builtins", "__builtin__", "exceptions", "_posixsubprocess", "_winapi",
    "msvcrt", "winreg", "_ctypes", "urllib", "http", "ftplib", "smtplib", "telnetlib",
    "xmlrpc", "requests", "socketserver", "select", "mmap", "resource", "fcntl", "termios",
    "readline", "rlcompleter", "atexit", "faulthandler", "trace", "tracemalloc", "sysconfig",
    "distutils", "setuptools", "pip", "venv", "ensurepip", "_osx_support",
    "_operator", "cProfile", "profile", "pydoc", "idlelib", "_sitebuiltins", "_bootlocale",
})

_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SHOWN_CHARS = 80  # how much of a file's text an error message quotes


def shown(value: Any, limit: int = _SHOWN_CHARS) -> str:
    """A value from a file as message text, never walking or formatting more than ``limit`` characters of it.

    Text is cut to ``limit`` characters and small numbers are shown as they are;
    anything else (a container that may expand without bound) is named by its type.
    """
    if isinstance(value, bytes):
        value = value[:limit].decode("utf-8", "replace")
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if value is None or isinstance(value, bool | float) or (isinstance(value, int) and value.bit_length() <= 64):
        return repr(value)
    return f"<{type(value).__name__}>"


@dataclass(frozen=True, eq=False)
class Global:
    """An allowlisted global: the name the file used and weightkit's own stand-in builder.

    ``builder`` is None for names that may appear as values but never be called
    (``builtins.object`` as a base class, dtypes, qschemes).
    """

    module: str
    name: str
    builder: Callable[..., Any] | None = None
    value: Any = None

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"<global {self.qualname}>"


@dataclass(frozen=True, eq=False)
class ClassRef:
    """A class the file names but weightkit does not know: a name only, never imported."""

    module: str
    name: str

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"<class {self.qualname}>"


@dataclass(eq=False)
class PickledObject:
    """An instance of a class the file names, recorded as data: class name, arguments and state.

    Nothing of the class runs: ``state`` is what BUILD would have set, ``items`` and
    ``list_items`` what SETITEMS/APPENDS would have added (dict and list subclasses).
    """

    class_name: str
    args: tuple[Any, ...] = ()
    state: Any = None
    items: dict[Any, Any] = field(default_factory=dict)
    list_items: list[Any] = field(default_factory=list)

    def attributes(self) -> dict[str, Any]:
        """The instance attributes BUILD set (the ``__dict__`` part of the state)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            merged = dict(state[0] or {})
            if isinstance(state[1], dict):
                merged.update(state[1])
            return merged
        return dict(state) if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<object {self.class_name}>"


class PickledDict(dict):
    """A dict from the file (``collections.OrderedDict`` and friends); ``attrs`` holds what BUILD set."""

    def __init__(self, *args: Any, class_name: str = "collections.OrderedDict"):
        super().__init__(*args)
        self.class_name = class_name
        self.attrs: dict[str, Any] = {}

    __hash__ = None


class Allowlist:
    """Globals a pickle may name, each mapped to weightkit's own builder or marker value."""

    def __init__(self, entries: dict[tuple[str, str], Global] | None = None):
        self._entries: dict[tuple[str, str], Global] = dict(entries or {})

    def add(self, module: str, name: str, builder: Callable[..., Any] | None = None, value: Any = None) -> None:
        self._entries[(module, name)] = Global(module, name, builder, value)

    def get(self, module: str, name: str) -> Global | None:
        return self._entries.get((module, name))

    def merged(self, other: Allowlist) -> Allowlist:
        """A new allowlist with ``other``'s entries added to these."""
        return Allowlist({**self._entries, **other._entries})

    def names(self) -> list[str]:
        return sorted(f"{module}.{name}" for module, name in self._entries)


class _Corrupt(ValueError):
    """Raised inside the interpreter; turned into a FileFormatError with the byte position."""


class _Refusal(Exception):
    """Raised inside the interpreter; turned into an UnsafeFileError naming the file."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class Unpickler:
    """Interprets one pickle under an `Allowlist`.

    Args:
        data: the pickle's bytes, or a memory map of a file holding it (other data may follow).
        allowlist: the globals it may name.
        persistent_load: turns a persistent id into an object; None refuses persistent ids.
        record_classes: keep unknown class names as inert `ClassRef`s (True) or refuse them.
        path: the file, for error messages; ``what`` names the pickle inside it.
    """

    def __init__(self, data: bytes | mmap.mmap, allowlist: Allowlist, *,
                 persistent_load: Callable[[Any], Any] | None = None, record_classes: bool = True,
                 path: str | Path | None = None, what: str = "pickle", start: int = 0):
        self.data = data
        self.allowlist = allowlist
        self.persistent_load = persistent_load
        self.record_classes = record_classes
        self.path = path
        self.what = what
        self.pos = start
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.memo_limit = limits.PICKLE_MEMO.value
        self.nesting_limit, self.size_limit = limits.NESTING.value, limits.OBJECT_SIZE.value
        # Expanded size and nesting depth of each tuple and frozenset built (kept alive with them).
        self._measured: dict[int, tuple[Any, int, int]] = {}
        # Keys per hash value in each dict or set that SETITEM(S)/ADDITEMS fill (kept alive with them).
        self._hash_counts: dict[int, tuple[Any, dict[int, int]]] = {}
        self.protocol = 0
        self.globals_seen: list[str] = []

    def load(self) -> Any:
        """Run the pickle to its STOP opcode and return the object it builds.

        Raises:
            UnsafeFileError: the pickle names or calls something outside the allowlist.
            FileFormatError: the pickle is truncated or malformed.
        """
        try:
            result = self._run()
            measure(result, self.what)
            return result
        except _Refusal as refusal:
            raise UnsafeFileError(
                f"{self.what} {refusal.what}; refused: weightkit never runs code from a file",
                path=self.path, hint="the file may be malicious; weightkit reads only tensors and plain data",
            ) from None
        except WeightkitError as error:
            if error.path is None:
                error.path = str(self.path) if self.path is not None else None
            raise
        # What damaged bytes cause here. A TypeError or AttributeError is not among them: the
        # interpreter turns the TypeErrors a file can cause (an unhashable key, a builder called
        # with the wrong arguments) into _Corrupt where they happen, so any other is a bug in
        # weightkit and surfaces as one.
        except (_Corrupt, IndexError, KeyError, ValueError, OverflowError, struct.error,
                UnicodeDecodeError, RecursionError) as exc:
            reason = str(exc) or type(exc).__name__
            raise FileFormatError(f"{self.what} is corrupted near byte {self.pos}: {reason}", path=self.path,
                                  hint="the file may be truncated or damaged") from exc
        except MemoryError:
            raise UnsafeFileError(f"{self.what} needs more memory than is available; refused",
                                  path=self.path) from None

    def _run(self) -> Any:
        dispatch, data, end = _DISPATCH, self.data, len(self.data)
        budget = limits.PICKLE_OPCODES.value
        while True:
            budget -= 1
            if budget < 0:
                raise limits.PICKLE_OPCODES.refusal(f"more than {limits.PICKLE_OPCODES.value:,}", self.what)
            position = self.pos
            if position >= end:
                raise _Corrupt(f"the data ends at byte {end} before the pickle's STOP opcode")
            opcode = data[position]
            self.pos = position + 1
            handler = dispatch.get(opcode)
            if handler is None:
                raise _Corrupt(f"unknown opcode 0x{opcode:02x}")
            if handler is _stop:
                return self._pop()
            handler(self)

    # --- reading bytes ---------------------------------------------------------------
    def _read(self, count: int) -> bytes:
        end = self.pos + count
        if count < 0 or end > len(self.data):
            raise _Corrupt(f"needs {count} more bytes but the data ends at byte {len(self.data)}")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def _unpack(self, fmt: struct.Struct) -> Any:
        return fmt.unpack(self._read(fmt.size))[0]

    def _readline(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise _Corrupt("a text line runs past the end of the data")
        line = self.data[self.pos:end]
        self.pos = end + 1
        return line

    # --- stack ----------------------------------------------------------------------
    def _push(self, value: Any) -> None:
        self.stack.append(value)

    def _pop(self) -> Any:
        if not self.stack:
            raise _Corrupt("stack underflow")
        return self.stack.pop()

    def _top(self) -> Any:
        if not self.stack:
            raise _Corrupt("stack underflow")
        return self.stack[-1]

    def _built(self, value: Any) -> Any:
        """A builder's result; tuples and frozensets get their nesting depth checked too."""
        if type(value) in (tuple, frozenset):
            return self._hashable(type(value), list(value))
        return value

    def _hashable(self, kind: type, items: Any) -> Any:
        """A tuple or frozenset of ``items``, its expanded size and depth checked before anything hashes it."""
        size, depth = 1 + len(items), 1
        measured = self._measured
        for item in items:
            if type(item) is tuple or type(item) is frozenset:
                found = measured.get(id(item))
                if found is not None:
                    size += found[1] - 1
                    depth = max(depth, found[2] + 1)
        if depth > self.nesting_limit:
            raise limits.NESTING.refusal(depth, f"a tuple in {self.what}")
        if size > self.size_limit:
            raise limits.OBJECT_SIZE.refusal(size, f"a tuple in {self.what}")
        value: tuple[Any, ...] | frozenset[Any]
        if kind is tuple:
            value = tuple(items)
        else:
            with _file_fault():  # an unhashable item
                check_keys(items)
                value = frozenset(items)
        if size > 1:
            measured[id(value)] = (value, size, depth)
        return value

    def hash_counts(self, target: Any) -> dict[int, int]:
        """The keys-per-hash-value count of a dict or set that opcodes keep adding to."""
        entry = self._hash_counts.get(id(target))
        if entry is None:
            entry = self._hash_counts[id(target)] = (target, {})
        return entry[1]

    def _pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise _Corrupt("no MARK to pop to")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    # --- globals ----------------------------------------------------------------------
    def resolve_global(self, module: str, name: str) -> Global | ClassRef:
        """An allowlisted `Global`, an inert `ClassRef`, or a refusal naming ``module.name``."""
        module = _PY2_MODULES.get(module, module)
        qualname = shown(f"{module}.{name}", 2 * _SHOWN_CHARS)
        self.globals_seen.append(qualname)
        found = self.allowlist.get(module, name)
        if found is not None:
            return found
        if not _MODULE_NAME.match(module):
            raise _Refusal(f"names a global with a malformed module name {shown(module)!r}")
        if not _NAME.match(name):
            raise _Refusal(f"names {qualname}, an attribute chain outside the allowlist")
        if module.split(".")[0] in BLOCKED_MODULES:
            raise _Refusal(f"names {qualname}, a global outside weightkit's allowlist")
        if not self.record_classes:
            raise _Refusal(f"names {qualname}, a global outside weightkit's allowlist")
        return ClassRef(module, name)

    def call(self, func: Any, args: Any, opcode: str) -> Any:
        """What REDUCE does: call one of weightkit's own builders, never anything the file names."""
        if not isinstance(args, tuple):
            raise _Corrupt(f"{opcode} arguments are not a tuple")
        if isinstance(func, Global) and func.builder is not None:
            return _call_builder(func.builder, args, {})
        if isinstance(func, Global | ClassRef):
            raise _Refusal(f"calls {shown(func.qualname, 2 * _SHOWN_CHARS)}, which is not on weightkit's allowlist")
        raise _Refusal(f"calls a {type(func).__name__} object ({opcode} on something that is not a global)")

    def instantiate(self, cls: Any, args: Any, kwargs: dict[str, Any] | None = None) -> Any:
        """What NEWOBJ does: build an allowlisted stand-in, or record an unknown class as data."""
        if not isinstance(args, tuple):
            raise _Corrupt("NEWOBJ arguments are not a tuple")
        if isinstance(cls, ClassRef):
            return PickledObject(cls.qualname, args + ((kwargs,) if kwargs else ()))
        if isinstance(cls, Global) and cls.builder is not None:
            return _call_builder(cls.builder, args, kwargs or {})
        name = shown(cls.qualname, 2 * _SHOWN_CHARS) if isinstance(cls, Global) else type(cls).__name__
        raise _Refusal(f"creates an object of {name} (NEWOBJ), which is not on weightkit's allowlist")

    def build(self, instance: Any, state: Any) -> None:
        """What BUILD does, on weightkit's own records only."""
        if isinstance(instance, PickledObject):
            if isinstance(instance.state, dict) and isinstance(state, dict):
                instance.state.update(state)
            else:
                instance.state = state
        elif isinstance(instance, PickledDict):
            if not isinstance(state, dict):
                raise _Corrupt("BUILD state of a dict is not a dict")
            instance.attrs.update({str(k): v for k, v in state.items()})
        elif hasattr(instance, "__pickle_build__"):
            instance.__pickle_build__(state)
        else:
            raise _Refusal(f"sets the state of a {type(instance).__name__} (BUILD), which weightkit does not allow")

    def load_persistent(self, pid: Any) -> Any:
        if self.persistent_load is None:
            raise _Corrupt("persistent id in a pickle that has no external data")
        return self.persistent_load(pid)


def _call_builder(builder: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``builder(*args, **kwargs)``; arguments it cannot take are the file's fault, not a bug."""
    try:
        return builder(*args, **kwargs)
    except TypeError as exc:
        if _binds(builder, args, kwargs):
            raise  # raised inside the builder: a bug in weightkit
        raise _Corrupt(str(exc)) from exc


def _binds(builder: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(builder).bind(*args, **kwargs)
    except TypeError:
        return False
    return True


@contextmanager
def _file_fault() -> Iterator[None]:
    """Around one step on values from the file, where a TypeError is the file's fault.

    An unhashable dict key or set item, a pair that is not a pair, a date whose state
    bytes do not make one: the step names what it guards.
    """
    try:
        yield
    except TypeError as exc:
        raise _Corrupt(str(exc)) from exc


# --- bounds on what the pickle builds ------------------------------------------------------


def check_keys(keys: Any, counts: dict[int, int] | None = None) -> None:
    """Refuse dictionary keys or set items that hashing could not bear.

    Each key may expand to at most ``limits.KEY_SIZE`` objects (a tuple DAG shared
    through the memo counts every time it appears), and at most
    ``limits.HASH_COLLISIONS`` keys may share one hash value (``counts`` carries the
    tally of a container filled over several opcodes). Text and bytes are skipped:
    their hashes are randomized per process, so a file cannot make them collide.
    """
    collision_limit = -1
    counts = {} if counts is None else counts
    for key in keys:
        kind = type(key)
        if kind is str or kind is bytes:
            continue
        if collision_limit < 0:
            collision_limit = limits.HASH_COLLISIONS.value
        if kind is tuple or kind is frozenset:
            _check_key_size(key)
        value = hash(key)
        count = counts.get(value, 0) + 1
        if count > collision_limit:
            raise limits.HASH_COLLISIONS.refusal(count, "a dictionary or set in the pickle (a hash flood)")
        counts[value] = count


def _check_key_size(key: Any) -> None:
    """Walk a tuple or frozenset key, stopping as soon as it expands past ``limits.KEY_SIZE``."""
    limit = limits.KEY_SIZE.value
    seen, pending = 0, [key]
    while pending:
        item = pending.pop()
        seen += 1
        if type(item) is tuple or type(item) is frozenset:
            if seen + len(pending) + len(item) > limit:
                raise limits.KEY_SIZE.refusal(f"more than {limit:,}", "a dictionary key or set item in the pickle")
            pending.extend(item)


def _children(value: Any) -> list[Any] | tuple[Any, ...]:
    """What a built value holds: items, keys and values, a record's arguments and state."""
    kind = type(value)
    if kind is list or kind is tuple:
        return value
    if kind is dict or kind is PickledDict:
        return [*value.keys(), *value.values(), *(value.attrs.values() if kind is PickledDict else ())]
    if kind is set or kind is frozenset:
        return list(value)
    if kind is PickledObject:
        return [*value.args, value.state, *value.items.keys(), *value.items.values(), *value.list_items]
    children = getattr(value, "__pickle_children__", None)
    return children() if children is not None else ()


def measure(root: Any, what: str = "the pickle") -> None:
    """Refuse a built value whose expanded size exceeds ``limits.OBJECT_SIZE`` or depth ``limits.NESTING``.

    One iterative walk, each container sized once (a shared part adds its size every
    time it appears, a reference back to a container being walked adds one): what
    printing, hashing or copying the value would have to walk, measured in linear time.
    """
    size_limit, depth_limit = limits.OBJECT_SIZE.value, limits.NESTING.value
    done: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    frames: list[list[Any]] = [[root, _children(root), 0, 1, 0]]  # value, children, next child, size, depth below
    active.add(id(root))
    while frames:
        frame = frames[-1]
        children, index = frame[1], frame[2]
        if index < len(children):
            frame[2] = index + 1
            child = children[index]
            found = done.get(id(child))
            if frame[3] > size_limit:
                raise limits.OBJECT_SIZE.refusal(frame[3], f"a value in {what}")
            if found is not None:
                frame[3] += found[0]
                frame[4] = max(frame[4], found[1])
            elif id(child) in active:
                frame[3] += 1
            else:
                grandchildren = _children(child)
                if not grandchildren:
                    frame[3] += 1
                else:
                    active.add(id(child))
                    frames.append([child, grandchildren, 0, 1, 0])
                    if len(frames) > depth_limit:
                        raise limits.NESTING.refusal(len(frames), f"a value in {what}")
            continue
        frames.pop()
        active.discard(id(frame[0]))
        done[id(frame[0])] = (frame[3], frame[4] + 1)
        if frame[3] > size_limit:
            raise limits.OBJECT_SIZE.refusal(frame[3], f"a value in {what}")
        if frames:
            frames[-1][3] += frame[3]
            frames[-1][4] = max(frames[-1][4], frame[4] + 1)


# --- opcode handlers ------------------------------------------------------------------
# Each takes the machine; names follow the opcode names in Python's pickletools.

_I4 = struct.Struct("<i")
_U1 = struct.Struct("<B")
_U2 = struct.Struct("<H")
_U4 = struct.Struct("<I")
_U8 = struct.Struct("<Q")
_F8 = struct.Struct(">d")


def _stop(m: Unpickler) -> None:  # handled in the loop
    pass


def _proto(m: Unpickler) -> None:
    m.protocol = m._read(1)[0]
    if m.protocol > 5:
        raise _Corrupt(f"unsupported pickle protocol {m.protocol}")


def _frame(m: Unpickler) -> None:
    m._unpack(_U8)


def _mark(m: Unpickler) -> None:
    m.metastack.append(m.stack)
    m.stack = []


def _pop(m: Unpickler) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m._pop_mark()


def _pop_mark(m: Unpickler) -> None:
    m._pop_mark()


def _dup(m: Unpickler) -> None:
    m._push(m._top())


def _none(m: Unpickler) -> None:
    m._push(None)


def _newtrue(m: Unpickler) -> None:
    m._push(True)


def _newfalse(m: Unpickler) -> None:
    m._push(False)


def _int(m: Unpickler) -> None:
    line = m._readline()
    m._push(False if line == b"00" else True if line == b"01" else int(line.decode("ascii")))


def _binint(m: Unpickler) -> None:
    m._push(m._unpack(_I4))


def _binint1(m: Unpickler) -> None:
    m._push(m._unpack(_U1))


def _binint2(m: Unpickler) -> None:
    m._push(m._unpack(_U2))


def _long(m: Unpickler) -> None:
    m._push(int(m._readline().decode("ascii").rstrip("L")))


def _long1(m: Unpickler) -> None:
    m._push(int.from_bytes(m._read(m._unpack(_U1)), "little", signed=True))


def _long4(m: Unpickler) -> None:
    size = m._unpack(_I4)
    if size > 1 << 16:
        raise _Corrupt(f"LONG4 of {size} bytes")
    m._push(int.from_bytes(m._read(size), "little", signed=True))


def _float(m: Unpickler) -> None:
    m._push(float(m._readline().decode("ascii")))


def _binfloat(m: Unpickler) -> None:
    m._push(m._unpack(_F8))


def _py2_text(raw: bytes) -> str | bytes:
    """Python 2 ``str`` values: text when they decode as UTF-8 (as torch.load does), else bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _string(m: Unpickler) -> None:
    line = m._readline().rstrip()
    if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b"'", b'"'):
        raise _Corrupt("STRING opcode argument is not quoted")
    m._push(_py2_text(codecs.escape_decode(line[1:-1])[0]))


def _binstring(m: Unpickler) -> None:
    m._push(_py2_text(m._read(m._unpack(_I4))))


def _short_binstring(m: Unpickler) -> None:
    m._push(_py2_text(m._read(m._unpack(_U1))))


def _unicode(m: Unpickler) -> None:
    m._push(m._readline().decode("raw-unicode-escape"))


def _binunicode(m: Unpickler) -> None:
    m._push(m._read(m._unpack(_U4)).decode("utf-8", "surrogatepass"))


def _short_binunicode(m: Unpickler) -> None:
    m._push(m._read(m._unpack(_U1)).decode("utf-8", "surrogatepass"))


def _binunicode8(m: Unpickler) -> None:
    m._push(m._read(m._unpack(_U8)).decode("utf-8", "surrogatepass"))


def _binbytes(m: Unpickler) -> None:
    m._push(m._read(m._unpack(_U4)))


def _short_binbytes(m: Unpickler) -> None:
    m._push(m._read(m._unpack(_U1)))


def _binbytes8(m: Unpickler) -> None:
    m._push(m._read(m._unpack(_U8)))


def _bytearray8(m: Unpickler) -> None:
    m._push(bytearray(m._read(m._unpack(_U8))))


def _empty_tuple(m: Unpickler) -> None:
    m._push(())


def _tuple(m: Unpickler) -> None:
    m._push(m._hashable(tuple, m._pop_mark()))


def _tuple1(m: Unpickler) -> None:
    m._push(m._hashable(tuple, [m._pop()]))


def _tuple2(m: Unpickler) -> None:
    second, first = m._pop(), m._pop()
    m._push(m._hashable(tuple, [first, second]))


def _tuple3(m: Unpickler) -> None:
    third, second, first = m._pop(), m._pop(), m._pop()
    m._push(m._hashable(tuple, [first, second, third]))


def _empty_list(m: Unpickler) -> None:
    m._push([])


def _list(m: Unpickler) -> None:
    m._push(m._pop_mark())


def _empty_dict(m: Unpickler) -> None:
    m._push({})


def _dict(m: Unpickler) -> None:
    items = m._pop_mark()
    if len(items) % 2:
        raise _Corrupt("DICT with an odd number of items")
    with _file_fault():
        check_keys(items[0::2])
        m._push({items[i]: items[i + 1] for i in range(0, len(items), 2)})


def _empty_set(m: Unpickler) -> None:
    m._push(set())


def _frozenset(m: Unpickler) -> None:
    m._push(m._hashable(frozenset, m._pop_mark()))


def _append(m: Unpickler) -> None:
    value = m._pop()
    _extend(m._top(), [value])


def _appends(m: Unpickler) -> None:
    items = m._pop_mark()
    _extend(m._top(), items)


def _extend(target: Any, items: list[Any]) -> None:
    if type(target) is list:
        target.extend(items)
    elif isinstance(target, PickledObject):
        target.list_items.extend(items)
    else:
        raise _Refusal(f"appends to a {type(target).__name__} (APPEND works on lists only)")


def _setitem(m: Unpickler) -> None:
    value, key = m._pop(), m._pop()
    _set_items(m, m._top(), [key, value])


def _setitems(m: Unpickler) -> None:
    items = m._pop_mark()
    if len(items) % 2:
        raise _Corrupt("SETITEMS with an odd number of items")
    _set_items(m, m._top(), items)


def _set_items(m: Unpickler, target: Any, items: list[Any]) -> None:
    if isinstance(target, dict):
        destination = target
    elif isinstance(target, PickledObject):
        destination = target.items
    else:
        raise _Refusal(f"sets items of a {type(target).__name__} (SETITEM works on dicts only)")
    with _file_fault():
        check_keys(items[0::2], m.hash_counts(destination))
        for i in range(0, len(items), 2):
            destination[items[i]] = items[i + 1]


def _additems(m: Unpickler) -> None:
    items = m._pop_mark()
    target = m._top()
    if type(target) is not set:
        raise _Refusal(f"adds items to a {type(target).__name__} (ADDITEMS works on sets only)")
    with _file_fault():
        check_keys(items, m.hash_counts(target))
        target.update(items)


def _get(m: Unpickler) -> None:
    m._push(_memo_get(m, int(m._readline().decode("ascii"))))


def _binget(m: Unpickler) -> None:
    m._push(_memo_get(m, m._unpack(_U1)))


def _long_binget(m: Unpickler) -> None:
    m._push(_memo_get(m, m._unpack(_U4)))


def _memo_get(m: Unpickler, index: int) -> Any:
    if index not in m.memo:
        raise _Corrupt(f"memo entry {shown(index)} was never stored")
    return m.memo[index]


def _memo_put(m: Unpickler, index: int) -> None:
    if len(m.memo) >= m.memo_limit and index not in m.memo:
        raise limits.PICKLE_MEMO.refusal(f"more than {m.memo_limit:,}", m.what)
    m.memo[index] = m._top()


def _put(m: Unpickler) -> None:
    _memo_put(m, int(m._readline().decode("ascii")))


def _binput(m: Unpickler) -> None:
    _memo_put(m, m._unpack(_U1))


def _long_binput(m: Unpickler) -> None:
    _memo_put(m, m._unpack(_U4))


def _memoize(m: Unpickler) -> None:
    _memo_put(m, len(m.memo))


def _global(m: Unpickler) -> None:
    module = m._readline().decode("utf-8")
    name = m._readline().decode("utf-8")
    m._push(m.resolve_global(module, name))


def _stack_global(m: Unpickler) -> None:
    name, module = m._pop(), m._pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise _Corrupt("STACK_GLOBAL needs two strings")
    m._push(m.resolve_global(module, name))


def _reduce(m: Unpickler) -> None:
    args = m._pop()
    func = m._pop()
    m._push(m._built(m.call(func, args, "REDUCE")))


def _newobj(m: Unpickler) -> None:
    args = m._pop()
    cls = m._pop()
    m._push(m._built(m.instantiate(cls, args)))


def _newobj_ex(m: Unpickler) -> None:
    kwargs, args, cls = m._pop(), m._pop(), m._pop()
    if not isinstance(kwargs, dict):
        raise _Corrupt("NEWOBJ_EX keyword arguments are not a dict")
    m._push(m._built(m.instantiate(cls, args, kwargs)))


def _build(m: Unpickler) -> None:
    state = m._pop()
    m.build(m._top(), state)


def _persid(m: Unpickler) -> None:
    m._push(m.load_persistent(m._readline().decode("ascii")))


def _binpersid(m: Unpickler) -> None:
    m._push(m.load_persistent(m._pop()))


def _refuse(opcode: str, why: str) -> Callable[[Unpickler], None]:
    def handler(m: Unpickler) -> None:
        raise _Refusal(f"uses the {opcode} opcode, which {why}")

    return handler


def _out_of_band(m: Unpickler) -> None:
    raise UnsupportedError("the pickle uses out-of-band buffers (protocol 5), which weightkit does not read")


_DISPATCH: dict[int, Callable[[Unpickler], None]] = {
    ord(code): handler for code, handler in {
        ".": _stop, "\x80": _proto, "\x95": _frame, "(": _mark, "0": _pop, "1": _pop_mark, "2": _dup,
        "N": _none, "\x88": _newtrue, "\x89": _newfalse,
        "I": _int, "J": _binint, "K": _binint1, "M": _binint2, "L": _long, "\x8a": _long1, "\x8b": _long4,
        "F": _float, "G": _binfloat,
        "S": _string, "T": _binstring, "U": _short_binstring, "V": _unicode, "X": _binunicode,
        "\x8c": _short_binunicode, "\x8d": _binunicode8, "B": _binbytes, "C": _short_binbytes,
        "\x8e": _binbytes8, "\x96": _bytearray8,
        ")": _empty_tuple, "t": _tuple, "\x85": _tuple1, "\x86": _tuple2, "\x87": _tuple3,
        "]": _empty_list, "l": _list, "}": _empty_dict, "d": _dict, "\x8f": _empty_set, "\x91": _frozenset,
        "a": _append, "e": _appends, "s": _setitem, "u": _setitems, "\x90": _additems,
        "g": _get, "h": _binget, "j": _long_binget, "p": _put, "q": _binput, "r": _long_binput,
        "\x94": _memoize,
        "c": _global, "\x93": _stack_global, "R": _reduce, "\x81": _newobj, "\x92": _newobj_ex, "b": _build,
        "P": _persid, "Q": _binpersid,
        "i": _refuse("INST", "creates an object by calling a class the file names"),
        "o": _refuse("OBJ", "creates an object by calling a class the file names"),
        "\x82": _refuse("EXT1", "names code through the copyreg extension registry"),
        "\x83": _refuse("EXT2", "names code through the copyreg extension registry"),
        "\x84": _refuse("EXT4", "names code through the copyreg extension registry"),
        "\x97": _out_of_band, "\x98": _out_of_band,
    }.items()
}


# --- the base allowlist: plain Python containers, as torch's weights_only unpickler allows --


def _ordered_dict(*args: Any) -> PickledDict:
    return _dict_of("collections.OrderedDict", args)


def _counter(*args: Any) -> PickledDict:
    return _dict_of("collections.Counter", args)


def _dict_of(class_name: str, args: tuple[Any, ...]) -> PickledDict:
    if len(args) > 1:
        raise _Corrupt(f"{class_name} takes at most one argument")
    result = PickledDict(class_name=class_name)
    if args and args[0] is not None:
        source = args[0]
        pairs = source.items() if isinstance(source, dict) else source
        if not isinstance(pairs, list | tuple) and not isinstance(source, dict):
            raise _Corrupt(f"{class_name} argument is not a list of pairs")
        with _file_fault():  # a pair that is not one, or an unhashable key
            pairs = [(key, value) for key, value in pairs]
            check_keys([key for key, _ in pairs])
            result.update(pairs)
    return result


def _set(*args: Any) -> set[Any]:
    items = _sequence("set", args)
    with _file_fault():
        check_keys(items)
        return set(items)


def _frozenset_of(*args: Any) -> frozenset[Any]:
    items = _sequence("frozenset", args)
    with _file_fault():
        check_keys(items)
        return frozenset(items)


def _sequence(name: str, args: tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
    if not args:
        return []
    if len(args) != 1 or not isinstance(args[0], list | tuple | set | frozenset):
        raise _Corrupt(f"{name}() argument is not a list")
    return list(args[0])


def _bytearray(*args: Any) -> bytearray:
    if not args:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], bytes | bytearray):
        return bytearray(args[0])
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return bytearray(args[0].encode("latin-1"))
    raise _Corrupt("bytearray() arguments are not bytes")


def _complex(*args: Any) -> complex:
    if not all(isinstance(a, int | float) for a in args) or len(args) > 2:
        raise _Corrupt("complex() arguments are not numbers")
    return complex(*args)


def _slice(*args: Any) -> slice:
    if not 1 <= len(args) <= 3 or not all(a is None or isinstance(a, int) for a in args):
        raise _Corrupt("slice() arguments are not integers")
    return slice(*args)


def _codecs_encode(text: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
    """``_codecs.encode(str, 'latin1')``: how Python 3 pickles ``bytes`` at protocol 2."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii") or rest:
        raise _Corrupt("_codecs.encode arguments are not text and a plain encoding")
    return text.encode(encoding)


def _path(*parts: Any) -> str:
    """``pathlib.PosixPath('a', 'b')`` (configs saved in checkpoints): the path as text."""
    if not all(isinstance(part, str) for part in parts):
        raise _Corrupt("path parts are not text")
    return str(pathlib.PurePath(*parts)) if parts else "."


def _datetime(state: Any, tzinfo: Any = None) -> str:
    """``datetime.datetime`` from its 10-byte pickle state, as ISO text (the time zone is dropped)."""
    if not isinstance(state, bytes) or len(state) != 10:
        raise _Corrupt("datetime state is not 10 bytes")
    with _file_fault():  # a month byte outside 1..12 makes datetime read the bytes as a year
        # datetime's one-argument form takes its own pickle state; typeshed does not know it.
        return datetime.datetime(state).isoformat()  # type: ignore[arg-type, call-arg]


def _date(state: Any) -> str:
    if not isinstance(state, bytes) or len(state) != 4:
        raise _Corrupt("date state is not 4 bytes")
    with _file_fault():  # as in _datetime
        return datetime.date(state).isoformat()  # type: ignore[arg-type, call-arg]  # as in _datetime


def _timedelta(days: Any = 0, seconds: Any = 0, microseconds: Any = 0) -> float:
    if not all(type(v) is int for v in (days, seconds, microseconds)):
        raise _Corrupt("timedelta fields are not integers")
    return datetime.timedelta(days, seconds, microseconds).total_seconds()


def _reconstructor(cls: Any, base: Any, state: Any = None) -> PickledObject:
    """``copyreg._reconstructor(cls, object, state)``: protocol 0/1 objects, recorded as data."""
    if not isinstance(cls, ClassRef):
        name = shown(cls.qualname, 2 * _SHOWN_CHARS) if isinstance(cls, Global) else type(cls).__name__
        raise _Refusal(f"rebuilds {name} through copyreg._reconstructor")
    if not (isinstance(base, Global) and base.qualname in ("builtins.object", "builtins.dict", "builtins.list")):
        raise _Refusal("rebuilds an object on a base class other than object, dict or list")
    return PickledObject(cls.qualname, (), None if state is None else state)


def _base_allowlist() -> Allowlist:
    allow = Allowlist()
    for module, name, builder in (
        ("collections", "OrderedDict", _ordered_dict),
        ("collections", "Counter", _counter),
        ("builtins", "set", _set),
        ("builtins", "frozenset", _frozenset_of),
        ("builtins", "bytearray", _bytearray),
        ("builtins", "complex", _complex),
        ("builtins", "slice", _slice),
        ("_codecs", "encode", _codecs_encode),
        ("copyreg", "_reconstructor", _reconstructor),
        ("datetime", "datetime", _datetime),
        ("datetime", "date", _date),
        ("datetime", "timedelta", _timedelta),
        *(("pathlib", name, _path) for name in ("Path", "PosixPath", "WindowsPath", "PurePath",
                                                  "PurePosixPath", "PureWindowsPath")),
    ):
        allow.add(module, name, builder)
    for name in ("object", "dict", "list"):
        allow.add("builtins", name)  # base classes for _reconstructor; never callable
    return allow


#: Plain Python values every pickle may build (mirrors torch's weights_only allowlist).
BASE_ALLOWLIST = _base_allowlist()


def unpickle(data: bytes, allowlist: Allowlist = BASE_ALLOWLIST, **options: Any) -> Any:
    """Interpret one pickle held in ``data`` under ``allowlist`` (see `Unpickler` for options)."""
    return Unpickler(data, allowlist, **options).load()
