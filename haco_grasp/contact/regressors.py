"""Coarse contact regressors of HACO: 778 vertices -> 336 / 84 mesh nodes and -> 21 joints.

HACO reads its multi-level outputs as linear maps of the 778 vertex logits, ``z_level = z_778 @ R.T``, and builds
the coarse ground truth as ``y_level = 1[y_778 @ R.T > 0]`` (a node is in contact if any contributing vertex is).

* **336 / 84 rows.** The official ``V_regressor_336.npy`` / ``V_regressor_84.npy`` (336 x 778, 84 x 778, from
  HACO's ``base_data.tar.gz``, origin undocumented) are loaded when given. Otherwise the toolkit computes its own
  coarsening of the hand template: geodesic farthest-point sampling of G seed vertices on the mesh-edge graph
  (edge lengths in metres; the first seed is the vertex farthest from the centroid), then a geodesic Voronoi
  partition (each vertex joins its nearest seed); row g holds 1/|group g| on the vertices of group g, so every
  row sums to 1 (the coarse logit is the group's mean logit) and the groups partition the 778 vertices. This is
  our own construction and is not numerically the official matrix.
* **21 joint rows.** MANO's 16-joint ``J_regressor`` reordered to the toolkit's 21-joint order
  (:mod:`haco_grasp.hand.joints`), with one-hot rows at the fingertip vertices. HACO uses
  745 / 317 / **445** / 556 / 673 (thumb to pinky); manopth and the rest of the toolkit use 444 for the middle tip.
  The choice changes joint-level contact, so it is a parameter (default: HACO's 445).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra
from torch import Tensor

from haco_grasp.errors import AssetError, InputError
from haco_grasp.hand.joints import NUM_MANO_JOINTS, NUM_VERTS, TO_21

__all__ = [
    "HACO_TIP_VERTEX_IDS",
    "ContactRegressors",
    "build_contact_regressors",
    "coarse_labels",
    "geodesic_partition_regressor",
    "joint_contact_regressor",
    "load_official_vertex_regressors",
]

#: HACO's fingertip vertices (thumb, index, middle, ring, pinky); manopth uses 444 for the middle tip.
HACO_TIP_VERTEX_IDS: tuple[int, int, int, int, int] = (745, 317, 445, 556, 673)

OFFICIAL_FILES = {336: "V_regressor_336.npy", 84: "V_regressor_84.npy"}


@dataclass(frozen=True)
class ContactRegressors:
    """The three coarse regressors of one hand topology (float64 numpy, rows = coarse nodes).

    Attributes:
        vertex_336: (336, V) float64, 778 -> 336 nodes.
        vertex_84: (84, V) float64, 778 -> 84 nodes.
        joint: (21, V) float64, 778 -> 21 joints (toolkit joint order).
        source: where the 336/84 rows come from ("official" or "geodesic-fps") and which hand ("mano"/"synthetic").
        tip_vertex_ids: the five fingertip vertices used for the joint rows (thumb to pinky).
    """

    vertex_336: np.ndarray
    vertex_84: np.ndarray
    joint: np.ndarray
    source: str
    tip_vertex_ids: tuple[int, ...]


def _check_matrix(matrix: np.ndarray, rows: int, name: str, cols: int = NUM_VERTS) -> np.ndarray:
    array = np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float64)
    if array.shape != (rows, cols) or not np.all(np.isfinite(array)):
        raise InputError(f"{name}: expected a finite ({rows}, {cols}) matrix, got shape {array.shape}")
    return array


def load_official_vertex_regressors(root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Load HACO's ``V_regressor_336.npy`` and ``V_regressor_84.npy`` from ``root``.

    Args:
        root: folder holding both files (HACO: ``data/base_data/human_models/mano``).

    Returns:
        (vertex_336 (336, 778) float64, vertex_84 (84, 778) float64).

    Raises:
        AssetError: a file is missing.
    """
    folder = Path(root).expanduser()
    out = []
    for rows, name in OFFICIAL_FILES.items():
        path = folder / name
        if not path.is_file():
            raise AssetError(
                f"HACO coarse regressor not found: expected {path}; it ships in HACO's base_data.tar.gz "
                "(data/base_data/human_models/mano/); omit it to use the toolkit's own geodesic coarsening"
            )
        out.append(_check_matrix(np.load(path, allow_pickle=False), rows, str(path)))
    return out[0], out[1]


