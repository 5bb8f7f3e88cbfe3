"""Objects: procedural watertight objects with known volumes, and YCB model loaders."""

from haco_grasp.objects.procedural import OBJECT_NAMES, ObjectMesh, all_objects, make_object
from haco_grasp.objects.ycb import YCB_CLASSES, load_ycb_mesh, load_ycb_points, ycb_model_path

__all__ = [
    "OBJECT_NAMES",
    "YCB_CLASSES",
    "ObjectMesh",
    "all_objects",
    "load_ycb_mesh",
    "load_ycb_points",
    "make_object",
    "ycb_model_path",
]
