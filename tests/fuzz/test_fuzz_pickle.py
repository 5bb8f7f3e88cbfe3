"""Hostile and broken pickles against the restricted unpickler: every one a one-line error, no payload runs.

Hand-written opcode streams cover the resource limits (length prefixes of a terabyte, memo indices, shared-reference
blow-ups, deep nesting, cycles, arrays and allocations beyond the budget); payloads name functions that would run
code; truncations of a valid prediction file are drawn from a seeded generator.
"""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest

from haco_grasp.errors import InputError, UnsafePickleError
from haco_grasp.safe_pickle import PickleLimits, safe_load

from .conftest import SEED, bounded, one_line_error

TERA = 10**12


def _laughs(levels: int, width: int, container: bytes = b"l") -> bytes:
    """a0 = []; a(i) = [a(i-1)] * width: a few hundred bytes, width**levels objects when expanded."""
    body = b"\x80\x02]q\x00"
    for level in range(1, levels + 1):
        body += b"(" + (b"h" + bytes([level - 1])) * width + container + b"q" + bytes([level])
    return body + b"."


def _dict_laughs(levels: int, width: int) -> bytes:
    body = b"\x80\x02}q\x00"
    for level in range(1, levels + 1):
        items = b"".join(b"K" + bytes([k]) + b"h" + bytes([level - 1]) for k in range(width))
        body += b"(" + items + b"d" + b"q" + bytes([level])
    return body + b"."


def _reduce(module: str, name: str, arg_opcodes: bytes) -> bytes:
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + arg_opcodes + b"\x85R."


