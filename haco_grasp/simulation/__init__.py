"""Simulation displacement: does the object stay in a static hand under gravity? (MuJoCo)

The field's physical-plausibility test (ObMan's, reused by GraspTTA, CPF, DeepSimHO): the hand is fixed in space,
the object is a free rigid body under gravity, and after a short simulation the distance its centre of mass moved is
the *simulation displacement* (SD, reported in cm). A grasp *stayed* when SD is under the protocol's threshold.

Collision shapes (MuJoCo collides convex shapes only):

- object: decomposed once into convex pieces with CoACD (a concave mug or bowl keeps its opening; a convex hull of
  it would let the fingers rest on a lid that does not exist). The pieces are cached on disk under
  ``cache_dir()/coacd`` keyed by a hash of the canonical mesh, the CoACD settings and the seed; CoACD runs in a
  child process because it can abort the interpreter on some meshes (slivers: the mesh is first welded at 10 µm).
- hand: one convex hull per MANO part (16 joints), from the vertices whose skinning weight on that joint is the
  largest or at least ``part_overlap`` (so neighbouring parts overlap across each joint and leave no gap),
  recomputed for every grasp from its posed vertices. A single hull of the whole hand would fill the space between
  the fingers and the palm, i.e. the object itself, and turn every grasp into a deep penetration.

Protocols (:data:`PROTOCOLS`, or any :class:`SimProtocol`):

- ``obman``: ObMan's published settings: time step 1/240 s, 35 steps (0.146 s), friction 3, object mass 1 kg with
  its centre at the mean of its vertices, gravity 9.8 m/s² along +y of the grasp's world frame (the camera frame of
  DexYCB/HFL-Net grasps: y points down in the image; the object's canonical frame for synthetic grasps),
  150 solver iterations. PyBullet's restitution (hand 0 × object 0.5) multiplies to 0; MuJoCo's default critically
  damped contacts do not bounce either. Both engines integrate semi-implicitly, so 35 steps of free fall cover
  g·dt²·35·36/2 = 10.7 cm, 2.9 % more than ½·g·t².
- ``hold``: 1 s (240 steps) under gravity along +y, and the hand *grips*: it pulls the object with 30 N in total
  at its contacts (MuJoCo adhesion, as DeepSimHO's adhesion actuator) and makes contact from 2 mm away. A static
  hand without grip holds an object only by interpenetration (the soft-contact springs push back) or by caging it:
  on planned ground-truth grasps that touch the surface without penetrating, ``obman`` mostly reports a fall (see
  README, "Simulation"). ``with_protocol("hold", directions=AXIS_DIRECTIONS)`` takes the worst of ±x, ±y, ±z
  instead (much harsher: hardly any grasp survives it).

Bad input never stops a run: a grasp with a non-watertight or degenerate object, a hand with most of its vertices
inside the object, or a failed decomposition or simulation gets ``status == "not simulated: <reason>"`` and one
logged warning line.

Layout: :mod:`~haco_grasp.simulation.protocols` (settings and results), :mod:`~haco_grasp.simulation.decompose`
(the CoACD cache), :mod:`~haco_grasp.simulation.scene` (the MuJoCo scene of one grasp) and
:mod:`~haco_grasp.simulation.grasps` (validation, hand parts and the batch driver); every name is importable from
this package. Import cost: the package imports numpy only; MuJoCo, CoACD, torch-based geometry and the MANO files
are loaded on first use, and worker processes (``workers > 1``) import MuJoCo and numpy only.
"""

from __future__ import annotations

from haco_grasp.simulation.decompose import decompose_object
from haco_grasp.simulation.grasps import hand_part_indices, simulate_grasps
from haco_grasp.simulation.protocols import (
    AXIS_DIRECTIONS,
    PROTOCOLS,
    SimProtocol,
    SimResult,
    SimSummary,
    SimulationError,
    get_protocol,
    summarize_simulation,
    with_protocol,
)
from haco_grasp.simulation.scene import simulate_pieces

__all__ = [
    "AXIS_DIRECTIONS",
    "PROTOCOLS",
    "SimProtocol",
    "SimulationError",
    "SimResult",
    "SimSummary",
    "decompose_object",
    "get_protocol",
    "hand_part_indices",
    "simulate_grasps",
    "simulate_pieces",
    "summarize_simulation",
    "with_protocol",
]
