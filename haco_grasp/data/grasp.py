"""The grasp record every data source produces: one hand (MANO parameters and mesh) and one posed object.

Conventions (stated once):
- World frame: metres, right-handed. For synthetic grasps it is the object's canonical frame; for DexYCB and
  HFL-Net it is the camera frame.
- Hand pose: MANO axis-angle in the **flat-hand-mean** convention (``flat_hand_mean=True``: a zero pose is the flat
  hand), ``global_orient`` (3,) + ``hand_pose`` (45,), ``betas`` (10,), ``transl`` (3,) as accepted by
  :class:`haco_grasp.hand.ManoLayer`. ``hand_verts`` / ``hand_joints`` are that layer's output.
- Object pose: ``obj_verts = obj_verts_canonical @ obj_rotation.T + obj_translation``.
- Contact: ``hand_contact`` (778,) in {0, 1}, vertex within the dataset's threshold of the object surface
  (1 cm unless stated; :func:`haco_grasp.contact.labels.hand_contact_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np


@dataclass
class Grasp:
    """One hand–object grasp.

    object_name: procedural object name or YCB model name.
    obj_verts_canonical: (Vo, 3) float64, metres, object frame. obj_faces: (Fo, 3) int64.
    obj_rotation: (3, 3), obj_translation: (3,) the object pose in the world frame.
    global_orient: (3,), hand_pose: (45,) axis-angle, flat-mean convention. betas: (10,). transl: (3,) metres.
    hand_verts: (778, 3), hand_joints: (21, 3) metres, world frame. hand_faces: (F, 3) int64 (open wrist).
    hand_contact: (778,) float64 in {0, 1}.
    side: "right" or "left" (synthetic grasps are right hands).
    grasp_type: e.g. "power", "precision", "pinch"; "" when unknown.
    object_id: integer id of the object within its source (procedural index or YCB id).
    meta: free-form provenance (seed, source sample id, ...), JSON-serialisable values only.
    """

    object_name: str
    obj_verts_canonical: np.ndarray
    obj_faces: np.ndarray
    obj_rotation: np.ndarray
    obj_translation: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    hand_verts: np.ndarray
    hand_joints: np.ndarray
    hand_faces: np.ndarray
    hand_contact: np.ndarray
    side: Literal["right", "left"] = "right"
    grasp_type: str = ""
    object_id: int = -1
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_posed_object(
        cls,
        mesh,
        obj_pose: np.ndarray,
        mano_params: dict[str, np.ndarray],
        hand_verts: np.ndarray,
        hand_joints: np.ndarray,
        hand_faces: np.ndarray,
        hand_contact: np.ndarray,
        side: Literal["right", "left"],
        object_id: int,
        meta: dict,
    ) -> Grasp:
        """A grasp from an object mesh (``name``, ``verts``, ``faces``) posed by ``obj_pose`` (3, 4) [R | t] and a hand.

        mano_params: ``global_orient``, ``hand_pose`` (flat-mean), ``betas``, ``transl`` as numpy arrays.
        """
        pose = np.asarray(obj_pose, dtype=np.float64)
        return cls(
            object_name=mesh.name,
            obj_verts_canonical=np.array(mesh.verts, dtype=np.float64),
            obj_faces=np.array(mesh.faces, dtype=np.int64),
            obj_rotation=pose[:, :3].copy(),
            obj_translation=pose[:, 3].copy(),
            global_orient=mano_params["global_orient"],
            hand_pose=mano_params["hand_pose"],
            betas=mano_params["betas"],
            transl=mano_params["transl"],
            hand_verts=hand_verts,
            hand_joints=hand_joints,
            hand_faces=np.array(hand_faces, dtype=np.int64),
            hand_contact=hand_contact,
            side=side,
            object_id=int(object_id),
            meta=meta,
        )

    @property
    def obj_verts(self) -> np.ndarray:
        """(Vo, 3) object vertices in the world frame."""
        return self.obj_verts_canonical @ self.obj_rotation.T + self.obj_translation

    @property
    def mano_params(self) -> dict[str, np.ndarray]:
        """The MANO parameters as a dict (flat-mean axis-angle convention)."""
        return {
            "global_orient": self.global_orient,
            "hand_pose": self.hand_pose,
            "betas": self.betas,
            "transl": self.transl,
        }

    def with_hand(self, **changes: np.ndarray) -> Grasp:
        """A copy with some fields replaced (e.g. a perturbed or refined hand)."""
        return replace(self, **changes)