def _edge_graph(verts: np.ndarray, faces: np.ndarray) -> sp.csr_matrix:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=0)
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    lengths = np.linalg.norm(verts[edges[:, 0]] - verts[edges[:, 1]], axis=1)
    lengths = np.maximum(lengths, 1e-12)  # a zero-length edge would vanish from the sparse graph
    count = verts.shape[0]
    graph = sp.coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(count, count))
    return (graph + graph.T).tocsr()


def geodesic_partition_regressor(verts: np.ndarray, faces: np.ndarray, num_groups: int) -> np.ndarray:
    """Partition a mesh into ``num_groups`` geodesic Voronoi cells and return the row-normalised membership.

    Seeds are chosen by farthest-point sampling of the mesh-edge-graph (Dijkstra) distance, starting from the
    vertex farthest from the centroid; each vertex joins its nearest seed (ties: lower seed index). Vertices that
    the graph does not reach (a disconnected part) fall back to Euclidean distance. Deterministic.

    Args:
        verts: (V, 3) float, metres (the rest template)
        faces: (F, 3) int
        num_groups: G, 1 <= G <= V

    Returns:
        (G, V) float64; row g is 1/|cell g| on cell g's vertices, so rows sum to 1 and columns have one entry
    """
    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if verts.ndim != 2 or verts.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise InputError(f"expected verts (V, 3) and faces (F, 3), got {verts.shape} and {faces.shape}")
    count = verts.shape[0]
    if not 1 <= num_groups <= count:
        raise InputError(f"num_groups must be in [1, {count}], got {num_groups}")
    graph = _edge_graph(verts, faces)
    seeds = [int(np.argmax(np.linalg.norm(verts - verts.mean(axis=0), axis=1)))]
    distances = np.empty((num_groups, count))
    for g in range(num_groups):
        row = dijkstra(graph, directed=False, indices=seeds[g])
        unreachable = ~np.isfinite(row)
        if unreachable.any():
            row[unreachable] = 1e6 + np.linalg.norm(verts[unreachable] - verts[seeds[g]], axis=1)
        distances[g] = row
        if g + 1 < num_groups:
            nearest = distances[: g + 1].min(axis=0)
            nearest[seeds] = -1.0
            seeds.append(int(np.argmax(nearest)))
    owner = np.argmin(distances, axis=0)  # (V,)
    owner[seeds] = np.arange(num_groups)  # a seed always owns itself, so no cell is empty
    membership = np.zeros((num_groups, count))
    membership[owner, np.arange(count)] = 1.0
    return membership / membership.sum(axis=1, keepdims=True)


def joint_contact_regressor(
    J_regressor: np.ndarray, tip_vertex_ids: tuple[int, ...] = HACO_TIP_VERTEX_IDS
) -> np.ndarray:
    """HACO's 21-row joint regressor: MANO's 16 rows in the toolkit's 21-joint order + one-hot fingertip rows.

    Args:
        J_regressor: (16, V) float, MANO order (scipy sparse accepted)
        tip_vertex_ids: five vertex ids, thumb to pinky (HACO 745/317/445/556/673; manopth 444 for the middle)

    Returns:
        (21, V) float64 in the order of :data:`haco_grasp.hand.joints.JOINT_NAMES`
    """
    dense = np.asarray(J_regressor.toarray() if sp.issparse(J_regressor) else J_regressor, dtype=np.float64)
    if dense.ndim != 2 or dense.shape[0] != NUM_MANO_JOINTS:
        raise InputError(f"J_regressor: expected ({NUM_MANO_JOINTS}, V), got {dense.shape}")
    count = dense.shape[1]
    tips = tuple(int(i) for i in tip_vertex_ids)
    if len(tips) != 5 or min(tips) < 0 or max(tips) >= count:
        raise InputError(f"tip_vertex_ids: expected five vertex ids in [0, {count}), got {tip_vertex_ids}")
    one_hot = np.zeros((5, count))
    one_hot[np.arange(5), tips] = 1.0
    stacked = np.concatenate([dense, one_hot], axis=0)  # (21, V): 16 MANO rows, then tips (ids 16..20)
    return stacked[list(TO_21)]


