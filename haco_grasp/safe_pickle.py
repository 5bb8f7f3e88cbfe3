"""A restricted unpickler for the pickles this toolkit reads (MANO models, prediction files, ContactOpt data).

``pickle.load`` runs whatever code a pickle names. The loaders here accept only an explicit allow-list:
Python containers and scalars, numpy arrays, dtypes and scalars, scipy sparse matrices (rebuilt from their
arrays, no constructor runs on untrusted state), and — only when asked for — chumpy's ``Ch`` and
``reordering.Select`` objects, which official MANO pickles contain. Those are evaluated to numpy arrays without
chumpy being installed. Anything else fails with :class:`~haco_grasp.errors.UnsafePickleError` naming the class.

Python-2 pickles are read with ``encoding="latin1"`` (numpy's raw buffers survive that encoding unchanged).

Resource limits (:class:`PickleLimits`) are checked before anything large is allocated: the size of the pickle;
a pre-scan of its opcodes refuses length prefixes longer than the bytes that follow (a 35-byte pickle may
declare a terabyte) and memo indices beyond the opcodes seen; every allocation a constructor in the pickle asks
for (arrays, ``bytes(n)``, ``bytearray(n)``, numpy scalars) is charged to one budget before it happens; and the
unpickled tree is walked once with shared references kept shared, refusing more objects (counting each shared
reference as often as it is referenced, as a consumer would see them) or deeper nesting (cycles included) than
allowed. Each refusal is an :class:`~haco_grasp.errors.InputError` naming the file, the limit and the fix.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import pickletools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class PickleLimits:
    """Resource limits of :func:`safe_load` (the defaults fit every file this toolkit reads, with margin).

    Attributes:
        max_bytes: size of the pickle itself.
        max_allocation: bytes that constructors in the pickle may allocate in
            total (arrays, ``bytes(n)``, ``bytearray(n)``).
        max_objects: objects in the unpickled tree, each shared
            reference counted as often as it is referenced.
        max_depth: nesting depth of containers.
    """

    max_bytes: int = 8 << 30
    max_allocation: int = 8 << 30
    max_objects: int = 20_000_000
    max_depth: int = 200


DEFAULT_LIMITS = PickleLimits()
_FIX = "the file is corrupt or hostile; re-create it, or pass limits=PickleLimits(...) to safe_load if it is trusted"


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = _PendingArray.reconstruct
        table[(module, "scalar")] = multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(module, "_frombuffer")] = numeric._frombuffer
    table[("numpy", "ndarray")] = _NdarrayType
    table[("numpy", "dtype")] = np.dtype
    return table


class _NdarrayType:
    """Stands for ``numpy.ndarray`` as the subtype argument of ``_reconstruct``; calling it is refused."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError("pickle calls numpy.ndarray(...) directly; only pickled arrays are allowed")


class _Recorded:
    """Stand-in for an allowed foreign class: remembers its pickled state and nothing else."""

    qualname = ""
    state: Any = None  # class defaults: NEWOBJ builds instances without calling __init__
    args: tuple = ()

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _PendingArray(_Recorded):
    """A pickled numpy array before its state is checked against the limits (built by :class:`_Walker`)."""

    qualname = "numpy.ndarray"

    @classmethod
    def reconstruct(cls, subtype: Any, shape: Any, dtype: Any) -> _PendingArray:
        if subtype is not _NdarrayType and subtype is not np.ndarray:
            raise UnsafePickleError(f"pickle reconstructs an array of type {subtype!r}; only numpy.ndarray is allowed")
        return cls()


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


