"""Seeded noise models that turn a ground-truth grasp into the input the refinement must repair.

Two documented models (:data:`NOISE_MODELS`); the ground truth is never modified (new arrays, a new ``meta``
with the drawn noise under ``meta["perturbation"]``), and the hand mesh, joints and 1 cm contact labels of the
perturbed grasp are recomputed from its parameters.

``"contactopt-aug"``: ContactOpt's Perturbed-ContactPose augmentation (``create_dataset_contactpose.py``,
contactopt.md §6), exactly:

- translation: N(0, 5 cm) added to each axis of the hand translation (world frame);
- global rotation: N(0, 0.1 rad) added to each component of the global axis-angle (the rotation is about the wrist
  joint, MANO's root, in smplx and manopth alike);
- finger pose: ContactOpt works in MANO's 15-component PCA space with the hand mean added
  (``flat_hand_mean=False``). The flat-mean 45-D pose p of the grasp is converted to coefficients
  ``c = (p - hands_mean) @ hands_components[:15].T``, each coefficient gets N(0, 0.5), and the pose is rebuilt as
  ``p' = hands_mean + c' @ hands_components[:15] + r`` where r, the part of p outside the first 15 components, is
  kept (ContactPose's fits have none, so this is ContactOpt's model, and zero noise is the identity);
- betas and the object pose are not perturbed.

``"hflnet-like"``: an image-based estimate in the error range of HFL-Net on DexYCB (hflnet_dexycb.md §1: about
12.5 mm root-relative MPJPE for the released checkpoint, 13.0 mm retrained, in the root-relative convention of §7):

- hand articulation: N(0, :data:`HFL_POSE_STD`) on every component of the 45-D finger axis-angle, N(0,
  :data:`HFL_GLOBAL_STD`) on the global axis-angle and N(0, :data:`HFL_BETAS_STD`) on every shape coefficient.
  Calibrated on synthetic grasps (``generate_grasps(24, seed=0)``, 20 draws each): measured root-relative MPJPE
  13.5 mm mean, 13.1 mm median (target 12-15 mm; 0.16 rad gives 11.9 mm, 0.20 rad 14.0 mm);
- absolute root: N(0, :data:`HFL_ROOT_STD` = 3 mm) per axis on the hand translation (about 4.8 mm on average).
  HFL-Net itself predicts no translation and is evaluated with the ground-truth root (§2), so this is the small
  residual of a good root estimate (e.g. from depth or a fitted object), not a monocular depth error;
- object pose: rotation by an axis-angle with N(0, :data:`HFL_OBJ_ROT_STD_DEG` = 2.5 degrees) per component
  (about 4 degrees on average) about the object's centre, and translation N(0, :data:`HFL_OBJ_TRANS_STD` = 6 mm)
  per axis (about 1 cm on average): a loose model of HFL-Net's PnP object poses, whose ADD accuracy at 10 % of the
  diameter is high but not perfect on DexYCB (the paper's per-object ADD numbers are unverified, §1).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import torch

from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError

__all__ = [
    "CONTACTOPT_POSE_STD",
    "CONTACTOPT_ROT_STD",
    "CONTACTOPT_TRANS_STD",
    "HFL_BETAS_STD",
    "HFL_GLOBAL_STD",
    "HFL_OBJ_ROT_STD_DEG",
    "HFL_OBJ_TRANS_STD",
    "HFL_POSE_STD",
    "HFL_ROOT_STD",
    "NOISE_MODELS",
    "perturb_grasp",
    "perturb_grasps",
]

NoiseModel = Literal["contactopt-aug", "hflnet-like"]
#: Names accepted by :func:`perturb_grasp`.
NOISE_MODELS: tuple[str, ...] = ("contactopt-aug", "hflnet-like")

#: ContactOpt augmentation: translation std per axis (metres), global axis-angle std (rad), PCA coefficient std.
CONTACTOPT_TRANS_STD = 0.05
CONTACTOPT_ROT_STD = 0.1
CONTACTOPT_POSE_STD = 0.5
CONTACTOPT_NUM_COMPS = 15

#: hflnet-like: finger axis-angle std (rad), global axis-angle std (rad), betas std, root std per axis (metres),
#: object rotation std per axis-angle component (degrees) and object translation std per axis (metres).
HFL_POSE_STD = 0.19
HFL_GLOBAL_STD = 0.05
HFL_BETAS_STD = 0.5
HFL_ROOT_STD = 0.003
HFL_OBJ_ROT_STD_DEG = 2.5
HFL_OBJ_TRANS_STD = 0.006


def _check_model(model: str) -> str:
    if model not in NOISE_MODELS:
        raise InputError(f"model: expected one of {NOISE_MODELS}, got {model!r}")
    return model


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise InputError(f"rng: expected a numpy Generator or a non-negative int seed, got {rng!r}")


def _check_layer(layer: Any) -> Any:
    from haco_grasp.hand.mano import ManoLayer

    if not isinstance(layer, ManoLayer):
        raise InputError(f"layer: expected a haco_grasp ManoLayer, got {type(layer).__name__}")
    if layer.use_pca or not layer.flat_hand_mean:
        raise InputError(
            "layer: grasps hold 45-D flat-hand-mean poses; load the layer with use_pca=False, flat_hand_mean=True"
        )
    return layer


@functools.lru_cache(maxsize=8)
def _layer_for(side: str, root: str | None) -> Any:
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import load_mano

    return load_mano(side=side, root=root or synthetic_mano_root(), use_pca=False, flat_hand_mean=True)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=8)
def _pca_basis(model_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(45,) hands_mean and (45, 45) hands_components (rows) of a MANO file."""
    from haco_grasp.hand.mano import read_mano_pickle

    data = read_mano_pickle(model_path)
    return data.hands_mean.copy(), data.hands_components.copy()


