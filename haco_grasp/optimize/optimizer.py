"""The contact-guided grasp optimizer: ContactOpt's objective, batched over grasps and restarts.

For each grasp the optimizer owns zero-initialised offsets to the MANO global rotation (axis-angle, added as in
ContactOpt), to the finger pose (in the span of the first ``num_pca_comps`` PCA components), to the translation
and, optionally, to the object's rotation (about its centroid) and translation. All restarts of all grasps are one
batch of ``B × R`` samples; every step is one batched MANO forward/backward plus the contact and penetration terms.

Objective per sample (``shared/reference/contactopt.md`` §4)::

    L = w_obj · asymL1(T_obj, C_obj) + w_hand · asymL1(T_hand, C_hand) + w_pen · L_pen

The restart with the lowest final loss wins (evaluated after the last step). Everything is deterministic for a
seed: the restart jitter and the object-point sampling use their own ``torch.Generator``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.geometry.contact import (
    asymmetric_l1,
    capsule_contact,
    penetration_hinge,
    sdf_contact,
    sdf_penetration,
)
from haco_grasp.geometry.knn import knn_points
from haco_grasp.geometry.rotations import axis_angle_to_matrix, euler_zyx_to_matrix, matrix_to_axis_angle
from haco_grasp.geometry.sampling import sample_surface
from haco_grasp.geometry.sdf import SdfGrid, sdf_grid
from haco_grasp.hand.assets import cache_dir
from haco_grasp.hand.mano import ManoLayer, load_mano
from haco_grasp.optimize.config import OptimizeConfig, get_config
from haco_grasp.optimize.targets import map_contact_target

logger = logging.getLogger(__name__)

LOSS_TERMS = ("total", "obj_contact", "hand_contact", "penetration")


@dataclass
class OptimizeResult:
    """Refined grasps (one per input grasp, the best restart of each).

    global_orient: (B, 3), hand_pose: (B, 45) axis-angle in the flat-hand-mean convention, betas: (B, S),
    transl: (B, 3) metres — MANO parameters of the refined hands, world frame.
    obj_rotation: (B, 3, 3), obj_translation: (B, 3): refined object poses (the input's when the object is fixed).
    verts: (B, 778, 3), joints: (B, 21, 3) metres, world frame.
    loss: (B,) final loss of the chosen restart. loss_history: term name -> (T, B) per-iteration values of the chosen
    restart (terms in :data:`LOSS_TERMS`, already weighted). chosen_restart: (B,) index of the winning restart.
    iterations: iterations run (early stopping may end before ``config.n_iter``). seconds: wall time.
    """

    global_orient: Tensor
    hand_pose: Tensor
    betas: Tensor
    transl: Tensor
    obj_rotation: Tensor
    obj_translation: Tensor
    verts: Tensor
    joints: Tensor
    loss: Tensor
    loss_history: dict[str, Tensor]
    chosen_restart: Tensor
    iterations: int
    seconds: float
    config: OptimizeConfig = field(repr=False)

    def to_grasps(self, grasps: Sequence[Grasp], hand_contact: Tensor | None = None) -> list[Grasp]:
        """The input grasps with refined hands and object poses (``hand_contact`` kept unless given)."""
        out = []
        for b, grasp in enumerate(grasps):
            out.append(
                grasp.with_hand(
                    global_orient=self.global_orient[b].detach().cpu().double().numpy(),
                    hand_pose=self.hand_pose[b].detach().cpu().double().numpy(),
                    betas=self.betas[b].detach().cpu().double().numpy(),
                    transl=self.transl[b].detach().cpu().double().numpy(),
                    hand_verts=self.verts[b].detach().cpu().double().numpy(),
                    hand_joints=self.joints[b].detach().cpu().double().numpy(),
                    obj_rotation=self.obj_rotation[b].detach().cpu().double().numpy(),
                    obj_translation=self.obj_translation[b].detach().cpu().double().numpy(),
                    hand_contact=grasp.hand_contact
                    if hand_contact is None
                    else hand_contact[b].detach().cpu().double().numpy(),
                )
            )
        return out


def _object_key(grasp: Grasp) -> str:
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(grasp.obj_verts_canonical, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(grasp.obj_faces, dtype=np.int64).tobytes())
    return digest.hexdigest()


@dataclass
class _Objects:
    """Per-sample object data in each object's canonical frame (samples ordered as given)."""

    points: Tensor  # (B, P, 3) canonical-frame surface samples
    normals: Tensor  # (B, P, 3)
    rotation: Tensor  # (B, 3, 3) canonical -> world
    translation: Tensor  # (B, 3)
    centroid: Tensor  # (B, 3) world-frame bounding-box centre of the object (pivot of object rotation)
    allowance: Tensor  # (B,) penetration allowance, metres (0 for thin objects)
    grids: list[SdfGrid]  # one per unique object
    group: list[tuple[int, int, int]]  # (grid index, start, stop) over the grasp order, contiguous runs


def _prepare_objects(
    grasps: Sequence[Grasp], config: OptimizeConfig, device: torch.device, dtype: torch.dtype,
    obj_points: Tensor | None, obj_normals: Tensor | None,
) -> _Objects:  # fmt: skip
    keys = [_object_key(g) for g in grasps]
    unique: dict[str, int] = {}
    grids: list[SdfGrid] = []
    samples: dict[str, tuple[Tensor, Tensor]] = {}
    for key, grasp in zip(keys, grasps, strict=True):
        if key in unique:
            continue
        unique[key] = len(unique)
        # seeded per object, so a grasp's samples do not depend on the rest of the batch
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + int(key[:12], 16) % 1_000_003)
        verts, faces = grasp.obj_verts_canonical, grasp.obj_faces
        need_grid = config.contact_model == "sdf" or config.penetration_model == "sdf"
        grid = sdf_grid(verts, faces, pitch=config.sdf_pitch, cache_dir=cache_dir() / "sdf") if need_grid else None
        grids.append(grid.to(device, dtype) if grid is not None else None)
        samples[key] = sample_surface(verts, faces, config.n_obj_points, generator=generator)
    rotation = torch.as_tensor(np.stack([g.obj_rotation for g in grasps]), dtype=dtype, device=device)
    translation = torch.as_tensor(np.stack([g.obj_translation for g in grasps]), dtype=dtype, device=device)
    if obj_points is not None:
        # given in the world frame (e.g. where DeepContact predicted contact): move to each canonical frame
        points = (obj_points.to(device, dtype) - translation[:, None]) @ rotation
        normals = obj_normals.to(device, dtype) @ rotation
    else:
        points = torch.stack([samples[k][0] for k in keys]).to(device, dtype)
        normals = torch.stack([samples[k][1] for k in keys]).to(device, dtype)
    extents = np.stack([np.ptp(g.obj_verts_canonical, axis=0).min() for g in grasps])
    allowance = torch.as_tensor(
        np.where(extents < config.thin_object_extent, 0.0, config.pen_allowance), dtype=dtype, device=device
    )
    centre = np.stack([0.5 * (g.obj_verts_canonical.min(0) + g.obj_verts_canonical.max(0)) for g in grasps])
    centre = torch.as_tensor(centre, dtype=dtype, device=device)  # (B, 3) bounding-box centre, canonical frame
    centroid = (centre[:, None] @ rotation.transpose(1, 2))[:, 0] + translation  # (B, 3) world: rotation pivot
    group: list[tuple[int, int, int]] = []
    for b, key in enumerate(keys):
        index = unique[key]
        if group and group[-1][0] == index and group[-1][2] == b:
            group[-1] = (index, group[-1][1], b + 1)
        else:
            group.append((index, b, b + 1))
    return _Objects(points, normals, rotation, translation, centroid, allowance, grids, group)