class _Budget:
    """Allocation budget of one load: every constructor the pickle calls charges its bytes before allocating."""

    def __init__(self, limits: PickleLimits, source: str) -> None:
        self.limits = limits
        self.source = source
        self.used = 0

    def charge(self, nbytes: int, what: str) -> None:
        self.used += max(int(nbytes), 0)
        if self.used > self.limits.max_allocation:
            raise InputError(
                f"{self.source}: {what} would allocate {int(nbytes):,} bytes, beyond the limit of "
                f"{self.limits.max_allocation:,} bytes for one pickle (max_allocation); {_FIX}"
            )

    def sized(self, kind: type) -> Callable[..., Any]:
        """``bytes`` / ``bytearray`` that charge ``bytes(n)`` / ``bytearray(n)`` before allocating."""

        def build(*args: Any) -> Any:
            if args and isinstance(args[0], int) and not isinstance(args[0], bool):
                self.charge(args[0], f"{kind.__name__}({args[0]})")
            elif args and isinstance(args[0], (str, bytes, bytearray)):
                self.charge(len(args[0]), kind.__name__)
            elif args:
                raise UnsafePickleError(
                    f"{self.source}: pickle calls {kind.__name__}() on a {type(args[0]).__name__}; not allowed"
                )
            return kind(*args)

        return build

    def scalar(self, dtype: Any, *args: Any) -> Any:
        if not isinstance(dtype, np.dtype):
            raise UnsafePickleError(f"{self.source}: numpy scalar with dtype {type(dtype).__name__}; not allowed")
        self.charge(dtype.itemsize, f"a numpy scalar of {dtype}")
        if dtype.hasobject:
            raise UnsafePickleError(f"{self.source}: numpy object scalar; not allowed")
        return _numpy_scalar()(dtype, *args)


def _numpy_scalar() -> Callable[..., Any]:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray.scalar


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self,
        file: BinaryIO,
        *,
        chumpy: bool,
        extra: Mapping[tuple[str, str], Any],
        source: str,
        budget: _Budget,
    ) -> None:
        super().__init__(file, encoding="latin1")
        self._chumpy = chumpy
        self._extra = dict(extra)
        self._source = source
        self._budget = budget
        self._numpy = _numpy_reconstructors()
        for key in [key for key in self._numpy if key[1] == "scalar"]:
            self._numpy[key] = budget.scalar

    def find_class(self, module: str, name: str) -> Any:  # noqa: C901 - a flat allow-list reads best
        module = _PY2_MODULES.get(module, module)
        key = (module, name)
        if key in self._extra:
            return self._extra[key]
        if key in self._numpy:
            return self._numpy[key]
        if module == "builtins" and name in ("bytes", "bytearray"):
            return self._budget.sized(bytes if name == "bytes" else bytearray)
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


