"""The MuJoCo scene of one grasp: static convex hand pieces, one free object body; simulated under gravity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from haco_grasp.simulation.protocols import SimProtocol, SimulationError, get_protocol


class _Outcome(NamedTuple):
    displacement: float  # metres
    contacts: int
    contacts_end: int
    direction: tuple[float, float, float]


def _mujoco_model(
    object_pieces: Sequence[np.ndarray],
    hand_pieces: Sequence[np.ndarray],
    com: np.ndarray,
    inertia: np.ndarray,
    protocol: SimProtocol,
):
    """Compile the scene: static hand hulls in the world body, one free body of object hulls."""
    import mujoco

    spec = mujoco.MjSpec()
    spec.option.timestep = protocol.timestep
    spec.option.iterations = protocol.solver_iterations
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_EULER
    friction = [protocol.friction, 0.005, 0.0001]
    condim = 3 if protocol.friction > 0 else 1  # MuJoCo clamps a zero friction to 1e-5, which stiffens the cone
    solref = [protocol.contact_timeconst or 2.0 * protocol.timestep, 1.0]  # critically damped: no bounce

    def add_hulls(body, name: str, pieces: Sequence[np.ndarray]) -> list:
        """One convex mesh geom per piece (MuJoCo takes the hull of its points), with the scene's contact settings."""
        geoms = []
        for index, points in enumerate(pieces):
            mesh = spec.add_mesh(name=f"{name}{index}")
            mesh.uservert = np.asarray(points, dtype=np.float64).ravel().tolist()
            geom = body.add_geom(name=f"{name}{index}", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"{name}{index}")
            geom.friction, geom.condim, geom.solref = friction, condim, solref
            geoms.append(geom)
        return geoms

    hand = spec.worldbody.add_body(name="hand")  # no joint: welded to the world, static
    for geom in add_hulls(hand, "hand", hand_pieces):
        geom.margin = protocol.hand_margin
    if protocol.grip > 0 and hand_pieces:
        actuator = spec.add_actuator(name="grip", target="hand", trntype=mujoco.mjtTrn.mjTRN_BODY)
        actuator.set_to_adhesion(gain=protocol.grip)
        actuator.ctrlrange = [0.0, 1.0]
    body = spec.worldbody.add_body(name="object")
    body.add_freejoint()
    body.explicitinertial = True
    body.mass = protocol.object_mass
    body.ipos = np.asarray(com, dtype=np.float64).tolist()
    i = np.asarray(inertia, dtype=np.float64)
    body.fullinertia = [i[0, 0], i[1, 1], i[2, 2], i[0, 1], i[0, 2], i[1, 2]]
    for geom in add_hulls(body, "object", object_pieces):
        geom.mass = 0.0  # the body's mass and inertia are given explicitly
    return spec.compile()


def _box_inertia(points: np.ndarray, mass: float) -> np.ndarray:
    """(3, 3) inertia of a uniform box spanning the points' bounding box (fallback when no mesh is given)."""
    extent = np.ptp(points, axis=0)
    sq = extent**2
    return mass / 12.0 * np.diag([sq[1] + sq[2], sq[0] + sq[2], sq[0] + sq[1]])


def simulate_pieces(
    object_pieces: Sequence[np.ndarray],
    hand_pieces: Sequence[np.ndarray],
    protocol: str | SimProtocol = "obman",
    com: np.ndarray | None = None,
    inertia: np.ndarray | None = None,
) -> _Outcome:
    """Simulate one object (convex pieces, dynamic) against static convex hand pieces.

    Args:
        object_pieces: list of (Pi, 3) float arrays, vertices of each convex object piece, world frame, metres.
        hand_pieces: list of (Qi, 3) float arrays, vertices of each static convex piece (may be empty).
        protocol: preset name or :class:`SimProtocol`.
        com: (3,) centre of mass, metres; default the mean of all object piece vertices.
        inertia: (3, 3) inertia about ``com`` in the world frame, kg·m²; default a uniform box over the pieces.

    Returns:
        ``(displacement, contacts, contacts_end, direction)``: the largest centre-of-mass displacement in metres over
        the protocol's directions, the start and end hand–object contact counts, and the worst direction.

    Raises:
        SimulationError: MuJoCo could not compile the scene (e.g. a flat piece) or the simulation diverged.
    """
    import mujoco

    protocol = get_protocol(protocol)
    everything = np.concatenate([np.asarray(p, dtype=np.float64) for p in object_pieces])
    com = everything.mean(axis=0) if com is None else np.asarray(com, dtype=np.float64)
    inertia = _box_inertia(everything, protocol.object_mass) if inertia is None else inertia
    try:
        model = _mujoco_model(object_pieces, hand_pieces, com, inertia, protocol)
    except ValueError as error:
        raise SimulationError(f"MuJoCo could not build the scene: {str(error).splitlines()[0][:200]}") from None
    data = mujoco.MjData(model)
    object_id = model.body("object").id
    object_geom = model.geom_bodyid == object_id  # (G,)

    def hand_contacts() -> int:
        pairs = data.contact.geom[: data.ncon]  # (ncon, 2)
        return int(np.sum(object_geom[pairs[:, 0]] != object_geom[pairs[:, 1]]))

    worst = _Outcome(-1.0, 0, 0, (0.0, 0.0, 0.0))
    for direction in protocol.directions:
        mujoco.mj_resetData(model, data)
        data.ctrl[:] = 1.0  # grip on (no actuator without grip)
        model.opt.gravity[:] = protocol.gravity * np.asarray(direction)
        mujoco.mj_forward(model, data)
        start = data.xipos[object_id].copy()
        contacts = hand_contacts()
        for _ in range(protocol.steps):
            mujoco.mj_step(model, data)
        if data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number > 0 or not np.all(np.isfinite(data.qpos)):
            raise SimulationError("the simulation diverged (MuJoCo bad acceleration)")
        mujoco.mj_forward(model, data)  # positions and contacts of the final state (mj_step leaves them one step old)
        displacement = float(np.linalg.norm(data.xipos[object_id] - start))
        if displacement > worst.displacement:
            worst = _Outcome(displacement, contacts, hand_contacts(), tuple(float(x) for x in direction))
    return worst
