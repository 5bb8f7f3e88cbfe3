"""MANO hand model: official-file loading without chumpy, the batched layer, and the synthetic open hand."""

from haco_grasp.hand.joints import JOINT_NAMES, MANO_JOINT_NAMES, MANO_TIP_VERTEX_IDS, TIP_JOINTS
from haco_grasp.hand.mano import ManoLayer, ManoModelData, ManoOutput, load_mano, read_mano_pickle, resolve_mano_path

__all__ = [
    "JOINT_NAMES",
    "MANO_JOINT_NAMES",
    "MANO_TIP_VERTEX_IDS",
    "TIP_JOINTS",
    "ManoLayer",
    "ManoModelData",
    "ManoOutput",
    "load_mano",
    "read_mano_pickle",
    "resolve_mano_path",
]
