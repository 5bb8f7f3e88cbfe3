"""A restricted unpickler for the pickles this toolkit reads (MANO models, prediction files, ContactOpt data).

``pickle.load`` runs whatever code a pickle names. The loaders here accept only an explicit allow-list:
Python containers and scalars, numpy arrays, dtypes and scalars, scipy sparse matrices (rebuilt from their
arrays, no constructor runs on untrusted state), and — only when asked for — chumpy's ``Ch`` and
``reordering.Select`` objects, which official MANO pickles contain. Those are evaluated to numpy arrays without
chumpy being installed. Anything else fails with :class:`~haco_grasp.errors.UnsafePickleError` naming the class.

Python-2 pickles are read with ``encoding="latin1"`` (numpy's raw buffers survive that encoding unchanged).
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from haco_grasp.errors import InputError, UnsafePickleError

# Python 2 module names, as Python 3's own unpickler maps them (a subset is enough here).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

_SAFE_BUILTINS = frozenset(
    {
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "int",
        "float",
        "complex",
        "str",
        "bytes",
        "bytearray",
        "bool",
        "slice",
    }
)
_CHUMPY_SUPPORTED = ("chumpy.ch.Ch", "chumpy.reordering.Select")


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = multiarray._reconstruct
        table[(module, "scalar")] = multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(module, "_frombuffer")] = numeric._frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    return table


class _Recorded:
    """Stand-in for an allowed foreign class: remembers its pickled state and nothing else."""

    qualname = ""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyCh(_Recorded):
    qualname = "chumpy.ch.Ch"


class _ChumpySelect(_Recorded):
    qualname = "chumpy.reordering.Select"


class _SparseMatrix(_Recorded):
    fmt = ""


def _sparse_stub(fmt: str, qualname: str) -> type[_SparseMatrix]:
    return type(f"_Sparse_{fmt}", (_SparseMatrix,), {"fmt": fmt, "qualname": qualname})


def _object_new(cls: type, *args: Any) -> Any:
    """Replacement for ``copyreg.__newobj__`` / ``copy_reg._reconstructor`` that only builds stand-ins."""
    if isinstance(cls, type) and issubclass(cls, _Recorded):
        return cls()
    raise UnsafePickleError(f"pickle asks to construct {cls!r}; only numpy/scipy/chumpy data are allowed")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 writes bytes into protocol-0/1 pickles; nothing else is allowed."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"pickle calls _codecs.encode with {type(text).__name__}, {encoding!r}; not allowed")
    return text.encode("latin1")


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    if base is not object:
        raise UnsafePickleError(f"pickle asks to reconstruct {cls!r} from base {base!r}; not allowed")
    return _object_new(cls)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, *, chumpy: bool, extra: Mapping[tuple[str, str], Any], source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._chumpy = chumpy
        self._extra = dict(extra)
        self._source = source
        self._numpy = _numpy_reconstructors()

    def find_class(self, module: str, name: str) -> Any:  # noqa: C901 - a flat allow-list reads best
        module = _PY2_MODULES.get(module, module)
        key = (module, name)
        if key in self._extra:
            return self._extra[key]
        if key in self._numpy:
            return self._numpy[key]
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(__import__("builtins"), name)
        if module == "builtins" and name == "object":
            return object
        if module == "collections" and name == "OrderedDict":
            from collections import OrderedDict

            return OrderedDict
        if module == "copyreg" and name == "_reconstructor":
            return _reconstructor
        if module == "copyreg" and name == "__newobj__":
            return _object_new
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix", "coo_matrix"):
            return _sparse_stub(name[:3], f"{module}.{name}")
        if module.startswith("chumpy"):
            qualname = f"{module}.{name}"
            if not self._chumpy:
                raise UnsafePickleError(
                    f"{self._source}: contains chumpy object {qualname}, not expected in this kind of file"
                )
            if qualname == "chumpy.ch.Ch":
                return _ChumpyCh
            if qualname == "chumpy.reordering.Select":
                return _ChumpySelect
            raise UnsafePickleError(
                f"{self._source}: unsupported chumpy class {qualname}; supported: {', '.join(_CHUMPY_SUPPORTED)}. "
                "Convert the file to plain numpy with chumpy installed, or report the class to haco_grasp"
            )
        raise UnsafePickleError(
            f"{self._source}: refuses to load {module}.{name}: only numpy/scipy arrays and Python containers are "
            "allowed (a pickle naming other classes or functions could run code); re-save the file with plain arrays"
        )


def _evaluate(obj: Any, source: str) -> Any:
    """Turn recorded stand-ins into numpy / scipy objects, recursively."""
    if isinstance(obj, _ChumpyCh):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "x" not in state:
            raise InputError(f"{source}: chumpy Ch object without an 'x' array in its state; file looks corrupt")
        return np.asarray(_evaluate(state["x"], source))
    if isinstance(obj, _ChumpySelect):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "a" not in state or "idxs" not in state:
            raise InputError(f"{source}: chumpy Select object without 'a'/'idxs' in its state; file looks corrupt")
        source_array = np.asarray(_evaluate(state["a"], source))
        values = source_array.ravel()[np.asarray(state["idxs"]).ravel()]
        shape = state.get("preferred_shape")
        return values.reshape(shape) if shape is not None else values
    if isinstance(obj, _SparseMatrix):
        import scipy.sparse as sp

        state = {k.lstrip("_"): v for k, v in (obj.state or {}).items()}
        try:
            if obj.fmt == "coo":
                return sp.coo_matrix((state["data"], (state["row"], state["col"])), shape=tuple(state["shape"]))
            ctor = sp.csc_matrix if obj.fmt == "csc" else sp.csr_matrix
            return ctor((state["data"], state["indices"], state["indptr"]), shape=tuple(state["shape"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: sparse matrix {obj.qualname} could not be rebuilt ({exc})") from None
    if isinstance(obj, dict):  # dict or OrderedDict
        return type(obj)((k, _evaluate(v, source)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_evaluate(v, source) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_evaluate(v, source) for v in obj)
    return obj


def safe_load(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    chumpy: bool = False,
    extra_classes: Mapping[tuple[str, str], Callable[..., Any]] | None = None,
) -> Any:
    """Load a pickle through the restricted unpickler.

    Args:
        source: a path, the pickle's bytes, or a binary file object.
        chumpy: evaluate chumpy ``Ch`` / ``reordering.Select`` objects to numpy arrays (MANO model files).
        extra_classes: further ``(module, name) -> callable`` entries a specific reader allows, e.g. a stand-in
            class for ContactOpt's ``HandObject``. Each must be safe to call on untrusted arguments.

    Returns:
        The unpickled object with chumpy and sparse stand-ins converted.

    Raises:
        UnsafePickleError: the pickle names a class or function outside the allow-list.
        InputError: the file is not a readable pickle.
    """
    if isinstance(source, bytes):
        label, stream = "<bytes>", io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        label = str(source)
        if not Path(source).is_file():
            from haco_grasp.errors import AssetError

            raise AssetError(f"{label}: file not found; check the path")
        stream = open(source, "rb")  # noqa: SIM115 - closed below
    else:
        label, stream = getattr(source, "name", "<stream>"), source
    try:
        raw = _RestrictedUnpickler(stream, chumpy=chumpy, extra=extra_classes or {}, source=label).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, IndexError, TypeError, ValueError) as exc:
        raise InputError(f"{label}: not a readable pickle ({type(exc).__name__}: {exc}); check the file") from None
    finally:
        if stream is not source:
            stream.close()
    return _evaluate(raw, label)
