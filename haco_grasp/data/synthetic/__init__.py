"""Ground-truth synthetic grasps: a small, deterministic, contact-free grasp planner (GraspIt-style autograsp).

The grasps are the yardstick the contact-guided optimiser is measured with, so the planner uses geometry only:
signed distances, penetration and a per-link "touching" test. It never evaluates a contact-matching energy or the
differentiable contact model of :mod:`haco_grasp.geometry.contact`.

Procedure for one grasp (:func:`generate_grasps`):

a. **Object, type, site.** Objects cycle through :data:`~haco_grasp.objects.procedural.OBJECT_NAMES` (or the
   given list), types through ``grasp_types``. Surface samples p (outward normal n) are scored for each type along
   12 tangent directions c by the object's extent along c, measured on surface samples in a slab at depth delta
   under p and within a finger-wide band:

   - ``power``: object depth behind p 1.5-9 cm and extent 1.5-9 cm at half that depth (can and bottle bodies,
     handles, the mug, box sides, the cube; power grasps of the 6.6 cm ball rarely pass the quality rule, the
     thumb misses it, and fall back to precision);
   - ``precision``: extent 2-7 cm at 1 cm depth (tops and ends of cans, bottles, balls, cubes, boxes);
   - ``pinch``: extent 0.2-3 cm at 0.8 cm depth (rims of the plate, bowl and mug, the tool, the bottle neck).

   An object without a valid site for the requested type falls back to the next type it affords. A random valid
   (site, direction) is drawn with a random sign of c and a random roll of +-12 degrees about n.
b. **Placement and approach.** Every digit moves along a straight path in its joints' local coordinates from the
   ``open`` pose family (t = 0) to the mean of the type's family (t = 1) of
   :func:`haco_grasp.hand.poses.synthetic_grasp_poses` (power / precision / pinch), extrapolated up to the
   joint limits: for the fingers this is flexion, for the thumb flexion plus opposition. The pre-shape is a small
   t (power: fingers 0-0.1 and the thumb already opposed, 0.5-0.9; precision/pinch 0.3-0.5; the idle ring and
   little fingers of a pinch sit at t = 1). The hand is rotated so that its approach axis points along -n (power:
   the palm normal; precision/pinch: palm to the thumb-finger meeting point of the family pose) and its opposition
   axis along c (power: the finger direction, so the fingers wrap around the object; precision/pinch: thumb tip to
   finger tips), set at a collision-free stand-off with the grasp centre (power: the palm 1-2.5 cm below the
   knuckles; precision/pinch: the meeting point) over p, and moved along -n by sphere tracing on the object's
   :class:`~haco_grasp.geometry.sdf.SdfGrid` until the palm/back of the hand touches (grid distance < 1 mm) or,
   for precision/pinch, the grasp centre is delta below the surface. Digits that would then intersect the object
   open (t decreases) until they are clear; if one cannot, the hand retreats.
c. **Closing.** Joint levels close from proximal to distal (MCP / thumb CMC, then PIP / thumb MCP, then DIP /
   thumb IP), all digits of all candidates in parallel. Each step is the largest that cannot bring a moved vertex
   below 0.2 mm of grid distance (a rotation by dtheta moves a vertex at distance r from the joint by at most
   r dtheta; capped at 0.06 rad); a joint stops when its own link touches (< 1 mm), when it is blocked (the safe
   step falls below 0.003 rad: a more distal link touches) or at its limit. Skin blended from the parent link (the
   crease) and the thenar may sink 0.5 mm, like soft tissue. Power grasps are then pushed along -n while no vertex
   would enter the object, to restore palm contact lost to skin deformation. Joint frames come from the model's
   rest joints (flexion axis = bone direction x palm normal; thumb: bone direction x its pad direction), and the
   pose families are carried over through them, so any MANO-format model works (synthetic or official).
d. **Back-off.** Exact signed distances (open3d): digits with a vertex deeper than 0.8 mm open a little, a
   penetrating palm moves the hand back along n, until the maximum depth is below 1 mm.
e. **Labels and quality.** ``hand_contact`` is :func:`~haco_grasp.geometry.labels.hand_contact_labels` (1 cm).
   A grasp is kept if at least 3 digits, or 2 digits and the palm, are within 2 mm of the surface, the thumb or
   the palm takes part (opposition), the depth is below 1 mm and the intersection volume (2 mm voxels) is below
   0.5 cm^3. Otherwise new candidates are drawn (6 per round, at most 5 rounds per type, then the next type the
   object affords); a grasp that never passes is returned as the best candidate seen, with
   ``meta["quality_passed"] = False`` and a warning.

World frame: the object's canonical frame (``obj_rotation = I``, ``obj_translation = 0``). Hands are right
hands unless ``side="left"``; shapes are random (``betas ~ N(0, 0.5^2)``, clipped to +-1.5). Candidates of all
grasps that share an object and a type are simulated as one torch batch. Results are deterministic for given
arguments (and library versions): candidate draws use ``numpy.random.default_rng([seed, index, type, round])``.

Modules, by job: :mod:`~haco_grasp.data.synthetic.config` (grasp types, limits, :class:`GraspWorldConfig`),
:mod:`~haco_grasp.data.synthetic.rig` (joint frames, parts, grasp axes), :mod:`~haco_grasp.data.synthetic.sites`
(step a), :mod:`~haco_grasp.data.synthetic.simulate` (steps b-d, touching, quality),
:mod:`~haco_grasp.data.synthetic.candidates` (drawing and simulating candidates) and
:mod:`~haco_grasp.data.synthetic.generate` (:func:`generate_grasps`, step e). Each imports only the ones before it.
"""

from haco_grasp.data.synthetic.config import GENERATOR_VERSION as GENERATOR_VERSION
from haco_grasp.data.synthetic.config import GRASP_TYPES, GraspWorldConfig
from haco_grasp.data.synthetic.generate import generate_grasps
from haco_grasp.data.synthetic.simulate import HandParts, Touching, hand_parts, touching_parts

__all__ = [
    "GRASP_TYPES",
    "GraspWorldConfig",
    "HandParts",
    "Touching",
    "generate_grasps",
    "hand_parts",
    "touching_parts",
]
