"""MANO hand model: official-file loading without chumpy, the batched layer, the MANO conventions (conventions.py),
the synthetic open hand (synthetic_asset.py, synthetic_skeleton.py) and its grasp-pose families (poses.py)."""

from haco_grasp.hand.assets import cache_dir, synthetic_mano_root
from haco_grasp.hand.joints import JOINT_NAMES, MANO_JOINT_NAMES, MANO_TIP_VERTEX_IDS, TIP_JOINTS
from haco_grasp.hand.mano import ManoLayer, ManoModelData, ManoOutput, load_mano, read_mano_pickle, resolve_mano_path
from haco_grasp.hand.poses import synthetic_grasp_poses
from haco_grasp.hand.synthetic_asset import (
    SYNTHETIC_BETA_NAMES,
    SYNTHETIC_TIP_VERTEX_IDS,
    build_synthetic_mano,
    write_synthetic_mano,
)
from haco_grasp.hand.synthetic_skeleton import THUMB_FLEXION_AXIS

__all__ = [
    "JOINT_NAMES",
    "MANO_JOINT_NAMES",
    "MANO_TIP_VERTEX_IDS",
    "SYNTHETIC_BETA_NAMES",
    "SYNTHETIC_TIP_VERTEX_IDS",
    "THUMB_FLEXION_AXIS",
    "TIP_JOINTS",
    "ManoLayer",
    "ManoModelData",
    "ManoOutput",
    "build_synthetic_mano",
    "cache_dir",
    "load_mano",
    "read_mano_pickle",
    "resolve_mano_path",
    "synthetic_grasp_poses",
    "synthetic_mano_root",
    "write_synthetic_mano",
]
