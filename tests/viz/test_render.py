"""Tests of the CPU rasteriser (haco_grasp.viz.render) and the colour maps (haco_grasp.viz.colormap).

References are independent of the renderer: analytic projections, a point-in-triangle test written here, analytic
ray-plane / ray-sphere intersections, and trimesh's (embree) ray caster.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.spatial.transform import Rotation

from haco_grasp.errors import InputError
from haco_grasp.viz.colormap import HEAT_TABLE, SKIN, contact_colors, heat
from haco_grasp.viz.render import (
    Camera,
    MeshLayer,
    add_label,
    image_grid,
    render,
    render_turntable,
    render_views,
    save_png,
)

# ------------------------------------------------------------------------------------------------------------------
# helpers (all independent of the renderer)
# ------------------------------------------------------------------------------------------------------------------


def simple_camera(width: int = 64, height: int = 48, focal: float = 60.0) -> Camera:
    K = np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=np.eye(3), t=np.zeros(3), width=width, height=height)


def manual_project(camera: Camera, points: np.ndarray) -> np.ndarray:
    """Textbook K [R | t] projection, one point at a time."""
    out = []
    for point in points:
        cam = camera.R @ point + camera.t
        hom = camera.K @ cam
        out.append(hom[:2] / hom[2])
    return np.array(out)


def pixel_grid(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0 : camera.height, 0 : camera.width]
    return u.astype(np.float64), v.astype(np.float64)


def signed_edge_distances(tri2d: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distances (px, positive inside) of pixel centres to the three edges of a 2-D triangle."""
    area = (tri2d[1, 0] - tri2d[0, 0]) * (tri2d[2, 1] - tri2d[0, 1]) - (tri2d[2, 0] - tri2d[0, 0]) * (
        tri2d[1, 1] - tri2d[0, 1]
    )
    out = []
    for i in range(3):
        a, b = tri2d[i], tri2d[(i + 1) % 3]
        edge = b - a
        cross = edge[0] * (v - a[1]) - edge[1] * (u - a[0])
        out.append(np.sign(area) * cross / np.linalg.norm(edge))
    return np.stack(out)


def camera_rays(camera: Camera, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-space rays through pixel centres (u, v)."""
    pixels = np.stack([u, v, np.ones_like(u)], axis=1)
    directions_cam = np.linalg.solve(camera.K, pixels.T).T
    directions = directions_cam @ camera.R  # camera -> world rotation is R.T; row vectors: d @ R
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origin = -camera.R.T @ camera.t
    return np.repeat(origin[None], len(u), axis=0), directions


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood all has the same mask value."""
    padded = np.pad(mask, 1, mode="edge")
    same = np.ones(mask.shape, dtype=bool)
    for dy in range(3):
        for dx in range(3):
            same &= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]] == mask
    return same


