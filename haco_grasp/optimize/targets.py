"""Turning predicted contact into optimisation targets on ContactOpt's contact-value scale.

Two scales meet here:
- HACO predicts, per hand vertex, the probability that the vertex lies within 1 cm of the object (binary labels
  thresholded at 1 cm, sigmoid outputs).
- ContactOpt's contact value is 1 within about 1 mm of the object's capsules and falls off as r/d beyond
  (0.5 at 2 mm, 0.1 at 1 cm; :mod:`haco_grasp.geometry.contact`).

Mappings (``OptimizeConfig.target_mapping``), each a pure function of the probability ``p``:
- ``value``: the input already is a contact value on ContactOpt's scale (DeepContact's decoded bins, or the
  ground-truth hand's own contact values); used unchanged and never rescaled by ``OptimizeConfig.target_max``.
- ``identity``: T = p. A confident contact (p → 1) asks for touching (within ~1 mm), p = 0.5 asks for ~2 mm,
  p = 0.1 for ~1 cm. This reads HACO's probability directly as a contact value.
- ``sharpen``: ContactOpt's ``sharpen_contact``: T = clamp(2 (p − θ) + θ, 0, 1), θ = ``target_threshold``.
- ``binary``: T = 1[p ≥ θ]: touch where HACO says contact, nothing asked elsewhere (T = 0).
- ``distance``: treats p as P(d < 1 cm) and asks for the contact value at the distance where that probability
  would be reached under a linear ramp: d = (1 − p) · 1 cm, T = falloff(d). p = 1 → 1, p = 0.5 → ≈0.2, p = 0 → 0.1.
The benchmark compares them (README, "Target mapping").
"""

from __future__ import annotations

import torch
from torch import Tensor

from haco_grasp.errors import InputError
from haco_grasp.geometry.contact import CAPSULE_RADIUS, distance_to_contact_value, sharpen_contact


def map_contact_target(prob: Tensor, mapping: str = "identity", threshold: float = 0.5) -> Tensor:
    """Contact-value targets from contact probabilities.

    Args:
        prob: (B, V) float in [0, 1], e.g. HACO's sigmoid outputs or DeepContact's decoded bins.
        mapping: "identity", "sharpen", "binary", "distance" or "value" (see the module docstring).
        threshold: θ of "sharpen" and "binary".

    Returns:
        (B, V) float in [0, 1], same dtype and device.
    """
    if not torch.is_tensor(prob) or not prob.is_floating_point():
        raise InputError(f"target contact: expected a float tensor of probabilities, got {type(prob).__name__}")
    if torch.isnan(prob).any():
        raise InputError("target contact: contains NaN; replace missing values by 0 (no contact)")
    prob = prob.clamp(0.0, 1.0)
    if mapping in ("identity", "value"):
        return prob
    if mapping == "sharpen":
        return sharpen_contact(prob, threshold)
    if mapping == "binary":
        return (prob >= threshold).to(prob.dtype)
    if mapping == "distance":
        distance = (1.0 - prob) * 0.01
        # the falloff is 1 within one radius of the capsule axis
        return distance_to_contact_value(torch.clamp(distance, min=CAPSULE_RADIUS))
    raise InputError(f"target_mapping: unknown {mapping!r}; choose identity, sharpen, binary, distance or value")
