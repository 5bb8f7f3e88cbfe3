"""YCB object models as used by DexYCB and HFL-Net: ``textured_simple.obj`` meshes and ``points.xyz`` clouds.

Both files are in **metres** and share the object frame of DexYCB's ``pose_y``; nothing is rescaled here.
Models live under ``$DEX_YCB_DIR/models/<ycb name>/``; DexYCB's object ids 1..21 map to names through
:data:`YCB_CLASSES` (the order of ``_YCB_CLASSES`` in the DexYCB toolkit's ``dex_ycb.py``).

OBJ files store one vertex per (position, texture coordinate) pair, so a closed mesh is split along its UV seams.
:func:`load_ycb_mesh` merges vertices with identical positions, which makes the mesh watertight whenever the
source surface is closed.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from haco_grasp.errors import AssetError, InputError
from haco_grasp.objects.procedural import ObjectMesh

__all__ = [
    "YCB_CLASSES",
    "ObjectProvider",
    "YCBMeshCache",
    "load_ycb_mesh",
    "load_ycb_points",
    "object_provider",
    "ycb_model_path",
]

logger = logging.getLogger(__name__)

#: DexYCB object id -> YCB model directory name.
YCB_CLASSES: dict[int, str] = {
    1: "002_master_chef_can",
    2: "003_cracker_box",
    3: "004_sugar_box",
    4: "005_tomato_soup_can",
    5: "006_mustard_bottle",
    6: "007_tuna_fish_can",
    7: "008_pudding_box",
    8: "009_gelatin_box",
    9: "010_potted_meat_can",
    10: "011_banana",
    11: "019_pitcher_base",
    12: "021_bleach_cleanser",
    13: "024_bowl",
    14: "025_mug",
    15: "035_power_drill",
    16: "036_wood_block",
    17: "037_scissors",
    18: "040_large_marker",
    19: "051_large_clamp",
    20: "052_extra_large_clamp",
    21: "061_foam_brick",
}

MESH_FILE = "textured_simple.obj"
POINTS_FILE = "points.xyz"
_ENV_VAR = "DEX_YCB_DIR"


def ycb_model_path(models_root: str | os.PathLike[str] | None, ycb_id: int) -> Path:
    """Path of the ``textured_simple.obj`` of DexYCB object ``ycb_id`` (the file is not opened or checked).

    Args:
        models_root: the DexYCB ``models`` directory; ``None`` uses ``$DEX_YCB_DIR/models``.
        ycb_id: DexYCB object id, 1..21 (see :data:`YCB_CLASSES`).

    Returns:
        ``models_root / <ycb name> / textured_simple.obj``.

    Raises:
        InputError: unknown id.
        AssetError: ``models_root`` is None and ``$DEX_YCB_DIR`` is not set.
    """
    if isinstance(ycb_id, bool) or not isinstance(ycb_id, int | np.integer) or int(ycb_id) not in YCB_CLASSES:
        raise InputError(f"ycb_id must be a DexYCB object id in 1..21, got {ycb_id!r}; see YCB_CLASSES")
    if models_root is None:
        dataset_root = os.environ.get(_ENV_VAR)
        if not dataset_root:
            raise AssetError(
                f"no models_root given and ${_ENV_VAR} is not set; pass the DexYCB 'models' directory or set "
                f"{_ENV_VAR} to the DexYCB root (which holds models/<ycb name>/{MESH_FILE})"
            )
        models_root = Path(dataset_root) / "models"
    return Path(models_root) / YCB_CLASSES[int(ycb_id)] / MESH_FILE


def _resolve_file(path_or_dir: str | os.PathLike[str], file_name: str) -> Path:
    path = Path(path_or_dir).expanduser()
    if path.is_dir():
        path = path / file_name
    if not path.is_file():
        raise AssetError(
            f"YCB file not found: {path}; expected a {file_name} file or a model directory holding one "
            "(DexYCB ships them under $DEX_YCB_DIR/models/<ycb name>/)"
        )
    return path


def load_ycb_mesh(path_or_dir: str | os.PathLike[str]) -> ObjectMesh:
    """Load a YCB ``textured_simple.obj`` (metres, no scaling) as a triangle mesh without texture.

    Vertices that share a position but differ in texture coordinate or normal are merged, so the mesh is
    watertight when the source surface is closed. ``volume_m3`` is the mesh volume if watertight, else NaN.

    Args:
        path_or_dir: the ``.obj`` file, or a model directory containing ``textured_simple.obj``.

    Returns:
        ObjectMesh named after the model directory (e.g. ``"006_mustard_bottle"``), ``kind="mesh"``,
        ``verts: (V, 3) float64, metres``, ``faces: (F, 3) int64``.

    Raises:
        AssetError: the file does not exist.
        InputError: the file cannot be parsed or has no triangles.
    """
    import trimesh

    path = _resolve_file(path_or_dir, MESH_FILE)
    try:
        mesh = trimesh.load(str(path), file_type="obj", force="mesh", process=False, skip_materials=True)
    except Exception as error:  # trimesh raises many types (IndexError, ValueError, ...) on malformed files
        raise InputError(f"could not parse OBJ file {path}: {type(error).__name__}: {error}; check the file") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(f"OBJ file {path} holds no triangles; expected a YCB textured_simple.obj mesh")
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    verts = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    if not np.all(np.isfinite(verts)):
        raise InputError(f"OBJ file {path} has non-finite vertex coordinates; re-export the mesh")
    volume = math.nan
    if mesh.is_watertight:
        volume = float(mesh.volume)
        if volume < 0:
            logger.warning("%s is wound inward (volume %.3g m^3); normals will point into the object", path, volume)
    else:
        logger.warning("%s is not watertight after merging duplicate vertices; volume_m3 is NaN", path)
    name = path.parent.name if path.name == MESH_FILE and path.parent.name else path.stem
    return ObjectMesh(
        name=name,
        verts=verts,
        faces=faces,
        volume_m3=volume,
        extents=verts.max(axis=0) - verts.min(axis=0),
        kind="mesh",
        analytic_volume_m3=None,
    )


def load_ycb_points(path: str | os.PathLike[str]) -> np.ndarray:
    """Load a YCB ``points.xyz`` point cloud (whitespace-separated x y z rows, metres).

    Args:
        path: the ``points.xyz`` file, or a model directory containing one.

    Returns:
        points: (P, 3) float64, metres.

    Raises:
        AssetError: the file does not exist.
        InputError: a row does not hold three numbers, or the file is empty.
    """
    file_path = _resolve_file(path, POINTS_FILE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below instead
            points = np.loadtxt(file_path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise InputError(f"could not parse {file_path} as 'x y z' rows: {error}; check the file") from None
    if points.shape[0] == 0 or points.shape[1] != 3:
        raise InputError(f"{file_path} must hold rows of 3 numbers (x y z, metres), got array of shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise InputError(f"{file_path} contains NaN or inf coordinates; re-export the point cloud")
    return points


# ----------------------------------------------------------------------------------------------- mesh cache
ObjectProvider = Callable[[int], ObjectMesh]

#: A YCB object spans at most ~0.5 m; a model larger than this is in millimetres (or another unit).
MAX_OBJECT_EXTENT_M = 2.0


class YCBMeshCache:
    """``ycb_id -> ObjectMesh`` from ``models/<ycb>/textured_simple.obj``, each file read once.

    Args:
        models_root: the DexYCB ``models`` folder; None uses ``$DEX_YCB_DIR/models``.
    """

    def __init__(self, models_root: str | os.PathLike | None = None) -> None:
        self.models_root = None if models_root is None else Path(models_root)
        self._meshes: dict[int, ObjectMesh] = {}

    def __call__(self, ycb_id: int) -> ObjectMesh:
        path = ycb_model_path(self.models_root, ycb_id)
        if int(ycb_id) not in self._meshes:
            if not path.is_file():
                raise AssetError(f"YCB model not found: {path}; expected models/<ycb name>/textured_simple.obj")
            mesh = load_ycb_mesh(path)
            verts = np.asarray(mesh.verts, np.float64)
            if verts.size and not np.all(np.isfinite(verts)):
                raise InputError(f"{path}: vertices contain NaN or inf; re-download the YCB model")
            extent = float(np.ptp(verts, axis=0).max()) if verts.size else 0.0
            if extent > MAX_OBJECT_EXTENT_M:
                raise InputError(
                    f"{path}: object spans {extent:.4g} m (YCB objects span < 0.5 m); object looks like millimetres; "
                    "scale by 0.001"
                )
            self._meshes[int(ycb_id)] = mesh
        return self._meshes[int(ycb_id)]


_SHARED_MESH_CACHES: dict[str, YCBMeshCache] = {}


def object_provider(models: str | os.PathLike | ObjectProvider | None) -> ObjectProvider:
    """A callable ``ycb_id -> ObjectMesh`` from a models folder, a provider, or None (``$DEX_YCB_DIR/models``).

    Folders share one :class:`YCBMeshCache` each for the life of the process, so every model file is read once.
    """
    if callable(models):
        return models
    if models is None or isinstance(models, (str, os.PathLike)):
        key = "" if models is None else str(Path(models).expanduser().resolve())
        if key not in _SHARED_MESH_CACHES:
            _SHARED_MESH_CACHES[key] = YCBMeshCache(models)
        return _SHARED_MESH_CACHES[key]
    raise InputError(
        f"models_root: expected the DexYCB models folder, a callable ycb_id -> ObjectMesh or None, "
        f"got {type(models).__name__}"
    )
