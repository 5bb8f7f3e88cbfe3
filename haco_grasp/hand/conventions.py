"""MANO conventions shared by every data source: cached layers, posing one hand, PCA <-> axis-angle, mirroring.

- :class:`ManoLayerCache`: MANO models and layers of both sides built once and reused.
- :func:`pose_hand`: one hand's numpy parameters through a layer, without gradients (:class:`PosedHand`).
- :func:`dexycb_pca_to_flat_axis_angle` / :func:`flat_axis_angle_to_pca`: DexYCB's PCA-45 finger pose
  (``flat_hand_mean=False``) to and from the flat-mean 45-D axis-angle that :class:`~haco_grasp.data.Grasp` stores.
- :func:`mirror_axis_angle`: ``(x, y, z) -> (x, -y, -z)`` per joint, the right <-> left mirror across x = 0.

Numpy or torch in, the same type out; torch stays differentiable and keeps its device.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from haco_grasp.errors import InputError
from haco_grasp.hand.mano import ManoLayer, ManoModelData, read_mano_pickle, resolve_mano_path

__all__ = [
    "ManoLayerCache",
    "PosedHand",
    "dexycb_pca_to_flat_axis_angle",
    "flat_axis_angle_to_pca",
    "mirror_axis_angle",
    "pose_hand",
]

Side = Literal["right", "left"]
ArrayLike = np.ndarray | torch.Tensor


class ManoLayerCache:
    """MANO models and layers built once and reused (float64 by default, for label-accurate joints).

    Args:
        mano_root: folder with ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (see
            :func:`haco_grasp.hand.mano.resolve_mano_path`); None uses ``$HACO_GRASP_MANO_ROOT``. Use
            :func:`haco_grasp.hand.assets.synthetic_mano_root` for the license-free synthetic hand.
        dtype: float dtype of the layers.
        device: torch device of the layers (default: torch's default device).
    """

    def __init__(
        self,
        mano_root: str | os.PathLike | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        self.mano_root = None if mano_root is None else Path(mano_root)
        self.dtype = dtype
        self.device = device
        self._models: dict[str, ManoModelData] = {}
        self._layers: dict[tuple[str, bool, int, bool, torch.dtype, str | None], ManoLayer] = {}

    def model(self, side: Side) -> ManoModelData:
        """The arrays of ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (read once)."""
        if side not in ("right", "left"):
            raise InputError(f"side: expected 'right' or 'left', got {side!r}")
        if side not in self._models:
            self._models[side] = read_mano_pickle(resolve_mano_path(side, self.mano_root))
        return self._models[side]

    def layer(
        self,
        side: Side,
        *,
        use_pca: bool = False,
        num_pca_comps: int = 45,
        flat_hand_mean: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> ManoLayer:
        """A :class:`~haco_grasp.hand.mano.ManoLayer` of ``side`` with the given pose convention (cached).

        The default is the flat-mean 45-D axis-angle layer of :class:`~haco_grasp.data.Grasp` and HFL-Net, of the
        cache's dtype and device; ``dtype`` / ``device`` ask for another, cached apart (e.g. the optimizer's float32
        layer on its device from the float64 cache that builds the grasps: one cache, the model files read once, and
        a layer the optimizer moves is never the one that builds grasps).
        """
        dtype = self.dtype if dtype is None else dtype
        device = self.device if device is None else device
        where = None if device is None else str(torch.device(device))
        key = (side, bool(use_pca), int(num_pca_comps) if use_pca else 45, bool(flat_hand_mean), dtype, where)
        if key not in self._layers:
            layer = ManoLayer(
                self.model(side),
                side=side,
                use_pca=use_pca,
                num_pca_comps=key[2],
                flat_hand_mean=flat_hand_mean,
                dtype=dtype,
            )
            self._layers[key] = layer if device is None else layer.to(device)
        return self._layers[key]

    def dexycb_layer(self, side: Side) -> ManoLayer:
        """The DexYCB toolkit's layer: PCA with 45 components, ``flat_hand_mean=False``."""
        return self.layer(side, use_pca=True, num_pca_comps=45, flat_hand_mean=False)


def _pose_basis(model: ManoModelData | ManoLayer) -> tuple[np.ndarray, np.ndarray]:
    """(components (45, 45) rows, hands_mean (45,)) of a MANO model, float64."""
    if isinstance(model, ManoModelData):
        return np.asarray(model.hands_components, np.float64), np.asarray(model.hands_mean, np.float64)
    if isinstance(model, ManoLayer):
        if not model.use_pca or model.num_pca_comps != 45 or model.flat_hand_mean:
            raise InputError(
                "layer: expected the model arrays (ManoLayerCache.model(side)) or a ManoLayer with use_pca=True, "
                f"num_pca_comps=45, flat_hand_mean=False (the DexYCB layer), got use_pca={model.use_pca}, "
                f"num_pca_comps={model.num_pca_comps}, flat_hand_mean={model.flat_hand_mean}"
            )
        components = model.hand_components.detach().cpu().double().numpy()
        return components, model.hand_mean.detach().cpu().double().numpy()
    raise InputError(
        f"layer: expected a ManoModelData or ManoLayer, got {type(model).__name__}; pass ManoLayerCache.model(side)"
    )


def _check_last_dim(name: str, value: Any, allowed: Callable[[int], bool], expected: str) -> ArrayLike:
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        value = np.asarray(value, dtype=np.float64)
    if value.ndim < 1 or not allowed(int(value.shape[-1])):
        raise InputError(f"{name}: expected shape {expected}, got {tuple(value.shape)}")
    return value


