"""haco_grasp: contact-guided 3D grasp refinement.

Units: metres inside the toolkit; millimetres and cm³ only in reports.
"""

__version__ = "0.1.0"