@functools.lru_cache(maxsize=8)
def _cached(hand: str, mano_root: str | None, official_dir: str | None, tips: tuple[int, ...]) -> ContactRegressors:
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    if hand == "synthetic":
        from haco_grasp.hand.assets import synthetic_mano_root

        path = resolve_mano_path("right", synthetic_mano_root())
    else:
        path = resolve_mano_path("right", mano_root)
    data = read_mano_pickle(path)
    if data.v_template.shape[0] != NUM_VERTS:
        raise InputError(f"{path}: expected a {NUM_VERTS}-vertex MANO-topology hand, got {data.v_template.shape[0]}")
    if official_dir is not None:
        vertex_336, vertex_84 = load_official_vertex_regressors(official_dir)
        source = f"official ({hand} joints)"
    else:
        vertex_336 = geodesic_partition_regressor(data.v_template, data.faces, 336)
        vertex_84 = geodesic_partition_regressor(data.v_template, data.faces, 84)
        source = f"geodesic-fps ({hand})"
    joint = joint_contact_regressor(data.J_regressor, tips)
    for array in (vertex_336, vertex_84, joint):
        array.setflags(write=False)
    return ContactRegressors(vertex_336, vertex_84, joint, source, tips)


def build_contact_regressors(
    hand: Literal["synthetic", "mano"] = "synthetic",
    mano_root: str | os.PathLike | None = None,
    official_dir: str | os.PathLike | None = None,
    tip_vertex_ids: tuple[int, ...] = HACO_TIP_VERTEX_IDS,
) -> ContactRegressors:
    """The coarse regressors for the synthetic hand or MANO (cached per argument set; arrays are read-only).

    Args:
        hand: "synthetic" (license-free, always available) or "mano" (official ``MANO_RIGHT.pkl``).
        mano_root: folder of ``MANO_RIGHT.pkl`` for hand="mano" (default ``$HACO_GRASP_MANO_ROOT``).
        official_dir: folder with HACO's ``V_regressor_{336,84}.npy``; None computes our geodesic coarsening.
        tip_vertex_ids: fingertip vertices for the joint rows (default HACO's 745/317/445/556/673).

    Raises:
        AssetError: the MANO pickle or an official regressor file is missing.
    """
    if hand not in ("synthetic", "mano"):
        raise InputError(f"hand: expected 'synthetic' or 'mano', got {hand!r}")
    return _cached(
        hand,
        None if mano_root is None else str(Path(mano_root).expanduser()),
        None if official_dir is None else str(Path(official_dir).expanduser()),
        tuple(int(i) for i in tip_vertex_ids),
    )


def coarse_labels(labels: Tensor, regressor: Tensor | np.ndarray) -> Tensor:
    """HACO's coarse ground truth: a node is in contact if any vertex contributing to it is.

    Args:
        labels: (B, V) float or bool, per-vertex contact in {0, 1}
        regressor: (G, V) float, non-negative rows (numpy accepted)

    Returns:
        (B, G) float in {0, 1}, ``1[labels @ regressor.T > 0]`` (same dtype as labels when floating)
    """
    if not isinstance(labels, Tensor):
        raise InputError(f"labels: expected a torch tensor (B, V), got {type(labels).__name__}")
    dtype = labels.dtype if labels.is_floating_point() else torch.float32
    if isinstance(regressor, Tensor):
        matrix = regressor.to(device=labels.device, dtype=dtype)
    else:
        matrix = torch.tensor(np.asarray(regressor), device=labels.device, dtype=dtype)
    if labels.ndim != 2 or matrix.ndim != 2 or matrix.shape[1] != labels.shape[1]:
        raise InputError(
            f"coarse_labels: expected labels (B, V) and regressor (G, V), got {tuple(labels.shape)} and "
            f"{tuple(matrix.shape)}"
        )
    return (labels.to(dtype) @ matrix.T > 0).to(dtype)