def _long(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def _ndarray_state(shape: tuple[int, ...], dtype: str, data: bytes | list) -> bytes:
    """numpy's own pickle of an empty array, with the state's shape / dtype / data replaced."""
    template = np.zeros(0, dtype=dtype)
    fake = type("Fake", (), {"__reduce__": lambda self: (template.__reduce__()[0], template.__reduce__()[1],
                                                        (1, shape, np.dtype(dtype), False, data))})  # fmt: skip
    return pickle.dumps(fake(), protocol=2)


LIMIT_CASES: dict[str, tuple[bytes, str]] = {
    "bytearray-reduce-1TB": (_reduce("builtins", "bytearray", _long(TERA)), "max_allocation"),
    "bytes-reduce-1TB": (_reduce("builtins", "bytes", _long(TERA)), "max_allocation"),
    "py2-bytearray-1TB": (_reduce("__builtin__", "bytearray", _long(TERA)), "max_allocation"),
    "bytearray8-prefix": (b"\x80\x05\x96" + struct.pack("<Q", TERA) + b"abc.", "past the end"),
    "binbytes8-prefix": (b"\x80\x04\x8e" + struct.pack("<Q", TERA) + b"abc.", "past the end"),
    "binunicode8-prefix": (b"\x80\x04\x8d" + struct.pack("<Q", TERA) + b"abc.", "past the end"),
    "binbytes-prefix": (b"\x80\x03B" + struct.pack("<I", 2**31) + b"abc.", "past the end"),
    "long4-prefix": (b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + b"\x01.", "past the end"),
    "frame-prefix": (b"\x80\x04\x95" + struct.pack("<Q", TERA) + b"N.", "past the end"),
    "memo-put-2G": (b"\x80\x04]r\xff\xff\xff\x7f.", "memo index"),
    "memo-get-missing": (b"\x80\x02]j\x05\x00\x00\x00.", "not a readable pickle"),
    "list-laughs": (_laughs(30, 10), "max_objects"),
    "tuple-laughs": (_laughs(30, 10, container=b"t"), "max_objects"),
    "dict-laughs": (_dict_laughs(25, 10), "max_objects"),
    "deep-lists": (b"\x80\x02" + b"]" * 50_000 + b"a" * 49_999 + b".", "max_depth"),
    "deep-tuples": (b"\x80\x02" + b")" * 1 + b"\x85" * 5_000 + b".", "max_depth"),
    "deep-dicts": (b"\x80\x02" + b"}K\x00" * 3_000 + b"}" + b"s" * 3_000 + b".", "max_depth"),
    "self-cycle": (b"\x80\x02]q\x00h\x00a.", "cycle"),
    "array-1TB-shape": (_ndarray_state((TERA,), "f8", b""), "max_allocation"),
    "object-array-1TB": (_ndarray_state((TERA,), "O", [1]), "max_allocation"),
    "array-shape-mismatch": (_ndarray_state((1000,), "f8", b"\x00" * 8), "could not be rebuilt"),
    "array-negative-shape": (_ndarray_state((-5,), "f8", b""), "shape"),
    "empty-file": (b"", "not a readable pickle"),
    "not-a-pickle": (b"hello, I am text\n", "not a readable pickle"),
    "stop-only": (b".", "not a readable pickle"),
}


@pytest.mark.parametrize("name", list(LIMIT_CASES))
def test_limits_refuse_before_allocating(name, tmp_path):
    data, expected = LIMIT_CASES[name]
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(data)
    one_line_error(lambda: safe_load(path), str(path), expected, kind=InputError)


def test_limits_are_configurable(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([[0] * 10] * 10))
    assert len(safe_load(path)) == 10
    one_line_error(lambda: safe_load(path, limits=PickleLimits(max_objects=50)), "max_objects")
    one_line_error(lambda: safe_load(path, limits=PickleLimits(max_bytes=10)), "max_bytes")
    one_line_error(lambda: safe_load(np.zeros(100).dumps(), limits=PickleLimits(max_allocation=100)), "max_allocation")


def test_shared_references_stay_cheap_when_allowed():
    """A shared array referenced 10,000 times is one array, not 10,000 copies."""
    array = np.arange(10_000.0)
    with bounded(seconds=10, traced_mb=32):
        loaded = safe_load(pickle.dumps([array] * 10_000))
    assert len(loaded) == 10_000 and loaded[0] is loaded[-1]


PAYLOADS = [
    ("os", "system"),
    ("posix", "system"),
    ("subprocess", "Popen"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("__builtin__", "eval"),
    ("importlib", "import_module"),
    ("numpy", "load"),
    ("numpy.lib.npyio", "load"),
    ("torch", "load"),
    ("shutil", "rmtree"),
    ("pickle", "loads"),
    ("copyreg", "_reconstructor_other"),
    ("numpy", "ndarray"),  # called directly, not through _reconstruct
]


@pytest.mark.parametrize(("module", "name"), PAYLOADS)
def test_payloads_never_run(module, name, tmp_path):
    marker = tmp_path / "ran"
    data = _reduce(module, name, b"X" + struct.pack("<I", len(f"touch {marker}")) + f"touch {marker}".encode())
    if (module, name) == ("numpy", "ndarray"):
        data = _reduce(module, name, _long(TERA))
    path = tmp_path / "payload.pkl"
    path.write_bytes(data)
    one_line_error(lambda: safe_load(path), kind=UnsafePickleError)
    assert not marker.exists()


def test_chumpy_outside_mano_files_is_refused(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(b"\x80\x02cchumpy.ch\nCh\n)\x81.")
    one_line_error(lambda: safe_load(path), str(path), "chumpy", kind=UnsafePickleError)


@pytest.mark.parametrize("case", range(12))
def test_truncated_prediction_file(case, world, tmp_path):
    """A prediction file cut at a seeded random byte: a one-line error naming the file, never a traceback."""
    from haco_grasp.data.hflnet import load_hflnet

    data = world.pred.read_bytes()
    rng = np.random.default_rng(SEED + case)
    cut = int(rng.integers(1, len(data) - 1))
    path = tmp_path / f"cut_{cut}.pkl"
    path.write_bytes(data[:cut])
    one_line_error(lambda: load_hflnet(path), str(path), kind=InputError)


def test_no_payload_file_was_created_in_the_working_directory():
    assert not os.path.exists("ran")
