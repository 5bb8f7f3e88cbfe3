"""The contact-guided grasp optimizer: batched over grasps and restarts, one fixed computation per iteration.

For each grasp the optimizer owns offsets to the MANO global rotation (axis-angle, added as in ContactOpt), to the
finger pose (in the span of the first ``num_pca_comps`` PCA components), to the translation, optionally to the betas,
and optionally to the object's rotation (about its bounding-box centre) and translation. All restarts of all grasps
are one batch of ``B × R`` samples; every iteration is one batched MANO forward/backward plus the terms of
:mod:`haco_grasp.optimize.objectives`, whose operation count does not depend on the batch or on how many objects it
mixes (every object's SDF grid is packed into one tensor and looked up with one gather), with no host
synchronisation inside the loop (early stopping is checked on the host every :data:`SYNC_EVERY` iterations).

Two parameterisations (``OptimizeConfig.noise_profile``):
- None: ContactOpt's: offset = ``w_opt_*`` × variable, restarts jittered in absolute units, an optional L2 prior on
  the finger offset (``w_pose_prior``).
- a noise profile (MAP refinement): offset = std × z for every block, prior ``w_prior · ½ |z|²``, restarts drawn
  from the prior; see :mod:`haco_grasp.optimize.noise`.

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
from haco_grasp.geometry.rotations import axis_angle_to_matrix, euler_zyx_to_matrix, matrix_to_axis_angle
from haco_grasp.geometry.sampling import sample_surface
from haco_grasp.geometry.sdf import PackedSdfGrids, sdf_grid
from haco_grasp.hand.assets import cache_dir
from haco_grasp.hand.mano import ManoLayer, load_mano
from haco_grasp.optimize.config import OptimizeConfig, get_config
from haco_grasp.optimize.objectives import LOSS_TERMS, Neighbours, Scene, nearest_neighbours, objective_terms
from haco_grasp.optimize.targets import map_contact_target

logger = logging.getLogger(__name__)

__all__ = ["LOSS_TERMS", "SYNC_EVERY", "OptimizeResult", "optimize_grasp"]

#: Early stopping reads the device's "any sample still improving?" flag every this many iterations.
SYNC_EVERY = 10


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
        return [
            grasp.refined(
                global_orient=self.global_orient[b],
                hand_pose=self.hand_pose[b],
                betas=self.betas[b],
                transl=self.transl[b],
                hand_verts=self.verts[b],
                hand_joints=self.joints[b],
                obj_rotation=self.obj_rotation[b],
                obj_translation=self.obj_translation[b],
                hand_contact=None if hand_contact is None else hand_contact[b],
            )
            for b, grasp in enumerate(grasps)
        ]


def _object_key(grasp: Grasp) -> str:
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(grasp.obj_verts_canonical, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(grasp.obj_faces, dtype=np.int64).tobytes())
    return digest.hexdigest()


@dataclass
class _Objects:
    """Per-grasp object data in each object's canonical frame (grasps in the given order).

    points, normals: (B, P, 3) canonical surface samples and normals. rotation: (B, 3, 3) canonical -> world;
    translation: (B, 3). centroid: (B, 3) world-frame bounding-box centre (pivot of the object rotation).
    allowance: (B,) penetration allowance, metres (0 for thin objects). grids: every distinct object's SDF grid
    packed (None when no SDF model is used). grid_index: (B,) long, each grasp's grid.
    """

    points: Tensor
    normals: Tensor
    rotation: Tensor
    translation: Tensor
    centroid: Tensor
    allowance: Tensor
    grids: PackedSdfGrids | None
    grid_index: Tensor


def _prepare_objects(
    grasps: Sequence[Grasp], config: OptimizeConfig, device: torch.device, dtype: torch.dtype,
    obj_points: Tensor | None, obj_normals: Tensor | None,
) -> _Objects:  # fmt: skip
    keys = [_object_key(g) for g in grasps]
    unique: dict[str, int] = {}
    grids = []
    samples: dict[str, tuple[Tensor, Tensor]] = {}
    need_grid = config.contact_model == "sdf" or config.penetration_model == "sdf"
    for key, grasp in zip(keys, grasps, strict=True):
        if key in unique:
            continue
        unique[key] = len(unique)
        # seeded per object, so a grasp's samples do not depend on the rest of the batch
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + int(key[:12], 16) % 1_000_003)
        verts, faces = grasp.obj_verts_canonical, grasp.obj_faces
        if need_grid:
            grids.append(sdf_grid(verts, faces, pitch=config.sdf_pitch, cache_dir=cache_dir() / "sdf"))
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
    packed = PackedSdfGrids.pack(grids, device=device, dtype=dtype) if grids else None
    grid_index = torch.as_tensor([unique[k] for k in keys], dtype=torch.long, device=device)
    return _Objects(points, normals, rotation, translation, centroid, allowance, packed, grid_index)


@dataclass
class _Variables:
    """Column layout of the optimised (N, W) tensor and how each column maps to a parameter offset.

    scale: (W,) offset per unit of the variable (ContactOpt's ``w_opt_*`` or the profile's std; 1 for the finger
    block, whose scale is ``pose_scale`` applied after the PCA basis). pose_scale: (45,) per axis-angle component.
    prior_weight: (W,) weight of each variable's squared value in the loss. jitter: (W,) std of the restart draw in
    variable units (MAP only; zeros otherwise).
    """

    rot: slice
    pose: slice
    transl: slice
    betas: slice | None
    obj_rot: slice | None
    obj_trans: slice | None
    width: int
    scale: Tensor
    pose_scale: Tensor
    prior_weight: Tensor
    jitter: Tensor

    def decoders(self, components: Tensor) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """Matrices mapping variables to parameter offsets: z @ M gives the (N, 48) full-pose offset (global
        rotation, then the 45 finger values), the (N, S) betas offset (None without a betas block), the (N, 3)
        translation offset and the (N, 6) object rotation + translation offset (None without object blocks).

        components: (k, 45) the PCA rows the finger offset lives in.
        """
        eye = torch.eye(self.width, dtype=self.scale.dtype, device=self.scale.device) * self.scale  # (W, W)
        pose = torch.zeros(self.width, 48, dtype=eye.dtype, device=eye.device)
        pose[self.rot, :3] = eye[self.rot, self.rot]
        pose[self.pose, 3:] = components * self.pose_scale  # offset = (z_pose @ components) * pose_scale
        betas = eye[:, self.betas] if self.betas is not None else None
        obj = torch.cat([eye[:, self.obj_rot], eye[:, self.obj_trans]], dim=1) if self.obj_rot is not None else None
        return pose, betas, eye[:, self.transl], obj


def _layout(config: OptimizeConfig, num_betas: int, device: torch.device, dtype: torch.dtype) -> _Variables:
    profile = config.profile()
    k = config.num_pca_comps
    blocks: list[tuple[str, int, float, float, float]] = []  # name, width, scale, prior weight, restart jitter
    if profile is None:
        pose_prior = config.w_pose_prior * config.w_opt_pose**2  # = w_pose_prior * |w_opt_pose * z|^2
        blocks += [("rot", 3, config.w_opt_rot, 0.0, 0.0), ("pose", k, 1.0, pose_prior, 0.0),
                   ("transl", 3, config.w_opt_trans, 0.0, 0.0)]  # fmt: skip
        if config.optimize_object:
            blocks += [("obj_rot", 3, config.w_opt_obj_rot, 0.0, 0.0),
                       ("obj_trans", 3, config.w_opt_obj_trans, 0.0, 0.0)]  # fmt: skip
        pose_scale = torch.full((45,), config.w_opt_pose, dtype=dtype, device=device)
    else:
        half, jitter = 0.5 * config.w_prior, config.restart_prior_sigma
        blocks += [("rot", 3, profile.hand_rot_rad, half, jitter), ("pose", k, 1.0, half, 0.0),
                   ("transl", 3, profile.hand_transl_m, half, jitter)]  # fmt: skip
        if profile.betas > 0:
            blocks.append(("betas", num_betas, profile.betas, half, 0.0))
        if config.optimize_object:
            blocks += [("obj_rot", 3, profile.obj_rot_rad, half, jitter),
                       ("obj_trans", 3, profile.obj_transl_m, half, jitter)]  # fmt: skip
        std = profile.hand_pose_rad
        pose_scale = torch.as_tensor(std if isinstance(std, tuple) else (std,) * 45, dtype=dtype, device=device)
    slices, scale, prior, jitter_values, start = {}, [], [], [], 0
    for name, width, block_scale, block_prior, block_jitter in blocks:
        slices[name] = slice(start, start + width)
        scale += [block_scale] * width
        prior += [block_prior] * width
        jitter_values += [block_jitter] * width
        start += width
    as_tensor = lambda values: torch.tensor(values, dtype=dtype, device=device)  # noqa: E731
    return _Variables(
        rot=slices["rot"], pose=slices["pose"], transl=slices["transl"], betas=slices.get("betas"),
        obj_rot=slices.get("obj_rot"), obj_trans=slices.get("obj_trans"), width=start, scale=as_tensor(scale),
        pose_scale=pose_scale, prior_weight=as_tensor(prior), jitter=as_tensor(jitter_values),
    )  # fmt: skip


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
            :mod:`haco_grasp.data.hflnet` or perturbed synthetic grasps. All must share one hand side. Any mix of
            objects, in any order: results do not depend on the batch's composition.
        target_hand_contact: (B, 778) contact probabilities on the hand (e.g. HACO), mapped to contact values by
            ``config.target_mapping`` and ``config.target_max`` (use ``target_mapping="value"`` for targets that
            already are contact values); None: no hand-contact term.
        target_obj_contact: (B, P) contact values on object points (e.g. DeepContact's decoded bins), used as they are;
            needs ``target_obj_points`` (B, P, 3) world-frame points and ``target_obj_normals`` (B, P, 3).
        config: an :class:`OptimizeConfig` or a preset name ("contactopt", "haco", "fast").
        layer: the MANO layer the grasps were made with, loaded with ``use_pca=False`` (any ``flat_hand_mean``);
            default: ``load_mano(side)`` from ``$HACO_GRASP_MANO_ROOT``.
        device: "cpu", "cuda", "cuda:N", "auto" or a torch.device (default: the layer's device).
        progress: show a progress bar over iterations.

    Returns:
        :class:`OptimizeResult` with the refined parameters, vertices, joints, loss history and chosen restart.

    Raises:
        InputError: malformed grasps or targets, a layer of the wrong side or kind, CUDA asked for without CUDA.
    """
    from haco_grasp.devices import resolve_device

    started = time.perf_counter()
    config = get_config(config)
    grasps = [grasps] if isinstance(grasps, Grasp) else list(grasps)
    if not grasps:
        raise InputError("grasps: expected at least one Grasp, got an empty list")
    if layer is None:
        layer = load_mano(side=grasps[0].side, use_pca=False, flat_hand_mean=True)
    _check_layer(layer, grasps)
    device = resolve_device(device, "device") if device is not None else layer.v_template.device
    layer = layer.to(device)
    targets = _Targets.validated(grasps, config, layer, target_hand_contact, target_obj_contact, target_obj_points,
                                 target_obj_normals)  # fmt: skip
    objects = _prepare_objects(grasps, config, layer.v_template.device, layer.v_template.dtype, targets.obj_points,
                               targets.obj_normals)  # fmt: skip
    problem = _Problem.build(grasps, config, layer, targets, objects)
    variables, history, iterations = _descend(problem, progress)
    result = _best_restarts(problem, objects, variables, history, iterations, started)
    logger.debug("optimize_grasp: %d grasps x %d restarts, %d iterations, %.2f s", problem.batch, config.n_restarts,
                 iterations, result.seconds)  # fmt: skip
    return result


