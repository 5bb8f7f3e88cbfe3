"""Tests of contactopt_bridge; :func:`fake_grasps` builds cheap grasps (MANO pose beside a box) for them."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def _layer():
    from haco_grasp.hand import load_mano, synthetic_mano_root

    return load_mano("right", synthetic_mano_root(), use_pca=False, flat_hand_mean=True)


def fake_grasps(names: tuple[str, ...] = ("box", "box"), seed: int = 0) -> list:
    """Grasps whose synthetic right hand (random small pose) rests with its palm centre on a small box's face.

    Args:
        names: object name stored in each grasp (the geometry is always a 6 cm box; names drive the split).
        seed: numpy seed of the poses.

    Returns:
        list of haco_grasp Grasp records, world frame = box frame.
    """
    import torch

    from haco_grasp.data.grasp import Grasp
    from haco_grasp.objects.procedural import make_object

    rng = np.random.default_rng(seed)
    layer = _layer()
    box = make_object("box")
    out = []
    for index, name in enumerate(names):
        pose = rng.normal(scale=0.1, size=45)
        orient = rng.normal(scale=0.2, size=3)
        with torch.no_grad():
            res = layer(
                global_orient=torch.tensor(orient[None], dtype=layer.v_template.dtype),
                hand_pose=torch.tensor(pose[None], dtype=layer.v_template.dtype),
            )
        verts = res.verts[0].double().numpy()
        joints = res.joints[0].double().numpy()
        # put the hand's lowest vertex (along z) 1 mm above the box's top face
        top = box.verts[:, 2].max()
        centre = verts.mean(0)
        transl = np.array([-centre[0], -centre[1], top + 0.001 - verts[:, 2].min()])
        out.append(
            Grasp(
                object_name=name,
                obj_verts_canonical=box.verts,
                obj_faces=box.faces,
                obj_rotation=np.eye(3),
                obj_translation=np.zeros(3),
                global_orient=orient,
                hand_pose=pose,
                betas=np.zeros(10),
                transl=transl,
                hand_verts=verts + transl,
                hand_joints=joints + transl,
                hand_faces=np.asarray(layer.faces, dtype=np.int64),
                hand_contact=np.zeros(778),
                object_id=index,
                meta={},
            )
        )
    return out