def _query_sdf(objects: _Objects, points_canonical: Tensor, restarts: int) -> Tensor:
    """Signed distance of (B·R, V, 3) canonical-frame points; samples are grasp-major (b * R + r)."""
    pieces = []
    for index, start, stop in objects.group:
        chunk = points_canonical[start * restarts : stop * restarts]
        pieces.append(objects.grids[index].query(chunk))
    return torch.cat(pieces, dim=0)


def _as_tensor(value: object, name: str, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    tensor = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
    if tuple(tensor.shape) != shape:
        raise InputError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor.double()).all():
        raise InputError(f"{name}: contains NaN or inf; clean the input")
    return tensor.to(device=device, dtype=dtype)


def _check_layer(layer: ManoLayer, grasps: Sequence[Grasp]) -> None:
    if layer.use_pca:
        raise InputError("layer: optimize_grasp needs a layer with use_pca=False (it handles PCA itself); "
                         "load it with load_mano(..., use_pca=False)")  # fmt: skip
    sides = {g.side for g in grasps}
    if sides != {layer.side}:
        raise InputError(f"grasps are {sorted(sides)} hands but the layer is a {layer.side} hand; "
                         "optimise left and right hands in separate calls with the matching MANO model")  # fmt: skip


def optimize_grasp(
    grasps: Grasp | Sequence[Grasp],
    target_hand_contact: Tensor | np.ndarray | None = None,
    target_obj_contact: Tensor | np.ndarray | None = None,
    target_obj_points: Tensor | np.ndarray | None = None,
    target_obj_normals: Tensor | np.ndarray | None = None,
    config: OptimizeConfig | str | None = "fast",
    layer: ManoLayer | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> OptimizeResult:
    """Refine a batch of grasps so that their contact matches a target and the hand does not penetrate.

    Args:
        grasps: the initial grasps (hand MANO parameters + posed object), e.g. HFL-Net predictions read with
            :mod:`haco_grasp.data.hflnet` or perturbed synthetic grasps. All must share one hand side.
        target_hand_contact: (B, 778) contact probabilities on the hand (e.g. HACO), mapped to contact values by
            ``config.target_mapping`` and ``config.target_max`` (use ``target_mapping="value"`` for targets that
            already are contact values); None: no hand-contact term.
        target_obj_contact: (B, P) contact values on object points (e.g. DeepContact's decoded bins), used as they are;
            needs ``target_obj_points`` (B, P, 3) world-frame points and ``target_obj_normals`` (B, P, 3).
        config: an :class:`OptimizeConfig` or a preset name ("contactopt", "haco", "fast").
        layer: the MANO layer the grasps were made with, loaded with ``use_pca=False`` (any ``flat_hand_mean``);
            default: ``load_mano(side)`` from ``$HACO_GRASP_MANO_ROOT``.
        device: "cpu", "cuda" or a torch.device (default: the layer's device).
        progress: show a progress bar over iterations.

    Returns:
        :class:`OptimizeResult` with the refined parameters, vertices, joints, loss history and chosen restart.
    """
    started = time.perf_counter()
    config = get_config(config)
    grasps = [grasps] if isinstance(grasps, Grasp) else list(grasps)
    if not grasps:
        raise InputError("grasps: expected at least one Grasp, got an empty list")
    if layer is None:
        layer = load_mano(side=grasps[0].side, use_pca=False, flat_hand_mean=True)
    _check_layer(layer, grasps)
    device = torch.device(device) if device is not None else layer.v_template.device
    layer = layer.to(device)
    dtype = layer.v_template.dtype
    batch, restarts = len(grasps), config.n_restarts
    num_verts = layer.num_verts

    # ---------------------------------------------------------------- inputs and targets
    go0 = _as_tensor(np.stack([g.global_orient for g in grasps]), "global_orient", (batch, 3), device, dtype)
    pose0 = _as_tensor(np.stack([g.hand_pose for g in grasps]), "hand_pose", (batch, 45), device, dtype)
    betas = _as_tensor(np.stack([g.betas for g in grasps]), "betas", (batch, len(grasps[0].betas)), device, dtype)
    transl0 = _as_tensor(np.stack([g.transl for g in grasps]), "transl", (batch, 3), device, dtype)
    hand_target = None
    if target_hand_contact is not None:
        raw = _as_tensor(target_hand_contact, "target_hand_contact", (batch, num_verts), device, dtype)
        hand_target = map_contact_target(raw, config.target_mapping, config.target_threshold)
        if config.target_mapping != "value":
            hand_target = config.target_max * hand_target
    obj_target = None
    if target_obj_contact is not None:
        if target_obj_points is None or target_obj_normals is None:
            raise InputError("target_obj_contact needs target_obj_points and target_obj_normals (B, P, 3), world frame")
        num_points = np.shape(target_obj_contact)[-1]
        obj_target = _as_tensor(target_obj_contact, "target_obj_contact", (batch, num_points), device, dtype)
        target_obj_points = _as_tensor(target_obj_points, "target_obj_points", (batch, num_points, 3), device, dtype)
        target_obj_normals = _as_tensor(target_obj_normals, "target_obj_normals", (batch, num_points, 3), device, dtype)
    objects = _prepare_objects(grasps, config, device, dtype, target_obj_points, target_obj_normals)

    # finger pose: base (B, 45) + offset in the span of the first k components
    components = layer.hand_components[: config.num_pca_comps]  # (k, 45)
    mean = layer.hand_mean  # (45,) added by the layer (zero when flat_hand_mean=True)
    if config.project_input_to_pca:
        relative = pose0 - layer.model_hands_mean
        pose0 = layer.model_hands_mean + (relative @ components.T) @ components

    # ---------------------------------------------------------------- restarts (grasp-major: sample = b * R + r)
    generator = torch.Generator().manual_seed(config.seed)
    rot_noise = torch.randn(batch, restarts, 3, generator=generator, dtype=torch.float64)
    trans_noise = torch.randn(batch, restarts, 3, generator=generator, dtype=torch.float64)
    rot_noise = (rot_noise * math.radians(config.restart_rot_sigma_deg)).to(device, dtype)
    trans_noise = (trans_noise * config.restart_trans_sigma).to(device, dtype)
    if not config.perturb_first_restart:
        rot_noise[:, 0] = 0.0
        trans_noise[:, 0] = 0.0
    n = batch * restarts
    rep = lambda x: x.repeat_interleave(restarts, dim=0)  # noqa: E731 - (B, ...) -> (B·R, ...)
    go_start = matrix_to_axis_angle(
        euler_zyx_to_matrix(rot_noise.reshape(n, 3)) @ axis_angle_to_matrix(rep(go0))
    )  # jitter composed with the input rotation (about the wrist joint)
    transl_start = rep(transl0) + trans_noise.reshape(n, 3)
    pose_start, betas_n = rep(pose0), rep(betas)
    points, normals = rep(objects.points), rep(objects.normals)
    obj_rot, obj_trans, centroid = rep(objects.rotation), rep(objects.translation), rep(objects.centroid)
    allowance = rep(objects.allowance)
    hand_target_n = rep(hand_target) if hand_target is not None else None
    obj_target_n = rep(obj_target) if obj_target is not None else None

    width = 3 + config.num_pca_comps + 3 + (6 if config.optimize_object else 0)
    variables = torch.zeros(n, width, dtype=dtype, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([variables], lr=config.lr, amsgrad=config.amsgrad)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.n_iter, 1), eta_min=config.lr * 0.05)
        if config.lr_schedule == "cosine"
        else None
    )

    def forward(vars_: Tensor, nn_state: dict) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
        k = config.num_pca_comps
        go = go_start + config.w_opt_rot * vars_[:, :3]
        hand_pose = pose_start + (config.w_opt_pose * vars_[:, 3 : 3 + k]) @ components
        transl = transl_start + config.w_opt_trans * vars_[:, 3 + k : 6 + k]
        out = layer(global_orient=go, hand_pose=hand_pose - mean, betas=betas_n, transl=transl)
        verts = out.verts  # (N, V, 3) world
        # world -> object-canonical frame (undo the optional object offset, then the object pose)
        rel = verts
        if config.optimize_object:
            obj_delta_rot = axis_angle_to_matrix(config.w_opt_obj_rot * vars_[:, 6 + k : 9 + k])  # (N, 3, 3)
            obj_delta_t = config.w_opt_obj_trans * vars_[:, 9 + k : 12 + k]
            rel = (verts - centroid[:, None] - obj_delta_t[:, None]) @ obj_delta_rot + centroid[:, None]
        canonical = (rel - obj_trans[:, None]) @ obj_rot  # (N, V, 3)
        terms = _objective(canonical, points, normals, allowance, hand_target_n, obj_target_n, objects, restarts,
                           config, nn_state)  # fmt: skip
        if config.w_pose_prior > 0:
            prior = config.w_pose_prior * (config.w_opt_pose * vars_[:, 3 : 3 + k]).square().sum(-1)
            terms["total"] = terms["total"] + prior
        return terms, out.verts, out.joints, torch.cat([go, hand_pose, transl], dim=1)

    history: dict[str, list[Tensor]] = {term: [] for term in LOSS_TERMS}
    nn_state: dict = {"iteration": 0}
    best = torch.full((n,), float("inf"), dtype=dtype, device=device)
    stale = torch.zeros(n, dtype=torch.long, device=device)
    active = torch.ones(n, dtype=torch.bool, device=device)
    iterations = 0
    bar = _progress(config.n_iter, progress)
    for iteration in range(config.n_iter):
        nn_state["iteration"] = iteration
        optimizer.zero_grad(set_to_none=True)
        terms, *_ = forward(variables, nn_state)
        total = terms["total"]
        total.sum().backward()  # samples are independent: the sum keeps each sample's gradient unscaled
        with torch.no_grad():
            variables.grad[~torch.isfinite(variables.grad)] = 0.0
            frozen = variables.detach()[~active].clone()
        optimizer.step()
        with torch.no_grad():
            variables[~active] = frozen  # converged samples keep their values (Adam's momentum would move them)
        if scheduler is not None:
            scheduler.step()
        for term in LOSS_TERMS:
            history[term].append(terms[term].detach())
        iterations = iteration + 1
        bar.update(1)
        if config.early_stop_patience is not None:
            # per-sample early stopping keeps every sample's result independent of the rest of the batch
            current = total.detach()
            improved = current < best * (1.0 - config.early_stop_tol) - 1e-9
            best = torch.minimum(best, current)
            stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
            active &= stale < config.early_stop_patience
            if not active.any():
                break
    bar.close()

    with torch.no_grad():
        nn_state["iteration"] = 0  # refresh nearest neighbours for the final evaluation
        terms, verts, joints, params = forward(variables, nn_state)
        final = terms["total"].reshape(batch, restarts)
        final = torch.where(torch.isfinite(final), final, torch.full_like(final, float("inf")))
        chosen = final.argmin(dim=1)  # (B,)
        pick = torch.arange(batch, device=device) * restarts + chosen  # (B,)
        k = config.num_pca_comps
        obj_rotation, obj_translation = objects.rotation, objects.translation
        if config.optimize_object:
            delta_rot = axis_angle_to_matrix(config.w_opt_obj_rot * variables[pick, 6 + k : 9 + k])
            delta_t = config.w_opt_obj_trans * variables[pick, 9 + k : 12 + k]
            # x' = (x - c) @ dR.T + c + dt with x = canonical @ R.T + t
            obj_rotation = delta_rot @ objects.rotation
            obj_translation = (
                (objects.translation - objects.centroid)[:, None].matmul(delta_rot.transpose(1, 2))[:, 0]
                + objects.centroid
                + delta_t
            )
        loss_history = {term: torch.stack(values)[:, pick] for term, values in history.items()} if iterations else {
            term: torch.zeros(0, batch, dtype=dtype, device=device) for term in LOSS_TERMS
        }  # fmt: skip
        result = OptimizeResult(
            global_orient=params[pick, :3],
            hand_pose=params[pick, 3:48],
            betas=betas,
            transl=params[pick, 48:51],
            obj_rotation=obj_rotation,
            obj_translation=obj_translation,
            verts=verts[pick],
            joints=joints[pick],
            loss=final.gather(1, chosen[:, None])[:, 0],
            loss_history=loss_history,
            chosen_restart=chosen,
            iterations=iterations,
            seconds=time.perf_counter() - started,
            config=config,
        )
    logger.debug("optimize_grasp: %d grasps x %d restarts, %d iterations, %.2f s", batch, restarts, iterations,
                 result.seconds)  # fmt: skip
    return result


