"""The OpenCV pinhole :class:`Camera` of the rasteriser (:mod:`haco_grasp.viz.render`) and its projection.

Conventions: ``x_cam = x_world @ R.T + t``; +x right, +y down, +z forward; ``K`` in pixels; pixel centres at
integer pixel coordinates, so the image centre is ``((W-1)/2, (H-1)/2)``. Needs only numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from haco_grasp.arrays import to_numpy
from haco_grasp.errors import InputError

__all__ = ["Camera", "Projection", "orbit_cameras"]


def _vector3(value: Any, name: str) -> np.ndarray:
    array = to_numpy(value, np.float64)
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise InputError(f"{name} must be a finite 3-vector, got {np.asarray(value).tolist()!r}")
    return array


def _unit(value: Any, name: str) -> np.ndarray:
    array = _vector3(value, name)
    norm = float(np.linalg.norm(array))
    if norm < 1e-12:
        raise InputError(f"{name} must be a non-zero 3-vector, got {array.tolist()!r}")
    return array / norm


class Projection(NamedTuple):
    """Pixel coordinates and camera-space depth of projected points."""

    pixels: np.ndarray  # (P, 2) float64, (u, v) pixels, pixel centres at integers
    depth: np.ndarray  # (P,) float64, camera z in metres (negative or zero behind the camera)


@dataclass
class Camera:
    """OpenCV pinhole camera: ``x_cam = x_world @ R.T + t``, +z forward, +y down; pixel centres at integers.

    Attributes:
        K: (3, 3) float, intrinsics [[fx, s, cx], [0, fy, cy], [0, 0, 1]] in pixels
        R: (3, 3) float, world-to-camera rotation
        t: (3,) float, world-to-camera translation, metres
        width, height: image size in pixels
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        self.K = to_numpy(self.K, np.float64)
        self.R = to_numpy(self.R, np.float64)
        self.t = to_numpy(self.t, np.float64)
        if self.K.shape != (3, 3) or not np.all(np.isfinite(self.K)):
            raise InputError(f"Camera.K must be a finite (3, 3) matrix, got shape {self.K.shape}")
        if not np.allclose(self.K[2], (0.0, 0.0, 1.0)) or self.K[1, 0] != 0.0:
            raise InputError(f"Camera.K must look like [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {self.K.tolist()}")
        if self.K[0, 0] <= 0.0 or self.K[1, 1] <= 0.0:
            raise InputError(f"Camera.K needs fx > 0 and fy > 0, got fx={self.K[0, 0]}, fy={self.K[1, 1]}")
        if self.R.shape != (3, 3) or not np.all(np.isfinite(self.R)):
            raise InputError(f"Camera.R must be a finite (3, 3) rotation, got shape {self.R.shape}")
        if not np.allclose(self.R @ self.R.T, np.eye(3), atol=1e-6) or np.linalg.det(self.R) < 0.0:
            raise InputError("Camera.R must be a proper rotation (R @ R.T = I, det +1); orthonormalise it first")
        if self.t.shape != (3,) or not np.all(np.isfinite(self.t)):
            raise InputError(f"Camera.t must be a finite (3,) vector, got shape {self.t.shape}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"Camera.{name} must be a positive int (pixels), got {value!r}")
            setattr(self, name, int(value))

    @classmethod
    def look_at(
        cls,
        eye: Any,
        target: Any,
        up: Any = (0.0, -1.0, 0.0),
        fov_deg: float = 40.0,
        width: int = 256,
        height: int = 256,
    ) -> Camera:
        """Camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image (towards -y).

        The default ``up = (0, -1, 0)`` suits data in an OpenCV camera frame (DexYCB, HO3D); use (0, 1, 0) for
        y-up worlds. Square pixels, principal point at the image centre ((W-1)/2, (H-1)/2), so ``target``
        projects to the image centre.

        Args:
            eye: (3,) float, camera centre in world coordinates, metres
            target: (3,) float, point to look at, metres
            up: (3,) float, world direction that should appear upwards; must not be parallel to the view direction
            fov_deg: vertical field of view in degrees, in (0, 180)

        Returns:
            Camera
        """
        eye_w = _vector3(eye, "eye")
        forward = _unit(_vector3(target, "target") - eye_w, "target - eye")
        up_w = _unit(up, "up")
        right = np.cross(forward, up_w)
        if np.linalg.norm(right) < 1e-9:
            raise InputError(f"look_at: up {up_w.tolist()} is parallel to the view direction; pick another up")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        if not (0.0 < fov_deg < 180.0):
            raise InputError(f"fov_deg must be in (0, 180) degrees, got {fov_deg}")
        focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2.0)
        K = np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
        R = np.stack([right, down, forward])  # rows: camera x, y, z axes in world coordinates
        return cls(K=K, R=R, t=-R @ eye_w, width=width, height=height)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates.

        Returns:
            (3,) float64, metres
        """
        return -self.R.T @ self.t

    def to_camera(self, points: Any) -> np.ndarray:
        """World points to camera coordinates.

        Args:
            points: (P, 3) float, world, metres

        Returns:
            (P, 3) float64, camera frame, metres
        """
        array = to_numpy(points, np.float64)
        if array.ndim != 2 or array.shape[1] != 3:
            raise InputError(f"points must have shape (P, 3), got {array.shape}")
        return array @ self.R.T + self.t

    def project(self, points: Any) -> Projection:
        """Project world points to pixels (perspective division by camera z).

        Args:
            points: (P, 3) float, world, metres

        Returns:
            Projection(pixels (P, 2) float64, depth (P,) float64 camera z in metres); pixels are inf/nan for
            points with depth 0
        """
        cam = self.to_camera(points)
        homogeneous = cam @ self.K.T  # (P, 3)
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = homogeneous[:, :2] / homogeneous[:, 2:3]
        return Projection(pixels=pixels, depth=cam[:, 2])


def orbit_cameras(
    center: Any,
    radius: float,
    n_views: int = 4,
    size: int = 256,
    elevation_deg: float = 0.0,
    up: Any = (0.0, -1.0, 0.0),
    front: Any = (0.0, 0.0, -1.0),
    fov_deg: float = 30.0,
) -> list[Camera]:
    """Cameras evenly spaced in azimuth around ``center``, each framing a sphere of ``radius``.

    View 0 looks from direction ``front`` (seen from ``center``, made perpendicular to ``up``) raised by
    ``elevation_deg``; the defaults (up = -y, front = -z) make view 0 the original camera's direction for data
    in an OpenCV camera frame. Views turn by 360 / n_views degrees about ``up``.

    Args:
        center: (3,) float, orbit centre, metres
        radius: radius of the sphere around ``center`` that must be in view, metres (> 0); the camera distance is
            ``1.05 * radius / sin(fov / 2)``
        up, front: (3,) float world directions

    Returns:
        list of n_views Camera, size x size pixels
    """
    center_w = _vector3(center, "center")
    if not (np.isfinite(radius) and radius > 0.0):
        raise InputError(f"radius must be a positive distance in metres, got {radius}")
    if isinstance(n_views, bool) or not isinstance(n_views, (int, np.integer)) or n_views < 1:
        raise InputError(f"n_views must be a positive int, got {n_views!r}")
    if not -89.0 <= elevation_deg <= 89.0:
        raise InputError(f"elevation_deg must be in [-89, 89], got {elevation_deg}")
    if not (0.0 < fov_deg < 180.0):
        raise InputError(f"fov_deg must be in (0, 180) degrees, got {fov_deg}")
    up_w = _unit(up, "up")
    front_w = _vector3(front, "front")
    front_w = front_w - (front_w @ up_w) * up_w
    if np.linalg.norm(front_w) < 1e-9:
        raise InputError(f"front {np.asarray(front).tolist()} is parallel to up {up_w.tolist()}; pick another front")
    front_w /= np.linalg.norm(front_w)
    side = np.cross(up_w, front_w)
    distance = 1.05 * radius / math.sin(math.radians(fov_deg) / 2.0)
    elevation = math.radians(elevation_deg)
    cameras = []
    for view in range(int(n_views)):
        azimuth = 2.0 * math.pi * view / n_views
        horizontal = math.cos(azimuth) * front_w + math.sin(azimuth) * side
        direction = math.cos(elevation) * horizontal + math.sin(elevation) * up_w
        cameras.append(Camera.look_at(center_w + distance * direction, center_w, up_w, fov_deg, size, size))
    return cameras