def dexycb_pca_to_flat_axis_angle(pca45: ArrayLike, layer: ManoModelData | ManoLayer) -> ArrayLike:
    """DexYCB's finger PCA coefficients (``flat_hand_mean=False``) to flat-mean 45-D axis-angle.

    ``aa45 = pca @ hands_components[:k] + hands_mean``: the finger rotations the toolkit's layer applies, which a
    ``flat_hand_mean=True`` layer applies unchanged. The global orientation is not part of it (it is unchanged).

    Args:
        pca45: (..., k) float PCA coefficients, k <= 45 (DexYCB: ``pose_m[0, 3:48]``, k = 45); numpy or torch
            (torch stays differentiable and keeps its device).
        layer: the MANO model of the hand's side (``ManoLayerCache.model(side)``) or its DexYCB PCA-45 layer.

    Returns:
        aa45: (..., 45) float axis-angle, radians, MANO joints 1..15.
    """
    components, mean = _pose_basis(layer)
    pca45 = _check_last_dim("pca45", pca45, lambda k: 1 <= k <= 45, "(..., k) with 1 <= k <= 45")
    k = int(pca45.shape[-1])
    if isinstance(pca45, torch.Tensor):
        basis = torch.as_tensor(components[:k], dtype=pca45.dtype, device=pca45.device)
        return pca45 @ basis + torch.as_tensor(mean, dtype=pca45.dtype, device=pca45.device)
    return np.asarray(pca45, np.float64) @ components[:k] + mean  # (..., k) @ (k, 45)


def flat_axis_angle_to_pca(aa45: ArrayLike, layer: ManoModelData | ManoLayer, ncomps: int = 45) -> ArrayLike:
    """Flat-mean 45-D finger axis-angle to ``ncomps`` PCA coefficients of a ``flat_hand_mean=False`` layer.

    Least-squares projection: ``pca = (aa45 - hands_mean) @ pinv(hands_components[:ncomps])``. With ``ncomps=45``
    this inverts :func:`dexycb_pca_to_flat_axis_angle` exactly; with fewer (ContactOpt: 15) it is the truncation,
    which changes the hand by itself.

    Args:
        aa45: (..., 45) float axis-angle, radians, flat-mean convention; numpy or torch (differentiable).
        layer: the MANO model of the hand's side or its DexYCB PCA-45 layer.
        ncomps: number of PCA components, 1..45.

    Returns:
        pca: (..., ncomps) float coefficients.
    """
    if isinstance(ncomps, bool) or not isinstance(ncomps, (int, np.integer)) or not 1 <= ncomps <= 45:
        raise InputError(f"ncomps: expected an int in 1..45, got {ncomps!r}")
    components, mean = _pose_basis(layer)
    aa45 = _check_last_dim("aa45", aa45, lambda k: k == 45, "(..., 45)")
    basis = components[:ncomps]  # (ncomps, 45)
    if np.allclose(basis @ basis.T, np.eye(ncomps), atol=1e-10):
        projector = basis.T  # orthonormal rows: the pseudo-inverse is the transpose
    else:
        projector = np.linalg.pinv(basis)  # (45, ncomps)
    if isinstance(aa45, torch.Tensor):
        like = {"dtype": aa45.dtype, "device": aa45.device}
        return (aa45 - torch.as_tensor(mean, **like)) @ torch.as_tensor(projector, **like)
    return (np.asarray(aa45, np.float64) - mean) @ projector


def mirror_axis_angle(aa: ArrayLike) -> ArrayLike:
    """Mirror axis-angle rotations across the x = 0 plane: ``(x, y, z) -> (x, -y, -z)`` for every joint.

    With ``M = diag(-1, 1, 1)``, ``M R(w) M = R((w_x, -w_y, -w_z))``. This maps a right-hand MANO pose to the
    left hand's (and back) when the left model is the mirror image of the right one, and HFL-Net's mirrored
    (right-hand-frame) poses of left hands back to left-hand poses. It is its own inverse.

    Args:
        aa: (..., 3J) float axis-angle (any J, e.g. 48 or 45 or 3); numpy or torch.

    Returns:
        (..., 3J) the mirrored rotations, same type.
    """
    aa = _check_last_dim("aa", aa, lambda k: k > 0 and k % 3 == 0, "(..., 3J)")
    reps = int(aa.shape[-1]) // 3
    if isinstance(aa, torch.Tensor):
        sign = torch.tensor([1.0, -1.0, -1.0], dtype=aa.dtype, device=aa.device).repeat(reps)
        return aa * sign
    return np.asarray(aa, np.float64) * np.tile([1.0, -1.0, -1.0], reps)


class PosedHand(NamedTuple):
    """One posed hand as numpy arrays."""

    verts: np.ndarray  # (778, 3) float64
    joints: np.ndarray  # (21, 3) float64


def pose_hand(layer: ManoLayer, params: dict[str, np.ndarray]) -> PosedHand:
    """Run a MANO layer on one hand's numpy parameters, without gradients.

    Args:
        layer: a :class:`ManoLayer`; ``params["hand_pose"]`` must match its pose convention.
        params: global_orient (3,), hand_pose (45,) or (k,), betas (10,), transl (3,) metres.

    Returns:
        verts: (778, 3) float64, metres; joints: (21, 3) float64, metres.
    """
    ref = layer.v_template

    def tensor(name: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(params[name]), dtype=ref.dtype, device=ref.device).reshape(1, -1)

    with torch.no_grad():
        out = layer(
            global_orient=tensor("global_orient"),
            hand_pose=tensor("hand_pose"),
            betas=tensor("betas"),
            transl=tensor("transl"),
        )
    return PosedHand(out.verts[0].cpu().double().numpy(), out.joints[0].cpu().double().numpy())