def _default_layer(grasp: Grasp) -> Any:
    root = grasp.meta.get("mano_root") if isinstance(grasp.meta, dict) else None
    return _layer_for(grasp.side, root if isinstance(root, str) else None)


def _check_grasp(grasp: Grasp, index: int | None = None) -> None:
    where = "grasp" if index is None else f"grasps[{index}]"
    if not isinstance(grasp, Grasp):
        raise InputError(f"{where}: expected a haco_grasp.data.grasp.Grasp, got {type(grasp).__name__}")
    shapes = {"global_orient": (3,), "hand_pose": (45,), "transl": (3,)}
    for name, shape in shapes.items():
        value = np.asarray(getattr(grasp, name))
        if value.shape != shape or not np.all(np.isfinite(value)):
            raise InputError(f"{where}.{name}: expected finite shape {shape}, got {value.shape}")


def _draw(model: str, rng: np.random.Generator, num_betas: int) -> dict[str, np.ndarray]:
    """Draw one noise sample (the order of draws is part of the seeded contract)."""
    if model == "contactopt-aug":
        return {
            "transl": rng.normal(0.0, CONTACTOPT_TRANS_STD, size=3),
            "global_orient": rng.normal(0.0, CONTACTOPT_ROT_STD, size=3),
            "pca": rng.normal(0.0, CONTACTOPT_POSE_STD, size=CONTACTOPT_NUM_COMPS),
        }
    return {
        "transl": rng.normal(0.0, HFL_ROOT_STD, size=3),
        "global_orient": rng.normal(0.0, HFL_GLOBAL_STD, size=3),
        "hand_pose": rng.normal(0.0, HFL_POSE_STD, size=45),
        "betas": rng.normal(0.0, HFL_BETAS_STD, size=num_betas),
        "obj_rotation": rng.normal(0.0, math.radians(HFL_OBJ_ROT_STD_DEG), size=3),
        "obj_translation": rng.normal(0.0, HFL_OBJ_TRANS_STD, size=3),
    }


