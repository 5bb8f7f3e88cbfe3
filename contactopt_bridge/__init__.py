"""ContactOpt bridge: DeepContact (pure-torch PointNet++, official key names) and ContactOpt-format pickle I/O.

- :mod:`contactopt_bridge.pointnet2`: FPS, radius grouping, kNN interpolation, set abstraction / propagation.
- :mod:`contactopt_bridge.features`: the 25 per-point features and the input-cloud normalisation.
- :mod:`contactopt_bridge.deepcontact`: the network, bins, :func:`load_deepcontact`, :func:`predict_contact`.
- :mod:`contactopt_bridge.train`: training on synthetic grasps (``add_arguments`` / ``run_training``).
- :mod:`contactopt_bridge.contactopt_io`: read ContactOpt dataset/result pickles safely, write results.

The shipped checkpoint ``checkpoints/deepcontact_synthetic.pt`` was trained on synthetic grasps only.
"""

from contactopt_bridge.contactopt_io import (
    ContactOptHandObject,
    hand_object_from_grasp,
    read_contactopt_pickle,
    refinement_results,
    write_contactopt_results,
)
from contactopt_bridge.deepcontact import (
    DEFAULT_CHECKPOINT,
    DeepContactNet,
    DeepContactPrediction,
    bin_to_contact,
    contact_to_bin,
    load_deepcontact,
    predict_contact,
)
from contactopt_bridge.features import grasp_inputs, normalizing_transform, pointnet_features

__all__ = [
    "DEFAULT_CHECKPOINT",
    "ContactOptHandObject",
    "DeepContactNet",
    "DeepContactPrediction",
    "bin_to_contact",
    "contact_to_bin",
    "grasp_inputs",
    "hand_object_from_grasp",
    "load_deepcontact",
    "normalizing_transform",
    "pointnet_features",
    "predict_contact",
    "read_contactopt_pickle",
    "refinement_results",
    "write_contactopt_results",
]
