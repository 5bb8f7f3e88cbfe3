"""A miniature DexYCB folder and a matching ``hflnet.pkl``, generated from the synthetic world (no dataset, no licence).

:func:`write_mini_dexycb` writes the real DexYCB layout (see :mod:`haco_grasp.data.dexycb`) with a few subjects,
sequences, cameras and frames, so that every DexYCB / HFL-Net code path runs in tests and demos:

- subjects: the test subjects ``DEX_YCB_SUBJECTS[2:2 + n_subjects]``; sequences named ``<date>_<hhmmss>`` in
  sorted order, so sequence positions 4, 9, ... fall into s0_test and the others into s0_train;
- cameras: ``n_serials`` of the 8 DexYCB serials (listed in each ``meta.yml``; read with ``strict=False``), looking
  at the scene from about 0.75 m, intrinsics like a RealSense at 640 x 480;
- objects: procedural watertight stand-ins under the YCB names of ``MINI_OBJECTS`` (``textured_simple.obj`` and
  ``points.xyz``, metres); each sequence shows three of them and grasps one;
- hands: the synthetic MANO hand (or ``mano_root``), poses drawn from
  :func:`haco_grasp.hand.poses.synthetic_grasp_poses`, stored as DexYCB stores them (PCA-45 coefficients of a
  ``flat_hand_mean=False`` layer, per-subject betas in ``calibration/mano_<subject>/mano.yml``). The palm faces the
  grasped object 1-4 cm from its surface (the closest gap at which at most 40 hand vertices lie inside the object);
  the hand and object then move together over the frames. These are plausible placements, not physically checked
  grasps. The last ``n_left`` test sequences are left hands (``MANO_LEFT``). Frame 1 of the first two sequences of
  the first subject has no hand (``pose_m`` zeros, joints -1), as such frames exist in DexYCB;
- labels per camera and frame: ``seg`` (projected vertices painted on 4 x 4 pixel cells: 255 hand, else the object
  id), ``pose_y``, ``pose_m``, ``joint_3d`` (computed from the stored ``pose_m`` with the PCA-45 layer),
  ``joint_2d``; ``pose.npz`` holds the world-frame poses (quaternion x, y, z, w + translation; ``pose_m`` in the
  world frame);
- colour images: flat placeholders painted from ``seg`` (small JPEGs), not renderings.

:func:`write_mini_hflnet` writes predictions for the s0_test samples in the ``hflnet.pkl`` format, with left hands
stored exactly as HFL-Net gives them (``mano_pose_aa`` mirrored to the right-hand frame, vertices un-mirrored).
``noise=None`` gives the ground truth; ``noise="hflnet-like"`` perturbs it (see :func:`write_mini_hflnet`).

Defaults (2 subjects x 10 sequences x 2 cameras x 6 frames = 240 samples, 48 in s0_test, 12 in the gSDF subset)
take a few seconds and about 3 MB.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from scipy.spatial.transform import Rotation

from haco_grasp.data.dexycb import DEX_YCB_SERIALS, DEX_YCB_SUBJECTS, DexYCB
from haco_grasp.data.hflnet import HFLNetFile, HFLNetPrediction, save_hflnet
from haco_grasp.errors import InputError
from haco_grasp.hand.conventions import ManoLayerCache, flat_axis_angle_to_pca, mirror_axis_angle, pose_hand
from haco_grasp.hand.mano import ManoLayer
from haco_grasp.objects.procedural import ObjectMesh, make_object
from haco_grasp.objects.ycb import YCB_CLASSES

__all__ = ["MINI_OBJECTS", "MiniDexYCB", "write_mini_dexycb", "write_mini_hflnet"]

logger = logging.getLogger(__name__)

#: YCB id -> procedural object written under that id's YCB name.
MINI_OBJECTS: dict[int, str] = {3: "box", 4: "can", 5: "bottle", 21: "small_cube"}

_WIDTH, _HEIGHT = 640, 480
_TARGET = np.array([0.0, 0.0, 0.12])  # world point the cameras look at (world z up)
_PALM_GAPS_M = (0.01, 0.015, 0.02, 0.025, 0.03, 0.04)
_MAX_INSIDE = 40  # hand vertices allowed inside the grasped object when placing the hand
_GRASP_FAMILIES = ("power", "precision", "spherical", "lateral", "pinch")
_BACKGROUND = np.array([96, 104, 112], dtype=np.uint8)
_HAND_COLOR = np.array([224, 172, 140], dtype=np.uint8)
_JPEG_QUALITY = 50
_SEG_CELL = 4  # the segmentation is painted on a grid of 4 x 4 pixel cells, then upsampled


@dataclass(frozen=True)
class MiniDexYCB:
    """What :func:`write_mini_dexycb` wrote.

    Attributes:
        root: the DexYCB-layout folder (pass it to ``DexYCB(root, strict=False)``).
        models_root: ``root / "models"``.
        mano_root: the MANO folder used for the hands.
        subjects / serials: those written.
        sequences: relative
            ``<subject>/<sequence>`` folders in toolkit order.
        left_sequences: those with left hands.
        n_frames: per sequence.
        n_samples: label files written (all splits).
        n_test_samples / n_test_gsdf: size of s0_test ("all" / "gsdf").
    """

    root: Path
    models_root: Path
    mano_root: Path
    subjects: tuple[str, ...]
    serials: tuple[str, ...]
    sequences: tuple[str, ...]
    left_sequences: tuple[str, ...]
    n_frames: int
    n_samples: int
    n_test_samples: int
    n_test_gsdf: int
    seed: int


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InputError(f"{name}: expected an int in {low}..{high}, got {value!r}")
    return int(value)


def _write_yaml(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _write_object(folder: Path, mesh: ObjectMesh) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces]
    (folder / "textured_simple.obj").write_text("\n".join(lines) + "\n", encoding="utf-8")
    np.savetxt(folder / "points.xyz", mesh.verts, fmt="%.6f")


def _look_at(eye: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R, t) of an OpenCV camera at ``eye`` looking at ``target``, world z up."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    return rotation, -rotation @ eye


def _move_hand(
    global_orient: np.ndarray, transl: np.ndarray, root: np.ndarray, rotation: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """MANO (global_orient, transl) after the rigid motion ``x -> rotation @ x + shift`` of the posed hand.

    MANO rotates about the rest root joint ``root``: ``x = R_g (v - root) + root + transl``. Hence
    ``R' = rotation R_g`` and ``transl' = rotation (root + transl) + shift - root``.

    Args:
        global_orient: (N, 3) axis-angle.
        transl: (N, 3) metres.
        root: (3,) rest root joint, metres.
        rotation: (3, 3) or (N, 3, 3).
        shift: (3,) or (N, 3) metres.

    Returns:
        global_orient (N, 3) and transl (N, 3) of the moved hand.
    """
    new_rotation = Rotation.from_matrix(rotation) * Rotation.from_rotvec(global_orient)
    moved = np.einsum("...ij,...j->...i", rotation, root + transl) + shift - root  # (N, 3)
    return new_rotation.as_rotvec(), moved


def _splat(seg: np.ndarray, pixels: np.ndarray, value: int, radius: int = 1) -> None:
    """Paint ``value`` into the coarse mask ``seg`` (H/S, W/S) around each full-resolution pixel (P, 2).

    Each point paints a square of side 2 radius + 1 cells of ``_SEG_CELL`` pixels.
    """
    inside = np.all(np.isfinite(pixels), axis=1)
    centre = np.floor(pixels[inside] / _SEG_CELL).astype(np.int64)
    offsets = np.arange(-radius, radius + 1)
    du, dv = np.meshgrid(offsets, offsets)
    u = (centre[:, 0:1] + du.reshape(1, -1)).ravel()
    v = (centre[:, 1:2] + dv.reshape(1, -1)).ravel()
    keep = (u >= 0) & (u < seg.shape[1]) & (v >= 0) & (v < seg.shape[0])
    seg[v[keep], u[keep]] = value


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(P, 3) camera-frame points -> (P, 2) pixels (NaN behind the camera)."""
    z = points[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = (points @ K.T)[:, :2] / z
    pixels[z[:, 0] <= 1e-6] = np.nan
    return pixels


def _jpeg(seg: np.ndarray, palette: np.ndarray) -> bytes:
    """A placeholder colour image: ``palette`` (256, 3) uint8 looked up by the segmentation (H, W)."""
    buffer = io.BytesIO()
    Image.fromarray(palette[seg]).save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()


def _place_hand(
    layer: ManoLayer,
    finger: np.ndarray,
    betas: np.ndarray,
    orient: np.ndarray,
    obj: ObjectMesh,
    obj_verts: np.ndarray,
    side: str,
) -> np.ndarray:
    """Translation putting the palm near the object surface, facing the object centre, with little penetration.

    The palm is moved back from ``_PALM_GAPS_M[0]`` in steps until at most ``_MAX_INSIDE`` of the hand vertices lie
    inside the object (or the last gap is reached).
    """
    import trimesh

    posed = pose_hand(layer, {"global_orient": orient, "hand_pose": finger, "betas": betas, "transl": np.zeros(3)})
    joints = posed.joints
    palm = joints[[0, 5, 9, 13, 17]].mean(axis=0)
    normal = np.cross(joints[5] - joints[0], joints[17] - joints[0])
    normal *= (1.0 if side == "right" else -1.0) / np.linalg.norm(normal)  # out of the palm
    centre = obj_verts.mean(axis=0)
    reach = float(np.max((obj_verts - centre) @ -normal))  # object extent towards the palm
    mesh = trimesh.Trimesh(obj_verts, obj.faces, process=False)
    transl = np.zeros(3)
    for gap in _PALM_GAPS_M:
        transl = centre - normal * (reach + gap) - palm
        if np.count_nonzero(mesh.contains(posed.verts + transl)) <= _MAX_INSIDE:
            break
    return transl


def write_mini_dexycb(
    root: str | os.PathLike,
    n_subjects: int = 2,
    n_sequences: int = 10,
    n_serials: int = 2,
    n_frames: int = 6,
    n_left: int = 1,
    seed: int = 0,
    mano_root: str | os.PathLike | None = None,
) -> MiniDexYCB:
    """Write a miniature DexYCB (real layout, synthetic content) into ``root``.

    Args:
        root: output folder (created; existing files of the same names are overwritten).
        n_subjects: test subjects to write (1..8), ``DEX_YCB_SUBJECTS[2:2 + n_subjects]``.
        n_sequences: sequences per subject (5..100); positions 4, 9, ... are s0_test.
        n_serials: cameras (1..8), spread over ``DEX_YCB_SERIALS``.
        n_frames: frames per sequence (2..100).
        n_left: how many of the test sequences (the last ones) show a left hand.
        seed: random seed; the same arguments give the same files.
        mano_root: MANO folder; None uses the license-free synthetic hand.

    Returns:
        MiniDexYCB describing what was written.
    """
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.poses import synthetic_grasp_poses

    n_subjects = _check_int("n_subjects", n_subjects, 1, 8)
    n_sequences = _check_int("n_sequences", n_sequences, 5, 100)
    n_serials = _check_int("n_serials", n_serials, 1, 8)
    n_frames = _check_int("n_frames", n_frames, 2, 100)
    n_test_sequences = n_subjects * (n_sequences // 5)
    n_left = _check_int("n_left", n_left, 0, n_test_sequences)
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    mano_path = Path(mano_root) if mano_root is not None else synthetic_mano_root()
    cache = ManoLayerCache(mano_path)
    rng = np.random.default_rng(seed)

    # Objects.
    meshes = {ycb_id: make_object(name) for ycb_id, name in MINI_OBJECTS.items()}
    for ycb_id, mesh in meshes.items():
        _write_object(root / "models" / YCB_CLASSES[ycb_id], mesh)

    # Cameras: intrinsics and a shared extrinsics file.
    serial_ids = sorted({int(round(x)) for x in np.linspace(0, 7, n_serials)}) if n_serials > 1 else [0]
    serials = tuple(DEX_YCB_SERIALS[i] for i in serial_ids)
    cameras: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    extrinsics: dict[str, list[float]] = {}
    for j, serial in enumerate(serials):
        fx, fy = 610.0 + 8.0 * j, 609.0 + 8.0 * j
        ppx, ppy = 320.0 + 2.0 * j, 240.0 - 1.5 * j
        intr = {"fx": fx, "fy": fy, "ppx": ppx, "ppy": ppy}
        _write_yaml(root / "calibration" / "intrinsics" / f"{serial}_640x480.yml", {"color": intr, "depth": intr})
        azimuth = np.deg2rad(30.0 + 360.0 * j / len(serials))
        elevation = np.deg2rad(35.0)
        eye = _TARGET + 0.75 * np.array(
            [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
        )
        rotation, translation = _look_at(eye, _TARGET)
        K = np.array([[fx, 0.0, ppx], [0.0, fy, ppy], [0.0, 0.0, 1.0]])
        cameras[serial] = (rotation, translation, K)
        camera_to_world = np.concatenate([rotation.T, (-rotation.T @ translation)[:, None]], axis=1)
        extrinsics[serial] = [round(float(x), 8) for x in camera_to_world.ravel()]
    extrinsics["apriltag"] = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    extrinsics_name = "mini-000000"
    _write_yaml(
        root / "calibration" / f"extrinsics_{extrinsics_name}" / "extrinsics.yml",
        {"extrinsics": extrinsics, "master": serials[0]},
    )

    families = synthetic_grasp_poses(seed)
    poses_right = np.concatenate([families[f] for f in _GRASP_FAMILIES], axis=0)  # (N, 45)
    subjects = DEX_YCB_SUBJECTS[2 : 2 + n_subjects]
    test_positions = [(s, k) for s in range(n_subjects) for k in range(n_sequences) if k % 5 == 4]
    left_set = set(test_positions[len(test_positions) - n_left :]) if n_left else set()

    sequences: list[str] = []
    left_sequences: list[str] = []
    n_samples = 0
    for s, subject in enumerate(subjects):
        betas = np.round(rng.normal(0.0, 0.7, size=10), 6)
        _write_yaml(root / "calibration" / f"mano_{subject}" / "mano.yml", {"betas": [float(b) for b in betas]})
        date = subject.split("-")[0]
        for k in range(n_sequences):
            name = f"{date}_{10 + k // 60:02d}{k % 60:02d}00"
            side = "left" if (s, k) in left_set else "right"
            folder = root / subject / name
            no_hand_frame = 1 if (s == 0 and k in (0, 4)) else -1
            n_samples += _write_sequence(
                folder=folder,
                side=side,
                subject=subject,
                betas=betas,
                meshes=meshes,
                cameras=cameras,
                serials=serials,
                n_frames=n_frames,
                no_hand_frame=no_hand_frame,
                poses_right=poses_right,
                extrinsics_name=extrinsics_name,
                cache=cache,
                rng=rng,
            )
            sequences.append(f"{subject}/{name}")
            if side == "left":
                left_sequences.append(f"{subject}/{name}")

    gsdf_frames = len(range(0, n_frames, 5))
    right_tests = len(test_positions) - n_left
    return MiniDexYCB(
        root=root,
        models_root=root / "models",
        mano_root=mano_path,
        subjects=tuple(subjects),
        serials=serials,
        sequences=tuple(sequences),
        left_sequences=tuple(left_sequences),
        n_frames=n_frames,
        n_samples=n_samples,
        n_test_samples=len(test_positions) * len(serials) * n_frames,
        n_test_gsdf=right_tests * len(serials) * gsdf_frames,
        seed=seed,
    )


def _write_sequence(
    *,
    folder: Path,
    side: str,
    subject: str,
    betas: np.ndarray,
    meshes: dict[int, ObjectMesh],
    cameras: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    serials: tuple[str, ...],
    n_frames: int,
    no_hand_frame: int,
    poses_right: np.ndarray,
    extrinsics_name: str,
    cache: ManoLayerCache,
    rng: np.random.Generator,
) -> int:
    """Write one sequence (meta.yml, pose.npz, per-camera labels and images); returns the number of samples."""
    ycb_ids = [int(i) for i in rng.permutation(sorted(meshes))[:3]]
    grasp_ind = int(rng.integers(0, 3))
    _write_yaml(
        folder / "meta.yml",
        {
            "serials": list(serials),
            "num_frames": n_frames,
            "ycb_ids": ycb_ids,
            "ycb_grasp_ind": grasp_ind,
            "mano_sides": [side],
            "mano_calib": [subject],
            "extrinsics": extrinsics_name,
        },
    )
    model = cache.model(side)
    flat = cache.layer(side)
    pca_layer = cache.dexycb_layer(side)

    # World-frame object poses at frame 0.
    obj_rot = [Rotation.from_euler("zx", [rng.uniform(-np.pi, np.pi), rng.normal(0.0, 0.2)]) for _ in ycb_ids]
    obj_pos = []
    for o, ycb_id in enumerate(ycb_ids):
        if o == grasp_ind:
            obj_pos.append(_TARGET + rng.normal(0.0, 0.01, size=3))
        else:
            angle = np.pi * (0.3 + 0.9 * o)
            half_height = 0.5 * float(meshes[ycb_id].extents[2])
            obj_pos.append(np.array([0.2 * np.cos(angle), 0.2 * np.sin(angle), half_height]))

    # The hand at frame 0, in the grasped object's neighbourhood.
    finger = poses_right[rng.integers(0, len(poses_right))].copy()
    if side == "left":
        finger = np.asarray(mirror_axis_angle(finger))
    orient = Rotation.random(random_state=int(rng.integers(0, 2**31))).as_rotvec()
    grasped = meshes[ycb_ids[grasp_ind]].verts @ obj_rot[grasp_ind].as_matrix().T + obj_pos[grasp_ind]
    transl = _place_hand(flat, finger, betas, orient, meshes[ycb_ids[grasp_ind]], grasped, side)
    rest_root = pose_hand(
        flat, {"global_orient": np.zeros(3), "hand_pose": np.zeros(45), "betas": betas, "transl": np.zeros(3)}
    ).joints[0]

    # Motion over the frames: the hand and the grasped object turn about z and lift together.
    frames = np.arange(n_frames)
    motion = Rotation.from_euler("z", np.deg2rad(2.0) * frames[:, None]).as_matrix()  # (F, 3, 3)
    lift = np.outer(frames, [0.0, 0.0, 0.004])  # (F, 3)
    pivot = obj_pos[grasp_ind]
    shift = lift + pivot - np.einsum("fij,j->fi", motion, pivot)  # rotate about the object centre
    world_orient, world_transl = _move_hand(
        np.repeat(orient[None], n_frames, 0), np.repeat(transl[None], n_frames, 0), rest_root, motion, shift
    )
    fingers = finger[None] + rng.normal(0.0, 0.02, size=(n_frames, 45))  # (F, 45) flat-mean
    pca = np.asarray(flat_axis_angle_to_pca(fingers, model, 45))  # (F, 45)
    has_hand = np.ones(n_frames, dtype=bool)
    if 0 <= no_hand_frame < n_frames:
        has_hand[no_hand_frame] = False

    obj_rotations = np.zeros((n_frames, len(ycb_ids), 3, 3))
    obj_translations = np.zeros((n_frames, len(ycb_ids), 3))
    for o in range(len(ycb_ids)):
        base = obj_rot[o].as_matrix()
        if o == grasp_ind:
            obj_rotations[:, o] = motion @ base
            obj_translations[:, o] = np.einsum("fij,j->fi", motion, obj_pos[o]) + shift
        else:
            obj_rotations[:, o] = base
            obj_translations[:, o] = obj_pos[o]

    # pose.npz (world frame): quaternion (x, y, z, w) + translation; MANO parameters.
    quats = Rotation.from_matrix(obj_rotations.reshape(-1, 3, 3)).as_quat().reshape(n_frames, len(ycb_ids), 4)
    pose_y_world = np.concatenate([quats, obj_translations], axis=2).astype(np.float32)
    pose_m_world = np.concatenate([world_orient, pca, world_transl], axis=1)[:, None].astype(np.float32)
    pose_m_world[~has_hand] = 0.0
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "pose.npz", pose_y=pose_y_world, pose_m=pose_m_world)

    palette = np.tile(_BACKGROUND, (256, 1))
    palette[255] = _HAND_COLOR
    for o, ycb_id in enumerate(ycb_ids):
        palette[ycb_id] = (60 + 40 * o, 200 - 50 * o, 90 + 60 * (ycb_id % 3))
    # Camera-frame MANO parameters of every (camera, frame), posed in one batch with the PCA-45 layer.
    pose_m = np.zeros((len(serials), n_frames, 1, 51), dtype=np.float32)
    for c, serial in enumerate(serials):
        rotation, translation, _ = cameras[serial]
        cam_orient, cam_transl = _move_hand(world_orient, world_transl, rest_root, rotation, translation)
        pose_m[c, :, 0] = np.concatenate([cam_orient, pca, cam_transl], axis=1)
    pose_m[:, ~has_hand] = 0.0
    stored = pose_m.reshape(-1, 51).astype(np.float64)  # the float32 values the labels hold
    like = {"dtype": pca_layer.v_template.dtype, "device": pca_layer.v_template.device}
    with torch.no_grad():
        out = pca_layer(
            global_orient=torch.as_tensor(stored[:, :3], **like),
            hand_pose=torch.as_tensor(stored[:, 3:48], **like),
            betas=torch.as_tensor(np.repeat(betas[None], len(stored), 0), **like),
            transl=torch.as_tensor(stored[:, 48:], **like),
        )
    all_verts = out.verts.cpu().double().numpy().reshape(len(serials), n_frames, -1, 3)
    all_joints = out.joints.cpu().double().numpy().reshape(len(serials), n_frames, 21, 3)

    count = 0
    for c, serial in enumerate(serials):
        rotation, translation, K = cameras[serial]
        cam_obj_rot = np.einsum("ij,fojk->foik", rotation, obj_rotations)  # (F, n_obj, 3, 3)
        cam_obj_t = obj_translations @ rotation.T + translation  # (F, n_obj, 3)
        pose_y = np.concatenate([cam_obj_rot, cam_obj_t[..., None]], axis=3).astype(np.float32)
        camera_folder = folder / serial
        camera_folder.mkdir(parents=True, exist_ok=True)
        for f in range(n_frames):
            seg = np.zeros((_HEIGHT // _SEG_CELL, _WIDTH // _SEG_CELL), dtype=np.uint8)
            for o, ycb_id in enumerate(ycb_ids):
                points = meshes[ycb_id].verts @ cam_obj_rot[f, o].T + cam_obj_t[f, o]
                _splat(seg, _project(points, K), ycb_id)
            if has_hand[f]:
                joint_3d = all_joints[c, f][None].astype(np.float32)
                joint_2d = _project(all_joints[c, f], K)[None].astype(np.float32)
                _splat(seg, _project(all_verts[c, f], K), 255)
            else:
                joint_3d = -np.ones((1, 21, 3), dtype=np.float32)
                joint_2d = -np.ones((1, 21, 2), dtype=np.float32)
            seg = np.repeat(np.repeat(seg, _SEG_CELL, axis=0), _SEG_CELL, axis=1)  # (480, 640)
            np.savez_compressed(
                camera_folder / f"labels_{f:06d}.npz",
                seg=seg,
                pose_y=pose_y[f],
                pose_m=pose_m[c, f],
                joint_3d=joint_3d,
                joint_2d=joint_2d,
            )
            (camera_folder / f"color_{f:06d}.jpg").write_bytes(_jpeg(seg, palette))
            count += 1
    return count


def _random_rotation(rng: np.random.Generator, sigma_rad: float) -> np.ndarray:
    """A rotation about a uniformly random axis by an angle drawn from N(0, sigma)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return Rotation.from_rotvec(axis * rng.normal(0.0, sigma_rad)).as_matrix()


def write_mini_hflnet(
    mini: MiniDexYCB,
    path: str | os.PathLike,
    noise: str | None = "hflnet-like",
    seed: int = 0,
    subset: str = "all",
) -> HFLNetFile:
    """Write ``hflnet.pkl`` predictions for the s0_test samples (with a hand) of a miniature DexYCB.

    Each prediction is the ground truth of the sample, stored as HFL-Net's outputs are: joints and vertices relative
    to joint 0 (not mirrored), ``hand_root`` = the labels' joint 0 (``root_source="gt_joint0"``), ``mano_pose_aa``
    in the flat-mean convention and, for left hands, mirrored to the right-hand frame (``(x, -y, -z)`` per joint),
    ``obj_pose`` = the labels' pose of the grasped object.

    ``noise="hflnet-like"`` (documented stand-in for HFL-Net's errors, applied in the hand's own side frame before
    mirroring): global orientation turned by N(0, 4 deg) about a random axis, each finger axis-angle value
    + N(0, 0.1 rad), betas + N(0, 0.3); the noisy MANO hand is re-posed, re-centred at its joint 0 and placed at the
    true joint 0 (root-relative MPJPE of roughly 10-15 mm); object rotation N(0, 5 deg) about a random axis through
    its origin and translation + N(0, 1 cm) per axis. ``noise=None`` writes the ground truth.

    Args:
        mini: what :func:`write_mini_dexycb` returned.
        path: output pickle.
        noise: "hflnet-like" or None.
        seed: noise seed.
        subset: "all" or "gsdf" (the DexYCB subset to predict).

    Returns:
        The written HFLNetFile.
    """
    if noise not in ("hflnet-like", None):
        raise InputError(f"noise: expected 'hflnet-like' or None, got {noise!r}")
    if not isinstance(mini, MiniDexYCB):
        raise InputError(f"mini: expected the MiniDexYCB returned by write_mini_dexycb, got {type(mini).__name__}")
    rng = np.random.default_rng(_check_int("seed", seed, 0, 2**32 - 1))
    dataset = DexYCB(mini.root, split="s0_test", subset=subset, mano_root=mini.mano_root, strict=False)
    cache = dataset.layer_cache
    samples: list[HFLNetPrediction] = []
    for sample in dataset:
        if not sample.has_hand:
            continue
        params = sample.mano_params(cache)
        obj_pose = sample.obj_pose.copy()
        if noise is not None:
            turn = _random_rotation(rng, np.deg2rad(4.0))
            params["global_orient"] = Rotation.from_matrix(
                turn @ Rotation.from_rotvec(params["global_orient"]).as_matrix()
            ).as_rotvec()
            params["hand_pose"] = params["hand_pose"] + rng.normal(0.0, 0.1, size=45)
            params["betas"] = params["betas"] + rng.normal(0.0, 0.3, size=10)
            obj_pose[:, :3] = _random_rotation(rng, np.deg2rad(5.0)) @ obj_pose[:, :3]
            obj_pose[:, 3] += rng.normal(0.0, 0.01, size=3)
        posed = pose_hand(cache.layer(sample.mano_side), params)
        root = posed.joints[0]
        pose_aa = np.concatenate([params["global_orient"], params["hand_pose"]])
        if sample.mano_side == "left":
            pose_aa = np.asarray(mirror_axis_angle(pose_aa))
        joints_2d = sample.joint_2d[0]
        low, high = joints_2d.min(axis=0), joints_2d.max(axis=0)
        centre, half = 0.5 * (low + high), 0.75 * float(np.max(high - low))
        samples.append(
            HFLNetPrediction(
                dex_index=sample.index,
                sample_id=sample.sample_id,
                color_file=sample.color_file,
                mano_side=sample.mano_side,
                ycb_id=sample.grasped_ycb_id,
                hand_joints_rel=(posed.joints - root).astype(np.float32),
                hand_verts_rel=(posed.verts - root).astype(np.float32),
                hand_root=sample.joint_3d[0, 0].astype(np.float32),
                mano_pose_aa=pose_aa.astype(np.float32),
                mano_shape=params["betas"].astype(np.float32),
                obj_pose=obj_pose.astype(np.float32),
                obj_pnp_ok=True,
                crop_box=np.array([*(centre - half), *(centre + half)], dtype=np.float32),
            )
        )
    file = HFLNetFile(
        samples=samples,
        split="s0_test",
        subset=f"mini_{subset}",
        checkpoint="mini-dexycb-ground-truth" if noise is None else f"mini-dexycb-{noise}-seed{seed}",
        root_source="gt_joint0",
        crop_source="gt",
        meta={"generator": "haco_grasp.data.mini_dexycb", "noise": str(noise), "seed": int(seed)},
    )
    save_hflnet(file, path)
    return file
