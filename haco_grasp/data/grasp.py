"""The grasp record every data source produces: one hand (MANO parameters and mesh) and one posed object.

Conventions (stated once):
- World frame: metres, right-handed. For synthetic grasps it is the object's canonical frame; for DexYCB and
  HFL-Net it is the camera frame.
- Hand pose: MANO axis-angle in the **flat-hand-mean** convention (``flat_hand_mean=True``: a zero pose is the flat
  hand), ``global_orient`` (3,) + ``hand_pose`` (45,), ``betas`` (10,), ``transl`` (3,) as accepted by
  :class:`haco_grasp.hand.ManoLayer`. ``hand_verts`` / ``hand_joints`` are that layer's output.
- Object pose: ``obj_verts = obj_verts_canonical @ obj_rotation.T + obj_translation``.
- Contact: ``hand_contact`` (778,) in {0, 1}, vertex within the dataset's threshold of the object surface
  (1 cm unless stated; :func:`haco_grasp.geometry.labels.hand_contact_labels`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from haco_grasp.arrays import to_numpy
from haco_grasp.errors import InputError

if TYPE_CHECKING:
    from haco_grasp.hand.conventions import PosedHand
    from haco_grasp.hand.mano import ManoLayer
    from haco_grasp.objects.procedural import ObjectMesh

__all__ = ["NUM_HAND_VERTS", "Grasp", "grasp_from_mano"]

#: Number of MANO hand vertices.
NUM_HAND_VERTS = 778


@dataclass
class Grasp:
    """One hand–object grasp.

    Attributes:
        object_name: procedural object name or YCB model name.
        obj_verts_canonical: (Vo, 3) float64, metres, object frame.
        obj_faces: (Fo, 3) int64.
        obj_rotation: (3, 3), obj_translation: (3,) the object pose in the world frame.
        global_orient: (3,), hand_pose: (45,) axis-angle, flat-mean convention.
        betas: (10,).
        transl: (3,) metres.
        hand_verts: (778, 3), hand_joints: (21, 3) metres, world frame.
        hand_faces: (F, 3) int64 (open wrist).
        hand_contact: (778,) float64 in {0, 1}.
        side: "right" or "left" (synthetic grasps are right hands).
        grasp_type: e.g. "power", "precision", "pinch"; "" when unknown.
        object_id: integer id of the object within its source (procedural index or YCB id).
        meta: free-form provenance (seed, source sample id, ...), JSON-serialisable values only.
        contact_threshold: metres: ``hand_contact`` holds this hand's geometric labels at this distance, computed
            when the grasp was built (:func:`grasp_from_mano`); the ``geometric`` contact source
            (:mod:`haco_grasp.targets`) then reuses them. None: the labels were given (a prediction's, a dataset's)
            or are not known to match the hand.
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
    contact_threshold: float | None = None

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

        Args:
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

    @classmethod
    def from_mano(
        cls,
        mano_params: Mapping[str, np.ndarray],
        layer: ManoLayer,
        mesh: ObjectMesh,
        obj_pose: np.ndarray | None = None,
        *,
        hand_contact: np.ndarray | None = None,
        contact_threshold: float = 0.01,
        object_id: int = -1,
        meta: dict | None = None,
    ) -> Grasp:
        """A grasp from MANO parameters, an object mesh and its pose; the hand mesh and contact are computed.

        Runs ``layer`` (no gradients) for the hand vertices, joints and faces, then delegates to
        :meth:`from_posed_object`. The hand side is ``layer.side``.

        Args:
            mano_params: ``global_orient`` (3,), ``hand_pose`` (45,) flat-mean axis-angle radians, ``betas`` (S,)
                (optional: zeros), ``transl`` (3,) metres (optional: zeros); for the MANO model of ``layer.side``.
            layer: a 45-D axis-angle, flat-hand-mean :class:`~haco_grasp.hand.ManoLayer` (e.g.
                ``ManoLayerCache(root).layer(side)``).
            mesh: the object (``name``, ``verts`` (Vo, 3) metres in its own frame, ``faces`` (Fo, 3)).
            obj_pose: (3, 4) [R | t], metres: ``world = canonical @ R.T + t``; None: the identity.
            hand_contact: (778,) values in [0, 1] stored rounded (>= 0.5); None: hand vertices within
                ``contact_threshold`` of (or inside) the posed object.
            contact_threshold: metres, for the computed contact.
            object_id: the object's id in its source (-1: none).
            meta: provenance; ``contact_source`` is added.

        Returns:
            Grasp with hand_verts (778, 3), hand_joints (21, 3) float64 metres, world frame.

        Raises:
            InputError: a parameter is missing or has the wrong shape, the layer is not flat-mean axis-angle, the
                pose is not a rotation, or ``hand_contact`` is outside [0, 1].
        """
        if getattr(layer, "use_pca", True) or not getattr(layer, "flat_hand_mean", False):
            raise InputError(
                "layer: expected a 45-D axis-angle, flat-hand-mean ManoLayer (use_pca=False, flat_hand_mean=True), "
                f"got use_pca={getattr(layer, 'use_pca', None)}, "
                f"flat_hand_mean={getattr(layer, 'flat_hand_mean', None)}; use ManoLayerCache(root).layer(side)"
            )
        num_betas = int(layer.num_betas)
        expected = {"global_orient": 3, "hand_pose": 45, "betas": num_betas, "transl": 3}
        params: dict[str, np.ndarray] = {}
        for name, size in expected.items():
            if name not in mano_params:
                if name in ("global_orient", "hand_pose"):
                    raise InputError(f"mano_params: missing {name!r} ({size},) axis-angle; add it (flat-mean pose)")
                params[name] = np.zeros(size)
                continue
            value = np.asarray(mano_params[name], dtype=np.float64).reshape(-1)
            if value.shape != (size,) or not np.all(np.isfinite(value)):
                raise InputError(
                    f"mano_params[{name!r}]: expected {size} finite values, got shape {np.shape(mano_params[name])}; "
                    "pass one hand's parameters"
                )
            params[name] = value
        pose = np.eye(4)[:3] if obj_pose is None else np.asarray(obj_pose, dtype=np.float64)
        if pose.shape != (3, 4):
            raise InputError(f"obj_pose: expected a (3, 4) [R | t] matrix, got shape {pose.shape}")
        rotation = pose[:, :3]
        if np.abs(rotation @ rotation.T - np.eye(3)).max() > 1e-3 or np.linalg.det(rotation) <= 0:
            raise InputError("obj_pose: [:, :3] is not a rotation (R R^T = I, det +1); pass the object's pose")
        threshold_ok = isinstance(contact_threshold, (int, float)) and math.isfinite(contact_threshold)
        if not (threshold_ok and contact_threshold > 0):
            raise InputError(f"contact_threshold: expected a positive number of metres, got {contact_threshold!r}")

        if hand_contact is not None:
            given = np.asarray(hand_contact, dtype=np.float64).reshape(-1)
            if given.shape != (NUM_HAND_VERTS,) or not np.all((given >= 0) & (given <= 1)):
                raise InputError(
                    f"hand_contact: expected ({NUM_HAND_VERTS},) values in [0, 1], got shape {np.shape(hand_contact)}"
                    "; pass one probability per MANO vertex, or None to compute it"
                )
            hand_contact = given
        grasp = grasp_from_mano(
            params,
            layer,
            mesh,
            pose,
            hand_contact=hand_contact,
            contact_threshold=contact_threshold,
            object_id=object_id,
            meta=dict(meta or {}),
        )
        grasp.meta["contact_source"] = "given" if hand_contact is not None else f"geometry<{contact_threshold:g}m"
        return grasp

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
        """A copy with some fields replaced (e.g. a perturbed or refined hand).

        A copy whose hand, object pose or contact changes no longer claims geometric labels (``contact_threshold``
        None) unless the change sets ``contact_threshold`` too.
        """
        moved = {"hand_verts", "hand_contact", "obj_rotation", "obj_translation", "obj_verts_canonical"}
        if moved & set(changes) and "contact_threshold" not in changes:
            changes = {**changes, "contact_threshold": None}
        return replace(self, **changes)

    def refined(
        self,
        *,
        global_orient: Any,
        hand_pose: Any,
        betas: Any,
        transl: Any,
        hand_verts: Any,
        hand_joints: Any,
        obj_rotation: Any,
        obj_translation: Any,
        hand_contact: Any = None,
    ) -> Grasp:
        """This grasp with a refined hand and object pose: the one rebuild of a refined grasp, from the optimizer's
        tensors (:meth:`~haco_grasp.optimize.OptimizeResult.to_grasps`) or a ``refined.pkl`` record
        (:func:`haco_grasp.refine.frames.refined_grasp`).

        Args:
            global_orient: (3,) axis-angle. hand_pose: (45,) flat-mean axis-angle. betas: (S,). transl: (3,) metres.
            hand_verts: (778, 3), hand_joints: (21, 3) metres, world frame.
            obj_rotation: (3, 3), obj_translation: (3,) the object pose.
            hand_contact: (778,) contact labels; None keeps this grasp's.
            Each a numpy array or a tensor (any device, detached here).

        Returns:
            Grasp with float64 copies of the values.
        """
        values = {
            "global_orient": global_orient, "hand_pose": hand_pose, "betas": betas, "transl": transl,
            "hand_verts": hand_verts, "hand_joints": hand_joints, "obj_rotation": obj_rotation,
            "obj_translation": obj_translation,
        }  # fmt: skip
        changes = {name: np.array(to_numpy(value, np.float64)) for name, value in values.items()}
        if hand_contact is not None:
            changes["hand_contact"] = np.array(to_numpy(hand_contact, np.float64))
        return self.with_hand(**changes)


