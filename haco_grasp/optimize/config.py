"""Configuration of the contact-guided grasp optimizer, and its named presets (full config instances).

Presets:
- ``contactopt``: ContactOpt's image-split settings (``shared/reference/contactopt.md`` §4–5): Adam with AMSGrad,
  lr 0.01, 250 iterations, 8 restarts with 2 cm / 5° jitter (restart 0 perturbed too), PCA-15 offsets with the input
  pose projected onto PCA-15, weights object 1 / hand 2.5 / penetration 320, asymmetry 2, 2 mm allowance, capsule
  contact on 2048 object points and the nearest-point penetration hinge.
- ``haco``: ``contactopt`` with the hand-contact target only (HACO predicts hand contact; no object target).
- ``fast`` (the default): MAP refinement, our design, tuned on synthetic seeds 3, 4 and 7:
  signed-distance-grid contact and penetration (exact surface distance, one grid lookup per vertex instead of three
  kNN searches); every input parameter (hand rotation, translation, PCA-15 finger offsets added to the full input
  pose, betas, object rotation and translation) moves in units of its standard deviation under the noise profile
  ``hflnet-dexycb`` with the prior ``0.01 · ½|z|²``, so the correction lands on the least certain input (the object
  and the fingers, not the hand root); hand-contact targets scaled to 0.3 (a certain contact asks for ≈3 mm, not
  for ContactOpt's ≈1 mm, which drove hands into objects); restart 0 at the input plus 3 restarts drawn from the
  prior; penetration weight 640 (twice ContactOpt's: seeds 3 and 7 ended with less intersection at the same
  contact F1 and MPJPE); 100 iterations of Adam at lr 0.2 (in standard deviations) with cosine decay; no early
  stopping. Pass the profile of your pose source (``noise_profile=``; ``contactopt-aug`` for ContactOpt's
  perturbation). Details and measurements: ``docs/refinement.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

from haco_grasp.errors import InputError
from haco_grasp.optimize.noise import NoiseProfile, load_noise_profile

ContactModel = Literal["capsule", "sdf"]
PenetrationModel = Literal["hinge", "sdf"]
TargetMapping = Literal["identity", "sharpen", "binary", "distance", "value"]


@dataclass(frozen=True)
class OptimizeConfig:
    """Every setting of :func:`haco_grasp.optimize_grasp`, with valid defaults (see the presets below).

    Variables:
        num_pca_comps: size of the PCA subspace the finger-pose offset lives in (1..45; 45 = full axis-angle).
        project_input_to_pca: replace the input finger pose by its projection onto the PCA subspace before optimising
            (ContactOpt's behaviour; loses detail the subspace cannot express). If False the offset is added to the
            full input pose.
        w_opt_rot, w_opt_pose, w_opt_trans: scale of the optimised offsets (ContactOpt's ``w_opt_*``; translation 0.3
            means the translation offset is 0.3 × the raw variable, i.e. a 3× smaller step).
        optimize_object: also optimise the object's rotation (about its centroid) and translation.
        w_opt_obj_rot, w_opt_obj_trans: scales of the object offsets.
        noise_profile: a pose-source noise profile (shipped name, JSON path or
            :class:`~haco_grasp.optimize.noise.NoiseProfile`): every input parameter then moves in units of its
            standard deviation under a Gaussian prior (MAP refinement; the ``w_opt_*`` scales and ``w_pose_prior``
            are not used, betas are optimised when the profile gives them a std > 0). None: ContactOpt's scaling.
    Loss:
        w_obj_contact, w_hand_contact, w_pen: weights of the object-contact, hand-contact and penetration terms.
        asym: ContactOpt's asymmetry: missing contact (target > current) costs (1 + asym)×.
        w_pose_prior: weight of an L2 prior on the finger-pose offset (sum of squared PCA offsets; ContactOpt: 0;
            without a noise profile only).
        w_prior: weight of the noise-profile prior ``w_prior * 0.5 * |z|^2`` (z: offsets in standard deviations).
        pen_allowance: penetration depth tolerated by the hinge, metres (0 is used for thin objects).
        thin_object_extent: an object whose smallest bounding-box side is below this (metres) is "thin".
        contact_model: "capsule" (ContactOpt: capsules on sampled object points, kNN) or "sdf" (the same capsule
            falloff evaluated with the exact signed distance from a grid).
        penetration_model: "hinge" (ContactOpt: nearest sampled point and its normal) or "sdf" (signed distance grid).
        n_obj_points: object surface samples for the capsule model / object targets.
        sdf_pitch: spacing of the signed-distance grids, metres.
        target_mapping: how hand-contact probabilities become contact-value targets (see ``optimize.targets``).
        target_threshold: threshold of the "binary" and "sharpen" mappings.
        target_max: the mapped target is multiplied by this (1 = "touch" for a certain contact; 0.5 ≈ "within 2 mm");
            not applied with mapping "value" (targets that already are contact values, e.g. DeepContact's).
    Optimizer:
        lr, amsgrad: Adam settings. n_iter: iterations per restart. lr_schedule: "constant" or "cosine".
        n_restarts: restarts per grasp (all run as one batch). restart_trans_sigma (metres), restart_rot_sigma_deg:
            jitter of each restart (without a noise profile). restart_prior_sigma: with a noise profile, restarts
            start from z ~ N(0, restart_prior_sigma²) on the hand and object rotation and translation (a draw from
            the prior). perturb_first_restart: jitter restart 0 too (ContactOpt does).
        early_stop_patience: stop when no sample's loss improved by more than early_stop_tol (relative) for this
            many iterations (None: never).
        nn_refresh_every: recompute nearest-neighbour indices every this many iterations (distances are recomputed
            every iteration, with gradients, for the current indices).
        seed: seed of the restart jitter and the object point sampling.
    """

    num_pca_comps: int = 15
    project_input_to_pca: bool = False
    w_opt_rot: float = 1.0
    w_opt_pose: float = 1.0
    w_opt_trans: float = 0.3
    optimize_object: bool = False
    w_opt_obj_rot: float = 0.3
    w_opt_obj_trans: float = 0.1
    noise_profile: str | NoiseProfile | None = None

    w_obj_contact: float = 1.0
    w_hand_contact: float = 2.5
    w_pen: float = 320.0
    asym: float = 2.0
    w_pose_prior: float = 0.0
    w_prior: float = 1.0
    pen_allowance: float = 0.002
    thin_object_extent: float = 0.01
    contact_model: ContactModel = "sdf"
    penetration_model: PenetrationModel = "sdf"
    n_obj_points: int = 2048
    sdf_pitch: float = 0.002
    target_mapping: TargetMapping = "identity"
    target_threshold: float = 0.5
    target_max: float = 1.0

    lr: float = 0.02
    amsgrad: bool = True
    n_iter: int = 60
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    n_restarts: int = 4
    restart_trans_sigma: float = 0.01
    restart_rot_sigma_deg: float = 5.0
    perturb_first_restart: bool = False
    restart_prior_sigma: float = 1.0
    early_stop_patience: int | None = 15
    early_stop_tol: float = 1e-3
    nn_refresh_every: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("num_pca_comps", 1 <= self.num_pca_comps <= 45, "1..45"),
            ("n_iter", self.n_iter >= 0, ">= 0"),
            ("n_restarts", self.n_restarts >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("n_obj_points", self.n_obj_points >= 1, ">= 1"),
            ("sdf_pitch", self.sdf_pitch > 0, "> 0 metres"),
            ("pen_allowance", self.pen_allowance >= 0, ">= 0 metres"),
            ("nn_refresh_every", self.nn_refresh_every >= 1, ">= 1"),
            ("target_max", 0 < self.target_max <= 1, "in (0, 1]"),
            ("w_prior", self.w_prior >= 0, ">= 0"),
            ("restart_prior_sigma", self.restart_prior_sigma >= 0, ">= 0"),
            ("contact_model", self.contact_model in ("capsule", "sdf"), "'capsule' or 'sdf'"),
            ("penetration_model", self.penetration_model in ("hinge", "sdf"), "'hinge' or 'sdf'"),
            ("lr_schedule", self.lr_schedule in ("constant", "cosine"), "'constant' or 'cosine'"),
            (
                "target_mapping",
                self.target_mapping in ("identity", "sharpen", "binary", "distance", "value"),
                "'identity', 'sharpen', 'binary', 'distance' or 'value'",
            ),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(f"OptimizeConfig.{name}: expected {expected}, got {getattr(self, name)!r}")
        if self.noise_profile is not None:
            load_noise_profile(self.noise_profile)  # fails early, naming the profile

    def profile(self) -> NoiseProfile | None:
        """The resolved noise profile (None without one)."""
        return None if self.noise_profile is None else load_noise_profile(self.noise_profile)

    def to_dict(self) -> dict:
        """Plain dict (for JSON provenance)."""
        return asdict(self)

    def replace(self, **changes: object) -> OptimizeConfig:
        """A copy with some fields changed (validated); unknown names raise InputError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"OptimizeConfig has no field(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)


CONTACTOPT = OptimizeConfig(
    num_pca_comps=15,
    project_input_to_pca=True,
    w_opt_rot=1.0,
    w_opt_pose=1.0,
    w_opt_trans=0.3,
    w_obj_contact=1.0,
    w_hand_contact=2.5,
    w_pen=320.0,
    asym=2.0,
    pen_allowance=0.002,
    contact_model="capsule",
    penetration_model="hinge",
    n_obj_points=2048,
    target_mapping="identity",
    lr=0.01,
    amsgrad=True,
    n_iter=250,
    lr_schedule="constant",
    n_restarts=8,
    restart_trans_sigma=0.02,
    restart_rot_sigma_deg=5.0,
    perturb_first_restart=True,
    early_stop_patience=None,
    nn_refresh_every=1,
)

HACO = CONTACTOPT.replace(w_obj_contact=0.0)

FAST = OptimizeConfig(
    target_max=0.3,
    optimize_object=True,
    noise_profile="hflnet-dexycb",
    w_prior=0.01,
    w_pen=640.0,
    lr=0.2,
    n_iter=100,
    early_stop_patience=None,
)

#: The named presets: the one list of preset names (``--preset`` of refine and the demo, the benchmarks).
PRESETS: dict[str, OptimizeConfig] = {"contactopt": CONTACTOPT, "haco": HACO, "fast": FAST}
#: The preset of :func:`get_config` (None) and of the commands' ``--preset``.
DEFAULT_PRESET = "fast"


def preset_names() -> tuple[str, ...]:
    """The keys of :data:`PRESETS`, the default first (``--preset``'s choices, in that order)."""
    return (DEFAULT_PRESET, *(name for name in PRESETS if name != DEFAULT_PRESET))


def get_config(config: OptimizeConfig | str | None) -> OptimizeConfig:
    """Resolve a preset name (or pass a config through). None means ``fast``."""
    if config is None:
        return FAST
    if isinstance(config, OptimizeConfig):
        return config
    if config not in PRESETS:
        raise InputError(f"preset: unknown {config!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[config]