def quad(z: float, x0: float, x1: float, y0: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    verts = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    return verts, np.array([[0, 1, 2], [0, 2, 3]])


# ------------------------------------------------------------------------------------------------------------------
# coverage
# ------------------------------------------------------------------------------------------------------------------


def test_triangle_coverage_matches_point_in_triangle():
    camera = simple_camera(80, 60, 70.0)
    verts = np.array([[-0.5, -0.3, 1.2], [0.6, -0.1, 2.0], [-0.1, 0.45, 1.5]])
    result = render([MeshLayer(verts, np.array([[0, 1, 2]]))], camera, supersample=1)
    tri2d = manual_project(camera, verts)
    u, v = pixel_grid(camera)
    distances = signed_edge_distances(tri2d, u, v)
    clearly_inside = np.all(distances > 1e-3, axis=0)
    clearly_outside = np.any(distances < -1e-3, axis=0)
    assert clearly_inside.sum() > 300
    assert np.all(result.mask[clearly_inside] == 0)
    assert np.all(result.mask[clearly_outside] == -1)
    assert np.all(result.face_index[clearly_inside] == 0)
    x, y = tri2d[:, 0], tri2d[:, 1]
    area = 0.5 * abs(x[0] * (y[1] - y[2]) + x[1] * (y[2] - y[0]) + x[2] * (y[0] - y[1]))
    assert abs((result.mask == 0).sum() - area) / area < 0.03


def test_sphere_silhouette_matches_projected_disc():
    camera = simple_camera(96, 96, 100.0)
    radius, distance = 0.12, 0.5
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    result = render([MeshLayer(sphere.vertices + [0.0, 0.0, distance], sphere.faces)], camera, supersample=1)
    disc_radius = 100.0 * radius / math.sqrt(distance**2 - radius**2)  # tangent cone of a sphere on the axis
    u, v = pixel_grid(camera)
    rho = np.hypot(u - 47.5, v - 47.5)
    assert abs((result.mask == 0).sum() - math.pi * disc_radius**2) / (math.pi * disc_radius**2) < 0.02
    assert np.all(result.mask[rho < disc_radius - 1.0] == 0)
    assert np.all(result.mask[rho > disc_radius + 0.5] == -1)


def test_supersampling_antialiases_edges_and_preserves_area():
    camera = simple_camera(64, 64, 60.0)
    verts = np.array([[-0.4, -0.35, 1.0], [0.45, -0.2, 1.0], [0.05, 0.4, 1.0]])
    layers = [MeshLayer(verts, np.array([[0, 1, 2]]), (1.0, 1.0, 1.0))]
    tri2d = manual_project(camera, verts)
    x, y = tri2d[:, 0], tri2d[:, 1]
    area = 0.5 * abs(x[0] * (y[1] - y[2]) + x[1] * (y[2] - y[0]) + x[2] * (y[0] - y[1]))
    sharp = render(layers, camera, background=(0.0, 0.0, 0.0), ambient=1.0, supersample=1).image
    smooth = render(layers, camera, background=(0.0, 0.0, 0.0), ambient=1.0, supersample=4).image
    assert set(np.unique(sharp)) <= {0, 255}
    partial = (smooth[..., 0] > 0) & (smooth[..., 0] < 255)
    assert partial.sum() > 40
    assert abs(smooth[..., 0].astype(np.float64).sum() / 255.0 - area) / area < 0.01


# ------------------------------------------------------------------------------------------------------------------
# depth against trimesh's ray caster
# ------------------------------------------------------------------------------------------------------------------


def test_depth_and_face_match_trimesh_ray_cast():
    rng = np.random.default_rng(1)
    box = trimesh.creation.box(extents=[0.08, 0.05, 0.06])
    box.apply_transform(trimesh.transformations.rotation_matrix(0.7, [1.0, 2.0, 0.5]))
    box.apply_translation([0.03, 0.01, 0.0])
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.04)
    sphere.apply_translation([-0.03, -0.02, 0.02])
    camera = Camera.look_at([0.12, -0.08, -0.25], [0.0, 0.0, 0.0], (0.0, -1.0, 0.0), 35.0, 96, 80)
    layers = [MeshLayer(box.vertices, box.faces), MeshLayer(sphere.vertices, sphere.faces, (0.3, 0.5, 0.8))]
    result = render(layers, camera, supersample=1)

    candidates = np.argwhere(interior(result.mask) & (result.mask >= 0))
    picked = candidates[rng.choice(len(candidates), size=200, replace=False)]
    rows, cols = picked[:, 0], picked[:, 1]
    combined = trimesh.util.concatenate([box, sphere])
    origins, directions = camera_rays(camera, cols.astype(np.float64), rows.astype(np.float64))
    locations, ray_index, tri_index = combined.ray.intersects_location(origins, directions, multiple_hits=False)
    assert len(np.unique(ray_index)) == 200
    hit_depth = (locations @ camera.R.T + camera.t)[:, 2]
    rendered_depth = result.depth[rows[ray_index], cols[ray_index]]
    np.testing.assert_allclose(rendered_depth, hit_depth, atol=1e-4, rtol=0)
    hit_layer = (tri_index >= len(box.faces)).astype(np.int16)
    hit_local = np.where(hit_layer == 1, tri_index - len(box.faces), tri_index)
    np.testing.assert_array_equal(result.mask[rows[ray_index], cols[ray_index]], hit_layer)
    assert np.mean(result.face_index[rows[ray_index], cols[ray_index]] == hit_local) > 0.95

    empty = np.argwhere(interior(result.mask) & (result.mask == -1))[::7]
    origins, directions = camera_rays(camera, empty[:, 1].astype(np.float64), empty[:, 0].astype(np.float64))
    assert not np.any(combined.ray.intersects_any(origins, directions))
    assert np.all(np.isinf(result.depth[result.mask == -1]))
    assert np.all(np.isfinite(result.depth[result.mask >= 0]))


