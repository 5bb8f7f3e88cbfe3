"""Read ContactOpt dataset / result pickles and write refinement results in ContactOpt's result format.

ContactOpt stores ``contactopt.hand_object.HandObject`` instances inside its pickles (contactopt.md §7):

- dataset pickles (``data/perturbed_contactpose_*.pkl``, ``ho3d_image*.pkl``): a list of dicts with ``ho_gt``,
  ``ho_aug`` (HandObjects), ``obj_sampled_idx`` (2048,), ``hand_feats_aug`` (778, 25), ``obj_feats_aug``
  (2048, 25) and, for the image split, ``num_verts_in_contact``;
- result pickles (``data/optimized_{split}.pkl``): a list of ``{'gt_ho', 'in_ho', 'out_ho'}``.

**Reading** never imports ContactOpt and never runs pickled code: :func:`read_contactopt_pickle` uses
:func:`haco_grasp.safe_pickle.safe_load` with exactly one extra allowed class, ``contactopt.hand_object.HandObject``,
mapped to an inert stand-in that only records its attribute dict; each is then converted to a
:class:`ContactOptHandObject` dataclass. Any other class in the file raises
:class:`~haco_grasp.errors.UnsafePickleError`.

**Writing**: the consumer is ContactOpt's own code (``run_eval.py``), which unpickles real HandObjects, so
:func:`write_contactopt_results` pickles instances of :class:`PickledHandObject`, a minimal class whose pickled
class path is exactly ``contactopt.hand_object.HandObject`` (``__module__ = "contactopt.hand_object"``,
``__qualname__ = "HandObject"``) and whose instance dict holds HandObject's attributes (``hand_beta``, ``hand_pose``,
``hand_mTc``, ``hand_verts``, ``hand_joints``, ``hand_contact``, ``obj_verts``, ``obj_faces``, ``obj_normals``,
``obj_contact``, ``is_left``, ``path``). On loading, ContactOpt's unpickler creates its own HandObject (without
calling ``__init__``) and fills ``__dict__`` from that state. The module path cannot be imported here, so the
class reference is written by a pickler that emits the ``GLOBAL contactopt.hand_object HandObject`` opcode
itself; numpy's ``numpy._core`` reconstructor paths are written as ``numpy.core`` so numpy 1.x (ContactOpt's
pinned environment) can read the file; numpy 2 reads it too. Pickle protocol 4 (Python >= 3.4).

Conversion from toolkit grasps (:func:`hand_object_from_grasp`): ``hand_pose`` is the 48-D flat-hand-mean
axis-angle (global + 45; the HO-3D-GT convention of §7, ``use_pca=False, flat_hand_mean=True``), ``hand_mTc`` a
4×4 translation by ``transl`` (MANO output + transl, as the toolkit's layer), ``obj_verts`` the posed object,
contacts (N, 1) columns. Only right hands are supported by ContactOpt; left hands are written with
``is_left=True`` for completeness.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.geometry.mesh import vertex_normals
from haco_grasp.safe_pickle import _Recorded, safe_load

__all__ = [
    "HAND_OBJECT_CLASS",
    "RESULT_KEYS",
    "ContactOptHandObject",
    "PickledHandObject",
    "hand_object_from_grasp",
    "read_contactopt_pickle",
    "refinement_results",
    "write_contactopt_results",
]

#: (module, name) of ContactOpt's class, as written in its pickles.
HAND_OBJECT_CLASS: tuple[str, str] = ("contactopt.hand_object", "HandObject")
#: Keys of one entry of a ContactOpt result pickle.
RESULT_KEYS: tuple[str, ...] = ("gt_ho", "in_ho", "out_ho")


@dataclass
class ContactOptHandObject:
    """The fields of ContactOpt's ``HandObject`` (contactopt.md §7), as plain numpy; None where unset.

    Attributes:
        hand_beta: (10,) MANO shape.
        hand_pose: (18,) 3 axis-angle + 15 PCA, or (48,) flat-mean axis-angle.
        hand_mTc: (4, 4) transform applied after MANO.
        hand_verts: (778, 3) metres.
        hand_joints: (21, 3) metres.
        hand_contact: (778, 1) in [0, 1].
        obj_verts: (Vo, 3) metres.
        obj_faces: (Fo, 3) int.
        obj_normals: (Vo, 3).
        obj_contact: (Vo, 1) in [0, 1].
        is_left: bool.
        path: source path or None.
        extra: any further attributes found in the pickle, unchanged.
    """

    hand_beta: np.ndarray | None = None
    hand_pose: np.ndarray | None = None
    hand_mTc: np.ndarray | None = None
    hand_verts: np.ndarray | None = None
    hand_joints: np.ndarray | None = None
    hand_contact: np.ndarray | None = None
    obj_verts: np.ndarray | None = None
    obj_faces: np.ndarray | None = None
    obj_normals: np.ndarray | None = None
    obj_contact: np.ndarray | None = None
    is_left: bool | None = None
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ContactOptHandObject) if f.name != "extra")


class _HandObjectStandIn(_Recorded):
    """What the restricted unpickler builds for ``contactopt.hand_object.HandObject``: records its state only."""

    qualname = "contactopt.hand_object.HandObject"


class PickledHandObject:
    """Written in place of ContactOpt's HandObject: pickles as ``contactopt.hand_object.HandObject``.

    Its instance ``__dict__`` is HandObject's attribute dict; it has no behaviour of its own.
    """

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        self.__dict__.update(attributes)


PickledHandObject.__module__ = HAND_OBJECT_CLASS[0]
PickledHandObject.__qualname__ = HAND_OBJECT_CLASS[1]
PickledHandObject.__name__ = HAND_OBJECT_CLASS[1]


class _ContactOptPickler(pickle._Pickler):  # the pure-Python pickler exposes save_global
    """Pickler that writes PickledHandObject's class as ContactOpt's and numpy 2 paths as numpy 1 paths."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is PickledHandObject:
            self.write(pickle.GLOBAL + f"{HAND_OBJECT_CLASS[0]}\n{HAND_OBJECT_CLASS[1]}\n".encode())
            self.memoize(obj)
            return
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module.startswith("numpy._core"):
            legacy = "numpy.core" + module[len("numpy._core") :]
            self.write(pickle.GLOBAL + f"{legacy}\n{name or obj.__qualname__}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _to_dataclass(stand_in: _HandObjectStandIn, where: str) -> ContactOptHandObject:
    state = stand_in.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):  # (dict, slots) form
        state = {**state[0], **(state[1] or {})}
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise InputError(f"{where}: HandObject state must be an attribute dict, got {type(state).__name__}")
    known = {name: state[name] for name in _FIELD_NAMES if name in state}
    extra = {k: v for k, v in state.items() if k not in _FIELD_NAMES}
    return ContactOptHandObject(**known, extra=extra)