_COUNTED = {"BINBYTES8", "BYTEARRAY8", "BINUNICODE8", "BINBYTES", "BINUNICODE", "BINSTRING", "LONG4", "FRAME"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _prescan(stream: Any, size: int, source: str) -> None:
    """Walk the opcodes without building anything: refuse length prefixes past the end and absurd memo indices.

    ``stream`` (``BytesIO`` or ``mmap``, positioned at 0) must return at most the remaining bytes from ``read(n)``
    without allocating ``n`` first; it is left at its end.
    """
    count = 0
    try:
        for opcode, arg, position in pickletools.genops(stream):
            count += 1
            if opcode.name == "FRAME" and isinstance(arg, int) and arg > size - stream.tell():
                raise InputError(
                    f"{source}: not a readable pickle (a frame of {arg:,} bytes at byte {position}, but only "
                    f"{size - stream.tell():,} remain); a length prefix points past the end of the file, or the "
                    "file is truncated; check the file"
                )
            if opcode.name in _PUTS and isinstance(arg, int) and arg > count:
                raise InputError(
                    f"{source}: memo index {arg:,} at byte {position} exceeds the {count:,} opcodes read so far; {_FIX}"
                )
    except InputError:
        raise
    except ValueError as exc:
        text = str(exc)
        raise InputError(
            f"{source}: not a readable pickle ({text[:160]}); a length prefix points past the end of the file, or "
            "the file is truncated; check the file"
        ) from None


class _Walker:
    """Turns recorded stand-ins into numpy / scipy objects once per object, within the object and depth limits."""

    def __init__(self, source: str, limits: PickleLimits, budget: _Budget) -> None:
        self.source = source
        self.limits = limits
        self.budget = budget
        self.done: dict[int, Any] = {}
        self.sizes: dict[int, int] = {}
        self.active: set[int] = set()

    def _depth_error(self) -> InputError:
        return InputError(
            f"{self.source}: containers nested deeper than {self.limits.max_depth} levels (or a reference cycle) "
            f"(max_depth); {_FIX}"
        )

    def count(self, obj: Any, depth: int = 0) -> int:
        """Objects in the tree under ``obj``, shared references counted each time (memoised: linear time)."""
        key = id(obj)
        if key in self.sizes:
            return self.sizes[key]
        if depth > self.limits.max_depth or key in self.active:
            raise self._depth_error()
        if isinstance(obj, dict):
            children: Any = [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = obj
        elif isinstance(obj, _Recorded):
            children = [getattr(obj, "state", None), *getattr(obj, "args", ())]
        else:
            return 1
        self.active.add(key)
        total = 1
        for child in children:
            total += self.count(child, depth + 1)
            if total > self.limits.max_objects:
                raise InputError(
                    f"{self.source}: expands to more than {self.limits.max_objects:,} objects (shared references "
                    f"counted each time they are used; max_objects); {_FIX}"
                )
        self.active.discard(key)
        self.sizes[key] = total
        return total

    def __call__(self, obj: Any) -> Any:
        key = id(obj)
        if key in self.done:
            return self.done[key]
        result = self._convert(obj)
        self.done[key] = result
        return result

    def _array(self, pending: _PendingArray) -> np.ndarray:
        state = pending.state
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise InputError(f"{self.source}: a numpy array without a valid pickled state; the file looks corrupt")
        shape, dtype = state[-4], state[-3]
        if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple):
            raise InputError(f"{self.source}: a numpy array with a malformed shape/dtype; the file looks corrupt")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise InputError(f"{self.source}: a numpy array of shape {shape!r}; the file looks corrupt")
        size = 1
        for n in shape:
            size *= n
        self.budget.charge(size * max(dtype.itemsize, 1), f"a numpy array of shape {shape} {dtype}")
        data = state[-1]
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != size:
                raise InputError(f"{self.source}: object array of shape {shape} with malformed data; corrupt file")
            data = [self(v) for v in data]
            state = (*state[:-1], data)
        try:
            array = _numpy_reconstruct()(np.ndarray, (0,), b"b")
            array.__setstate__(state)
        except (ValueError, TypeError, MemoryError) as exc:
            raise InputError(
                f"{self.source}: numpy array could not be rebuilt ({exc}); the file looks corrupt"
            ) from None
        return array

    def _convert(self, obj: Any) -> Any:  # noqa: C901 - one branch per stand-in
        if isinstance(obj, _PendingArray):
            return self._array(obj)
        if isinstance(obj, _ChumpyCh):
            state = getattr(obj, "state", None)
            state = state if isinstance(state, dict) else {}
            if "x" not in state:
                raise InputError(f"{self.source}: chumpy Ch object without an 'x' array in its state; corrupt file")
            return np.asarray(self(state["x"]))
        if isinstance(obj, _ChumpySelect):
            return self._select(obj)
        if isinstance(obj, _SparseMatrix):
            import scipy.sparse as sp

            state = {str(k).lstrip("_"): self(v) for k, v in obj.state.items()} if isinstance(obj.state, dict) else {}
            try:
                if obj.fmt == "coo":
                    row, col = state["coords"] if "coords" in state else (state["row"], state["col"])
                    return sp.coo_matrix((state["data"], (row, col)), shape=tuple(state["shape"]))
                ctor = sp.csc_matrix if obj.fmt == "csc" else sp.csr_matrix
                return ctor((state["data"], state["indices"], state["indptr"]), shape=tuple(state["shape"]))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise InputError(f"{self.source}: sparse matrix {obj.qualname} could not be rebuilt ({exc})") from None
        if isinstance(obj, _Recorded):  # a reader's own stand-in (extra_classes): convert what it recorded
            self.done[id(obj)] = obj
            obj.state = self(getattr(obj, "state", None))
            obj.args = tuple(self(v) for v in getattr(obj, "args", ()))
            return obj
        if isinstance(obj, dict):  # dict or OrderedDict
            return type(obj)((k, self(v)) for k, v in obj.items())
        if isinstance(obj, list):
            return [self(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self(v) for v in obj)
        return obj

    def _select(self, obj: _ChumpySelect) -> np.ndarray:
        state = obj.state if isinstance(obj.state, dict) else {}
        if "a" not in state or "idxs" not in state:
            raise InputError(f"{self.source}: chumpy Select object without 'a'/'idxs' in its state; corrupt file")
        values = np.asarray(self(state["a"])).ravel()
        try:
            idxs = np.asarray(self(state["idxs"])).ravel().astype(np.int64, casting="same_kind")
        except (TypeError, ValueError):
            raise InputError(f"{self.source}: chumpy Select 'idxs' must be integer indices; corrupt file") from None
        if idxs.size and (idxs.min() < -values.size or idxs.max() >= values.size):
            raise InputError(
                f"{self.source}: chumpy Select 'idxs' range [{idxs.min()}, {idxs.max()}] outside its source of "
                f"{values.size} values; the file is corrupt, re-download it"
            )
        selected = values[idxs]
        shape = state.get("preferred_shape")
        if shape is None:
            return selected
        try:
            wanted = tuple(int(n) for n in np.atleast_1d(np.asarray(self(shape))))
            return selected.reshape(wanted)
        except (TypeError, ValueError):
            raise InputError(
                f"{self.source}: chumpy Select 'preferred_shape' {shape!r} does not fit its {selected.size} values; "
                "the file is corrupt, re-download it"
            ) from None


def _numpy_reconstruct() -> Callable[..., Any]:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray._reconstruct


def safe_load(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    chumpy: bool = False,
    extra_classes: Mapping[tuple[str, str], Callable[..., Any]] | None = None,
    limits: PickleLimits | None = None,
) -> Any:
    """Load a pickle through the restricted unpickler, within resource limits.

    Args:
        source: a path, the pickle's bytes, or a binary file object.
        chumpy: evaluate chumpy ``Ch`` / ``reordering.Select`` objects to numpy arrays (MANO model files).
        extra_classes: further ``(module, name) -> callable`` entries a specific reader allows, e.g. a stand-in
            class for ContactOpt's ``HandObject``. Each must be safe to call on untrusted arguments.
        limits: resource limits; None: :data:`DEFAULT_LIMITS`.

    Returns:
        The unpickled object with chumpy, sparse and array stand-ins converted.

    Raises:
        UnsafePickleError: the pickle names a class or function outside the allow-list.
        InputError: the file is not a readable pickle, or exceeds a limit of :class:`PickleLimits`.
    """
    limits = DEFAULT_LIMITS if limits is None else limits
    if isinstance(source, (str, os.PathLike)):
        label = str(source)
        if not Path(source).is_file():
            from haco_grasp.errors import AssetError

            raise AssetError(f"{label}: file not found; check the path")
        try:
            with open(source, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > limits.max_bytes:
                    raise InputError(
                        f"{label}: {size:,} bytes, beyond the limit of {limits.max_bytes:,} (max_bytes); {_FIX}"
                    )
                if size == 0:
                    return _load(io.BytesIO(b""), 0, label, chumpy, extra_classes, limits)
                # mapped, not read: the file's pages are shared with the page cache instead of copied
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    return _load(mapped, size, label, chumpy, extra_classes, limits)
        except OSError as exc:
            raise InputError(f"{label}: cannot be read ({exc.strerror or exc}); check the file") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        label, data = "<bytes>", bytes(source)
    else:
        label = getattr(source, "name", "<stream>")
        data = source.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise InputError(f"{label}: more than {limits.max_bytes:,} bytes (max_bytes); {_FIX}")
    return _load(io.BytesIO(data), len(data), label, chumpy, extra_classes, limits)


def _load(
    stream: Any,
    size: int,
    label: str,
    chumpy: bool,
    extra_classes: Mapping[tuple[str, str], Callable[..., Any]] | None,
    limits: PickleLimits,
) -> Any:
    """Pre-scan, unpickle and convert one pickle read from ``stream`` (``size`` bytes; BytesIO or mmap)."""
    _prescan(stream, size, label)
    stream.seek(0)
    budget = _Budget(limits, label)
    try:
        unpickler = _RestrictedUnpickler(stream, chumpy=chumpy, extra=extra_classes or {}, source=label, budget=budget)
        raw = unpickler.load()
    except UnsafePickleError as exc:
        if str(exc).startswith(label):
            raise
        raise UnsafePickleError(f"{label}: {exc}") from None
    except InputError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, IndexError, TypeError, ValueError, KeyError) as exc:
        raise InputError(f"{label}: not a readable pickle ({type(exc).__name__}: {exc}); check the file") from None
    except (MemoryError, RecursionError, OverflowError) as exc:
        raise InputError(f"{label}: too large or too deep to unpickle ({type(exc).__name__}); {_FIX}") from None
    walker = _Walker(label, limits, budget)
    walker.count(raw)
    return walker(raw)