def grasp_from_mano(
    mano_params: Mapping[str, np.ndarray],
    layer: ManoLayer,
    mesh: ObjectMesh,
    obj_pose: np.ndarray,
    *,
    hand: PosedHand | None = None,
    hand_contact: np.ndarray | None = None,
    contact_threshold: float = 0.01,
    object_id: int = -1,
    meta: dict | None = None,
) -> Grasp:
    """The one way a data source turns MANO parameters and a posed object into a :class:`Grasp` (no checks).

    :meth:`Grasp.from_mano` (generic files, after validating), :meth:`~haco_grasp.data.dexycb.DexYCBSample.to_grasp`
    and :func:`~haco_grasp.data.hflnet.prediction_to_grasp` all end here. The hand side is ``layer.side``.

    Args:
        mano_params: ``global_orient`` (3,), ``hand_pose`` (45,) flat-mean axis-angle, ``betas`` (10,), ``transl``
            (3,) metres; float64 numpy, for ``layer``.
        layer: the flat-mean axis-angle :class:`~haco_grasp.hand.ManoLayer` of the hand's side.
        mesh: the object (``name``, ``verts`` (Vo, 3) metres in its own frame, ``faces`` (Fo, 3)).
        obj_pose: (3, 4) [R | t]: ``world = canonical @ R.T + t``, metres.
        hand: the hand's vertices (778, 3) and joints (21, 3) to store, e.g. a prediction's own; None: ``layer``'s
            output for ``mano_params`` (no gradients).
        hand_contact: (778,) values in [0, 1], stored rounded (>= 0.5); None: the hand vertices within
            ``contact_threshold`` of (or inside) the posed object
            (:func:`~haco_grasp.geometry.labels.hand_contact_labels`).
        contact_threshold: metres, for the computed contact.
        object_id: the object's id in its source (-1: none).
        meta: provenance, stored as given (not copied).

    Returns:
        Grasp with float64 hand_verts (778, 3), hand_joints (21, 3) and hand_contact (778,) in {0, 1}.
    """
    from haco_grasp.geometry.labels import hand_contact_labels
    from haco_grasp.hand.conventions import pose_hand

    posed = pose_hand(layer, dict(mano_params)) if hand is None else hand
    pose = np.asarray(obj_pose, dtype=np.float64)
    if hand_contact is None:
        obj_verts = np.asarray(mesh.verts, np.float64) @ pose[:, :3].T + pose[:, 3]  # (Vo, 3) world frame
        contact = np.asarray(hand_contact_labels(posed.verts, obj_verts, mesh.faces, contact_threshold), np.float64)
        contact = contact.reshape(-1)
    else:
        contact = (np.asarray(hand_contact, np.float64) >= 0.5).astype(np.float64)
    grasp = Grasp.from_posed_object(
        mesh,
        pose,
        dict(mano_params),
        posed.verts,
        posed.joints,
        layer.faces,
        contact,
        side=layer.side,
        object_id=object_id,
        meta={} if meta is None else meta,
    )
    grasp.contact_threshold = float(contact_threshold) if hand_contact is None else None
    return grasp
