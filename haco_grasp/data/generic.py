"""The generic prediction format (``.npz``): your own hands and objects, for ``haco-grasp refine --pred my.npz``.

A plain ``numpy.savez`` archive, one row per frame (N frames), everything in metres, hand and object in one world
(e.g. camera) frame. Required arrays:

    side           (N,) str      "right" / "left"
    object         (N,) str      the object of each frame: a mesh file (``.obj``/``.ply``/``.stl``/``.off``/``.glb``;
                                 relative paths are looked up in ``--objects DIR``, then beside the ``.npz``), a YCB
                                 model name such as ``"006_mustard_bottle"`` (in ``--objects DIR``, the DexYCB
                                 ``models`` folder) or a procedural object name (``"mug"``, ``"box"``, ...);
                   or (N,) int   DexYCB object ids 1..21 (YCB models in ``--objects DIR``)
    and the hand, either MANO parameters for the hand's OWN side (left hands: MANO_LEFT, not mirrored),
    flat-hand-mean axis-angle (a zero pose is the flat hand):
    global_orient  (N, 3)        radians
    hand_pose      (N, 45)       radians, 15 joints x 3
    betas          (N, 10)       optional, zeros if absent
    transl         (N, 3)        optional, zeros if absent; metres
    or only vertices (MANO parameters are then fitted to them, ``meta["mano_fit_error_m"]``):
    hand_verts     (N, 778, 3)   metres

Optional arrays:

    obj_pose       (N, 3, 4)     [R | t]: world = object @ R.T + t (identity if absent)
    sample_id      (N,) str      unique frame names (default ``frame_000000``, ...)
    image_path     (N,) str      the frame's image, for ``--contact haco`` ("" for none; relative to the ``.npz``)
    crop_box       (N, 4)        x0, y0, x1, y1 pixels of the hand crop (a NaN row for none)
    hand_contact   (N, 778)      contact probabilities in [0, 1], for ``--contact file`` (a NaN row for none)
    format         ()  str       ``"haco_grasp.generic/v1"`` (written by :func:`save_generic`; checked if present)

Example (two frames, a left and a right hand holding your own mesh ``mug.ply`` from ``DIR``)::

    import numpy as np

    n = 2
    np.savez(
        "my.npz",
        side=np.array(["left", "right"]),
        object=np.array(["mug.ply", "mug.ply"]),
        global_orient=np.zeros((n, 3)), hand_pose=np.zeros((n, 45)), betas=np.zeros((n, 10)),
        transl=np.array([[-0.1, 0.0, 0.5], [0.1, 0.0, 0.5]]),
        obj_pose=np.tile(np.eye(4)[:3], (n, 1, 1)),
    )

then ``haco-grasp refine --pred my.npz --objects DIR --out refined.pkl``.

:func:`load_generic` validates a file (every error names the file, the array, what was expected and received, and
the fix); :func:`save_generic` writes one from arrays; :func:`frame_to_grasp` turns a frame into a
:class:`~haco_grasp.data.grasp.Grasp` (through :meth:`Grasp.from_mano`).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.data.grasp import NUM_HAND_VERTS, Grasp
from haco_grasp.errors import AssetError, InputError
from haco_grasp.objects.procedural import OBJECT_NAMES, ObjectMesh, make_object
from haco_grasp.objects.ycb import YCB_CLASSES

__all__ = [
    "GENERIC_FORMAT",
    "MESH_SUFFIXES",
    "GenericFile",
    "GenericFrame",
    "ObjectResolver",
    "fit_mano_to_verts",
    "frame_to_grasp",
    "load_generic",
    "save_generic",
]

logger = logging.getLogger(__name__)

GENERIC_FORMAT = "haco_grasp.generic/v1"
#: Mesh file suffixes the ``object`` array may name.
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
_MAX_ABS_M = 10.0
_MAX_OBJECT_EXTENT_M = 2.0
_YCB_BY_NAME = {name: ycb_id for ycb_id, name in YCB_CLASSES.items()}

# name -> (per-frame shape, unit, how to fix)
_FLOAT_FIELDS: dict[str, tuple[tuple[int, ...], str, str]] = {
    "global_orient": ((3,), "radians", "store the MANO global rotation (axis-angle) per frame"),
    "hand_pose": ((45,), "radians", "store 15 x 3 flat-hand-mean axis-angle values per frame (not PCA)"),
    "betas": ((10,), "betas", "store 10 MANO shape values per frame, or omit the array"),
    "transl": ((3,), "metres", "store the MANO translation in metres, or omit the array"),
    "hand_verts": ((NUM_HAND_VERTS, 3), "metres", "store the 778 MANO vertices per frame in metres"),
    "obj_pose": ((3, 4), "[R | t] metres", "store a 3x4 [R | t] per frame, or omit the array (identity)"),
    "crop_box": ((4,), "pixels x0, y0, x1, y1", "store x0, y0, x1, y1 in pixels (a NaN row for none)"),
    "hand_contact": ((NUM_HAND_VERTS,), "in [0, 1]", "store one probability per MANO vertex (a NaN row for none)"),
}
_STR_FIELDS = ("side", "object", "sample_id", "image_path", "format")
_KNOWN = set(_FLOAT_FIELDS) | set(_STR_FIELDS)
_NAN_ROWS_ALLOWED = ("crop_box", "hand_contact")


@dataclass
class GenericFrame:
    """One frame of a generic ``.npz`` (see the module docstring).

    The attribute names shared with :class:`~haco_grasp.data.hflnet.HFLNetPrediction` (``sample_id``,
    ``mano_side``, ``ycb_id``, ``dex_index``, ``color_file``, ``image_path``, ``crop_box``, ``hand_contact``) mean
    the same, so ``refine`` treats both alike.

    Attributes:
        mano_params: ``global_orient`` (3,), ``hand_pose`` (45,), ``betas`` (10,), ``transl`` (3,) float64, or None when
            the file holds only ``hand_verts`` (then :func:`frame_to_grasp` fits and stores them here).
        hand_verts: (778, 3) float64 metres or None.
        obj_pose: (3, 4) float64.
        object: the ``object`` entry as text.
        ycb_id: DexYCB id of a YCB object, else -1.
        image_path: absolute path or None.
        crop_box: (4,) float32 or None.
        hand_contact: (778,) float32 in [0, 1] or None.
        base_dir: the folder of the ``.npz``.
    """

    sample_id: str
    mano_side: Literal["right", "left"]
    object: str
    obj_pose: np.ndarray
    mano_params: dict[str, np.ndarray] | None
    hand_verts: np.ndarray | None = None
    ycb_id: int = -1
    image_path: str | None = None
    crop_box: np.ndarray | None = None
    hand_contact: np.ndarray | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    dex_index: int = -1
    color_file: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class GenericFile:
    """A whole generic ``.npz``: its frames, and header fields named as :class:`~haco_grasp.data.hflnet.HFLNetFile`'s.

    ``split`` and ``checkpoint`` are empty (the format has no such header).
    """

    samples: list[GenericFrame]
    path: Path
    split: str = ""
    checkpoint: str = ""
    format: str = GENERIC_FORMAT

    def __len__(self) -> int:
        return len(self.samples)


# ----------------------------------------------------------------------------------------------- validation
def _fail(label: str, name: str, expected: str, got: str, fix: str) -> InputError:
    return InputError(f"{label}: {name}: expected {expected}, got {got}; {fix}")


def _texts(label: str, name: str, value: np.ndarray, n: int | None) -> list[str]:
    if value.dtype.kind not in "US" or value.ndim != 1 or (n is not None and value.shape[0] != n):
        shape = "(N,)" if n is None else f"({n},)"
        raise _fail(label, name, f"a {shape} str array", f"{value.dtype} {value.shape}",
                    "store it as numpy.array([...]) of text, one entry per frame")  # fmt: skip
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value.tolist()]


def _floats(label: str, name: str, value: np.ndarray, n: int) -> np.ndarray:
    shape, unit, fix = _FLOAT_FIELDS[name]
    expected = f"a float ({n}, {', '.join(map(str, shape))}) array, {unit}"
    if value.dtype.kind not in "fiu" or value.shape != (n, *shape):
        raise _fail(label, name, expected, f"{value.dtype} {value.shape}", fix)
    array = value.astype(np.float64)
    finite = np.isfinite(array).reshape(n, -1)
    bad = ~finite.all(axis=1)
    if name in _NAN_ROWS_ALLOWED:
        bad &= finite.any(axis=1)  # an all-NaN row means "none"
    if bad.any():
        raise _fail(label, f"{name}[{int(np.flatnonzero(bad)[0])}]", f"finite values ({unit})", "NaN or inf", fix)
    return array


def _check_metres(label: str, name: str, values: np.ndarray, limit: float) -> None:
    largest = float(np.nanmax(np.abs(values))) if values.size else 0.0
    if largest > limit:
        raise _fail(label, name, f"metres (|values| <= {limit:g})", f"values up to {largest:.4g}",
                    "these look like millimetres: divide by 1000")  # fmt: skip


def _parse(arrays: Mapping[str, np.ndarray], label: str, base_dir: Path) -> list[GenericFrame]:
    """Validate the arrays of a generic file and build its frames."""
    unknown = sorted(set(arrays) - _KNOWN)
    if unknown:
        raise _fail(label, unknown[0], f"only the arrays {', '.join(sorted(_KNOWN))}", "an unknown array",
                    "remove or rename it (see haco_grasp.data.generic)")  # fmt: skip
    if "format" in arrays:
        fmt = str(np.asarray(arrays["format"]).reshape(-1)[0]) if np.asarray(arrays["format"]).size else ""
        if fmt != GENERIC_FORMAT:
            raise _fail(label, "format", repr(GENERIC_FORMAT), repr(fmt), "drop the array or write the file again")
    for name in ("side", "object"):
        if name not in arrays:
            raise _fail(label, name, "a (N,) array, one entry per frame", "nothing (missing array)",
                        f"add {name}=numpy.array([...]) to numpy.savez")  # fmt: skip
    sides = _texts(label, "side", np.asarray(arrays["side"]), None)
    n = len(sides)
    if n == 0:
        raise _fail(label, "side", "at least one frame", "an empty array", "store one entry per frame")
    for i, side in enumerate(sides):
        if side not in ("right", "left"):
            raise _fail(label, f"side[{i}]", "'right' or 'left'", repr(side), "store the hand side of each frame")

    raw_object = np.asarray(arrays["object"])
    if raw_object.dtype.kind in "iu" and raw_object.shape == (n,):
        ycb_ids = [int(v) for v in raw_object]
        for i, ycb_id in enumerate(ycb_ids):
            if ycb_id not in YCB_CLASSES:
                raise _fail(label, f"object[{i}]", "a DexYCB object id 1..21", str(ycb_id),
                            "store a YCB id, or a mesh file / object name as text")  # fmt: skip
        objects = [YCB_CLASSES[v] for v in ycb_ids]
    else:
        objects = _texts(label, "object", raw_object, n)
        for i, name in enumerate(objects):
            if not name:
                raise _fail(label, f"object[{i}]", "a mesh file, YCB model or object name", "''",
                            "name the object of every frame")  # fmt: skip

    has_mano = "global_orient" in arrays or "hand_pose" in arrays
    if not has_mano and "hand_verts" not in arrays:
        raise _fail(label, "global_orient / hand_pose", "MANO parameters (or hand_verts)", "neither",
                    "add global_orient (N, 3) and hand_pose (N, 45), or hand_verts (N, 778, 3)")  # fmt: skip
    floats = {name: _floats(label, name, np.asarray(arrays[name]), n) for name in _FLOAT_FIELDS if name in arrays}
    if has_mano:
        for name in ("global_orient", "hand_pose"):
            if name not in floats:
                raise _fail(label, name, f"a float (N, {_FLOAT_FIELDS[name][0][0]}) array", "nothing (missing array)",
                            "MANO parameters need both global_orient and hand_pose")  # fmt: skip
        floats.setdefault("betas", np.zeros((n, 10)))
        floats.setdefault("transl", np.zeros((n, 3)))
        _check_metres(label, "transl", floats["transl"], _MAX_ABS_M)
    if "hand_verts" in floats:
        _check_metres(label, "hand_verts", floats["hand_verts"], _MAX_ABS_M)
    poses = floats.get("obj_pose", np.tile(np.eye(4)[:3], (n, 1, 1)))
    _check_metres(label, "obj_pose", poses[:, :, 3], _MAX_ABS_M)
    for i, pose in enumerate(poses):
        rotation = pose[:, :3]
        error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
        if error > 1e-3 or np.linalg.det(rotation) <= 0:
            raise _fail(label, f"obj_pose[{i}]", "a rotation in [:, :3] (R R^T = I, det +1)",
                        f"|R R^T - I| = {error:.3g}, det {np.linalg.det(rotation):.3g}",
                        "store the object's rotation matrix and translation")  # fmt: skip
    contact = floats.get("hand_contact")
    if contact is not None:
        finite = contact[np.isfinite(contact)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise _fail(label, "hand_contact", "probabilities in [0, 1]",
                        f"range [{finite.min():.3g}, {finite.max():.3g}]", "apply a sigmoid to logits")  # fmt: skip
    boxes = floats.get("crop_box")
    if boxes is not None:
        for i, box in enumerate(boxes):
            if np.isfinite(box).all() and not (box[2] > box[0] and box[3] > box[1]):
                raise _fail(label, f"crop_box[{i}]", "x1 > x0 and y1 > y0", str(box.tolist()),
                            "store (x0, y0, x1, y1) in pixels")  # fmt: skip

    ids = _texts(label, "sample_id", np.asarray(arrays["sample_id"]), n) if "sample_id" in arrays else None
    ids = ids or [f"frame_{i:06d}" for i in range(n)]
    seen: dict[str, int] = {}
    for i, sample_id in enumerate(ids):
        if not sample_id or sample_id in seen:
            raise _fail(label, f"sample_id[{i}]", "unique non-empty names", repr(sample_id),
                        "give every frame its own name (or omit sample_id)")  # fmt: skip
        seen[sample_id] = i
    images = _texts(label, "image_path", np.asarray(arrays["image_path"]), n) if "image_path" in arrays else [""] * n

    frames = []
    for i in range(n):
        params = None
        if has_mano:
            params = {k: floats[k][i].copy() for k in ("global_orient", "hand_pose", "betas", "transl")}
        row_contact = None if contact is None or not np.isfinite(contact[i]).all() else contact[i].astype(np.float32)
        row_box = None if boxes is None or not np.isfinite(boxes[i]).all() else boxes[i].astype(np.float32)
        image = images[i]
        frames.append(
            GenericFrame(
                sample_id=ids[i],
                mano_side=sides[i],  # type: ignore[arg-type]
                object=objects[i],
                obj_pose=poses[i].copy(),
                mano_params=params,
                hand_verts=floats["hand_verts"][i].copy() if "hand_verts" in floats else None,
                ycb_id=_YCB_BY_NAME.get(objects[i], -1),
                image_path=str((base_dir / image).resolve()) if image else None,
                crop_box=row_box,
                hand_contact=row_contact,
                base_dir=base_dir,
            )
        )
    return frames


def load_generic(path: str | os.PathLike) -> GenericFile:
    """Read and validate a generic ``.npz`` (``numpy.load`` without pickles).

    Args:
        path: the file.

    Returns:
        GenericFile with one :class:`GenericFrame` per row.

    Raises:
        AssetError: the file does not exist.
        InputError: not a readable ``.npz``, or an array is missing or malformed; the message names the file, the
            array (and row), what was expected and received, and the fix.
    """
    file = Path(path).expanduser()
    label = f"--pred {file}"
    if not file.is_file():
        raise AssetError(f"{label}: file not found; write it with numpy.savez (see haco_grasp.data.generic)")
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{label}: not a readable .npz ({type(exc).__name__}: {exc}); write it with numpy.savez "
                         "from plain arrays (no object arrays)") from None  # fmt: skip
    return GenericFile(samples=_parse(arrays, label, file.resolve().parent), path=file)


def save_generic(path: str | os.PathLike, **arrays: Any) -> Path:
    """Validate arrays as a generic file and write it atomically (compressed ``.npz`` with a ``format`` entry).

    Args:
        path: output ``.npz``.
        **arrays: the arrays of the module docstring (``side``, ``object``, ``global_orient``, ``hand_pose``, ...);
            lists are converted with ``numpy.asarray``; None values are skipped.

    Returns:
        The written path.

    Raises:
        InputError: what :func:`load_generic` would refuse.
    """
    target = Path(path).expanduser()
    values = {name: np.asarray(value) for name, value in arrays.items() if value is not None}
    values["format"] = np.asarray(GENERIC_FORMAT)
    _parse(values, f"save_generic({target})", target.resolve().parent)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **values)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(target, buffer.getvalue())


# ----------------------------------------------------------------------------------------------- to Grasp
def _load_mesh_file(path: Path) -> ObjectMesh:
    """A triangle mesh file as an ObjectMesh (OBJ through :func:`~haco_grasp.objects.ycb.load_ycb_mesh`)."""
    import trimesh

    from haco_grasp.objects.ycb import load_ycb_mesh

    if path.suffix.lower() == ".obj":
        return load_ycb_mesh(path)
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types on malformed files
        raise InputError(f"{path}: not a readable mesh ({type(exc).__name__}: {exc}); re-export it") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(f"{path}: holds no triangles; expected a triangle mesh in metres")
    if not mesh.is_watertight:  # e.g. split along UV or normal seams; a closed mesh is kept as it is
        mesh.merge_vertices()
    verts = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    if not np.all(np.isfinite(verts)):
        raise InputError(f"{path}: non-finite vertex coordinates; re-export the mesh")
    if not mesh.is_watertight:
        logger.warning("%s is not watertight: vertices inside it are not counted as contact", path)
    return ObjectMesh(
        name=path.stem,
        verts=verts,
        faces=faces,
        volume_m3=float(mesh.volume) if mesh.is_watertight else float("nan"),
        extents=verts.max(axis=0) - verts.min(axis=0),
        kind="mesh",
    )


class ObjectResolver:
    """``frame -> ObjectMesh`` for generic frames, each object built or read once.

    Args:
        objects_dir: ``--objects DIR``: searched first for relative mesh files; the DexYCB ``models`` folder for
            YCB names and ids. None: mesh files are looked up beside the ``.npz`` only, YCB models under
            ``$DEX_YCB_DIR/models``.
    """

    def __init__(self, objects_dir: str | os.PathLike | None = None) -> None:
        self.objects_dir = None if objects_dir is None else Path(objects_dir).expanduser()
        self._meshes: dict[str, ObjectMesh] = {}

    def _mesh_path(self, frame: GenericFrame) -> Path:
        relative = Path(frame.object).expanduser()
        candidates = [relative] if relative.is_absolute() else []
        if not relative.is_absolute():
            candidates += [self.objects_dir / relative] if self.objects_dir is not None else []
            candidates.append(frame.base_dir / relative)
        for candidate in candidates:
            if candidate.is_file():
                return candidate.resolve()
        raise AssetError(f"object {frame.object!r} of sample {frame.sample_id!r}: mesh file not found (looked at "
                         f"{', '.join(map(str, candidates))}); pass --objects DIR holding it")  # fmt: skip

    def mesh_file(self, frame: GenericFrame) -> Path | None:
        """The mesh file a frame names (None: a YCB or procedural object, or a file not found)."""
        if Path(frame.object).suffix.lower() not in MESH_SUFFIXES:
            return None
        try:
            return self._mesh_path(frame)
        except AssetError:
            return None

    def __call__(self, frame: GenericFrame) -> ObjectMesh:
        from haco_grasp.objects.ycb import object_provider

        name = frame.object
        if Path(name).suffix.lower() in MESH_SUFFIXES:
            key = str(self._mesh_path(frame))
            if key not in self._meshes:
                mesh = _load_mesh_file(Path(key))
                if float(mesh.extents.max()) > _MAX_OBJECT_EXTENT_M:
                    raise InputError(f"{key}: object is {mesh.extents.max():.4g} units across; expected metres "
                                     f"(<= {_MAX_OBJECT_EXTENT_M:g}): scale the mesh by 0.001")  # fmt: skip
                self._meshes[key] = mesh
            return self._meshes[key]
        if name in _YCB_BY_NAME:
            return object_provider(self.objects_dir)(_YCB_BY_NAME[name])
        if name in OBJECT_NAMES:
            if name not in self._meshes:
                self._meshes[name] = make_object(name)
            return self._meshes[name]
        raise InputError(f"object {name!r} of sample {frame.sample_id!r}: expected a mesh file "
                         f"({', '.join(MESH_SUFFIXES)}), a YCB model name (e.g. '006_mustard_bottle') or one of "
                         f"{', '.join(OBJECT_NAMES)}; fix the object array")  # fmt: skip


def fit_mano_to_verts(
    verts: np.ndarray, layer: Any, iterations: int = 400, seed_params: Mapping[str, np.ndarray] | None = None
) -> tuple[dict[str, np.ndarray], float]:
    """MANO parameters whose mesh matches given vertices (Adam on the mean squared vertex distance).

    Two stages: the global rotation and translation first (flat hand, mean shape), then every parameter.

    Args:
        verts: (778, 3) float, metres, for the MANO model of ``layer.side``.
        layer: a 45-D axis-angle, flat-hand-mean :class:`~haco_grasp.hand.ManoLayer`.
        iterations: Adam steps of the second stage (the first runs a quarter as many).
        seed_params: optional starting parameters.

    Returns:
        (global_orient (3,), hand_pose (45,), betas (S,), transl (3,) float64, the largest vertex distance in metres).
    """
    import torch

    target = torch.as_tensor(np.asarray(verts), dtype=layer.v_template.dtype, device=layer.v_template.device)
    if target.shape != (NUM_HAND_VERTS, 3):
        raise InputError(f"hand_verts: expected ({NUM_HAND_VERTS}, 3) metres, got {tuple(target.shape)}")
    sizes = {"global_orient": 3, "hand_pose": 45, "betas": int(layer.num_betas), "transl": 3}
    params = {
        k: torch.zeros(1, s, dtype=target.dtype, device=target.device, requires_grad=True) for k, s in sizes.items()
    }
    with torch.no_grad():
        if seed_params is not None:
            for k, tensor in params.items():
                tensor.copy_(torch.as_tensor(np.asarray(seed_params[k]), dtype=target.dtype).reshape(1, -1))
        else:
            rest = layer(**{k: v.detach() for k, v in params.items()}).verts[0]
            params["transl"].copy_((target.mean(0) - rest.mean(0))[None])

    def run(names: tuple[str, ...], steps: int, lr: float) -> None:
        optimizer = torch.optim.Adam([params[k] for k in names], lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = ((layer(**params).verts[0] - target) ** 2).sum(-1).mean()
            loss.backward()
            optimizer.step()

    if seed_params is None:
        run(("global_orient", "transl"), max(iterations // 4, 1), 0.05)
    run(tuple(sizes), iterations, 0.01)
    with torch.no_grad():
        error = float((layer(**params).verts[0] - target).norm(dim=-1).max())
    return {k: v.detach().cpu().double().numpy()[0] for k, v in params.items()}, error


def frame_to_grasp(
    frame: GenericFrame, layer_cache: Any, objects: ObjectResolver, contact_threshold: float = 0.01
) -> Grasp:
    """A generic frame as a :class:`Grasp` (its own world frame, metres), through :meth:`Grasp.from_mano`.

    A frame with only ``hand_verts`` gets MANO parameters fitted once (:func:`fit_mano_to_verts`, stored on the
    frame, fit error in ``frame.meta["mano_fit_error_m"]``). Contact: the hand vertices within
    ``contact_threshold`` of the posed object (the ``geometric`` target); the file's ``hand_contact`` is the
    ``file`` target of ``refine``, not the grasp's label.

    Args:
        frame: one frame of :func:`load_generic`.
        layer_cache: :class:`~haco_grasp.hand.conventions.ManoLayerCache` (flat-mean axis-angle layers per side).
        objects: the object resolver.
        contact_threshold: metres.

    Returns:
        Grasp; ``meta`` holds ``source="generic"``, ``sample_id``, ``object``, ``contact_source`` and, for fitted
        hands, ``mano_fit_error_m``.
    """
    if not isinstance(frame, GenericFrame):
        raise InputError(f"frame: expected a GenericFrame (from load_generic), got {type(frame).__name__}")
    layer = layer_cache.layer(frame.mano_side)
    if frame.mano_params is None:
        params, error = fit_mano_to_verts(frame.hand_verts, layer)
        frame.mano_params = params
        frame.meta["mano_fit_error_m"] = error
        logger.info("sample %s: MANO fitted to hand_verts (largest vertex error %.2f mm)", frame.sample_id, error * 1e3)
    meta = {"source": "generic", "sample_id": frame.sample_id, "object": frame.object, **frame.meta}
    return Grasp.from_mano(
        frame.mano_params,
        layer,
        objects(frame),
        frame.obj_pose,
        contact_threshold=contact_threshold,
        object_id=frame.ycb_id,
        meta=meta,
    )
