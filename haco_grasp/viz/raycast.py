"""A fast CPU renderer through open3d's Embree ray caster, with the output of :func:`haco_grasp.viz.render.render`.

:class:`RaycastRenderer` builds one bounding-volume hierarchy over the mesh layers (about a millisecond for a MANO
hand and a few-thousand-face object) and then renders any number of cameras: one ray through every pixel centre
gives depth, layer mask and face index exactly as the rasteriser's pixel-centre pass does; colour comes from the
same Lambert + ambient shading of the same interpolated vertex normals and colours (two-sided, as in
:mod:`haco_grasp.viz.render`). It exists to make synthetic training images (:mod:`haco_grasp.data.images`) at
tens of images per second on two CPU cores; the numpy rasteriser stays the reference the tests compare it with.

Conventions are those of :mod:`haco_grasp.viz.render` (OpenCV pinhole, ``x_cam = x_world @ R.T + t``, pixel
centres at integers, ``depth`` = camera z, metres). Differences, all small and measured by
``tests/viz/test_raycast.py`` against the rasteriser:

- **Anti-aliasing is adaptive.** ``supersample = s`` casts ``s x s`` extra rays (at the rasteriser's sample
  positions, ``u + (k + 0.5) / s - 0.5``) only in pixels next to a change of layer or a depth step of more than
  ``edge_depth_step_m`` (silhouettes and occlusion edges) and box-averages them; other pixels keep their centre
  sample. The rasteriser averages ``s x s`` samples everywhere, which inside a smooth surface differs from the
  centre sample by well under one grey level.
- **No near-plane clipping**: rays start at the camera centre, so surfaces closer than the rasteriser's ``near``
  (0.1 mm) still render. Synthetic image cameras sit tens of centimetres away, where the two agree.
- **Float32** geometry (open3d's ray caster): depth agrees with the float64 rasteriser to about 1e-7 m.

open3d is imported when a renderer is built, never at module import, so code that only reads prepared datasets
(the GPU training path) does not need it installed. ``RaycastRenderer(meshes, backend="torch")`` needs no open3d
at all: :func:`cast_camera_rays` intersects every ray with every triangle in batched torch (one GEMM per chunk of
rays), the same depth, masks and faces to float32 precision, made for a GPU (on the 2-core CPU it takes about 8 s
per 256-px crop, against about 30 ms with open3d).

Speed (256 x 256, 778-vertex hand + 2.9k-face object, ``supersample=2``): see ``benchmarks/render_speed.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from haco_grasp.errors import InputError
from haco_grasp.viz.render import Camera, MeshLayer, RenderResult, _background_image, _unit

# A depth step larger than this between neighbouring pixels marks an occlusion edge to anti-alias (metres).
EDGE_DEPTH_STEP_M = 0.01
# Default light when ``light_dir`` is None: the rasteriser's headlight, camera frame, scene -> light.
_HEADLIGHT_CAMERA = np.array([-0.3, -0.5, -1.0]) / np.linalg.norm([-0.3, -0.5, -1.0])
#: Ray casters of :class:`RaycastRenderer`: open3d's Embree BVH, or :func:`cast_camera_rays` in torch (no open3d).
RAYCAST_BACKENDS: tuple[str, ...] = ("open3d", "torch")
# open3d's id of "no hit".
_INVALID_ID = np.iinfo(np.uint32).max


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (as :func:`haco_grasp.geometry.mesh.vertex_normals`, in numpy).

    Args:
        verts: (V, 3) float64, metres.
        faces: (F, 3) int64.

    Returns:
        normals: (V, 3) float64, unit length; zero where undefined.
    """
    corners = verts[faces]  # (F, 3, 3)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # (F, 3)
    summed = np.zeros_like(verts)
    for corner in range(3):
        np.add.at(summed, faces[:, corner], cross)
    norm = np.linalg.norm(summed, axis=1, keepdims=True)
    return np.divide(summed, norm, out=np.zeros_like(summed), where=norm > 1e-20)