@dataclass
class _Targets:
    """The contact targets of a batch, validated and on the layer's device and dtype.

    hand: (B, 778) contact values for the optimizer (probabilities mapped by ``config.target_mapping`` and scaled by
    ``config.target_max``), or None. obj: (B, P) contact values on ``obj_points`` / ``obj_normals`` (B, P, 3), world
    frame, or None.
    """

    hand: Tensor | None
    obj: Tensor | None
    obj_points: Tensor | None
    obj_normals: Tensor | None

    @classmethod
    def validated(cls, grasps: Sequence[Grasp], config: OptimizeConfig, layer: ManoLayer, hand_contact: object,
                  obj_contact: object, obj_points: object, obj_normals: object) -> _Targets:  # fmt: skip
        device, dtype = layer.v_template.device, layer.v_template.dtype
        batch = len(grasps)
        hand = None
        if hand_contact is not None:
            raw = _as_tensor(hand_contact, "target_hand_contact", (batch, layer.num_verts), device, dtype)
            hand = map_contact_target(raw, config.target_mapping, config.target_threshold)
            if config.target_mapping != "value":
                hand = config.target_max * hand
        if obj_contact is None:
            return cls(hand, None, None, None)
        if obj_points is None or obj_normals is None:
            raise InputError("target_obj_contact needs target_obj_points and target_obj_normals (B, P, 3), world frame")
        num_points = np.shape(obj_contact)[-1]
        return cls(
            hand,
            _as_tensor(obj_contact, "target_obj_contact", (batch, num_points), device, dtype),
            _as_tensor(obj_points, "target_obj_points", (batch, num_points, 3), device, dtype),
            _as_tensor(obj_normals, "target_obj_normals", (batch, num_points, 3), device, dtype),
        )