# ------------------------------------------------------------------------------------------------------------------
# z-buffer, near plane, degenerate input
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("near_first", [True, False])
def test_near_object_occludes_far_regardless_of_order(near_first):
    camera = simple_camera(64, 48, 60.0)
    near = MeshLayer(*quad(1.0, -0.3, 0.1, -0.2, 0.2), (1.0, 0.0, 0.0))
    far = MeshLayer(*quad(2.0, -0.2, 0.8, -0.4, 0.4), (0.0, 0.0, 1.0))
    layers = [near, far] if near_first else [far, near]
    near_index, far_index = (0, 1) if near_first else (1, 0)
    result = render(layers, camera, supersample=1)
    u, v = pixel_grid(camera)
    x, y = (u - 31.5) / 60.0, (v - 23.5) / 60.0  # normalised image coordinates of pixel centres
    in_near = (x > -0.3 + 0.02) & (x < 0.1 - 0.02) & (y > -0.2 + 0.02) & (y < 0.2 - 0.02)
    in_far_only = (x > 0.1 + 0.02) & (x < 0.4 - 0.02) & (np.abs(y) < 0.18)
    overlap = in_near & (x > -0.1 + 0.02)
    assert overlap.sum() > 50 and in_far_only.sum() > 50
    assert np.all(result.mask[in_near] == near_index)
    assert np.all(result.mask[in_far_only] == far_index)
    np.testing.assert_allclose(result.depth[in_near], 1.0, atol=1e-6)
    np.testing.assert_allclose(result.depth[in_far_only], 2.0, atol=1e-6)
    assert np.all(result.image[in_near][:, 0] > 100) and np.all(result.image[in_near][:, 2] == 0)
    assert np.all(result.image[in_far_only][:, 2] > 100) and np.all(result.image[in_far_only][:, 0] == 0)


def test_triangles_behind_camera_are_not_drawn():
    camera = simple_camera(64, 48, 60.0)
    # Mirror image of a visible triangle: a naive projection (dividing by negative z) would land in the frame.
    verts = np.array([[0.3, 0.2, -1.0], [-0.3, 0.25, -1.2], [0.0, -0.3, -1.1]])
    result = render([MeshLayer(verts, np.array([[0, 1, 2]]))], camera, supersample=2)
    assert np.all(result.mask == -1)
    assert np.all(result.image == 255)


def test_triangle_crossing_near_plane_is_clipped_to_its_visible_part():
    camera = simple_camera(64, 48, 40.0)
    verts = np.array([[-0.6, 0.3, 1.0], [0.5, 0.25, 1.4], [0.1, -0.4, -0.6]])
    result = render([MeshLayer(verts, np.array([[0, 1, 2]]))], camera, supersample=1)
    u, v = pixel_grid(camera)
    origins, directions = camera_rays(camera, u.ravel(), v.ravel())
    triangle = trimesh.Trimesh(verts, [[0, 1, 2]], process=False)
    locations, ray_index, _ = triangle.ray.intersects_location(origins, directions, multiple_hits=False)
    hit = np.zeros(u.size, dtype=bool)
    hit[ray_index] = True
    hit = hit.reshape(u.shape)
    assert hit.sum() > 200
    mismatch = hit != (result.mask == 0)
    assert np.all(~mismatch | ~interior(hit))  # disagreements only on the silhouette
    assert mismatch.sum() < 0.05 * hit.sum()
    depth = np.full(u.size, np.inf)
    depth[ray_index] = locations[:, 2]
    depth = depth.reshape(u.shape)
    both = hit & (result.mask == 0)
    np.testing.assert_allclose(result.depth[both], depth[both], atol=1e-4)