def _convert(obj: Any, where: str) -> Any:
    if isinstance(obj, _HandObjectStandIn):
        return _to_dataclass(obj, where)
    if isinstance(obj, dict):
        return type(obj)((k, _convert(v, f"{where}[{k!r}]")) for k, v in obj.items())
    if isinstance(obj, list):
        return [_convert(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(_convert(v, f"{where}[{i}]") for i, v in enumerate(obj))
    return obj


def read_contactopt_pickle(source: str | os.PathLike | bytes) -> list[dict[str, Any]]:
    """Read a ContactOpt dataset or result pickle without importing ContactOpt (restricted unpickler).

    Args:
        source: path of the pickle, or its bytes.

    Returns:
        The list of dicts, each HandObject replaced by a :class:`ContactOptHandObject`; other values as stored
        (numpy arrays, numbers).

    Raises:
        UnsafePickleError: the file names a class other than numpy's and ``contactopt.hand_object.HandObject``.
        InputError: the file is not a list of dicts.
        AssetError: the path does not exist.
    """
    raw = safe_load(source, extra_classes={HAND_OBJECT_CLASS: _HandObjectStandIn})
    label = str(source) if not isinstance(source, bytes) else "<bytes>"
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise InputError(
            f"{label}: expected a ContactOpt pickle (a list of dicts), got {type(raw).__name__}; check the file"
        )
    return [_convert(item, f"{label}[{i}]") for i, item in enumerate(raw)]


def _hand_object_state(ho: ContactOptHandObject) -> dict[str, Any]:
    if not isinstance(ho, ContactOptHandObject):
        raise InputError(f"expected a ContactOptHandObject, got {type(ho).__name__}; see hand_object_from_grasp")
    state = {name: getattr(ho, name) for name in _FIELD_NAMES}
    state.update(ho.extra)
    return state


def write_contactopt_results(path: str | os.PathLike, results: Sequence[Mapping[str, ContactOptHandObject]]) -> Path:
    """Write refinement results as ContactOpt's ``optimized_{split}.pkl``: a list of ``{'gt_ho','in_ho','out_ho'}``.

    Each HandObject is pickled with the class path ``contactopt.hand_object.HandObject`` (module docstring).

    Args:
        path: output file.
        results: one mapping per sample with exactly the keys :data:`RESULT_KEYS`.

    Returns:
        The written path.
    """
    entries = []
    for index, item in enumerate(results):
        if not isinstance(item, Mapping) or set(item) != set(RESULT_KEYS):
            got = sorted(item) if isinstance(item, Mapping) else type(item).__name__
            raise InputError(f"results[{index}] must have exactly the keys {list(RESULT_KEYS)}, got {got}")
        entries.append({key: PickledHandObject(_hand_object_state(item[key])) for key in RESULT_KEYS})
    buffer = io.BytesIO()
    _ContactOptPickler(buffer, protocol=4).dump(entries)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
    return target


def hand_object_from_grasp(
    grasp: Grasp, hand_contact: np.ndarray | None = None, obj_contact: np.ndarray | None = None
) -> ContactOptHandObject:
    """A ContactOpt HandObject view of a toolkit grasp (conventions in the module docstring).

    Args:
        grasp: the grasp.
        hand_contact: (778,) contact values in [0, 1]; default ``grasp.hand_contact``.
        obj_contact: (Vo,) contact values of the object vertices; default zeros.

    Returns:
        ContactOptHandObject with float32 arrays (ContactOpt's dtype) and int64 faces.
    """
    if not isinstance(grasp, Grasp):
        raise InputError(f"grasp must be a Grasp, got {type(grasp).__name__}")
    obj_verts = np.asarray(grasp.obj_verts, dtype=np.float32)
    hand_c = np.asarray(grasp.hand_contact if hand_contact is None else hand_contact, dtype=np.float32).reshape(-1)
    obj_c = np.zeros(len(obj_verts), np.float32) if obj_contact is None else np.asarray(obj_contact, np.float32)
    if hand_c.shape != (778,) or obj_c.reshape(-1).shape != (len(obj_verts),):
        raise InputError(
            f"hand_contact must be (778,) and obj_contact ({len(obj_verts)},), got {hand_c.shape} and {obj_c.shape}"
        )
    transform = np.eye(4, dtype=np.float32)
    transform[:3, 3] = np.asarray(grasp.transl, dtype=np.float32)
    normals = vertex_normals(torch.as_tensor(obj_verts), torch.as_tensor(np.asarray(grasp.obj_faces))).numpy()
    return ContactOptHandObject(
        hand_beta=np.asarray(grasp.betas, dtype=np.float32),
        hand_pose=np.concatenate([grasp.global_orient, grasp.hand_pose]).astype(np.float32),
        hand_mTc=transform,
        hand_verts=np.asarray(grasp.hand_verts, dtype=np.float32),
        hand_joints=np.asarray(grasp.hand_joints, dtype=np.float32),
        hand_contact=hand_c[:, None],
        obj_verts=obj_verts,
        obj_faces=np.asarray(grasp.obj_faces, dtype=np.int64),
        obj_normals=normals.astype(np.float32),
        obj_contact=obj_c.reshape(-1, 1),
        is_left=grasp.side == "left",
        path=None,
    )


def refinement_results(
    gt: Sequence[Grasp], inputs: Sequence[Grasp], outputs: Sequence[Grasp]
) -> list[dict[str, ContactOptHandObject]]:
    """ContactOpt result entries from ground-truth, input (perturbed) and refined grasps, in order.

    Args:
        gt: ground-truth grasps. inputs: the grasps given to the refinement. outputs: the refined grasps.

    Returns:
        list of ``{'gt_ho', 'in_ho', 'out_ho'}`` ready for :func:`write_contactopt_results`.
    """
    if not (len(gt) == len(inputs) == len(outputs)):
        raise InputError(
            f"gt, inputs and outputs must have equal lengths, got {len(gt)}, {len(inputs)}, {len(outputs)}"
        )
    return [
        {"gt_ho": hand_object_from_grasp(g), "in_ho": hand_object_from_grasp(i), "out_ho": hand_object_from_grasp(o)}
        for g, i, o in zip(gt, inputs, outputs, strict=True)
    ]