@dataclass
class _Problem:
    """All restarts of all grasps as one batch of ``N = B × R`` samples (grasp-major: sample = b · R + r).

    The variables z (N, W) decode (:meth:`decode`) to offsets from the starts: full_start (N, 48) global rotation +
    finger pose, betas (N, S), transl_start (N, 3); obj_rotation / obj_translation / centroid (N, ...) are each
    sample's object pose and the pivot of its rotation offset. :meth:`forward` is one iteration's computation.
    """

    config: OptimizeConfig
    layer: ManoLayer
    batch: int
    scene: Scene
    start_vars: Tensor
    full_start: Tensor
    betas: Tensor
    transl_start: Tensor
    obj_rotation: Tensor
    obj_translation: Tensor
    centroid: Tensor
    decoders: tuple[Tensor, Tensor | None, Tensor, Tensor | None]

    @classmethod
    def build(cls, grasps: Sequence[Grasp], config: OptimizeConfig, layer: ManoLayer, targets: _Targets,
              objects: _Objects) -> _Problem:  # fmt: skip
        device, dtype = layer.v_template.device, layer.v_template.dtype
        batch, restarts = len(grasps), config.n_restarts
        go0 = _as_tensor(np.stack([g.global_orient for g in grasps]), "global_orient", (batch, 3), device, dtype)
        pose0 = _as_tensor(np.stack([g.hand_pose for g in grasps]), "hand_pose", (batch, 45), device, dtype)
        num_betas = len(grasps[0].betas)
        betas = _as_tensor(np.stack([g.betas for g in grasps]), "betas", (batch, num_betas), device, dtype)
        transl0 = _as_tensor(np.stack([g.transl for g in grasps]), "transl", (batch, 3), device, dtype)
        layout = _layout(config, num_betas, device, dtype)

        # finger pose: base (B, 45) + offset in the span of the first k components
        components = layer.hand_components[: config.num_pca_comps]  # (k, 45)
        if config.project_input_to_pca:
            relative = pose0 - layer.model_hands_mean
            pose0 = layer.model_hands_mean + (relative @ components.T) @ components

        generator = torch.Generator().manual_seed(config.seed)
        n = batch * restarts
        rep = lambda x: x.repeat_interleave(restarts, dim=0)  # noqa: E731 - (B, ...) -> (B·R, ...)
        start_vars = torch.zeros(n, layout.width, dtype=dtype, device=device)
        if config.noise_profile is not None:
            # restarts start from a draw of the prior (in variable units), restart 0 at the input unless told otherwise
            draw = torch.randn(batch, restarts, layout.width, generator=generator, dtype=torch.float64)
            if not config.perturb_first_restart:
                draw[:, 0] = 0.0
            start_vars = draw.reshape(n, layout.width).to(device, dtype) * layout.jitter
            go_start, transl_start = rep(go0), rep(transl0)
        else:
            rot_noise = torch.randn(batch, restarts, 3, generator=generator, dtype=torch.float64)
            trans_noise = torch.randn(batch, restarts, 3, generator=generator, dtype=torch.float64)
            rot_noise = (rot_noise * math.radians(config.restart_rot_sigma_deg)).to(device, dtype)
            trans_noise = (trans_noise * config.restart_trans_sigma).to(device, dtype)
            if not config.perturb_first_restart:
                rot_noise[:, 0] = 0.0
                trans_noise[:, 0] = 0.0
            go_start = matrix_to_axis_angle(
                euler_zyx_to_matrix(rot_noise.reshape(n, 3)) @ axis_angle_to_matrix(rep(go0))
            )  # jitter composed with the input rotation (about the wrist joint)
            transl_start = rep(transl0) + trans_noise.reshape(n, 3)
        scene = Scene(
            points=rep(objects.points),
            normals=rep(objects.normals),
            allowance=rep(objects.allowance)[:, None],
            sdf=objects.grids.select(rep(objects.grid_index), dtype) if objects.grids is not None else None,
            hand_target=rep(targets.hand) if targets.hand is not None else None,
            obj_target=rep(targets.obj) if targets.obj is not None else None,
            prior_weight=layout.prior_weight,
        )
        return cls(
            config=config,
            layer=layer,
            batch=batch,
            scene=scene,
            start_vars=start_vars,
            full_start=torch.cat([go_start, rep(pose0)], dim=1),
            betas=rep(betas),
            transl_start=transl_start,
            obj_rotation=rep(objects.rotation),
            obj_translation=rep(objects.translation),
            centroid=rep(objects.centroid),
            decoders=layout.decoders(components),
        )

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
        """Parameters from variables: full pose (N, 48), betas (N, S), translation (N, 3), and the object's
        rotation (N, 3) and translation (N, 3) offsets (None when the object is fixed)."""
        pose_decoder, betas_decoder, transl_decoder, obj_decoder = self.decoders
        full_pose = self.full_start + z @ pose_decoder
        shape = self.betas + z @ betas_decoder if betas_decoder is not None else self.betas
        transl = self.transl_start + z @ transl_decoder
        if obj_decoder is None:
            return full_pose, shape, transl, None, None
        obj_axis_angle, obj_delta_t = (z @ obj_decoder).split([3, 3], dim=1)  # (N, 3) each
        return full_pose, shape, transl, obj_axis_angle, obj_delta_t

    def forward(self, z: Tensor, neighbours: Neighbours | None) -> tuple[dict[str, Tensor], Tensor, Tensor, Neighbours]:
        """One iteration's computation: the loss terms (N,), the hand's vertices and joints (world frame), and the
        nearest neighbours used (computed here when ``neighbours`` is None)."""
        full_pose, shape, transl, obj_axis_angle, obj_delta_t = self.decode(z)
        # every rotation of the step in one call: 16 joints (+ the object's offset)
        axis_angles = full_pose.view(full_pose.shape[0], 16, 3)
        if obj_axis_angle is not None:
            axis_angles = torch.cat([axis_angles, obj_axis_angle[:, None]], dim=1)  # (N, 17, 3)
        rotations = axis_angle_to_matrix(axis_angles)
        hand_rotations, obj_delta_rot = rotations.split([16, rotations.shape[1] - 16], dim=1)
        out = self.layer.skin(hand_rotations, shape, transl)
        rel = out.verts  # (N, V, 3) world
        if obj_axis_angle is not None:
            # world -> the frame of the moved object: undo x' = (x - c) @ dR.T + c + dt
            centroid = self.centroid[:, None]
            rel = (rel - centroid - obj_delta_t[:, None]) @ obj_delta_rot[:, 0] + centroid
        canonical = (rel - self.obj_translation[:, None]) @ self.obj_rotation  # (N, V, 3) object-canonical frame
        if neighbours is None:
            neighbours = nearest_neighbours(canonical, self.scene, self.config)
        return objective_terms(canonical, z, self.scene, neighbours, self.config), out.verts, out.joints, neighbours