def test_degenerate_triangles_do_not_crash_and_are_never_visible():
    camera = simple_camera(48, 48, 50.0)
    verts = np.array(
        [[-0.3, -0.3, 1.0], [0.3, -0.3, 1.0], [0.0, 0.3, 1.0], [-0.2, 0.0, 0.9], [0.2, 0.0, 0.9], [0.0, 0.0, 0.9]]
    )
    faces = np.array([[0, 1, 2], [3, 3, 4], [3, 4, 5], [5, 5, 5]])  # repeated vertex, collinear, single point
    result = render([MeshLayer(verts, faces)], camera, supersample=2)
    alone = render([MeshLayer(verts, faces[:1])], camera, supersample=2)
    assert set(np.unique(result.face_index)) == {-1, 0}
    np.testing.assert_array_equal(result.mask, alone.mask)
    np.testing.assert_array_equal(result.image, alone.image)
    only_degenerate = render([MeshLayer(verts, faces[1:])], camera, supersample=2)
    assert np.all(only_degenerate.mask == -1)


def test_empty_inputs_give_pure_background():
    camera = simple_camera(40, 30, 40.0)
    background = (0.2, 0.4, 0.6)
    for meshes in ([], [MeshLayer(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))]):
        result = render(meshes, camera, background=background)
        expected = np.rint(np.array(background) * 255).astype(np.uint8)
        assert np.all(result.image == expected)
        assert np.all(result.mask == -1) and np.all(result.face_index == -1) and np.all(np.isinf(result.depth))
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(render([], camera, background=photo, supersample=3).image, photo)
    verts, faces = quad(1.0, -0.1, 0.1, -0.1, 0.1)
    over_photo = render([MeshLayer(verts, faces)], camera, background=photo, supersample=2)
    untouched = interior(over_photo.mask) & (over_photo.mask == -1)
    np.testing.assert_array_equal(over_photo.image[untouched], photo[untouched])


def test_output_types_and_shapes():
    camera = simple_camera(50, 30, 40.0)
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=0.2)
    result = render([MeshLayer(sphere.vertices + [0, 0, 1.0], sphere.faces)], camera)
    assert result.image.shape == (30, 50, 3) and result.image.dtype == np.uint8
    assert result.depth.shape == (30, 50) and result.depth.dtype == np.float32
    assert result.mask.shape == (30, 50) and result.mask.dtype == np.int16
    assert result.face_index.shape == (30, 50) and result.face_index.dtype == np.int32
    assert np.array_equal(np.isfinite(result.depth), result.mask >= 0)
    assert np.array_equal(result.face_index >= 0, result.mask >= 0)
    assert result.face_index.max() < len(sphere.faces)
    # depth, mask and face_index are sampled at pixel centres whatever the supersampling
    for factor in (1, 3):
        other = render([MeshLayer(sphere.vertices + [0, 0, 1.0], sphere.faces)], camera, supersample=factor)
        np.testing.assert_array_equal(other.mask, result.mask)
        np.testing.assert_array_equal(other.face_index, result.face_index)
        np.testing.assert_array_equal(other.depth, result.depth)


# ------------------------------------------------------------------------------------------------------------------
# camera
# ------------------------------------------------------------------------------------------------------------------