class RaycastRenderer:
    """Renders fixed mesh layers from any camera with open3d's ray caster (output of ``viz.render.render``).

    Args:
        meshes: sequence of MeshLayer (world frame, metres); ``mask`` in the results indexes into it.
        backend: "open3d" (Embree BVH, fast on the CPU) or "torch" (:func:`cast_camera_rays`, brute force over
            every triangle: for a GPU, or a machine without open3d).
        device: torch device of the "torch" backend ("auto": CUDA when available).

    Raises:
        InputError: when ``meshes`` is not a sequence of MeshLayer, or on an unknown backend.
    """

    def __init__(self, meshes: Sequence[MeshLayer], backend: str = "open3d", device: Any = "auto") -> None:
        if backend not in RAYCAST_BACKENDS:
            raise InputError(f"RaycastRenderer backend must be one of {', '.join(RAYCAST_BACKENDS)}, got {backend!r}")
        self.backend = backend
        if backend == "open3d":
            import open3d as o3d  # lazy: heavy, and not needed to read prepared datasets

        if isinstance(meshes, MeshLayer):
            meshes = [meshes]
        if not all(isinstance(mesh, MeshLayer) for mesh in meshes):
            raise InputError(
                "RaycastRenderer expects a sequence of MeshLayer; wrap arrays as MeshLayer(verts, faces, colours)"
            )
        self.meshes = list(meshes)
        self._scene = o3d.t.geometry.RaycastingScene() if backend == "open3d" else None
        self._layer_of_geometry: dict[int, int] = {}
        self._corners: list[np.ndarray] = []  # per layer (F, 3, 3) float64 world positions
        self._corner_normals: list[np.ndarray] = []  # per layer (F, 3, 3) float64, unnormalised
        self._corner_colors: list[np.ndarray] = []  # per layer (F, 3, 3) float64
        for layer_index, mesh in enumerate(self.meshes):
            corners = mesh.verts[mesh.faces]  # (F, 3, 3)
            if mesh.smooth:
                normals = _vertex_normals(mesh.verts, mesh.faces)[mesh.faces]  # (F, 3, 3)
            else:
                cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
                normals = np.repeat(cross[:, None, :], 3, axis=1)
            self._corners.append(corners)
            self._corner_normals.append(normals)
            self._corner_colors.append(mesh.per_vertex_colors()[mesh.faces])
            if len(mesh.faces) == 0 or backend != "open3d":
                continue
            geometry = self._scene.add_triangles(mesh.verts.astype(np.float32), mesh.faces.astype(np.uint32))
            self._layer_of_geometry[int(geometry)] = layer_index
        used = [mesh.verts[np.unique(mesh.faces)] for mesh in self.meshes if len(mesh.faces)]
        self._all_verts = np.concatenate(used) if used else np.zeros((0, 3))  # (V, 3) vertices of some face
        # Stacked per-face tables over all layers, indexed by a global face number.
        sizes = [len(c) for c in self._corners]
        self._face_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._all_corners = np.concatenate(self._corners) if sizes else np.zeros((0, 3, 3))
        self._all_normals = (np.concatenate(self._corner_normals) if sizes else np.zeros((0, 3, 3))).astype(np.float32)
        self._all_colors = (np.concatenate(self._corner_colors) if sizes else np.zeros((0, 3, 3))).astype(np.float32)
        cross = np.cross(
            self._all_corners[:, 1] - self._all_corners[:, 0], self._all_corners[:, 2] - self._all_corners[:, 0]
        )  # (F, 3)
        norm = np.linalg.norm(cross, axis=1, keepdims=True)
        self._face_unit_normal = np.divide(cross, norm, out=np.zeros_like(cross), where=norm > 0).astype(np.float32)
        geometry_to_layer = np.full(max(self._layer_of_geometry, default=-1) + 1, -1, dtype=np.int64)
        for geometry, layer in self._layer_of_geometry.items():
            geometry_to_layer[geometry] = layer
        self._geometry_to_layer = geometry_to_layer
        if backend == "torch":
            from haco_grasp.devices import resolve_device

            self._device = resolve_device(device, "RaycastRenderer device")
            # float64 corners on the device; cast_camera_rays moves them to the camera centre before float32
            self._triangles = torch.as_tensor(self._all_corners, dtype=torch.float64, device=self._device)

    def with_colors(self, colors: Sequence[Any]) -> RaycastRenderer:
        """The same geometry (sharing the ray-casting structure) with new per-layer colours.

        Args:
            colors: one entry per layer: (3,) RGB in [0, 1] or (V, 3) per-vertex colours.

        Returns:
            a RaycastRenderer.
        """
        if len(colors) != len(self.meshes):
            raise InputError(f"with_colors needs one colour per layer ({len(self.meshes)}), got {len(colors)}")
        clone = object.__new__(RaycastRenderer)
        clone.__dict__.update(self.__dict__)
        pairs = zip(self.meshes, colors, strict=True)
        clone.meshes = [MeshLayer(mesh.verts, mesh.faces, color, mesh.smooth) for mesh, color in pairs]
        clone._corner_colors = [mesh.per_vertex_colors()[mesh.faces] for mesh in clone.meshes]
        clone._all_colors = (
            np.concatenate(clone._corner_colors) if clone._corner_colors else np.zeros((0, 3, 3))
        ).astype(np.float32)
        return clone

    def _cast(
        self, camera: Camera, u: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cast one ray through each pixel position.

        Args:
            camera: the Camera.
            u, v: (P,) float64 pixel positions, pixel centres at integers.

        Returns:
            depth (P,) float64 camera z (inf on a miss), global face (P,) int64 (-1 on a miss),
            barycentric (P, 3) float32, ray directions (P, 3) float32 world frame (camera z = 1).
        """
        # direction_world = R.T @ K^-1 @ (u, v, 1): affine in (u, v), camera z = 1 so t_hit is the camera z.
        to_world = (camera.R.T @ np.linalg.inv(camera.K)).astype(np.float32)  # (3, 3)
        rays = np.empty((len(u), 6), dtype=np.float32)
        rays[:, :3] = camera.center
        rays[:, 3:] = np.multiply.outer(u.astype(np.float32), to_world[:, 0])
        rays[:, 3:] += np.multiply.outer(v.astype(np.float32), to_world[:, 1])
        rays[:, 3:] += to_world[:, 2]
        if self.backend == "torch":
            origin = torch.as_tensor(np.asarray(camera.center, dtype=np.float64), device=self._device)
            directions = torch.from_numpy(rays[:, 3:]).to(self._device)
            t_hit, face_t, barycentric_t = cast_camera_rays(origin, directions, self._triangles)
            face = face_t.cpu().numpy()
            depth = t_hit.cpu().numpy().astype(np.float64)
            return depth, face, barycentric_t.cpu().numpy(), rays[:, 3:]
        hits = self._scene.cast_rays(rays)
        geometry = hits["geometry_ids"].numpy()
        hit = geometry != _INVALID_ID
        face = np.full(len(u), -1, dtype=np.int64)
        layer = self._geometry_to_layer[geometry[hit].astype(np.int64)]
        face[hit] = self._face_offset[layer] + hits["primitive_ids"].numpy()[hit].astype(np.int64)
        uv = hits["primitive_uvs"].numpy()
        barycentric = np.empty((len(u), 3), dtype=np.float32)
        barycentric[:, 1:] = uv
        barycentric[:, 0] = 1.0 - uv[:, 0] - uv[:, 1]
        depth = np.where(hit, hits["t_hit"].numpy().astype(np.float64), np.inf)
        return depth, face, barycentric, rays[:, 3:]

    def _shade(
        self, face: np.ndarray, barycentric: np.ndarray, direction: np.ndarray, light_world: np.ndarray, ambient: float
    ) -> np.ndarray:
        """Lambert + ambient colour of hits (two-sided: back faces use the flipped normal).

        Args:
            face: (S,) int64 global faces, all >= 0.
            barycentric: (S, 3) float64.
            direction: (S, 3) float64 world ray directions.
            light_world: (3,) unit, scene -> light.
            ambient: ambient share in [0, 1].

        Returns:
            (S, 3) float64 RGB in [0, 1].
        """
        weights = np.clip(barycentric, 0.0, None)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-30)
        normals, colors = self._all_normals[face], self._all_colors[face]  # (S, 3, 3) each
        normal = weights[:, 0:1] * normals[:, 0] + weights[:, 1:2] * normals[:, 1] + weights[:, 2:3] * normals[:, 2]
        albedo = weights[:, 0:1] * colors[:, 0] + weights[:, 1:2] * colors[:, 1] + weights[:, 2:3] * colors[:, 2]
        face_normal = self._face_unit_normal[face]  # (S, 3)
        # Front-facing when the winding normal points back towards the camera (against the ray).
        facing = np.where((face_normal * direction).sum(axis=1) <= 0.0, 1.0, -1.0).astype(np.float32)  # (S,)
        norm = np.sqrt((normal * normal).sum(axis=1, keepdims=True))
        normal = np.where(
            norm > 1e-12, normal * (facing[:, None] / np.maximum(norm, 1e-30)), face_normal * facing[:, None]
        )
        lambert = np.clip(normal @ light_world.astype(np.float32), 0.0, None)
        return np.clip(albedo * (ambient + (1.0 - ambient) * lambert)[:, None], 0.0, 1.0)

    def render(
        self,
        camera: Camera,
        background: Any = (1.0, 1.0, 1.0),
        light_dir: Any = None,
        ambient: float = 0.35,
        supersample: int = 2,
        shade: bool = True,
        edge_depth_step_m: float = EDGE_DEPTH_STEP_M,
    ) -> RenderResult:
        """Render the layers from ``camera`` (arguments as :func:`haco_grasp.viz.render.render`).

        Args:
            camera: Camera (OpenCV convention, pixel centres at integers).
            background: (3,) float RGB in [0, 1], or (H, W, 3) uint8 image of the camera's size.
            light_dir: (3,) float, world direction from the scene towards a directional light; None for the
                rasteriser's headlight.
            ambient: share of the albedo lit regardless of orientation, in [0, 1].
            supersample: rays per pixel along each axis at edges (1 to 8); 1 casts one ray per pixel.
            shade: False skips colour (the image is the background): depth and masks only, e.g. to score views.
            edge_depth_step_m: depth step between neighbouring pixels that counts as an edge, metres.

        Returns:
            RenderResult(image (H, W, 3) uint8, depth (H, W) float32 inf where empty, mask (H, W) int16 with -1 for
            background, face_index (H, W) int32 with -1 for background).

        Raises:
            InputError: on a bad camera, background, ambient or supersample.
        """

        if not isinstance(camera, Camera):
            raise InputError(f"RaycastRenderer.render expects a Camera, got {type(camera).__name__}")
        if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) or not 1 <= supersample <= 8:
            raise InputError(f"supersample must be an int in [1, 8], got {supersample!r}")
        if not 0.0 <= ambient <= 1.0:
            raise InputError(f"ambient must be in [0, 1], got {ambient}")
        width, height, factor = camera.width, camera.height, int(supersample)
        background_image = _background_image(background, width, height)  # (H, W, 3) float64
        light_world = camera.R.T @ _HEADLIGHT_CAMERA if light_dir is None else _unit(light_dir, "light_dir")

        # Rays only through the pixels that the meshes' projected bounding box can cover (exact: with every vertex in
        # front of the camera a triangle projects inside the hull of its projected corners); all pixels otherwise.
        u0, u1, v0, v1 = self._pixel_window(camera)
        us = np.tile(np.arange(u0, u1 + 1, dtype=np.float64), v1 - v0 + 1)  # (P,) row-major pixel centres
        vs = np.repeat(np.arange(v0, v1 + 1, dtype=np.float64), u1 - u0 + 1)
        pixel = vs.astype(np.int64) * width + us.astype(np.int64)  # (P,) flat pixel index
        window_depth, window_face, barycentric, direction = self._cast(camera, us, vs)
        depth = np.full(height * width, np.inf)
        depth[pixel] = window_depth
        hit_in_window = window_face >= 0
        hit_pixel = pixel[hit_in_window]
        face_hit = window_face[hit_in_window]
        layer = np.full(height * width, -1, dtype=np.int16)
        face_index = np.full(height * width, -1, dtype=np.int32)
        if hit_pixel.size:
            layer_of_face = np.searchsorted(self._face_offset, face_hit, side="right") - 1
            layer[hit_pixel] = layer_of_face
            face_index[hit_pixel] = face_hit - self._face_offset[layer_of_face]

        image = background_image.reshape(-1, 3).copy()
        if shade and hit_pixel.size:
            image[hit_pixel] = self._shade(
                face_hit, barycentric[hit_in_window], direction[hit_in_window], light_world, ambient
            )
            if factor > 1:
                edges = _edge_pixels(layer.reshape(height, width), depth.reshape(height, width), edge_depth_step_m)
                image = self._antialias(
                    camera, image, edges.ravel(), width, background_image.reshape(-1, 3), factor, light_world, ambient
                )
        return RenderResult(
            image=np.clip(np.rint(image.reshape(height, width, 3) * 255.0), 0, 255).astype(np.uint8),
            depth=depth.astype(np.float32).reshape(height, width),
            mask=layer.reshape(height, width),
            face_index=face_index.reshape(height, width),
        )

    def _pixel_window(self, camera: Camera) -> tuple[int, int, int, int]:
        """Inclusive pixel range (u0, u1, v0, v1) that the meshes can cover, one pixel of margin; the whole image
        when a vertex lies at or behind the camera plane (or there is no geometry)."""
        full = (0, camera.width - 1, 0, camera.height - 1)
        if len(self._all_verts) == 0:
            return full
        cam = self._all_verts @ camera.R.T + camera.t  # (V, 3)
        if cam[:, 2].min() <= 1e-6:
            return full
        projected = cam @ camera.K.T  # (V, 3)
        u = projected[:, 0] / projected[:, 2]
        v = projected[:, 1] / projected[:, 2]
        u0 = max(int(np.floor(u.min())) - 1, 0)
        u1 = min(int(np.ceil(u.max())) + 1, camera.width - 1)
        v0 = max(int(np.floor(v.min())) - 1, 0)
        v1 = min(int(np.ceil(v.max())) + 1, camera.height - 1)
        if u0 > u1 or v0 > v1:  # entirely outside the image: cast one ray so that the arrays are not empty
            return 0, 0, 0, 0
        return u0, u1, v0, v1

    def _antialias(
        self,
        camera: Camera,
        image: np.ndarray,
        edges: np.ndarray,
        width: int,
        background: np.ndarray,
        factor: int,
        light_world: np.ndarray,
        ambient: float,
    ) -> np.ndarray:
        """Replace edge pixels by the box average of ``factor x factor`` samples (the rasteriser's positions).

        Args:
            image: (H*W, 3) float64 centre-sample colours; edges: (H*W,) bool; width: W;
            background: (H*W, 3) float64.

        Returns:
            (H*W, 3) float64.
        """
        pixel = np.flatnonzero(edges)
        if pixel.size == 0:
            return image
        offsets = (np.arange(factor) + 0.5) / factor - 0.5
        du, dv = np.meshgrid(offsets, offsets, indexing="xy")
        offset = np.stack([du.ravel(), dv.ravel()], axis=1)  # (S2, 2)
        centre = np.stack([pixel % width, pixel // width], axis=1).astype(np.float64)  # (E, 2)
        samples = (centre[:, None, :] + offset[None, :, :]).reshape(-1, 2)  # (E*S2, 2)
        owner = np.repeat(pixel, len(offset))  # (E*S2,)
        _, face, barycentric, direction = self._cast(camera, samples[:, 0], samples[:, 1])
        colors = background[owner].copy()
        hit = face >= 0
        if hit.any():
            colors[hit] = self._shade(face[hit], barycentric[hit], direction[hit], light_world, ambient)
        result = image.copy()
        result[pixel] = colors.reshape(len(pixel), len(offset), 3).mean(axis=1)
        return result


def cast_camera_rays(
    origin: torch.Tensor, directions: torch.Tensor, triangles: torch.Tensor, max_elements: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest two-sided hit of rays from one point against every triangle, in batched torch (any device).

    All rays leave ``origin`` (a camera centre), so with the corners moved there (``a, b, c``) a ray ``d`` meets a
    triangle when the triple products ``w = (d.(b x c), d.(c x a), d.(a x b))`` share a sign; they are its
    unnormalised barycentric coordinates and the hit is at ``t = det(a, b, c) / sum(w)``. One GEMM of the rays with
    the ``3F`` edge normals per chunk of rays, then a min over triangles: no BVH, no loop over triangles. Adjacent
    triangles compute their shared edge's normal with the corners swapped, an exact negation, so no ray slips
    through a shared edge.

    Args:
        origin: (3,) ray origin, world frame.
        directions: (R, 3) ray directions (any length; ``t`` is in units of the direction's length).
        triangles: (F, 3, 3) corners, world frame.
        max_elements: ray-triangle pairs per chunk (default: 2**22 on the CPU, 2**24 on CUDA: about 0.5 GB, so that
            one GPU serves a process per CPU core).

    Returns:
        t (R,) float32 (inf on a miss), face (R,) int64 (-1 on a miss), barycentric (R, 3) float32 (zeros on a miss).
    """
    rays = directions.shape[0]
    device = directions.device
    t_out = torch.full((rays,), torch.inf, dtype=torch.float32, device=device)
    face_out = torch.full((rays,), -1, dtype=torch.int64, device=device)
    bary_out = torch.zeros((rays, 3), dtype=torch.float32, device=device)
    count = triangles.shape[0]
    if rays == 0 or count == 0:
        return t_out, face_out, bary_out
    # Per-triangle terms in float64 (the cross products of nearly parallel corner vectors cancel), rays in float32.
    corners = triangles.to(device, torch.float64) - origin.to(device, torch.float64)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]  # (F, 3) each
    bc = torch.linalg.cross(b, c)
    edge_normals = torch.cat([bc, torch.linalg.cross(c, a), torch.linalg.cross(a, b)]).to(torch.float32)  # (3F, 3)
    det = (a * bc).sum(-1).to(torch.float32)  # (F,)
    budget = max_elements or (2**24 if device.type == "cuda" else 2**22)
    chunk = max(1, budget // count)
    dirs = directions.to(torch.float32)
    for begin in range(0, rays, chunk):
        w = (dirs[begin : begin + chunk] @ edge_normals.T).view(-1, 3, count)  # (r, 3, F)
        total = w.sum(1)  # (r, F) = d . triangle normal
        inside = ((w >= 0).all(1) | (w <= 0).all(1)) & (total != 0)
        t = det / total  # (r, F)
        t = torch.where(inside & (t > 0), t, torch.inf)
        best_t, best_face = t.min(1)  # (r,)
        hit = torch.isfinite(best_t)
        picked = w[torch.arange(w.shape[0], device=device), :, best_face]  # (r, 3)
        denominator = total.gather(1, best_face[:, None])  # (r, 1)
        t_out[begin : begin + chunk] = best_t
        face_out[begin : begin + chunk] = torch.where(hit, best_face, -1)
        bary_out[begin : begin + chunk] = torch.where(hit[:, None], picked / denominator, 0.0)
    return t_out, face_out, bary_out


def _edge_pixels(mask: np.ndarray, depth: np.ndarray, depth_step: float) -> np.ndarray:
    """Pixels whose 8-neighbourhood holds another layer or a depth step above ``depth_step``.

    Args:
        mask: (H, W) int layer per pixel (-1 background).
        depth: (H, W) float depth (inf background).
        depth_step: metres.

    Returns:
        (H, W) bool.
    """
    finite_depth = np.where(np.isfinite(depth), depth, 1e6)
    padded_mask = np.pad(mask, 1, mode="edge")
    padded_depth = np.pad(finite_depth, 1, mode="edge")
    height, width = mask.shape
    edges = np.zeros(mask.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            neighbour_mask = padded_mask[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
            neighbour_depth = padded_depth[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
            edges |= (neighbour_mask != mask) | (np.abs(neighbour_depth - finite_depth) > depth_step)
    return edges


def raycast_render(
    meshes: Sequence[MeshLayer],
    camera: Camera,
    background: Any = (1.0, 1.0, 1.0),
    light_dir: Any = None,
    ambient: float = 0.35,
    supersample: int = 2,
) -> RenderResult:
    """One-shot :class:`RaycastRenderer`: a drop-in for :func:`haco_grasp.viz.render.render` (see the module notes).

    Args:
        meshes: sequence of MeshLayer.
        camera: Camera.
        background: (3,) RGB in [0, 1] or (H, W, 3) uint8.
        light_dir: (3,) world direction towards the light, or None for a headlight.
        ambient: in [0, 1].
        supersample: 1 to 8 (adaptive, at edges).

    Returns:
        RenderResult with image (H, W, 3) uint8, depth (H, W) float32, mask (H, W) int16, face_index (H, W) int32.
    """
    return RaycastRenderer(meshes).render(camera, background, light_dir, ambient, supersample)
