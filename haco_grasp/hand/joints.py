"""MANO joint order, stated once for the whole toolkit.

MANO's kinematic tree has 16 joints (right hand shown; the left hand is its mirror image)::

    MANO order (the pickle's J_regressor rows, kintree_table, pose vector)

                      wrist 0
       ┌──────────┬──────┴───┬───────────┬───────────┐
    index 1    middle 4   pinky 7     ring 10    thumb 13
       │          │          │           │           │
       2          5          8          11          14
       │          │          │           │           │
       3          6          9          12          15

The toolkit's 21-joint output adds one fingertip vertex per finger and uses the order of DexYCB,
HFL-Net, manopth and ContactOpt (wrist, then each finger from its base to its tip, thumb to pinky)::

    0 wrist
    1 thumb1   2 thumb2   3 thumb3   4 thumb tip
    5 index1   6 index2   7 index3   8 index tip
    9 middle1 10 middle2 11 middle3 12 middle tip
   13 ring1   14 ring2   15 ring3   16 ring tip
   17 pinky1  18 pinky2  19 pinky3  20 pinky tip

The pose vector of MANO is 16 × 3 axis-angle values in MANO order: ``global_orient`` (joint 0) then
``hand_pose`` (joints 1..15, 45 values).
"""

from __future__ import annotations

NUM_MANO_JOINTS = 16
NUM_JOINTS = 21
NUM_VERTS = 778

MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip

#: Parent of each MANO joint (-1 for the root), as in the pickle's ``kintree_table[0]``.
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

#: Fingertip vertex ids of the official MANO mesh (manopth's choice, used by DexYCB, HFL-Net and ContactOpt),
#: thumb, index, middle, ring, pinky. HACO uses 445 for the middle tip; smplx uses 744/320/443/554/671.
#: The synthetic hand places its fingertip vertices at these same ids.
MANO_TIP_VERTEX_IDS: tuple[int, ...] = (745, 317, 444, 556, 673)

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb1", "thumb2", "thumb3", "thumb_tip",
    "index1", "index2", "index3", "index_tip",
    "middle1", "middle2", "middle3", "middle_tip",
    "ring1", "ring2", "ring3", "ring_tip",
    "pinky1", "pinky2", "pinky3", "pinky_tip",
)  # fmt: skip

#: ``joints21 = cat(mano16, tips5)[:, TO_21]`` where tips are ordered thumb, index, middle, ring, pinky (ids 16..20).
TO_21: tuple[int, ...] = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

#: Index of the five fingertips in the 21-joint order (thumb to pinky).
TIP_JOINTS: tuple[int, ...] = (4, 8, 12, 16, 20)

#: Parent of each of the 21 joints, for drawing skeletons (-1 for the wrist).
PARENTS_21: tuple[int, ...] = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