def _descend(problem: _Problem, progress: bool) -> tuple[Tensor, dict[str, list[Tensor]], int]:
    """Adam on the variables: returns them, the per-iteration loss terms (N,) and the iterations run.

    Early stopping (``config.early_stop_patience``) is per sample, so a sample's result never depends on the rest of
    the batch; the device's "any sample still improving?" flag is read every :data:`SYNC_EVERY` iterations.
    """
    config = problem.config
    device, dtype = problem.start_vars.device, problem.start_vars.dtype
    n = problem.start_vars.shape[0]
    variables = problem.start_vars.clone().requires_grad_(True)
    # fused (CPU and CUDA): one kernel per step instead of ~40 dispatched operations, the same update up to rounding
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.Adam([variables], lr=config.lr, amsgrad=config.amsgrad, fused=fused)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.n_iter, 1), eta_min=config.lr * 0.05)
        if config.lr_schedule == "cosine"
        else None
    )
    history: dict[str, list[Tensor]] = {term: [] for term in LOSS_TERMS}
    early_stop = config.early_stop_patience is not None
    best = torch.full((n,), float("inf"), dtype=dtype, device=device)
    stale = torch.zeros(n, dtype=torch.long, device=device)
    active = torch.ones(n, dtype=torch.bool, device=device)
    neighbours: Neighbours | None = None
    iterations = 0
    bar = _progress(config.n_iter, progress)
    for iteration in range(config.n_iter):
        if iteration % config.nn_refresh_every == 0:
            neighbours = None  # recomputed inside forward
        optimizer.zero_grad(set_to_none=True)
        terms, _, _, neighbours = problem.forward(variables, neighbours)
        total = terms["total"]
        total.sum().backward()  # samples are independent: the sum keeps each sample's gradient unscaled
        with torch.no_grad():
            torch.nan_to_num_(variables.grad, nan=0.0, posinf=0.0, neginf=0.0)
            before = variables.detach().clone() if early_stop else None
        optimizer.step()
        if early_stop:
            with torch.no_grad():
                # converged samples keep their values (Adam's momentum would move them)
                variables.copy_(torch.where(active[:, None], variables, before))
        if scheduler is not None:
            scheduler.step()
        for term in LOSS_TERMS:
            history[term].append(terms[term].detach())
        iterations = iteration + 1
        bar.update(1)
        if early_stop:
            current = total.detach()
            improved = current < best * (1.0 - config.early_stop_tol) - 1e-9
            best = torch.minimum(best, current)
            stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
            active &= stale < config.early_stop_patience
            if iterations % SYNC_EVERY == 0 and not bool(active.any()):  # the only host synchronisation
                break
    bar.close()
    return variables, history, iterations