def test_project_matches_manual_k_r_t():
    rng = np.random.default_rng(2)
    R = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    K = np.array([[500.0, 1.5, 310.0], [0.0, 480.0, 245.0], [0.0, 0.0, 1.0]])
    camera = Camera(K=K, R=R, t=np.array([0.1, -0.2, 2.0]), width=640, height=480)
    points = rng.normal(scale=0.3, size=(50, 3))
    projection = camera.project(points)
    np.testing.assert_allclose(projection.pixels, manual_project(camera, points), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(projection.depth, [(R @ p + camera.t)[2] for p in points], atol=1e-12)


def test_look_at_centres_target_and_keeps_up_upwards():
    eye, target, up = np.array([0.3, -0.4, -0.5]), np.array([0.05, 0.02, 0.1]), np.array([0.0, 0.0, 1.0])
    camera = Camera.look_at(eye, target, up, 50.0, 120, 90)
    np.testing.assert_allclose(camera.R @ camera.R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(camera.R) == pytest.approx(1.0)
    np.testing.assert_allclose(camera.center, eye, atol=1e-12)
    projection = camera.project(np.stack([target, target + 0.05 * up]))
    np.testing.assert_allclose(projection.pixels[0], [59.5, 44.5], atol=1e-9)
    assert projection.depth[0] == pytest.approx(np.linalg.norm(target - eye))
    assert projection.pixels[1, 1] < 44.5 - 1.0  # up in the world is up (smaller v) in the image
    assert abs(projection.pixels[1, 0] - 59.5) < 1e-6
    # vertical field of view: a point at the top edge of the frustum projects to v = -0.5
    assert camera.K[1, 1] == pytest.approx(45.0 / math.tan(math.radians(25.0)))
    with pytest.raises(InputError):
        Camera.look_at(eye, target, target - eye)


# ------------------------------------------------------------------------------------------------------------------
# shading and colour interpolation
# ------------------------------------------------------------------------------------------------------------------


def test_lambert_shading_facing_light_brighter_than_grazing():
    camera = simple_camera(80, 40, 60.0)
    colour = np.array([0.8, 0.6, 0.4])
    light = np.array([0.0, 0.0, -1.0])  # towards the camera
    facing = np.array([[-0.6, -0.2, 1.0], [-0.2, -0.2, 1.0], [-0.4, 0.2, 1.0]])
    # Second triangle tilted by 80 degrees about the y axis: normal at 80 degrees from the light.
    tilt = Rotation.from_euler("y", 80.0, degrees=True).as_matrix()
    grazing = (np.array([[-0.2, -0.2, 0.0], [0.2, -0.2, 0.0], [0.0, 0.2, 0.0]]) @ tilt.T) + [0.4, 0.0, 1.0]
    verts = np.concatenate([facing, grazing])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    for flip in (False, True):
        result = render(
            [MeshLayer(verts, faces[:, ::-1] if flip else faces, colour)],
            camera,
            light_dir=light,
            ambient=0.35,
            supersample=1,
        )
        inner = interior(result.face_index)
        lit = result.image[inner & (result.face_index == 0)].astype(np.float64)
        dim = result.image[inner & (result.face_index == 1)].astype(np.float64)
        assert len(lit) > 20 and len(dim) > 5
        np.testing.assert_allclose(lit, np.broadcast_to(np.rint(255 * colour), lit.shape), atol=1.0)
        expected = np.rint(255 * colour * (0.35 + 0.65 * math.cos(math.radians(80.0))))
        np.testing.assert_allclose(dim, np.broadcast_to(expected, dim.shape), atol=1.0)
        assert lit.mean() > dim.mean() + 60


def test_smooth_shading_follows_true_sphere_normals():
    camera = simple_camera(96, 96, 110.0)
    centre, radius = np.array([0.0, 0.0, 0.6]), 0.15
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    light = np.array([0.3, -0.5, -1.0]) / np.linalg.norm([0.3, -0.5, -1.0])
    errors = {}
    for smooth in (True, False):
        layer = MeshLayer(sphere.vertices + centre, sphere.faces, (1.0, 1.0, 1.0), smooth=smooth)
        result = render([layer], camera, background=(0.0, 0.0, 0.0), light_dir=light, ambient=0.2, supersample=1)
        rows, cols = np.nonzero(interior(result.mask) & (result.mask == 0))
        _, directions = camera_rays(camera, cols.astype(np.float64), rows.astype(np.float64))
        # analytic ray-sphere intersection from the origin
        b = directions @ centre
        t_hit = b - np.sqrt(b**2 - (centre @ centre - radius**2))
        normal = (t_hit[:, None] * directions - centre) / radius
        expected = 255.0 * (0.2 + 0.8 * np.clip(normal @ light, 0.0, None))
        errors[smooth] = np.abs(result.image[rows, cols, 0] - expected)
    assert errors[True].mean() < 1.5 and errors[True].max() < 6.0
    assert errors[False].mean() > 2.0 * errors[True].mean()


def test_constant_colour_is_reproduced_exactly():
    camera = simple_camera(64, 64, 70.0)
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.2)
    colour = (0.2, 0.55, 0.8)
    layer = MeshLayer(sphere.vertices + [0.0, 0.0, 0.8], sphere.faces, np.tile(colour, (len(sphere.vertices), 1)))
    expected = np.rint(np.array(colour) * 255).astype(np.uint8)
    sharp = render([layer], camera, ambient=1.0, supersample=1)
    assert np.all(sharp.image[sharp.mask == 0] == expected)
    smooth = render([layer], camera, ambient=1.0, supersample=3)
    assert np.all(smooth.image[interior(smooth.mask) & (smooth.mask == 0)] == expected)


def test_vertex_colours_are_interpolated_perspective_correctly():
    camera = simple_camera(64, 64, 60.0)
    verts = np.array([[-0.5, -0.4, 0.4], [0.6, -0.3, 3.0], [0.0, 0.6, 1.2]])  # strongly tilted in depth
    gradient = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.3], [0.0, 0.6, 0.0]])  # colour = x @ gradient.T + offset
    offset = np.array([0.4, 0.05, 0.3])
    colours = verts @ gradient.T + offset
    assert colours.min() >= 0.0 and colours.max() <= 1.0
    result = render([MeshLayer(verts, np.array([[0, 1, 2]]), colours)], camera, ambient=1.0, supersample=1)
    rows, cols = np.nonzero(interior(result.mask) & (result.mask == 0))
    _, directions = camera_rays(camera, cols.astype(np.float64), rows.astype(np.float64))
    plane_normal = np.cross(verts[1] - verts[0], verts[2] - verts[0])
    hits = directions * ((verts[0] @ plane_normal) / (directions @ plane_normal))[:, None]  # ray-plane, origin 0
    expected = np.rint(255 * (hits @ gradient.T + offset))
    np.testing.assert_allclose(result.image[rows, cols], expected, atol=1.0)
    # the test discriminates: screen-space (affine) interpolation is far off on this triangle
    tri2d = manual_project(camera, verts)
    system = np.vstack([tri2d.T, np.ones(3)])  # (3, 3): columns are (u_i, v_i, 1)
    affine_bary = np.linalg.solve(system, np.stack([cols, rows, np.ones_like(rows)]).astype(np.float64))  # (3, S)
    affine = 255 * (affine_bary.T @ colours)
    assert np.abs(affine - expected).max() > 15.0