def _stds(model: str) -> dict[str, float]:
    if model == "contactopt-aug":
        return {
            "transl_m": CONTACTOPT_TRANS_STD,
            "global_orient_rad": CONTACTOPT_ROT_STD,
            "pca_coefficient": CONTACTOPT_POSE_STD,
            "pca_components": CONTACTOPT_NUM_COMPS,
        }
    return {
        "transl_m": HFL_ROOT_STD,
        "global_orient_rad": HFL_GLOBAL_STD,
        "hand_pose_rad": HFL_POSE_STD,
        "betas": HFL_BETAS_STD,
        "obj_rotation_deg": HFL_OBJ_ROT_STD_DEG,
        "obj_translation_m": HFL_OBJ_TRANS_STD,
    }


def _apply(grasp: Grasp, model: str, noise: dict[str, np.ndarray], layer: Any) -> dict[str, np.ndarray]:
    """New parameter arrays of the perturbed grasp (hand and object)."""
    from scipy.spatial.transform import Rotation

    out = {
        "global_orient": np.asarray(grasp.global_orient, dtype=np.float64) + noise["global_orient"],
        "transl": np.asarray(grasp.transl, dtype=np.float64) + noise["transl"],
        "betas": np.array(grasp.betas, dtype=np.float64),
        "obj_rotation": np.array(grasp.obj_rotation, dtype=np.float64),
        "obj_translation": np.array(grasp.obj_translation, dtype=np.float64),
    }
    pose = np.asarray(grasp.hand_pose, dtype=np.float64)
    if model == "contactopt-aug":
        mean, components = _pca_basis(layer.model_path)
        basis = components[:CONTACTOPT_NUM_COMPS]  # (15, 45), orthonormal rows
        coeffs = (pose - mean) @ basis.T  # (15,)
        residual = (pose - mean) - coeffs @ basis
        out["hand_pose"] = mean + (coeffs + noise["pca"]) @ basis + residual
    else:
        out["hand_pose"] = pose + noise["hand_pose"]
        out["betas"] = out["betas"] + noise["betas"][: out["betas"].shape[0]]
        rotation = Rotation.from_rotvec(noise["obj_rotation"]).as_matrix()
        centre = grasp.obj_verts.mean(axis=0)  # rotate about the object's centre (world frame)
        out["obj_rotation"] = rotation @ out["obj_rotation"]
        out["obj_translation"] = (out["obj_translation"] - centre) @ rotation.T + centre + noise["obj_translation"]
    return out


def _with_params(
    grasp: Grasp, model: str, noise: dict[str, np.ndarray], params: dict[str, np.ndarray], seed: Any
) -> Grasp:
    """A copy of the grasp with new parameters and ``meta["perturbation"]`` (hand mesh not yet recomputed)."""
    meta = dict(grasp.meta)
    meta["perturbation"] = {
        "model": model,
        "seed": seed,
        "std": _stds(model),
        "noise": {key: [float(x) for x in value] for key, value in noise.items()},
    }
    return replace(grasp, meta=meta, **params)


