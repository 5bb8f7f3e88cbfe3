"""Geometry core: torch, batched, differentiable where it matters, CPU and CUDA.

Imports nothing from the package except the leaf modules :mod:`haco_grasp.errors`, :mod:`haco_grasp.atomic` and
:mod:`haco_grasp.arrays`.
"""

from haco_grasp.geometry.contact import (
    CAPSULE_BOTTOM,
    CAPSULE_RADIUS,
    CAPSULE_TOP,
    PENETRATION_ALLOWANCE,
    ContactMaps,
    asymmetric_l1,
    capsule_contact,
    contact_maps,
    penetration_hinge,
    sdf_contact,
    sdf_penetration,
)
from haco_grasp.geometry.knn import KNNResult, knn_gather, knn_points
from haco_grasp.geometry.labels import (
    CONTACT_THRESHOLDS,
    haco_contact_labels,
    hand_contact_labels,
    object_contact_labels,
    surface_distance,
)
from haco_grasp.geometry.mesh import boundary_loops, cap_boundary, face_normals, is_watertight, vertex_normals
from haco_grasp.geometry.mesh_distance import PointMeshResult, closest_point_on_triangles, point_mesh_distance
from haco_grasp.geometry.sdf import SdfGrid, inside_mesh, sdf_grid, signed_distance
from haco_grasp.geometry.volume import (
    intersection_volume,
    intersection_volume_batch,
    penetration_depths,
    voxelize_interior,
)

__all__ = [
    "CAPSULE_BOTTOM",
    "CAPSULE_RADIUS",
    "CAPSULE_TOP",
    "CONTACT_THRESHOLDS",
    "PENETRATION_ALLOWANCE",
    "ContactMaps",
    "KNNResult",
    "PointMeshResult",
    "SdfGrid",
    "asymmetric_l1",
    "boundary_loops",
    "cap_boundary",
    "capsule_contact",
    "closest_point_on_triangles",
    "contact_maps",
    "face_normals",
    "haco_contact_labels",
    "hand_contact_labels",
    "inside_mesh",
    "intersection_volume",
    "intersection_volume_batch",
    "is_watertight",
    "knn_gather",
    "knn_points",
    "object_contact_labels",
    "penetration_depths",
    "penetration_hinge",
    "point_mesh_distance",
    "sdf_contact",
    "sdf_grid",
    "sdf_penetration",
    "signed_distance",
    "surface_distance",
    "vertex_normals",
    "voxelize_interior",
]