# ------------------------------------------------------------------------------------------------------------------
# multi-view helpers, images, colour maps, validation
# ------------------------------------------------------------------------------------------------------------------


def test_render_views_layout_and_orientation():
    centre, radius = np.array([0.02, -0.01, 0.5]), 0.06
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.03)
    marker = trimesh.creation.box(extents=[0.015, 0.015, 0.015])
    layers = [
        MeshLayer(sphere.vertices + centre, sphere.faces, (0.2, 0.2, 1.0)),
        MeshLayer(marker.vertices + centre + [0.045, 0.0, 0.0], marker.faces, (1.0, 0.0, 0.0)),
    ]
    size = 64
    grid = render_views(layers, centre, radius, n_views=4, size=size, supersample=1)
    assert grid.shape == (size, 4 * size, 3) and grid.dtype == np.uint8
    frames = render_turntable(layers, centre, radius, n_views=4, size=size, supersample=1)
    np.testing.assert_array_equal(np.concatenate(list(frames), axis=1), grid)
    red_columns = []
    for frame in frames:
        content = np.any(frame != 255, axis=2)
        assert content.sum() > 100
        assert not content[0].any() and not content[-1].any() and not content[:, 0].any() and not content[:, -1].any()
        red = (frame[..., 0] > 150) & (frame[..., 2] < 100)
        red_columns.append(np.nonzero(red)[1].mean() if red.any() else np.nan)
    # view 0 looks along +z with -y up (identity camera): +x is on the right; view 2 looks back along -z.
    assert red_columns[0] > size / 2 + 8 and red_columns[2] < size / 2 - 8
    assert abs(red_columns[1] - (size - 1) / 2) < 4  # view 1 is on the +x side, marker in front of the sphere


def test_save_png_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    path = save_png(image, tmp_path / "sub" / "out.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    save_png(image[::-1].copy(), path)  # overwrite in place
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image[::-1])
    grey = image[..., 0].copy()
    np.testing.assert_array_equal(np.asarray(Image.open(save_png(grey, tmp_path / "g.png"))), grey)
    assert sorted(os.listdir(tmp_path / "sub")) == ["out.png"]  # no temporary files left behind
    with pytest.raises(InputError):
        save_png(image.astype(np.float32), tmp_path / "bad.png")