def _pose_hands(layer: Any, params: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Batched MANO forward of perturbed parameters: verts (B, V, 3), joints (B, 21, 3) float64."""
    dtype, device = layer.v_template.dtype, layer.v_template.device

    def stack(key: str) -> torch.Tensor:
        return torch.as_tensor(np.stack([p[key] for p in params]), dtype=dtype, device=device)

    betas = stack("betas")[:, : layer.num_betas]
    with torch.no_grad():
        out = layer(
            global_orient=stack("global_orient"), hand_pose=stack("hand_pose"), betas=betas, transl=stack("transl")
        )
    return out.verts.cpu().double().numpy(), out.joints.cpu().double().numpy()


def _relabel(grasp: Grasp) -> np.ndarray:
    from haco_grasp.geometry.labels import hand_contact_labels

    threshold = grasp.meta.get("contact_threshold", 0.01) if isinstance(grasp.meta, dict) else 0.01
    labels = hand_contact_labels(grasp.hand_verts, grasp.obj_verts, grasp.obj_faces, threshold=float(threshold))
    return labels.astype(np.float64)


def perturb_grasp(
    grasp: Grasp,
    model: NoiseModel = "contactopt-aug",
    rng: np.random.Generator | int | None = None,
    layer: Any = None,
    relabel: bool = True,
) -> Grasp:
    """A perturbed copy of a grasp under one of :data:`NOISE_MODELS` (module docstring: exact definitions).

    Args:
        grasp: the ground truth (never modified).
        model: ``"contactopt-aug"`` or ``"hflnet-like"``.
        rng: a numpy Generator, or an int seed (recorded in ``meta``); None draws fresh entropy.
        layer: a :class:`~haco_grasp.hand.mano.ManoLayer` with ``use_pca=False, flat_hand_mean=True`` of the grasp's
            hand; None loads the hand named by ``grasp.meta["mano_root"]`` (else the synthetic hand) for its side.
        relabel: recompute ``hand_contact`` for the perturbed geometry (else keep the ground truth's labels).

    Returns:
        A new Grasp: perturbed parameters, recomputed ``hand_verts`` (778, 3) and ``hand_joints`` (21, 3), labels,
        and ``meta["perturbation"]`` = {model, seed, std, noise (the drawn values)}.
    """
    model = _check_model(model)
    _check_grasp(grasp)
    seed = int(rng) if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) else None
    generator = _rng(rng)
    layer = _check_layer(layer) if layer is not None else _default_layer(grasp)
    noise = _draw(model, generator, np.asarray(grasp.betas).shape[0])
    params = _apply(grasp, model, noise, layer)
    verts, joints = _pose_hands(layer, [params])
    out = replace(_with_params(grasp, model, noise, params, seed), hand_verts=verts[0], hand_joints=joints[0])
    if relabel:
        out = replace(out, hand_contact=_relabel(out))
    return out


def perturb_grasps(
    grasps: Sequence[Grasp],
    model: NoiseModel = "contactopt-aug",
    seed: int = 0,
    layer: Any = None,
    relabel: bool = True,
) -> list[Grasp]:
    """Perturb many grasps; grasp i uses ``numpy.random.default_rng([seed, i])`` (independent of the batch).

    Args:
        grasps: ground-truth grasps (never modified).
        model: ``"contactopt-aug"`` or ``"hflnet-like"``.
        seed: non-negative int.
        layer: as in :func:`perturb_grasp` (one layer for all grasps; None picks each grasp's hand).
        relabel: recompute ``hand_contact`` for the perturbed geometry.

    Returns:
        The perturbed grasps, in order. The hand meshes are posed in one batched MANO call per hand model.
    """
    model = _check_model(model)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative int, got {seed!r}")
    for index, grasp in enumerate(grasps):
        _check_grasp(grasp, index)
    if layer is not None:
        _check_layer(layer)
    drawn = []
    for index, grasp in enumerate(grasps):
        chosen = layer if layer is not None else _default_layer(grasp)
        noise = _draw(model, np.random.default_rng([int(seed), index]), np.asarray(grasp.betas).shape[0])
        drawn.append((chosen, noise, _apply(grasp, model, noise, chosen)))
    results: list[Grasp | None] = [None] * len(grasps)
    groups: dict[int, list[int]] = {}
    for index, (chosen, _, _) in enumerate(drawn):
        groups.setdefault(id(chosen), []).append(index)
    for indices in groups.values():
        chosen = drawn[indices[0]][0]
        verts, joints = _pose_hands(chosen, [drawn[i][2] for i in indices])
        for row, i in enumerate(indices):
            out = _with_params(grasps[i], model, drawn[i][1], drawn[i][2], [int(seed), i])
            out = replace(out, hand_verts=verts[row], hand_joints=joints[row])
            results[i] = replace(out, hand_contact=_relabel(out)) if relabel else out
    return [g for g in results if g is not None]
