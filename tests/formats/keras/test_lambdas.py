"""Known Lambda layers: recognised from their config as data, and their output shapes as Keras computes them."""

from __future__ import annotations

import base64
import json
import marshal
import random
import struct

import pytest

import weightkit
from weightkit.formats.keras import infer_shapes, parse_config
from weightkit.formats.keras.lambdas import SPACE_TO_DEPTH, KnownLambda, known_lambda, lambda_problem

from ...yolo_nets import full_yolo_extractor, save_yolo_files, space_to_depth_x2

keras = pytest.importorskip("keras")


def space_to_depth_x4(x):
    """A block size of 4, told by the name's suffix."""
    _, h, w, c = x.shape
    x = keras.ops.reshape(x, (-1, h // 4, 4, w // 4, 4, c))
    x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return keras.ops.reshape(x, (-1, h // 4, w // 4, 16 * c))


def parsed(model):
    return parse_config(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))


def lambda_config(function) -> dict:
    layer = keras.layers.Lambda(function)
    return json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))["config"]


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    return save_yolo_files(tmp_path_factory.mktemp("yolo"))


@pytest.mark.parametrize("function, block", [(space_to_depth_x2, 2), (space_to_depth_x4, 4)])
def test_a_named_keras3_function_is_known_with_its_block_size(function, block):
    assert known_lambda(lambda_config(function)) == KnownLambda(function.__name__, SPACE_TO_DEPTH, block)


def test_a_name_must_be_exactly_space_to_depth_with_an_optional_block_suffix():
    for name in ("my_space_to_depth_x2", "space_to_depth_x2_fast", "fake_space_to_depth", "space_to_depth_x0"):
        config = {"function": {"class_name": "function", "config": name}}
        assert known_lambda(config) is None and "not space_to_depth" in lambda_problem(config), name
    assert known_lambda({"function": "space_to_depth", "function_type": "function"}).block_size == 2


# keras-yolo2's passthrough as users wrote it; `tf` is never defined here because these are never run.
def yolo_space_to_depth_x2(x):
    return tf.space_to_depth(x, block_size=2)  # noqa: F821


def nn_space_to_depth(x):
    """tf.keras-era spelling, with a docstring."""
    return tf.nn.space_to_depth(x, block_size=3)  # noqa: F821


def imports_tensorflow(x):
    import tensorflow as tf  # the fixtures/tfkeras_backbone_head spelling: the body imports it

    return tf.nn.space_to_depth(x, block_size=2)


def misnamed_space_to_depth_x2(x):
    return tf.space_to_depth(x, block_size=4)  # noqa: F821


def marshalled(function, form: str = "keras2") -> dict:
    """A Lambda config holding ``function``'s code as Keras 2/tf.keras (``[code, defaults, closure]``) or Keras 3 do."""
    code = base64.b64encode(marshal.dumps(function.__code__)).decode("ascii")
    if form == "keras3":
        return {"function": {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": None}}}
    return {"function": [code, None, None], "function_type": "lambda", "module": "__main__", "arguments": {}}


@pytest.mark.parametrize("function, block", [
    (yolo_space_to_depth_x2, 2), (nn_space_to_depth, 3), (imports_tensorflow, 2), (misnamed_space_to_depth_x2, 4),
    (lambda x: tf.compat.v1.space_to_depth(x, block_size=2), 2),  # noqa: F821
], ids=["keras-yolo2", "tf.nn with docstring", "import in the body", "block from the code not the name", "lambda"])
@pytest.mark.parametrize("form", ["keras2", "keras3"])
def test_marshalled_code_is_known_by_its_structure(function, block, form):
    """The code object is read as data (this Python's marshal layout here); the block size is the code's constant."""
    assert known_lambda(marshalled(function, form)) == KnownLambda(function.__name__, SPACE_TO_DEPTH, block, True)


def multiplied(x):
    return tf.space_to_depth(x, block_size=2) * 2  # noqa: F821


def doubled_input(x):
    return tf.space_to_depth(x + x, block_size=2)  # noqa: F821


def runs_something_first(x):
    import os

    os.system("echo space_to_depth")
    return tf.space_to_depth(x, block_size=2)  # noqa: F821


def attribute_of_the_result(x):
    return tf.nn(x, block_size=2).space_to_depth  # noqa: F821  # the same names and constants, in another order


def with_default(x, scale=2):
    return tf.space_to_depth(x, block_size=2)  # noqa: F821


def other_module(x):
    return tf.image.space_to_depth(x, block_size=2)  # noqa: F821


@pytest.mark.parametrize("function", [
    multiplied, doubled_input, runs_something_first, attribute_of_the_result, with_default, other_module,
    space_to_depth_x2,  # tests/yolo_nets: keras.ops under keras-yolo2's name
])
def test_code_that_only_mentions_space_to_depth_is_unknown(function):
    """Names, constants and the bytes ``space_to_depth`` are all there; the bytecode is not the known body."""
    config = marshalled(function)
    assert known_lambda(config) is None and lambda_problem(config)
    assert known_lambda(marshalled(function, "keras3")) is None


def test_defaults_closures_and_arguments_make_a_function_unknown():
    config = marshalled(yolo_space_to_depth_x2)
    assert known_lambda({**config, "function": [config["function"][0], [3], None]}) is None
    assert known_lambda({**config, "function": [config["function"][0], None, [1]]}) is None
    assert known_lambda({**config, "arguments": {"block_size": 4}}) is None


def _long(value: int) -> bytes:
    return struct.pack("<i", value)


def _object(value, py2: bool = False) -> bytes:
    """marshal's encoding of the few value types a code object needs (Python 2: names as interned bytes)."""
    if value is None:
        return b"N"
    if isinstance(value, int):
        return b"i" + _long(value)
    if isinstance(value, bytes):
        return b"s" + _long(len(value)) + value
    if isinstance(value, str):
        return (b"t" if py2 else b"u") + _long(len(value.encode())) + value.encode()
    return b"(" + _long(len(value)) + b"".join(_object(item, py2) for item in value)


def code_object(version: tuple[int, int], code: bytes, consts: tuple, names: tuple, varnames: tuple = ("x",),
                flags: int = 0x43) -> str:
    """A marshalled code object in ``version``'s layout, base64 as Keras stores it.

    Layouts per CPython's Python/marshal.c: 2.7 (argcount, nlocals, stacksize, flags), 3.0-3.7 (+ kwonlyargcount),
    3.8-3.10 (+ posonlyargcount), 3.11+ (locals-plus names and kinds, qualname, exception table).
    """
    py2, name = version < (3, 0), "space_to_depth_x2"
    if version >= (3, 11):
        head = [1, 0, 0, 4, flags]
        body = [code, consts, names, varnames, bytes([0x26] + [0x20] * (len(varnames) - 1)), "yolo.py", name, name]
        tail = [b"", b""]
    else:
        head = [1, len(varnames), 4, flags] if py2 else [1, 0, len(varnames), 4, flags] if version < (3, 8) \
            else [1, 0, 0, len(varnames), 4, flags]
        body, tail = [code, consts, names, varnames, (), (), "yolo.py", name], [b""]
    raw = b"c" + b"".join(_long(v) for v in head) + b"".join(_object(v, py2) for v in body) + _long(1) \
        + b"".join(_object(v, py2) for v in tail)
    return base64.b64encode(raw).decode("ascii")


def _words(*pairs) -> bytes:
    return bytes(byte for pair in pairs for byte in pair)


_CACHE = (0, 0)
_KW = (None, 2, ("block_size",))
# `return tf.space_to_depth(x, block_size=2)` as each CPython compiles it (opcodes from each version's Lib/opcode.py,
# 3.13's Include/opcode_ids.h; every vector was disassembled with xdis 6.3 for its version to check it).
OTHER_PYTHONS = {
    "2.7": ((2, 7), bytes([116, 0, 0, 106, 1, 0, 124, 0, 0, 100, 1, 0, 100, 2, 0, 131, 1, 1, 83]),
            (None, "block_size", 2)),
    "3.6": ((3, 6), _words((116, 0), (106, 1), (124, 0), (100, 1), (100, 2), (141, 2), (83, 0)), _KW),
    "3.10": ((3, 10), _words((116, 0), (106, 1), (124, 0), (100, 1), (100, 2), (141, 2), (83, 0)), _KW),
    "3.12": ((3, 12), _words((151, 0), (116, 0), *[_CACHE] * 4, (106, 3), *[_CACHE] * 9, (124, 0), (100, 1), (172, 2),
                             (171, 2), *[_CACHE] * 3, (83, 0)), _KW),
    "3.13": ((3, 13), _words((149, 0), (91, 0), *[_CACHE] * 4, (82, 3), *[_CACHE] * 9, (85, 0), (83, 1), (83, 2),
                             (57, 2), *[_CACHE] * 3, (36, 0)), _KW),
}


@pytest.mark.parametrize("version", OTHER_PYTHONS)
def test_code_written_by_other_pythons_is_read_in_their_layout(version):
    """keras-yolo2's files come from Python 3.5/3.6 and tf.keras's from 3.6 to 3.12: neither marshal.loads here nor
    another layout could read them."""
    layout, code, consts = OTHER_PYTHONS[version]
    config = {"function": [code_object(layout, code, consts, ("tf", "space_to_depth")), None, None]}
    assert known_lambda(config) == KnownLambda("space_to_depth_x2", SPACE_TO_DEPTH, 2, from_code=True)
    width = 1 if layout < (3, 0) else 2
    extra = bytes([124, 0, 0]) if layout < (3, 0) else bytes([85 if layout >= (3, 13) else 124, 0])
    padded = code[:-width] + extra + code[-width:]  # one more instruction (LOAD_FAST x) before the return
    assert known_lambda({"function": [code_object(layout, padded, consts, ("tf", "space_to_depth")), None, None]}) \
        is None
    swapped = code_object(layout, code, consts, ("tf", "image"))  # names that do not fit the body
    assert known_lambda({"function": [swapped, None, None]}) is None


def test_unreadable_marshal_data_is_unknown_never_an_error():
    """Every truncation and random corruption of real marshalled code: unknown, or read as what it now says (a
    damaged constant is another block size), but never a crash."""
    raw = marshal.dumps(imports_tensorflow.__code__)
    rng = random.Random(0)
    variants = [raw[:cut] for cut in range(len(raw))]
    for _ in range(400):
        damaged = bytearray(raw)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        variants.append(bytes(damaged))
    variants.append(b"(" + struct.pack("<i", 1 << 30))  # a tuple claiming a billion items
    for variant in variants:
        config = {"function": [base64.b64encode(variant).decode("ascii"), None, None]}
        assert known_lambda(config) is None or known_lambda(config).from_code


@pytest.mark.parametrize("function", [lambda x: x * 2, keras.ops.relu], ids=["python lambda", "other function"])
def test_other_lambdas_are_unknown_and_leave_the_shapes_after_them_unknown(function):
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Lambda(function, name="mystery")(keras.layers.Conv2D(4, 1, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="after")(x))
    assert known_lambda(lambda_config(function)) is None
    shapes = infer_shapes(parsed(model))
    assert shapes["conv"] == (None, 8, 8, 4)
    assert shapes["mystery"] is None and shapes["after"] is None


@pytest.mark.parametrize("function, size", [(space_to_depth_x2, (12, 10, 3)), (space_to_depth_x4, (16, 8, 5))])
def test_space_to_depth_shape_is_the_one_keras_computes(function, size):
    inputs = keras.Input(size, name="image")
    outputs = keras.layers.Lambda(function, name="reorg")(inputs)
    assert infer_shapes(parsed(keras.Model(inputs, outputs)))["reorg"] == tuple(outputs.shape)


def test_a_size_the_block_does_not_divide_is_unknown():
    assert known_lambda(lambda_config(space_to_depth_x2)).output_shape((None, 7, 8, 3)) == (None, None, 4, 12)


def test_every_layer_of_the_full_yolo_extractor_has_the_shape_keras_computes():
    extractor = full_yolo_extractor()
    inferred = infer_shapes(parsed(extractor))
    for layer in extractor.layers:
        assert inferred[layer.name] == tuple(layer.output.shape), layer.name


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_the_detector_file_states_the_output_shape_keras_computes(yolo, suffix):
    with weightkit.load(yolo.detector_h5 if suffix == ".h5" else yolo.detector_keras) as model:
        assert [spec.shape for spec in model.outputs] == [yolo.detector.output_shape]


@pytest.mark.parametrize("payload", [
    b"(\x01\x00\x00\x00" * 100_000 + b"N",  # tuples nested 100,000 deep
    b"(" + struct.pack("<i", 2**31 - 1) + b"N" * 100,  # a tuple declaring 2**31 - 1 items
    b"l" + struct.pack("<i", -(2**31 - 1)) + b"\x00" * 64,  # a long declaring 2**31 - 1 digits
    b"\xa8\x01\x00\x00\x00r\x00\x00\x00\x00",  # a tuple holding a reference to itself
    b"s" + struct.pack("<i", 2**31 - 1),  # bytes declaring 2 GiB, none present
    b"N" * 200_000,  # more objects than the reader looks at
])
def test_hostile_marshal_data_is_an_unknown_function_read_within_bounds(payload):
    config = {"function": [base64.b64encode(payload).decode(), None, None], "function_type": "lambda"}
    assert known_lambda(config) is None
    assert "not a Python code object" in lambda_problem(config)


def test_truncated_marshal_code_is_an_unknown_function():
    code = marshal.dumps(space_to_depth_x2.__code__)
    for end in range(0, len(code), max(1, len(code) // 50)):
        config = {"function": [base64.b64encode(code[:end]).decode(), None, None], "function_type": "lambda"}
        assert known_lambda(config) is None