def test_image_grid_and_label():
    images = [np.full((8, 10, 3), value, dtype=np.uint8) for value in (10, 20, 30)]
    grid = image_grid(images, ncols=2, pad=2)
    assert grid.shape == (18, 22, 3)
    assert np.all(grid[0:8, 0:10] == 10) and np.all(grid[0:8, 12:22] == 20) and np.all(grid[10:18, 0:10] == 30)
    assert np.all(grid[8:10] == 255) and np.all(grid[10:18, 12:22] == 255)
    canvas = np.full((40, 80, 3), 100, dtype=np.uint8)
    labelled = add_label(canvas, "abc")
    assert labelled.shape == canvas.shape and labelled.dtype == np.uint8
    assert np.all(canvas == 100)  # input untouched
    assert np.any(labelled[:20, :40] != 100) and np.all(labelled[25:, 50:] == 100)


def test_colormaps():
    np.testing.assert_allclose(heat(np.array([0.0, 1.0, -3.0, 7.0])), HEAT_TABLE[[0, -1, 0, -1]])
    np.testing.assert_allclose(heat(np.array([0.05]))[0], 0.5 * (HEAT_TABLE[0] + HEAT_TABLE[1]))
    np.testing.assert_allclose(heat(np.array([5.0]), vmin=0.0, vmax=10.0)[0], HEAT_TABLE[5])
    ramp = heat(np.linspace(0.0, 1.0, 101))
    luminance = ramp @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) > 0)  # perceptual ramp: brightness increases monotonically
    contact = contact_colors(np.array([0.0, 0.5, 1.0]), hot=(1.0, 0.0, 0.0))
    np.testing.assert_allclose(contact[0], SKIN)
    np.testing.assert_allclose(contact[2], (1.0, 0.0, 0.0))
    np.testing.assert_allclose(contact[1], 0.5 * (np.array(SKIN) + [1.0, 0.0, 0.0]))
    with pytest.raises(InputError):
        heat(np.array([0.1, np.nan]))
    with pytest.raises(InputError):
        contact_colors(np.zeros((3, 2)))
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(heat(torch.tensor([0.0, 1.0])), HEAT_TABLE[[0, -1]])


def test_input_validation():
    verts, faces = quad(1.0, -0.1, 0.1, -0.1, 0.1)
    camera = simple_camera()
    with pytest.raises(InputError):
        MeshLayer(verts[:, :2], faces)
    with pytest.raises(InputError):
        MeshLayer(verts, faces + 3)
    with pytest.raises(InputError):
        MeshLayer(verts, faces.astype(np.float64))
    with pytest.raises(InputError):
        MeshLayer(verts, faces, (1.0, 2.0, 0.0))
    with pytest.raises(InputError):
        MeshLayer(verts, faces, np.zeros((3, 3)))
    with pytest.raises(InputError):
        Camera(K=camera.K, R=np.diag([1.0, 1.0, -1.0]), t=np.zeros(3), width=10, height=10)
    with pytest.raises(InputError):
        Camera(K=camera.K, R=np.eye(3), t=np.zeros(3), width=0, height=10)
    with pytest.raises(InputError):
        render([MeshLayer(verts, faces)], camera, supersample=0)
    with pytest.raises(InputError):
        render([MeshLayer(verts, faces)], camera, background=np.zeros((5, 5, 3), dtype=np.uint8))
    with pytest.raises(InputError):
        render([MeshLayer(verts, faces)], camera, light_dir=(0.0, 0.0, 0.0))
    with pytest.raises(InputError):
        render([(verts, faces)], camera)


def test_split_modules_keep_the_viz_render_import_path() -> None:
    # the camera and the image helpers moved to viz/camera.py and viz/images.py; viz.render re-exports them
    import importlib

    from haco_grasp.viz import camera, images

    render_module = importlib.import_module("haco_grasp.viz.render")  # haco_grasp.viz.render is also the function

    for module in (camera, images):
        for name in module.__all__:
            assert getattr(render_module, name) is getattr(module, name), name
