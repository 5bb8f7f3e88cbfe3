"""Tests of the YCB loaders on small files written by the tests (no dataset needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from haco_grasp.errors import AssetError, InputError
from haco_grasp.objects.ycb import YCB_CLASSES, load_ycb_mesh, load_ycb_points, ycb_model_path

# A 4 x 5 x 6 cm box written as a textured OBJ: 8 positions, but every face has its own texture coordinates, so
# a UV-aware loader splits the corners into several vertices (and the raw mesh is not watertight).
BOX_SIZE = np.array([0.04, 0.05, 0.06])
CORNERS = (np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64) - 0.5) * BOX_SIZE
QUADS = [  # outward, counter-clockwise, 1-based corner ids (index = 4x + 2y + z + 1)
    (1, 2, 4, 3),  # x = min
    (5, 7, 8, 6),  # x = max
    (1, 5, 6, 2),  # y = min
    (3, 4, 8, 7),  # y = max
    (1, 3, 7, 5),  # z = min
    (2, 6, 8, 4),  # z = max
]


def write_textured_box(path: Path, drop_face: bool = False) -> None:
    lines = ["# test box", "mtllib textured_simple.obj.mtl", "o box"]
    lines += [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in CORNERS]
    lines += [f"vt {u} {v}" for u, v in ((0, 0), (1, 0), (1, 1), (0, 1), (0.5, 0.25), (0.25, 0.5))]
    lines += ["vn 0 0 1", "usemtl material_0"]
    for k, (a, b, c, d) in enumerate(QUADS):
        uv = [1 + (k + j) % 6 for j in range(4)]  # a different UV per face corner
        lines.append(f"f {a}/{uv[0]}/1 {b}/{uv[1]}/1 {c}/{uv[2]}/1")
        if not (drop_face and k == 5):
            lines.append(f"f {a}/{uv[0]}/1 {c}/{uv[2]}/1 {d}/{uv[3]}/1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_textured_obj_is_split_by_uv_without_merging(tmp_path):
    """Guards the premise of the merge test: the raw OBJ load duplicates positions and is open."""
    path = tmp_path / "003_cracker_box" / "textured_simple.obj"
    write_textured_box(path)
    raw = trimesh.load(str(path), force="mesh", process=False, skip_materials=True)
    assert len(raw.vertices) > 8 and not raw.is_watertight


def test_load_ycb_mesh_merges_uv_seams(tmp_path):
    model_dir = tmp_path / "003_cracker_box"
    write_textured_box(model_dir / "textured_simple.obj")
    for source in (model_dir, model_dir / "textured_simple.obj", str(model_dir)):
        mesh = load_ycb_mesh(source)
        assert mesh.name == "003_cracker_box" and mesh.kind == "mesh"
        assert mesh.verts.shape == (8, 3) and mesh.faces.shape == (12, 3)
        assert mesh.verts.dtype == np.float64 and mesh.faces.dtype == np.int64
        # Metres, no scaling: the vertices are exactly the written corners.
        order = np.lexsort(mesh.verts.T[::-1])
        np.testing.assert_array_equal(mesh.verts[order], CORNERS[np.lexsort(CORNERS.T[::-1])])
        as_trimesh = mesh.as_trimesh()
        assert as_trimesh.is_watertight
        assert mesh.volume_m3 == pytest.approx(float(np.prod(BOX_SIZE)), rel=1e-12)
        np.testing.assert_allclose(mesh.extents, BOX_SIZE, rtol=1e-12)


def test_open_mesh_has_nan_volume(tmp_path):
    path = tmp_path / "model" / "textured_simple.obj"
    write_textured_box(path, drop_face=True)
    mesh = load_ycb_mesh(path)
    assert len(mesh.faces) == 11 and np.isnan(mesh.volume_m3)


def test_missing_files_raise_asset_error_naming_the_path(tmp_path):
    missing_dir = tmp_path / "no_such_model"
    with pytest.raises(AssetError, match="no_such_model"):
        load_ycb_mesh(missing_dir)
    empty_dir = tmp_path / "empty_model"
    empty_dir.mkdir()
    with pytest.raises(AssetError, match=r"empty_model.*textured_simple\.obj"):
        load_ycb_mesh(empty_dir)
    with pytest.raises(AssetError, match=r"points\.xyz"):
        load_ycb_points(empty_dir)
    with pytest.raises(FileNotFoundError):  # AssetError is a FileNotFoundError
        load_ycb_points(tmp_path / "x.xyz")


@pytest.mark.parametrize(
    "content",
    [
        "v 0 0 0\nv 1 0\nf 1 2 3\n",  # a vertex with two coordinates
        "# only a comment\nv 0 0 0\nv 1 0 0\n",  # no faces
        "",  # empty
    ],
)
def test_malformed_obj_raises_input_error(tmp_path, content):
    path = tmp_path / "bad.obj"
    path.write_text(content)
    with pytest.raises(InputError, match="bad.obj"):
        load_ycb_mesh(path)


def test_points_round_trip(tmp_path, rng):
    points = rng.normal(size=(500, 3)) * 0.05
    path = tmp_path / "006_mustard_bottle" / "points.xyz"
    path.parent.mkdir()
    np.savetxt(path, points, fmt="%.17g", delimiter=" ")
    for source in (path, path.parent):
        loaded = load_ycb_points(source)
        assert loaded.shape == (500, 3) and loaded.dtype == np.float64
        np.testing.assert_array_equal(loaded, points)
    tabs = tmp_path / "tabs.xyz"
    tabs.write_text("0.1\t0.2\t0.3\n  0.4 0.5   0.6\n")
    np.testing.assert_array_equal(load_ycb_points(tabs), [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])


@pytest.mark.parametrize("content", ["0.1 0.2\n0.3 0.4\n", "a b c\n", "0.1 0.2 0.3\n0.4 0.5\n", "", "nan 0 0\n"])
def test_malformed_points_raise_input_error(tmp_path, content):
    path = tmp_path / "points.xyz"
    path.write_text(content)
    with pytest.raises(InputError, match="points.xyz"):
        load_ycb_points(path)


def test_ycb_classes():
    assert sorted(YCB_CLASSES) == list(range(1, 22))
    assert YCB_CLASSES[1] == "002_master_chef_can"
    assert YCB_CLASSES[5] == "006_mustard_bottle"
    assert YCB_CLASSES[13] == "024_bowl"
    assert YCB_CLASSES[21] == "061_foam_brick"
    numbers = [int(name[:3]) for name in YCB_CLASSES.values()]
    assert numbers == sorted(numbers) and len(set(YCB_CLASSES.values())) == 21


def test_ycb_model_path(tmp_path, monkeypatch):
    assert ycb_model_path(tmp_path, 5) == tmp_path / "006_mustard_bottle" / "textured_simple.obj"
    assert ycb_model_path(str(tmp_path), np.int64(14)) == tmp_path / "025_mug" / "textured_simple.obj"
    monkeypatch.setenv("DEX_YCB_DIR", str(tmp_path))
    assert ycb_model_path(None, 1) == tmp_path / "models" / "002_master_chef_can" / "textured_simple.obj"
    monkeypatch.delenv("DEX_YCB_DIR")
    with pytest.raises(AssetError, match="DEX_YCB_DIR"):
        ycb_model_path(None, 1)
    for bad in (0, 22, True, "5"):
        with pytest.raises(InputError, match="1..21"):
            ycb_model_path(tmp_path, bad)


def test_model_path_and_loader_work_together(tmp_path):
    write_textured_box(ycb_model_path(tmp_path, 16))
    mesh = load_ycb_mesh(ycb_model_path(tmp_path, 16))
    assert mesh.name == "036_wood_block" and mesh.as_trimesh().is_watertight
