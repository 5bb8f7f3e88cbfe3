"""Malformed MANO model files: each a one-line InputError naming the file, the key and the fix.

Mutations of the synthetic MANO_RIGHT.pkl (seeded positions), and chumpy-style files whose ``Select`` objects
index out of range or ask for an impossible shape (written with throwaway modules named like chumpy's).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from haco_grasp.errors import InputError
from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path
from haco_grasp.safe_pickle import safe_load

from .conftest import SEED, one_line_error, write_pickle

RNG = np.random.default_rng(SEED + 1)


@pytest.fixture(scope="module")
def mano_raw(world):
    return safe_load(resolve_mano_path("right", world.mini.mano_root), chumpy=True)


def _poke(value, position_value):
    array = np.array(value, dtype=np.float64, order="C", copy=True)
    flat = array.reshape(-1)  # a view of the C-ordered copy
    flat[int(RNG.integers(0, flat.size))] = position_value
    return array


MUTATIONS = [
    ("weights", lambda v: _poke(v, np.nan), "'weights'", "NaN"),
    ("weights", lambda v: v * 2.0, "'weights'", "summing to 1"),
    ("weights", lambda v: v - 0.5, "'weights'", "[0, 1]"),
    ("v_template", lambda v: "not an array", "'v_template'", "numeric"),
    ("v_template", lambda v: v * 1000.0, "'v_template'", "millimetres"),
    ("v_template", lambda v: _poke(v, np.inf), "'v_template'", "NaN or inf"),
    ("v_template", lambda v: v[:, :2], "'v_template'", "shape"),
    ("v_template", lambda v: np.array([["a", "b", "c"]] * 778), "'v_template'", "numeric"),
    ("shapedirs", lambda v: v * 1e6, "'shapedirs'", "per unit beta"),
    ("shapedirs", lambda v: _poke(v, np.nan), "'shapedirs'", "NaN"),
    ("shapedirs", lambda v: v[:, :, 0], "'shapedirs'", "shape"),
    ("posedirs", lambda v: v + 1e6, "'posedirs'", "m"),
    ("posedirs", lambda v: v[:, :, :10], "'posedirs'", "shape"),
    ("J_regressor", lambda v: sp.coo_matrix((16, 10**9)), "'J_regressor'", "sparse"),
    ("J_regressor", lambda v: _poke(v.toarray(), np.nan), "'J_regressor'", "NaN"),
    ("J_regressor", lambda v: v.toarray()[:10], "'J_regressor'", "shape"),
    ("f", lambda v: np.asarray(v) + 10_000, "'f'", "vertex ids"),
    ("f", lambda v: np.asarray(v) + 0.5, "'f'", "integers"),
    ("f", lambda v: np.zeros((0, 3), np.int64), "'f'", "vertex ids"),
    ("kintree_table", lambda v: np.asarray(v)[:1], "'kintree_table'", "shape"),
    ("kintree_table", lambda v: np.flip(np.asarray(v), axis=1).copy(), "kintree_table", "parents"),
    ("hands_components", lambda v: v * 100.0, "'hands_components'", "rad"),
    ("hands_mean", lambda v: np.asarray(v)[:40], "'hands_mean'", "shape"),
    ("hands_mean", lambda v: "zero", "'hands_mean'", "numeric"),
    ("weights", "<del>", "lacks keys", "MANO"),
]


@pytest.mark.parametrize(("key", "change", "field", "expected"), MUTATIONS,
                         ids=[f"{k}-{i}" for i, (k, *_) in enumerate(MUTATIONS)])  # fmt: skip
def test_mano_key(key, change, field, expected, mano_raw, tmp_path):
    raw = dict(mano_raw)
    if change == "<del>":
        del raw[key]
    else:
        raw[key] = change(raw[key])
    path = write_pickle(tmp_path / "MANO_RIGHT.pkl", raw, protocol=2)
    one_line_error(lambda: read_mano_pickle(path), str(path), field, expected, kind=InputError)


def test_not_a_dict(tmp_path):
    path = write_pickle(tmp_path / "MANO_RIGHT.pkl", [1, 2, 3])
    one_line_error(lambda: read_mano_pickle(path), str(path), "dict", kind=InputError)


@contextlib.contextmanager
def _chumpy_named_classes():
    """Classes that pickle under chumpy's module paths (modules installed only while pickling)."""
    ch, reordering = types.ModuleType("chumpy.ch"), types.ModuleType("chumpy.reordering")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)

    class Select:
        def __init__(self, a, idxs, preferred_shape):
            self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape

    for cls, module in ((Ch, ch), (Select, reordering)):
        cls.__module__, cls.__qualname__ = module.__name__, cls.__name__
        setattr(module, cls.__name__, cls)
    names = {"chumpy": types.ModuleType("chumpy"), "chumpy.ch": ch, "chumpy.reordering": reordering}
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(names)
    try:
        yield Ch, Select
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


SELECT_CASES = [
    ("index-past-end", lambda n: (np.arange(n) + n, (778, 3, 10)), "outside its source"),
    ("index-far-negative", lambda n: (np.arange(n) - 2 * n, (778, 3, 10)), "outside its source"),
    ("float-indices", lambda n: (np.arange(n) + 0.5, (778, 3, 10)), "integer indices"),
    ("wrong-preferred-shape", lambda n: (np.arange(n), (778, 3, 11)), "preferred_shape"),
    ("text-preferred-shape", lambda n: (np.arange(n), "big"), "preferred_shape"),
    ("shape-mismatch-to-mano", lambda n: (np.arange(n)[: n // 2], (389, 3, 10)), "shapedirs"),
]


@pytest.mark.parametrize(("name", "select", "expected"), SELECT_CASES, ids=[c[0] for c in SELECT_CASES])
def test_chumpy_select(name, select, expected, mano_raw, tmp_path):
    flat = np.asarray(mano_raw["shapedirs"], np.float64).ravel()
    idxs, shape = select(flat.size)
    with _chumpy_named_classes() as (Ch, Select):
        raw = dict(mano_raw)
        raw["shapedirs"] = Select(Ch(flat), idxs, shape)
        raw["v_template"] = Ch(mano_raw["v_template"])
        data = pickle.dumps(raw, protocol=2)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(data)
    one_line_error(lambda: read_mano_pickle(path), str(path), expected, kind=InputError)


def test_chumpy_ch_without_state(mano_raw, tmp_path):
    with _chumpy_named_classes() as (Ch, _):
        empty = Ch(0)
        del empty.x
        raw = dict(mano_raw)
        raw["v_template"] = empty
        data = pickle.dumps(raw, protocol=2)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(data)
    one_line_error(lambda: read_mano_pickle(path), str(path), "'x'", kind=InputError)


def test_valid_chumpy_file_still_loads(mano_raw, tmp_path):
    flat = np.asarray(mano_raw["shapedirs"], np.float64).ravel()
    order = np.random.default_rng(SEED).permutation(flat.size)
    source = np.empty_like(flat)
    source[order] = flat
    with _chumpy_named_classes() as (Ch, Select):
        raw = dict(mano_raw)
        raw["shapedirs"] = Select(Ch(source), order, np.asarray(mano_raw["shapedirs"]).shape)
        data = pickle.dumps(raw, protocol=2)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_mano_pickle(path).shapedirs, mano_raw["shapedirs"])