def _objective(
    hand: Tensor, points: Tensor, normals: Tensor, allowance: Tensor, hand_target: Tensor | None,
    obj_target: Tensor | None, objects: _Objects, restarts: int, config: OptimizeConfig, nn_state: dict,
) -> dict[str, Tensor]:  # fmt: skip
    """Weighted loss terms per sample, all in the object's canonical frame. hand: (N, V, 3)."""
    zero = hand.new_zeros(hand.shape[0])
    refresh = nn_state["iteration"] % config.nn_refresh_every == 0
    need_hand_nn = config.penetration_model == "hinge" or (
        config.contact_model == "capsule" and hand_target is not None
    )
    if need_hand_nn and (refresh or "hand_nn" not in nn_state):
        with torch.no_grad():
            nn_state["hand_nn"] = knn_points(hand.detach(), points, k=1).idx[..., 0]  # (N, V)
    if obj_target is not None and (refresh or "obj_nn" not in nn_state):
        with torch.no_grad():
            nn_state["obj_nn"] = knn_points(points, hand.detach(), k=1).idx[..., 0]  # (N, P)
    sdf = None
    if config.contact_model == "sdf" or config.penetration_model == "sdf":
        sdf = _query_sdf(objects, hand, restarts)  # (N, V)

    hand_term = zero
    if hand_target is not None and config.w_hand_contact > 0:
        if config.contact_model == "sdf":
            current = sdf_contact(sdf)
        else:
            current = capsule_contact(hand, points, normals, nn_state["hand_nn"])
        hand_term = config.w_hand_contact * asymmetric_l1(hand_target, current, config.asym)
    obj_term = zero
    if obj_target is not None and config.w_obj_contact > 0:
        nearest_hand = torch.gather(hand, 1, nn_state["obj_nn"][..., None].expand(-1, -1, 3))  # (N, P, 3)
        own = torch.arange(points.shape[1], device=hand.device).expand(points.shape[0], -1)
        current = capsule_contact(nearest_hand, points, normals, own)
        obj_term = config.w_obj_contact * asymmetric_l1(obj_target, current, config.asym)
    if config.penetration_model == "sdf":
        pen = sdf_penetration(sdf, allowance)
    else:
        pen = penetration_hinge(hand, points, normals, allowance=allowance, nn_idx=nn_state["hand_nn"])
    pen_term = config.w_pen * pen
    return {
        "total": obj_term + hand_term + pen_term,
        "obj_contact": obj_term,
        "hand_contact": hand_term,
        "penetration": pen_term,
    }


class _NoBar:
    def update(self, _: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="optimize", unit="it", leave=False)
