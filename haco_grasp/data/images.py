"""Synthetic RGB training images of grasps: a random camera, a HACO-style hand–object crop, random appearance.

Each :class:`~haco_grasp.data.grasp.Grasp` is rendered on the CPU (no GPU or OpenGL) by open3d ray casting
(:mod:`haco_grasp.viz.raycast`, ``ImageConfig.renderer = "raycast"``, the default) or by the package's numpy
rasteriser (:mod:`haco_grasp.viz.render`, ``"raster"``, the reference) into a square RGB crop around the hand and
the object, as HACO's data loaders feed its network (the HACO reference, §1 and §6 "Crop"), together with every
annotation a contact-estimation training stack needs: the crop's camera, 2D/3D joints, masks, depth and the 778
contact labels.

Camera model
------------
OpenCV pinhole with pixel centres at integer coordinates (see :mod:`haco_grasp.viz.render`):
``x_cam = x_world @ R.T + t``, +z forward, +y down.

1. A **virtual full sensor** (default 640 x 480, ``fx = fy`` drawn from ``focal_range_px``, principal point at the
   sensor centre, like a RealSense/Kinect frame of DexYCB or HO3D) is placed at ``distance_range_m`` from the
   hand–object centre (the centre of the box around the 21 joints and the object's 3D bounding-box corners). Its
   direction is drawn in a **hand-anchored frame**, so the view distribution does not depend on the world frame of
   the data source: with ``forward`` = wrist -> middle knuckle, ``palm`` = the palm normal (pointing out of the
   palm) and ``lateral = palm x forward``, the direction from the centre to the camera is
   ``cos(el) (cos(az) palm + sin(az) lateral) + sin(el) forward``; azimuth 0 looks at the palm, 180 at the back
   of the hand, positive elevation looks from the fingertips' side. ``roll`` turns the image about the optical
   axis (0: the fingers point up in the image). The camera is then turned (a small rotation about its centre)
   so that the hand–object centre lands at a random pixel within ``center_offset_fraction`` of the sensor
   centre: the crop is generally off-axis, with the perspective of a real off-centre crop.
2. **Crop box** (HACO's ``bbox_ho``): the tight box of the projected 21 joints and the 8 projected corners of the
   object's canonical bounding box, enlarged ``crop_scale`` = 1.3 times about its centre (HACO's value for
   hand–object data) and made **square** (side = ``crop_scale * max(width, height)``). HACO warps its box
   *anisotropically* to 256 x 256; here the square crop is rendered directly, so the two agree when the tight box
   is square and otherwise ours keeps more context along the shorter side and never stretches the image.
   ``crop_box = (x0, y0, x1, y1)`` are the crop's outer edges in full-sensor pixel coordinates (pixel centres at
   integers, so the whole sensor is ``(-0.5, -0.5, W - 0.5, H - 0.5)``). The box may extend past the sensor: the
   crop is rendered in full anyway (no black padding, unlike crops of real images).
3. The crop is **rendered directly** at ``size`` x ``size`` with the crop intrinsics
   ``K = A @ K_full``, ``A = [[s, 0, -s x0 - 0.5], [0, s, -s y0 - 0.5], [0, 0, 1]]``, ``s = size / (x1 - x0)``,
   so projecting world points with ``K, R, t`` gives crop pixels, exactly.
4. **View selection** (rejection sampling, so the accepted views keep the diversity of the prior above): each
   candidate is rendered cheaply at ``candidate_size`` pixels and accepted when the visible hand covers at least
   ``min_hand_fraction`` of the crop and at least ``min_visible_contact`` (5 %) of the area of the hand's
   *contact faces* (faces touching a vertex with ``hand_contact = 1``) is visible (face centroid within 4 mm of
   the rendered depth), i.e. the palm/contact region is not fully hidden behind the object or the back of the
   hand (the contact test is skipped for grasps without contact). Picking the view with the most hand pixels
   instead would favour views of the back of the hand. After ``max_view_tries`` rejected candidates, the one with
   the most visible contact area is kept and a warning is logged.

Appearance
----------
Hand: one of ``skin_tones`` (light to dark), per-channel jitter ``skin_jitter``, smooth shading. Object: a colour of
``OBJECT_PALETTE`` with per-channel jitter ``object_color_jitter``, smooth shading with vertices split at creases
sharper than 30 degrees (boxes keep flat sides, cylinders look round). Light: Lambert + ambient
(``ambient_range``), a directional light near a camera headlight, jittered by ``light_jitter``. Background
(``background``): ``"random"`` picks one procedural texture per image among ``"gradient"`` (linear two- or
three-stop ramp), ``"noise"`` (multi-octave value noise between random colours), ``"checker"`` (rotated
checkerboard), ``"blobs"`` (soft random ellipses over a base colour; all in :mod:`haco_grasp.data.backgrounds`),
adds grain (``background_grain``); each kind can also be asked for by name; ``"plain"`` is one constant colour
(``plain_color``, or a random colour per image when None). Anti-aliasing: ``supersample`` x ``supersample`` samples
per pixel (every pixel with ``"raster"``, pixels at silhouettes and occlusion edges with ``"raycast"``); masks and
depth are sampled at the pixel centres. Augmentations of the HACO training recipe (scale, rotation, colour, noise,
blur, low resolution; HACO reference §5) are *not* applied here: they belong to the training loader.

Randomness: ``render_grasp_image(grasp, rng_or_seed)`` is deterministic for an int seed. ``render_grasp_images``
and ``write_image_dataset`` give image ``i`` its own stream ``SeedSequence(seed).spawn(n)[i]``, so an image does
not depend on the others.

Dataset format (``write_image_dataset``)
----------------------------------------
The generic "images + box + 778 contact labels" format read by the HACO training stack::

    <out_dir>/
        images/000000.png ...      RGB uint8, size x size, the crops (index = row of annotations.npz)
        annotations.npz            arrays below, N = number of images (np.load without allow_pickle)
        config.json                the resolved ImageConfig, seed, count, format version, package version

    annotations.npz
        image_files       (N,) str, paths relative to out_dir ("images/000000.png")
        grasp_index       (N,) int64, index of the grasp in the list given to write_image_dataset
        object_names      (N,) str, Grasp.object_name
        side              (N,) str, "right" / "left"
        K                 (N, 3, 3) float64, crop intrinsics (pixels of the saved image)
        R                 (N, 3, 3) float64, world -> camera rotation
        t                 (N, 3) float64, world -> camera translation, metres
        K_full            (N, 3, 3) float64, intrinsics of the virtual full sensor
        full_size         (N, 2) int64, (width, height) of the virtual full sensor
        crop_box          (N, 4) float64, (x0, y0, x1, y1) crop edges in full-sensor pixels (square)
        joints_2d         (N, 21, 2) float64, crop pixels, DexYCB joint order
        joints_3d_cam     (N, 21, 3) float64, camera frame, metres
        hand_verts_cam    (N, 778, 3) float32, camera frame, metres
        obj_rotation_cam  (N, 3, 3) float64, object canonical -> camera rotation
        obj_translation_cam (N, 3) float64, metres
        hand_contact      (N, 778) float32, the Grasp's contact labels (1 = within 1 cm of the object)
        hand_pixels       (N,) int64, visible hand pixels in the crop
        obj_pixels        (N,) int64, visible object pixels in the crop

Renderers
---------
Both renderers see the same views (view selection draws from the random stream identically and scores views on
pixel-centre depth and masks, which agree to about 1e-6 m), the same appearance draws and backgrounds; they differ
only in anti-aliasing (see :mod:`haco_grasp.viz.raycast`). ``tests/viz/test_raycast.py`` holds them to mask IoU
>= 0.98 and a mean colour difference under one grey level on several grasps.

Speed (256 x 256, ``supersample=2``, synthetic hand + procedural object, one process on a 2-core machine shared
with other jobs; ``benchmarks/render_speed.py``): ray casting about 25-30 images/s (35-40 ms each: one ray per
pixel, edge pixels 2 x 2, backgrounds about 10 ms); the rasteriser about 3-5 images/s (0.2-0.3 s each).

Length: over 600 lines because camera, crop, view selection, appearance and the dataset writer are one pipeline
whose steps share :class:`ImageConfig` and the camera conventions stated above (about a hundred lines of it
are that statement and the documentation of the written format). The renderers
(:mod:`haco_grasp.viz.render`, :mod:`haco_grasp.viz.raycast`) and the backgrounds
(:mod:`haco_grasp.data.backgrounds`) live in their own modules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from haco_grasp.arrays import to_numpy
from haco_grasp.atomic import atomic_open, atomic_write_bytes
from haco_grasp.data.backgrounds import BACKGROUND_KINDS, procedural_background, random_color
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.viz.colormap import OBJECT_PALETTE, SKIN
from haco_grasp.viz.render import Camera, MeshLayer, RenderResult, render, save_png

logger = logging.getLogger(__name__)

#: Version of the on-disk dataset format written by :func:`write_image_dataset`.
DATASET_FORMAT_VERSION = 1

#: Skin tones from light to dark (RGB in [0, 1]); ``SKIN`` first.
SKIN_TONES: tuple[tuple[float, float, float], ...] = (
    SKIN,
    (0.88, 0.68, 0.54),
    (0.78, 0.58, 0.43),
    (0.64, 0.45, 0.32),
    (0.48, 0.33, 0.23),
    (0.36, 0.25, 0.18),
)

_BACKGROUND_CHOICES: tuple[str, ...] = ("random", "plain", *BACKGROUND_KINDS)
# Crease angle above which object vertices are split for shading (sharp box edges stay sharp).
_CREASE_ANGLE_RAD = math.radians(30.0)
# A contact face within this distance behind the rendered depth counts as visible when scoring views (metres).
_VISIBILITY_TOLERANCE_M = 0.004
# Light direction used before jitter, camera frame, from the scene towards the light (above-left of the camera).
_BASE_LIGHT_CAMERA = np.array([-0.3, -0.5, -1.0]) / np.linalg.norm([-0.3, -0.5, -1.0])
#: Renderers of ``ImageConfig.renderer``: open3d ray casting (fast, default), the numpy rasteriser (reference) and
#: the torch ray caster (no open3d; on CUDA when available).
RENDERERS: tuple[str, ...] = ("raycast", "raster", "torch")
# Crease-split object meshes by canonical mesh (see _crease_split); a few objects are reused across many grasps.
_SPLIT_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_SPLIT_CACHE_SIZE = 64


@dataclass
class ImageConfig:
    """How synthetic grasp images are rendered (see the module docstring for the camera model).

    size: side of the square crop in pixels (HACO: 256).
    crop_scale: enlargement of the tight hand–object box (HACO's ``bbox_ho``: 1.3 for hand–object data).
    sensor_size: (width, height) of the virtual full sensor in pixels, before cropping.
    focal_range_px: range of fx = fy of the full sensor, pixels (DexYCB/HO3D RealSense: about 615).
    center_offset_fraction: the hand–object centre lands at most this fraction of the sensor's width/height away
        from the sensor centre (0: always on the optical axis).
    distance_range_m: range of the camera distance to the hand–object centre, metres.
    azimuth_range_deg: range of the azimuth about the hand's forward axis; 0 = palm side, 180 = back of the hand.
    elevation_range_deg: range of the elevation towards the fingertips (+) or the wrist (-), within [-85, 85].
    roll_range_deg: range of the rotation about the optical axis; 0 = fingers pointing up in the image.
    max_view_tries: candidate views tried before keeping the best rejected one.
    min_hand_fraction: candidates whose visible hand covers less than this fraction of the crop are rejected.
    min_visible_contact: candidates showing less than this area fraction of the hand's contact faces are rejected
        (a face is visible when its centroid is within 4 mm of the rendered depth; 0 disables the test).
    candidate_size: side in pixels of the cheap renders used to score candidates.
    background: "random" (a procedural kind per image), "plain", or one of "gradient", "noise", "checker", "blobs".
    plain_color: RGB in [0, 1] of "plain" backgrounds; None draws a random colour per image.
    background_grain: range of the std of the per-pixel grain added to procedural backgrounds (0..1 units).
    skin_tones: hand albedos to choose from, RGB in [0, 1].
    skin_jitter: max per-channel change of the chosen skin tone.
    object_palette: object albedos to choose from, RGB in [0, 1].
    object_color_jitter: max per-channel change of the chosen object colour.
    light_jitter: std of the Gaussian perturbation of the (unit) headlight direction; 0 = fixed headlight.
    ambient_range: range of the ambient share of the Lambert + ambient shading, within [0, 1].
    supersample: samples per pixel along each axis for anti-aliasing (1 to 8).
    renderer: "raycast" (open3d ray casting, :mod:`haco_grasp.viz.raycast`; anti-aliases edge pixels only) or
        "raster" (the numpy rasteriser :mod:`haco_grasp.viz.render`, the reference; 5-10x slower). Both give the
        same views, masks and depth (tests/viz/test_raycast.py compares them). "torch" is the ray caster with
        :func:`haco_grasp.viz.raycast.cast_camera_rays` instead of open3d (on CUDA when available): brute force over
        every triangle, for a GPU machine without open3d; on the CPU it is far slower (about 8 s per 256-px crop
        on the 2-core machine, ``benchmarks/render_speed.py``).
    """

    size: int = 256
    crop_scale: float = 1.3
    sensor_size: tuple[int, int] = (640, 480)
    focal_range_px: tuple[float, float] = (500.0, 700.0)
    center_offset_fraction: float = 0.25
    distance_range_m: tuple[float, float] = (0.35, 0.8)
    azimuth_range_deg: tuple[float, float] = (-180.0, 180.0)
    elevation_range_deg: tuple[float, float] = (-60.0, 60.0)
    roll_range_deg: tuple[float, float] = (-90.0, 90.0)
    max_view_tries: int = 16
    min_hand_fraction: float = 0.03
    min_visible_contact: float = 0.05
    candidate_size: int = 64
    background: str = "random"
    plain_color: tuple[float, float, float] | None = None
    background_grain: tuple[float, float] = (0.0, 0.03)
    skin_tones: tuple[tuple[float, float, float], ...] = SKIN_TONES
    skin_jitter: float = 0.04
    object_palette: tuple[tuple[float, float, float], ...] = OBJECT_PALETTE
    object_color_jitter: float = 0.08
    light_jitter: float = 0.5
    ambient_range: tuple[float, float] = (0.25, 0.55)
    supersample: int = 2
    renderer: str = "raycast"

    def __post_init__(self) -> None:
        for name in ("size", "max_view_tries", "candidate_size", "supersample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"ImageConfig.{name} must be a positive int, got {value!r}")
            setattr(self, name, int(value))
        if self.supersample > 8:
            raise InputError(f"ImageConfig.supersample must be in [1, 8], got {self.supersample}")
        sensor = tuple(self.sensor_size)
        if len(sensor) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in sensor
        ):
            raise InputError(f"ImageConfig.sensor_size must be (width, height) positive ints, got {self.sensor_size!r}")
        self.sensor_size = (int(sensor[0]), int(sensor[1]))
        for name, low, high in (
            ("focal_range_px", 1e-6, math.inf),
            ("distance_range_m", 1e-3, math.inf),
            ("azimuth_range_deg", -360.0, 360.0),
            ("elevation_range_deg", -85.0, 85.0),
            ("roll_range_deg", -360.0, 360.0),
            ("background_grain", 0.0, 1.0),
            ("ambient_range", 0.0, 1.0),
        ):
            setattr(self, name, _check_range(getattr(self, name), f"ImageConfig.{name}", low, high))
        for name, low, high in (
            ("crop_scale", 1e-3, 100.0),
            ("center_offset_fraction", 0.0, 0.5),
            ("min_hand_fraction", 0.0, 1.0),
            ("min_visible_contact", 0.0, 1.0),
            ("skin_jitter", 0.0, 1.0),
            ("object_color_jitter", 0.0, 1.0),
            ("light_jitter", 0.0, math.inf),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not low <= value <= high:
                raise InputError(f"ImageConfig.{name} must be a number in [{low}, {high}], got {value!r}")
            setattr(self, name, float(value))
        if self.background not in _BACKGROUND_CHOICES:
            raise InputError(
                f"ImageConfig.background must be one of {', '.join(_BACKGROUND_CHOICES)}, got {self.background!r}"
            )
        if self.renderer not in RENDERERS:
            raise InputError(f"ImageConfig.renderer must be one of {', '.join(RENDERERS)}, got {self.renderer!r}")
        if self.plain_color is not None:
            self.plain_color = tuple(_check_colors([self.plain_color], "ImageConfig.plain_color")[0])
        self.skin_tones = tuple(tuple(c) for c in _check_colors(self.skin_tones, "ImageConfig.skin_tones"))
        self.object_palette = tuple(tuple(c) for c in _check_colors(self.object_palette, "ImageConfig.object_palette"))

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-serialisable values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImageConfig:
        """Inverse of :meth:`to_dict` (e.g. the ``"config"`` entry of a dataset's ``config.json``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"unknown ImageConfig field(s) {unknown}; expected some of {sorted(names)}")

        def as_tuple(value: Any) -> Any:
            return tuple(as_tuple(v) for v in value) if isinstance(value, list) else value

        return cls(**{key: as_tuple(value) for key, value in values.items()})


def _check_range(value: Any, name: str, low: float, high: float) -> tuple[float, float]:
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if len(pair) != 2 or not all(np.isfinite(pair)) or not low <= pair[0] <= pair[1] <= high:
        raise InputError(f"{name} must be a finite (low, high) pair with {low} <= low <= high <= {high}, got {value!r}")
    return pair  # type: ignore[return-value]


def _check_colors(colors: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(colors, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be RGB triples in [0, 1], got {colors!r}") from None
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] != 3:
        raise InputError(f"{name} must be a non-empty list of RGB triples, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise InputError(f"{name} must be RGB floats in [0, 1]; divide 8-bit colours by 255")
    return array


# ----------------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class GraspImage:
    """One rendered crop and its annotations (H = W = ``ImageConfig.size``).

    image: (H, W, 3) uint8 RGB crop around hand and object.
    K: (3, 3) float64, intrinsics of the crop: ``project(x_world @ R.T + t)`` with ``K`` gives crop pixels.
    R: (3, 3) float64, world -> camera rotation. t: (3,) float64, world -> camera translation, metres.
    K_full: (3, 3) float64, intrinsics of the virtual full sensor (same R, t).
    full_size: (2,) int64, (width, height) of the virtual full sensor.
    crop_box: (4,) float64, (x0, y0, x1, y1) crop edges in full-sensor pixels (pixel centres at integers); square.
    joints_2d: (21, 2) float64, crop pixels (u, v), DexYCB joint order.
    joints_3d_cam: (21, 3) float64, camera frame, metres.
    hand_mask: (H, W) bool, visible hand pixels. obj_mask: (H, W) bool, visible object pixels.
    depth: (H, W) float32, camera z of the visible surface at each pixel centre, metres; inf on the background.
    params: the sampled view and appearance parameters (JSON-serialisable): azimuth/elevation/roll in degrees,
        distance in metres, focal in pixels, background kind, colours, light direction (camera frame), ambient.
    """

    image: np.ndarray
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    K_full: np.ndarray
    full_size: np.ndarray
    crop_box: np.ndarray
    joints_2d: np.ndarray
    joints_3d_cam: np.ndarray
    hand_mask: np.ndarray
    obj_mask: np.ndarray
    depth: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def camera(self) -> Camera:
        """The crop camera as a :class:`~haco_grasp.viz.render.Camera`."""
        return Camera(K=self.K, R=self.R, t=self.t, width=self.image.shape[1], height=self.image.shape[0])


class _Scene(NamedTuple):
    """Validated geometry of one grasp, world frame."""

    hand_verts: np.ndarray  # (V, 3) float64
    hand_faces: np.ndarray  # (F, 3) int64
    joints: np.ndarray  # (21, 3) float64
    obj_verts: np.ndarray  # (Vo, 3) float64
    obj_faces: np.ndarray  # (Fo, 3) int64
    obj_corners: np.ndarray  # (8, 3) float64, object's canonical bounding box in the world frame
    obj_canonical: np.ndarray  # (Vo, 3) float64, object vertices in its canonical frame
    obj_rotation: np.ndarray  # (3, 3) float64, canonical -> world
    obj_translation: np.ndarray  # (3,) float64, metres
    contact_centroids: np.ndarray  # (P, 3) float64, centroids of the hand faces touching a contact vertex
    contact_area: np.ndarray  # (P,) float64, their areas, m^2
    side: str


class _View(NamedTuple):
    """A full-sensor camera and its crop."""

    K_full: np.ndarray  # (3, 3)
    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,)
    crop_box: np.ndarray  # (4,)
    params: dict


# ----------------------------------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------------------------------


def _scene(grasp: Grasp) -> _Scene:
    if not isinstance(grasp, Grasp):
        raise InputError(f"expected a haco_grasp.data.grasp.Grasp, got {type(grasp).__name__}")

    def array(value: Any, name: str, shape: tuple[int | None, ...], dtype: Any = np.float64) -> np.ndarray:
        result = to_numpy(value)
        ok = result.ndim == len(shape) and all(s is None or s == r for s, r in zip(shape, result.shape, strict=True))
        if not ok:
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise InputError(f"Grasp.{name} must have shape {want}, got {result.shape}")
        result = result.astype(dtype)
        if dtype is np.float64 and not np.all(np.isfinite(result)):
            raise InputError(f"Grasp.{name} contains NaN or inf values")
        return result

    hand_verts = array(grasp.hand_verts, "hand_verts", (None, 3))
    hand_faces = array(grasp.hand_faces, "hand_faces", (None, 3), np.int64)
    joints = array(grasp.hand_joints, "hand_joints", (21, 3))
    canonical = array(grasp.obj_verts_canonical, "obj_verts_canonical", (None, 3))
    obj_faces = array(grasp.obj_faces, "obj_faces", (None, 3), np.int64)
    rotation = array(grasp.obj_rotation, "obj_rotation", (3, 3))
    translation = array(grasp.obj_translation, "obj_translation", (3,))
    contact = array(grasp.hand_contact, "hand_contact", (len(hand_verts),))
    if len(hand_verts) == 0 or len(hand_faces) == 0 or len(canonical) == 0 or len(obj_faces) == 0:
        raise InputError("Grasp needs a non-empty hand mesh and a non-empty object mesh to be rendered")
    for name, faces, count in (("hand_faces", hand_faces, len(hand_verts)), ("obj_faces", obj_faces, len(canonical))):
        if faces.min() < 0 or faces.max() >= count:
            raise InputError(f"Grasp.{name} index vertices in [{faces.min()}, {faces.max()}] but there are {count}")
    if grasp.side not in ("right", "left"):
        raise InputError(f"Grasp.side must be 'right' or 'left', got {grasp.side!r}")
    contact_triangles = hand_verts[hand_faces[(contact[hand_faces] > 0.5).any(axis=1)]]  # (P, 3, 3)
    edge_1 = contact_triangles[:, 1] - contact_triangles[:, 0]
    edge_2 = contact_triangles[:, 2] - contact_triangles[:, 0]
    low, high = canonical.min(axis=0), canonical.max(axis=0)
    corners = np.array([[(low, high)[(k >> a) & 1][a] for a in range(3)] for k in range(8)])  # (8, 3)
    return _Scene(
        hand_verts=hand_verts,
        hand_faces=hand_faces,
        joints=joints,
        obj_verts=canonical @ rotation.T + translation,
        obj_faces=obj_faces,
        obj_corners=corners @ rotation.T + translation,
        obj_canonical=canonical,
        obj_rotation=rotation,
        obj_translation=translation,
        contact_centroids=contact_triangles.mean(axis=1),
        contact_area=0.5 * np.linalg.norm(np.cross(edge_1, edge_2), axis=1),
        side=grasp.side,
    )


def _hand_frame(joints: np.ndarray, side: str) -> np.ndarray:
    """Rows: forward (wrist -> middle knuckle), palm normal (out of the palm), lateral = palm x forward.

    joints: (21, 3) float64, DexYCB order
    returns: (3, 3) float64, orthonormal rows
    """
    forward = joints[9] - joints[0]
    # For a right hand (index1 - wrist) x (pinky1 - wrist) points out of the palm; mirrored for a left hand.
    palm = np.cross(joints[5] - joints[0], joints[17] - joints[0]) * (1.0 if side == "right" else -1.0)
    if np.linalg.norm(forward) < 1e-9 or np.linalg.norm(palm) < 1e-12:
        return np.eye(3)  # degenerate joints: fall back to the world axes
    forward = forward / np.linalg.norm(forward)
    palm = palm - (palm @ forward) * forward
    if np.linalg.norm(palm) < 1e-12:
        return np.eye(3)
    palm = palm / np.linalg.norm(palm)
    return np.stack([forward, palm, np.cross(palm, forward)])


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector ``a`` to unit vector ``b`` (requires a . b > -1)."""
    v = np.cross(a, b)
    c = float(a @ b)
    skew = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + skew + skew @ skew / (1.0 + c)


def _square_box(points_2d: np.ndarray, scale: float) -> np.ndarray:
    """Square box (x0, y0, x1, y1) around points, side = scale * max(width, height) of their tight box."""
    low, high = points_2d.min(axis=0), points_2d.max(axis=0)
    centre = 0.5 * (low + high)
    half = 0.5 * max(scale * float(np.max(high - low)), 1e-6)
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def crop_intrinsics(K_full: Any, crop_box: Any, size: int) -> np.ndarray:
    """Intrinsics of a square crop rendered at ``size`` x ``size`` pixels (pixel centres at integers).

    Full-sensor coordinate x0 (the crop's left edge) maps to -0.5 (the left edge of crop pixel 0) and x1 to
    ``size - 0.5``.

    K_full: (3, 3) float, intrinsics of the full sensor, pixels
    crop_box: (4,) float, (x0, y0, x1, y1) crop edges in full-sensor pixels, square (x1 - x0 = y1 - y0 > 0)
    size: side of the crop in pixels
    returns: (3, 3) float64 crop intrinsics
    """
    K_full = np.asarray(K_full, dtype=np.float64)
    box = np.asarray(crop_box, dtype=np.float64)
    if K_full.shape != (3, 3) or box.shape != (4,) or not np.all(np.isfinite(box)):
        raise InputError(f"crop_intrinsics needs K_full (3, 3) and crop_box (4,), got {K_full.shape}, {box.shape}")
    side_x, side_y = box[2] - box[0], box[3] - box[1]
    if side_x <= 0.0 or not np.isclose(side_x, side_y, rtol=1e-9, atol=1e-9):
        raise InputError(f"crop_box must be square with positive side, got (x0, y0, x1, y1) = {box.tolist()}")
    scale = size / side_x
    affine = np.array([[scale, 0.0, -scale * box[0] - 0.5], [0.0, scale, -scale * box[1] - 0.5], [0.0, 0.0, 1.0]])
    return affine @ K_full


def _sample_view(
    scene: _Scene, frame: np.ndarray, centre: np.ndarray, rng: np.random.Generator, cfg: ImageConfig
) -> _View | None:
    """A random full-sensor camera and its crop (None when the camera would sit inside the hand-object box)."""
    width, height = cfg.sensor_size
    focal = rng.uniform(*cfg.focal_range_px)
    distance = rng.uniform(*cfg.distance_range_m)
    azimuth = rng.uniform(*cfg.azimuth_range_deg)
    elevation = rng.uniform(*cfg.elevation_range_deg)
    roll = rng.uniform(*cfg.roll_range_deg)
    offset = rng.uniform(-cfg.center_offset_fraction, cfg.center_offset_fraction, size=2) * (width, height)
    forward, palm, lateral = frame
    az, el, ro = (math.radians(a) for a in (azimuth, elevation, roll))
    direction = math.cos(el) * (math.cos(az) * palm + math.sin(az) * lateral) + math.sin(el) * forward
    up = forward - (forward @ direction) * direction  # elevation <= 85 degrees keeps |up| >= sin(5 degrees)
    up /= np.linalg.norm(up)
    up = math.cos(ro) * up + math.sin(ro) * np.cross(direction, up)
    look = Camera.look_at(centre + distance * direction, centre, up)
    K_full = np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    target = np.array([(width - 1) / 2.0 + offset[0], (height - 1) / 2.0 + offset[1], 1.0])
    ray = np.linalg.solve(K_full, target)
    turn = _rotation_between(np.array([0.0, 0.0, 1.0]), ray / np.linalg.norm(ray))  # centre: +z axis -> ray
    R, t = turn @ look.R, turn @ look.t
    points = np.concatenate([scene.joints, scene.obj_corners]) @ R.T + t  # (29, 3) camera frame
    if np.any(points[:, 2] <= 1e-3):
        return None  # the camera sits inside the hand-object box: too close
    pixels = points @ K_full.T
    crop_box = _square_box(pixels[:, :2] / pixels[:, 2:], cfg.crop_scale)
    params = {
        "azimuth_deg": azimuth,
        "elevation_deg": elevation,
        "roll_deg": roll,
        "distance_m": distance,
        "focal_px": focal,
    }
    return _View(K_full=K_full, R=R, t=t, crop_box=crop_box, params=params)


def _crease_split(canonical: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object mesh with vertices split at creases sharper than 30 degrees (cached per canonical mesh).

    The split depends only on angles between faces, so it is computed once per object in its canonical frame
    (synthetic datasets reuse a few objects over thousands of grasps) and moved to the world by the caller.

    Args:
        canonical: (Vo, 3) float64 canonical vertices, metres.
        faces: (Fo, 3) int64.

    Returns:
        split vertices (Vs, 3) float64 canonical frame, split faces (Fo, 3) int64.
    """
    key = hashlib.sha1(canonical.tobytes() + faces.tobytes()).hexdigest()
    cached = _SPLIT_CACHE.get(key)
    if cached is None:
        import trimesh

        mesh = trimesh.Trimesh(vertices=canonical, faces=faces, process=False)
        split = trimesh.graph.smooth_shade(mesh, angle=_CREASE_ANGLE_RAD)
        cached = (np.asarray(split.vertices, dtype=np.float64), np.asarray(split.faces, dtype=np.int64))
        if len(_SPLIT_CACHE) >= _SPLIT_CACHE_SIZE:
            _SPLIT_CACHE.pop(next(iter(_SPLIT_CACHE)))
        _SPLIT_CACHE[key] = cached
    return cached


def _layers(
    scene: _Scene, skin: Any = SKIN, obj_color: Any = OBJECT_PALETTE[0], smooth_object: bool = False
) -> list[MeshLayer]:
    """Hand (layer 0) and object (layer 1); ``smooth_object`` splits object vertices at sharp creases."""
    hand = MeshLayer(scene.hand_verts, scene.hand_faces, skin)
    if smooth_object:
        split_verts, split_faces = _crease_split(scene.obj_canonical, scene.obj_faces)
        world = split_verts @ scene.obj_rotation.T + scene.obj_translation  # (Vs, 3)
        obj = MeshLayer(world, split_faces, obj_color)
    else:
        obj = MeshLayer(scene.obj_verts, scene.obj_faces, obj_color)
    return [hand, obj]


class _SceneRenderer:
    """Renders one grasp's hand and object with the configured renderer (``ImageConfig.renderer``).

    ``"raycast"`` builds one open3d ray-casting structure for the grasp and reuses it for every candidate view and
    the final image (``"torch"``: the same with the torch ray caster); ``"raster"`` calls the numpy rasteriser each
    time (the reference).
    """

    def __init__(self, scene: _Scene, renderer: str) -> None:
        self.scene = scene
        self.renderer = renderer
        if renderer in ("raycast", "torch"):
            from haco_grasp.viz.raycast import RaycastRenderer  # lazy: open3d for "raycast"

            backend = "open3d" if renderer == "raycast" else "torch"
            self._raycaster = RaycastRenderer(_layers(scene, smooth_object=True), backend=backend)
        else:
            self._candidate_layers = _layers(scene)

    def depth_and_mask(self, camera: Camera) -> RenderResult:
        """Unshaded render at the pixel centres (depth, layer mask), for scoring views."""
        if self.renderer != "raster":
            return self._raycaster.render(camera, supersample=1, shade=False)
        return render(self._candidate_layers, camera, supersample=1)

    def final(
        self, camera: Camera, skin: np.ndarray, obj_color: np.ndarray, background: np.ndarray, light_world: np.ndarray,
        ambient: float, supersample: int,
    ) -> RenderResult:  # fmt: skip
        """The shaded, anti-aliased image with its depth and masks."""
        if self.renderer != "raster":
            return self._raycaster.with_colors([skin, obj_color]).render(
                camera, background=background, light_dir=light_world, ambient=ambient, supersample=supersample
            )
        return render(
            _layers(self.scene, skin, obj_color, smooth_object=True),
            camera,
            background=background,
            light_dir=light_world,
            ambient=ambient,
            supersample=supersample,
        )


def _view_visibility(scene: _Scene, renderer: _SceneRenderer, view: _View, size: int) -> tuple[float, float]:
    """(visible hand fraction of the crop, visible area fraction of the contact faces) at ``size`` pixels.

    A contact face counts as visible when its centroid projects into the crop and is no more than
    ``_VISIBILITY_TOLERANCE_M`` behind the rendered depth there (a depth-map visibility test, nearly independent
    of ``size``, unlike counting the faces that win a pixel).
    """
    camera = Camera(crop_intrinsics(view.K_full, view.crop_box, size), view.R, view.t, size, size)
    result = renderer.depth_and_mask(camera)
    hand_fraction = float((result.mask == 0).mean())
    if scene.contact_area.sum() <= 0.0:
        return hand_fraction, 1.0
    projection = camera.project(scene.contact_centroids)
    pixel = np.rint(projection.pixels).astype(np.int64)  # (P, 2)
    inside = np.all((pixel >= 0) & (pixel < size), axis=1) & (projection.depth > 0.0)
    surface = np.full(len(pixel), -np.inf)
    surface[inside] = result.depth[pixel[inside, 1], pixel[inside, 0]]
    visible = surface >= projection.depth - _VISIBILITY_TOLERANCE_M
    return hand_fraction, float(scene.contact_area[visible].sum() / scene.contact_area.sum())


def _choose_view(scene: _Scene, renderer: _SceneRenderer, rng: np.random.Generator, cfg: ImageConfig) -> _View:
    """First candidate view passing the visibility tests (see the module docstring), else the best one tried."""
    frame = _hand_frame(scene.joints, scene.side)
    points = np.concatenate([scene.joints, scene.obj_corners])
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    best: tuple[tuple[bool, float, float], _View] | None = None
    for _ in range(cfg.max_view_tries):
        view = _sample_view(scene, frame, centre, rng, cfg)
        if view is None:
            continue
        hand_fraction, contact_fraction = _view_visibility(scene, renderer, view, cfg.candidate_size)
        enough_hand = hand_fraction >= cfg.min_hand_fraction and hand_fraction > 0.0
        if enough_hand and contact_fraction >= cfg.min_visible_contact:
            view.params.update(hand_fraction=hand_fraction, visible_contact=contact_fraction)
            return view
        key = (enough_hand, contact_fraction, hand_fraction)
        if best is None or key > best[0]:
            view.params.update(hand_fraction=hand_fraction, visible_contact=contact_fraction)
            best = (key, view)
    if best is None:
        raise InputError(
            "every sampled camera lies inside the hand–object box; raise ImageConfig.distance_range_m "
            f"(got {cfg.distance_range_m})"
        )
    logger.warning(
        "no view out of %d showed >= %.0f%% of the crop as hand and >= %.0f%% of the contact faces; keeping the best",
        cfg.max_view_tries,
        100 * cfg.min_hand_fraction,
        100 * cfg.min_visible_contact,
    )
    return best[1]


# ----------------------------------------------------------------------------------------------------------------
# Appearance
# ----------------------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, cfg: ImageConfig) -> tuple[np.ndarray, str]:
    """(size, size, 3) uint8 background and its kind."""
    kind = cfg.background
    if kind == "random":
        kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    if kind == "plain":
        color = np.asarray(cfg.plain_color) if cfg.plain_color is not None else random_color(rng)
        image = np.broadcast_to(color, (cfg.size, cfg.size, 3))
    else:
        image = procedural_background(kind, rng, cfg.size, rng.uniform(*cfg.background_grain))
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8), kind


def _jitter(rng: np.random.Generator, colors: Sequence[Sequence[float]], amount: float) -> np.ndarray:
    base = np.asarray(colors[int(rng.integers(len(colors)))], dtype=np.float64)
    return np.clip(base + rng.uniform(-amount, amount, size=3), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------


def _as_rng(rng_or_seed: Any) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if isinstance(rng_or_seed, np.random.SeedSequence):
        return np.random.default_rng(rng_or_seed)
    if isinstance(rng_or_seed, bool) or not isinstance(rng_or_seed, (int, np.integer)) or rng_or_seed < 0:
        raise InputError(
            f"rng_or_seed must be a non-negative int seed or a numpy Generator, got {rng_or_seed!r}; "
            "pass e.g. 0 or np.random.default_rng(0)"
        )
    return np.random.default_rng(int(rng_or_seed))


def _check_config(config: Any) -> ImageConfig:
    if config is None:
        return ImageConfig()
    if not isinstance(config, ImageConfig):
        raise InputError(f"config must be an ImageConfig, got {type(config).__name__}; build one with ImageConfig()")
    return config


def render_grasp_image(
    grasp: Grasp, rng_or_seed: int | np.random.Generator = 0, config: ImageConfig | None = None
) -> GraspImage:
    """Render one grasp from a random viewpoint as a HACO-style square crop with its annotations.

    grasp: Grasp with hand_verts (V, 3), hand_faces (F, 3), hand_joints (21, 3), the object mesh and pose,
        hand_contact (V,) (used to prefer views showing the contact region)
    rng_or_seed: non-negative int seed (deterministic) or a numpy Generator (advanced in place)
    config: ImageConfig; None for the defaults
    returns: GraspImage with image (H, W, 3) uint8, K/R/t of the crop camera, crop_box (4,), joints_2d (21, 2)
        crop pixels, joints_3d_cam (21, 3) metres, hand_mask/obj_mask (H, W) bool, depth (H, W) float32 metres
    """
    cfg = _check_config(config)
    rng = _as_rng(rng_or_seed)
    scene = _scene(grasp)
    renderer = _SceneRenderer(scene, cfg.renderer)
    view = _choose_view(scene, renderer, rng, cfg)

    skin = _jitter(rng, cfg.skin_tones, cfg.skin_jitter)
    obj_color = _jitter(rng, cfg.object_palette, cfg.object_color_jitter)
    light_camera = _BASE_LIGHT_CAMERA + cfg.light_jitter * rng.normal(size=3)
    light_camera[2] = min(light_camera[2], -0.2)  # keep the light on the camera's side of the scene
    light_camera /= np.linalg.norm(light_camera)
    ambient = rng.uniform(*cfg.ambient_range)
    background, kind = _background(rng, cfg)

    K = crop_intrinsics(view.K_full, view.crop_box, cfg.size)
    camera = Camera(K=K, R=view.R, t=view.t, width=cfg.size, height=cfg.size)
    result = renderer.final(camera, skin, obj_color, background, view.R.T @ light_camera, ambient, cfg.supersample)
    joints_cam = scene.joints @ view.R.T + view.t
    params = dict(view.params)
    params.update(
        background=kind,
        skin_color=skin.tolist(),
        object_color=obj_color.tolist(),
        light_dir_camera=light_camera.tolist(),
        ambient=ambient,
    )
    return GraspImage(
        image=result.image,
        K=K,
        R=view.R,
        t=view.t,
        K_full=view.K_full,
        full_size=np.array(cfg.sensor_size, dtype=np.int64),
        crop_box=view.crop_box,
        joints_2d=camera.project(scene.joints).pixels,
        joints_3d_cam=joints_cam,
        hand_mask=result.mask == 0,
        obj_mask=result.mask == 1,
        depth=result.depth,
        params=params,
    )


def _check_grasps(grasps: Any) -> list[Grasp]:
    if isinstance(grasps, Grasp):
        return [grasps]
    items = list(grasps)
    for index, item in enumerate(items):
        if not isinstance(item, Grasp):
            raise InputError(f"grasps[{index}] must be a Grasp, got {type(item).__name__}")
    return items


def _image_seeds(seed: int, count: int) -> list[np.random.SeedSequence]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.SeedSequence(int(seed)).spawn(count)


def _progress(iterable: Any, enabled: bool, total: int, description: str) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=description, unit="img")


def render_grasp_images(
    grasps: Sequence[Grasp], seed: int = 0, config: ImageConfig | None = None, progress: bool = True
) -> list[GraspImage]:
    """Render one image per grasp; image ``i`` uses the stream ``SeedSequence(seed).spawn(n)[i]``.

    grasps: sequence of N Grasp
    seed: non-negative int
    config: ImageConfig; None for the defaults
    progress: show a progress bar
    returns: list of N GraspImage
    """
    items = _check_grasps(grasps)
    cfg = _check_config(config)
    seeds = _image_seeds(seed, len(items))
    pairs = _progress(zip(items, seeds, strict=True), progress, len(items), "rendering")
    return [render_grasp_image(grasp, np.random.default_rng(image_seed), cfg) for grasp, image_seed in pairs]


def write_image_dataset(
    grasps: Sequence[Grasp],
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    config: ImageConfig | None = None,
    progress: bool = True,
) -> Path:
    """Render one image per grasp and write ``images/%06d.png``, ``annotations.npz`` and ``config.json``.

    The format is documented in the module docstring. Existing files of the same names are overwritten; the
    annotations and config are written last (atomically), so a dataset with an ``annotations.npz`` is complete.

    grasps: sequence of N Grasp (each needs hand_contact (778,) for the contact labels)
    out_dir: folder to write (created if missing)
    seed: non-negative int; image i uses ``SeedSequence(seed).spawn(N)[i]`` (same images as render_grasp_images)
    config: ImageConfig; None for the defaults
    progress: show a progress bar
    returns: the dataset folder
    """
    import haco_grasp

    items = _check_grasps(grasps)
    if not items:
        raise InputError("write_image_dataset needs at least one grasp")
    cfg = _check_config(config)
    seeds = _image_seeds(seed, len(items))
    root = Path(out_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[Any]] = {}

    def add(**values: Any) -> None:
        for key, value in values.items():
            columns.setdefault(key, []).append(value)

    pairs = _progress(zip(items, seeds, strict=True), progress, len(items), "writing images")
    for index, (grasp, image_seed) in enumerate(pairs):
        result = render_grasp_image(grasp, np.random.default_rng(image_seed), cfg)
        name = f"images/{index:06d}.png"
        save_png(result.image, root / name)
        rotation, translation = np.asarray(grasp.obj_rotation), np.asarray(grasp.obj_translation)
        add(
            image_files=name,
            grasp_index=index,
            object_names=str(grasp.object_name),
            side=str(grasp.side),
            K=result.K,
            R=result.R,
            t=result.t,
            K_full=result.K_full,
            full_size=result.full_size,
            crop_box=result.crop_box,
            joints_2d=result.joints_2d,
            joints_3d_cam=result.joints_3d_cam,
            hand_verts_cam=(np.asarray(grasp.hand_verts, dtype=np.float64) @ result.R.T + result.t).astype(np.float32),
            obj_rotation_cam=result.R @ rotation,
            obj_translation_cam=result.R @ translation + result.t,
            hand_contact=np.asarray(grasp.hand_contact, dtype=np.float32),
            hand_pixels=int(result.hand_mask.sum()),
            obj_pixels=int(result.obj_mask.sum()),
        )
    shapes = {np.shape(v) for v in columns["hand_contact"]}
    if len(shapes) != 1:
        raise InputError(f"all grasps must have the same number of hand vertices for hand_contact, got {shapes}")
    arrays = {key: np.stack([np.asarray(v) for v in values]) for key, values in columns.items()}
    arrays["image_files"] = np.asarray(columns["image_files"], dtype=str)
    arrays["object_names"] = np.asarray(columns["object_names"], dtype=str)
    arrays["side"] = np.asarray(columns["side"], dtype=str)
    arrays["grasp_index"] = arrays["grasp_index"].astype(np.int64)
    with atomic_open(root / "annotations.npz") as stream:
        np.savez_compressed(stream, **arrays)
    provenance = {
        "format": "haco_grasp.images",
        "format_version": DATASET_FORMAT_VERSION,
        "haco_grasp_version": getattr(haco_grasp, "__version__", "unknown"),
        "seed": int(seed),
        "count": len(items),
        "config": cfg.to_dict(),
    }
    text = json.dumps(provenance, indent=2) + "\n"
    atomic_write_bytes(root / "config.json", text.encode())
    return root