def _best_restarts(problem: _Problem, objects: _Objects, variables: Tensor, history: dict[str, list[Tensor]],
                   iterations: int, started: float) -> OptimizeResult:  # fmt: skip
    """The restart with the lowest final loss of each grasp (fresh nearest neighbours), as an OptimizeResult."""
    batch, restarts = problem.batch, problem.config.n_restarts
    device, dtype = variables.device, variables.dtype
    with torch.no_grad():
        terms, verts, joints, _ = problem.forward(variables, None)
        final = terms["total"].reshape(batch, restarts)
        final = torch.where(torch.isfinite(final), final, torch.full_like(final, float("inf")))
        chosen = final.argmin(dim=1)  # (B,)
        pick = torch.arange(batch, device=device) * restarts + chosen  # (B,)
        full_pose, shape, transl, delta_axis_angle, delta_t = (
            None if x is None else x[pick] for x in problem.decode(variables)
        )
        go, hand_pose = full_pose[:, :3], full_pose[:, 3:]  # flat-hand-mean axis-angle, as the grasps hold it
        obj_rotation, obj_translation = objects.rotation, objects.translation
        if delta_axis_angle is not None:
            # x' = (x - c) @ dR.T + c + dt with x = canonical @ R.T + t
            delta_rot = axis_angle_to_matrix(delta_axis_angle)
            obj_rotation = delta_rot @ objects.rotation
            obj_translation = (
                (objects.translation - objects.centroid)[:, None].matmul(delta_rot.transpose(1, 2))[:, 0]
                + objects.centroid
                + delta_t
            )
        loss_history = {term: torch.stack(values)[:, pick] for term, values in history.items()} if iterations else {
            term: torch.zeros(0, batch, dtype=dtype, device=device) for term in LOSS_TERMS
        }  # fmt: skip
        return OptimizeResult(
            global_orient=go,
            hand_pose=hand_pose,
            betas=shape,
            transl=transl,
            obj_rotation=obj_rotation,
            obj_translation=obj_translation,
            verts=verts[pick],
            joints=joints[pick],
            loss=final.gather(1, chosen[:, None])[:, 0],
            loss_history=loss_history,
            chosen_restart=chosen,
            iterations=iterations,
            seconds=time.perf_counter() - started,
            config=problem.config,
        )


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
