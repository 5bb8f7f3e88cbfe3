"""HACO inference: crop, normalise, predict, threshold, clean up; the ``haco-grasp predict`` command.

Pipeline (haco.md §8), per image and hand box:

1. **Crop.** The box (xyxy pixels, pixel centres at integer coordinates, optionally scaled about its centre by
   ``box_scale``; the official demo uses 2.0 on detector boxes) is warped *anisotropically* to 256 x 256 as the
   official ``generate_patch_image`` does with ``cv2.warpAffine`` (bilinear, zero border): output pixel (u, v)
   samples the image at ``(x0 + u * w / 256, y0 + v * h / 256)``, so the box's top-left corner lands on the centre
   of output pixel (0, 0) and the box centre on (128, 128). This is the training crop too: both use
   :func:`haco_grasp.contact.augment.crop_transform` and :func:`~haco_grasp.contact.augment.warp_image`
   (``torch.nn.functional.grid_sample``; cv2 is not required).
2. **Left hands** are mirrored before inference, as the official flip does (``x -> W - 1 - x`` about pixel
   centres): output pixel u samples ``x1 - u * w / 256``. HACO only knows right hands; its 778 outputs are MANO
   vertex ids, and MANO's left mesh is the mirror image of the right one with the same vertex order, so the
   probabilities predicted on the mirrored crop apply unchanged to the left hand's vertices (no remapping).
3. **Normalise** per backbone (:func:`haco_grasp.contact.backbones.normalize_images`), run the model, sigmoid.
4. **Binary contact** (optional): probability > threshold (the backbone's official eval threshold unless given),
   then connected components of fewer than ``min_component_size`` (20) contact vertices are removed, with
   connectivity from the wrist-capped (watertight) hand mesh, as the official demo does.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from haco_grasp.arrays import to_numpy
from haco_grasp.contact.backbones import CROP_SIZE, normalize_images
from haco_grasp.contact.checkpoint import load_haco
from haco_grasp.contact.haco_model import HACO
from haco_grasp.errors import AssetError, InputError

__all__ = [
    "DEFAULT_CHECKPOINT",
    "ContactPrediction",
    "HacoPredictor",
    "add_predict_arguments",
    "crop_hands",
    "default_checkpoint_path",
    "predict_hand_contact",
    "read_boxes_file",
    "remove_small_components",
    "run_predict",
]

logger = logging.getLogger(__name__)

#: The small checkpoint trained on the toolkit's synthetic images (with ``haco_synthetic.json`` beside it).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "haco_synthetic.ckpt"
MIN_COMPONENT_SIZE = 20
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


# ----------------------------------------------------------------------------------------------------------------
# Cropping
# ----------------------------------------------------------------------------------------------------------------


def _check_sides(sides: str | Sequence[str], count: int) -> list[str]:
    values = [sides] * count if isinstance(sides, str) else list(sides)
    if len(values) != count or any(side not in ("right", "left") for side in values):
        raise InputError(f"sides: expected 'right'/'left' or {count} of them, got {sides!r}")
    return values


def _check_boxes(boxes: Any, count: int) -> np.ndarray:
    array = to_numpy(boxes, np.float64)
    if array.shape != (count, 4) or not np.all(np.isfinite(array)):
        raise InputError(f"boxes: expected finite ({count}, 4) xyxy pixels, got shape {array.shape}")
    if np.any(array[:, 2] <= array[:, 0]) or np.any(array[:, 3] <= array[:, 1]):
        raise InputError("boxes: expected x1 > x0 and y1 > y0 (xyxy pixels) for every box")
    return array


def _image_array(image: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB array or tensor -> (H, W, 3) uint8 array (checked)."""
    array = to_numpy(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 2:
        raise InputError(f"image: expected (H, W, 3) uint8 RGB with H, W >= 2, got {array.dtype} {array.shape}")
    return array


def crop_hands(
    images: Any,
    boxes: Any,
    sides: str | Sequence[str] = "right",
    box_scale: float = 1.0,
    size: int = CROP_SIZE,
) -> Tensor:
    """Anisotropic crops of hand boxes, left hands mirrored, as HACO's test-time ``augmentation_contact``.

    The warp is the training crop's (:func:`haco_grasp.contact.augment.crop_transform` without augmentation):
    output pixel (u, v) samples ``(x0 + u·w/S, y0 + v·h/S)``. A left hand's image is flipped first (``x -> W-1-x``)
    together with its box (``x0' = W-1-x1``), as the official flip does.

    Args:
        images: (B, H, W, 3) uint8 RGB array/tensor, or a sequence of B (H_i, W_i, 3) uint8 images
        boxes: (B, 4) float, xyxy pixels (pixel centres at integers)
        sides: "right"/"left", one per image or one for all
        box_scale: the box is scaled about its centre by this factor first (official demo: 2.0 on detector boxes)
        size: output side in pixels (256 for HACO)

    Returns:
        (B, 3, size, size) float32 RGB in [0, 1]; pixels outside the image are 0
    """
    from haco_grasp.contact.augment import crop_transform, warp_image

    image_list = list(images) if not isinstance(images, (np.ndarray, Tensor)) or images.ndim == 4 else [images]
    count = len(image_list)
    box_array = _check_boxes(boxes, count)
    side_list = _check_sides(sides, count)
    if not (np.isfinite(box_scale) and box_scale > 0):
        raise InputError(f"box_scale: expected a positive factor, got {box_scale}")
    crops = []
    for image, box, side in zip(image_list, box_array, side_list, strict=True):
        pixels = _image_array(image)
        height, width = pixels.shape[:2]
        if side == "left":
            pixels = pixels[:, ::-1]
            box = np.array([width - 1 - box[2], box[1], width - 1 - box[0], box[3]])
        center, half = (box[:2] + box[2:]) / 2.0, (box[2:] - box[:2]) * box_scale / 2.0
        affine = crop_transform(np.concatenate([center - half, center + half]), size, (width, height))
        crops.append(warp_image(pixels, affine, size))
    if not crops:
        return torch.zeros(0, 3, size, size)
    return torch.stack(crops)


# ----------------------------------------------------------------------------------------------------------------
# Post-processing
# ----------------------------------------------------------------------------------------------------------------


def remove_small_components(contact: Any, faces: Any, min_size: int = MIN_COMPONENT_SIZE) -> np.ndarray:
    """Drop connected components of contact vertices smaller than ``min_size`` vertices.

    Two contact vertices are connected when they share an edge of ``faces`` (use the wrist-capped mesh,
    :func:`haco_grasp.geometry.mesh.cap_boundary`, as the official demo does).

    Args:
        contact: (B, V) bool (a (V,) vector is accepted and returned as (V,))
        faces: (F, 3) int
        min_size: components with fewer vertices are removed

    Returns:
        (B, V) bool
    """
    mask = to_numpy(contact).astype(bool)
    single = mask.ndim == 1
    mask = np.atleast_2d(mask)
    face_array = np.asarray(faces, dtype=np.int64)
    if face_array.ndim != 2 or face_array.shape[1] != 3 or face_array.size == 0:
        raise InputError(f"faces: expected (F, 3) int vertex indices, got {face_array.shape}")
    count = mask.shape[1]
    if face_array.max() >= count:
        raise InputError(f"faces index vertex {face_array.max()} but contact has {count} vertices")
    edges = np.concatenate([face_array[:, [0, 1]], face_array[:, [1, 2]], face_array[:, [2, 0]]])
    out = np.zeros_like(mask)
    for row, selected in enumerate(mask):
        keep = edges[selected[edges[:, 0]] & selected[edges[:, 1]]]
        graph = sp.coo_matrix((np.ones(len(keep)), (keep[:, 0], keep[:, 1])), shape=(count, count))
        _, labels = connected_components(graph, directed=False)
        sizes = np.bincount(labels[selected], minlength=labels.max() + 1)
        out[row] = selected & (sizes[labels] >= min_size)
    return out[0] if single else out


# ----------------------------------------------------------------------------------------------------------------
# Predictor
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ContactPrediction:
    """Per-vertex contact for a batch of hands (right-hand MANO vertex ids; see the module docstring for left).

    Attributes:
        probabilities: (B, 778) float32, sigmoid of the logits.
        contact: (B, 778) bool, probabilities > threshold with small components removed.
        threshold: the probability threshold used.
        crops: (B, 3, 256, 256) float32 in [0, 1], the network inputs before normalisation.
    """

    probabilities: Tensor
    contact: Tensor
    threshold: float
    crops: Tensor


class HacoPredictor:
    """A loaded HACO model plus its pre- and post-processing.

    Args:
        model: a :class:`HACO` (eval mode is set).
        threshold: probability threshold; None uses the model config's, else the backbone's official one.
        faces: (F, 3) int faces of the wrist-capped hand for the component filter; None skips the filter.
        min_component_size: components below this many vertices are removed (official 20).
        box_scale: scale applied to every box about its centre before cropping.
    """

    def __init__(
        self,
        model: HACO,
        threshold: float | None = None,
        faces: np.ndarray | None = None,
        min_component_size: int = MIN_COMPONENT_SIZE,
        box_scale: float = 1.0,
    ) -> None:
        if model.spec is None:
            raise InputError("model: expected a HACO built by build_haco/load_haco (its backbone carries a spec)")
        self.model = model.eval()
        config = getattr(model, "config", None)
        if threshold is None:
            threshold = getattr(config, "threshold", None) or model.spec.eval_threshold
        if not 0.0 < float(threshold) < 1.0:
            raise InputError(f"threshold: expected a probability in (0, 1), got {threshold}")
        self.threshold = float(threshold)
        self.faces = faces
        self.min_component_size = int(min_component_size)
        self.box_scale = float(box_scale)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        backbone: str | None = None,
        mano_root: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> HacoPredictor:
        """Load a checkpoint (None: the bundled synthetic one) and the capped faces of its hand topology.

        Args:
            mano_root: use the official MANO right hand's faces (and regressors) instead of the config's hand.
        """
        path = _resolve_checkpoint(checkpoint)
        regressors = None
        hand = "mano" if mano_root is not None else None
        if mano_root is not None:
            from haco_grasp.contact.regressors import build_contact_regressors

            regressors = build_contact_regressors("mano", mano_root=mano_root)
        model = load_haco(path, backbone=backbone, device=device, regressors=regressors)
        hand = hand or getattr(getattr(model, "config", None), "hand", "synthetic")
        kwargs.setdefault("faces", _capped_faces(hand, mano_root))
        return cls(model, **kwargs)

    @torch.no_grad()
    def predict(
        self, images: Any, boxes: Any, sides: str | Sequence[str] = "right", batch_size: int = 8
    ) -> ContactPrediction:
        """Contact for every (image, box, side).

        Args:
            images: (B, H, W, 3) uint8 RGB, or a sequence of B such images of any sizes
            boxes: (B, 4) float, xyxy pixels
            sides: "right"/"left", one per image or one for all

        Returns:
            ContactPrediction (tensors on the CPU)
        """
        crops = crop_hands(images, boxes, sides, box_scale=self.box_scale)
        parameter = next(self.model.parameters())
        probabilities = []
        for start in range(0, crops.shape[0], max(int(batch_size), 1)):
            batch = crops[start : start + batch_size].to(device=parameter.device, dtype=parameter.dtype)
            logits = self.model(normalize_images(batch, self.model.spec)).contact_logits
            probabilities.append(torch.sigmoid(logits).float().cpu())
        probs = torch.cat(probabilities) if probabilities else torch.zeros(0, self.model.regressor_336.shape[1])
        contact = probs > self.threshold
        if self.faces is not None and self.min_component_size > 1 and contact.shape[0]:
            contact = torch.from_numpy(remove_small_components(contact.numpy(), self.faces, self.min_component_size))
        return ContactPrediction(probabilities=probs, contact=contact, threshold=self.threshold, crops=crops)


def default_checkpoint_path() -> Path:
    """Where the bundled synthetic checkpoint lives (``haco_synthetic.ckpt``, with its ``.json`` beside it)."""
    return DEFAULT_CHECKPOINT


def _resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    if checkpoint is not None:
        return Path(checkpoint).expanduser()
    if not DEFAULT_CHECKPOINT.is_file():
        raise AssetError(
            f"the bundled synthetic HACO checkpoint is missing: expected {DEFAULT_CHECKPOINT} (with "
            f"{DEFAULT_CHECKPOINT.with_suffix('.json').name} beside it); train one with the toolkit's HACO training "
            "command or pass checkpoint=PATH (an official haco_final_<backbone>_checkpoint.ckpt works)"
        )
    return DEFAULT_CHECKPOINT


def _hand_data(hand: str, mano_root: str | os.PathLike | None, side: str = "right") -> Any:
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    if hand == "mano":
        return read_mano_pickle(resolve_mano_path(side, mano_root))  # type: ignore[arg-type]
    from haco_grasp.hand.assets import synthetic_mano_root

    return read_mano_pickle(resolve_mano_path(side, synthetic_mano_root()))  # type: ignore[arg-type]


def _capped_faces(hand: str, mano_root: str | os.PathLike | None) -> np.ndarray:
    from haco_grasp.geometry.mesh import cap_boundary

    return cap_boundary(_hand_data(hand, mano_root).faces)


@functools.lru_cache(maxsize=2)
def _cached_predictor(checkpoint: str | None, device: str) -> HacoPredictor:
    return HacoPredictor.from_checkpoint(checkpoint, device=device)


def predict_hand_contact(
    images: Any,
    boxes: Any,
    sides: str | Sequence[str],
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Per-vertex contact probabilities for hands in images (the refinement entry point).

    The loaded model is cached per (checkpoint, device) for later calls.

    Args:
        images: (B, H, W, 3) uint8 RGB (or a sequence of B differently sized images)
        boxes: (B, 4) float, hand crop boxes, xyxy pixels (used as given: box_scale 1)
        sides: "right"/"left", one per image or one for all; left hands are mirrored before inference
        checkpoint: a HACO checkpoint; None uses the bundled synthetic one (AssetError, a HacoGraspError, if absent)
        device: torch device for the model

    Returns:
        (B, 778) float32 CPU tensor, contact probabilities per MANO vertex id (same ids for left hands)
    """
    key = None if checkpoint is None else str(Path(checkpoint).expanduser().resolve())
    predictor = _cached_predictor(key, str(torch.device(device)))
    return predictor.predict(images, boxes, sides).probabilities


# ----------------------------------------------------------------------------------------------------------------
# Command line: haco-grasp predict
# ----------------------------------------------------------------------------------------------------------------


def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``haco-grasp predict`` options to ``parser`` and return it."""
    parser.add_argument(
        "--images", nargs="+", required=True, help="image files, or one folder of images (.png/.jpg/.bmp/.webp)"
    )
    parser.add_argument(
        "--boxes",
        required=True,
        help="box file: JSON {image name: [x0, y0, x1, y1] or {'box': [...], 'side': 'left'}}, or text lines "
        "'name x0 y0 x1 y1 [side]' (xyxy pixels); names are file names or stems",
    )
    parser.add_argument("--out", required=True, help="output folder (contact.npz, renders/, predict_config.json)")
    parser.add_argument("--checkpoint", default=None, help="HACO checkpoint (default: the bundled synthetic one)")
    parser.add_argument("--backbone", default=None, help="backbone name when the checkpoint has no .json beside it")
    parser.add_argument("--mano-root", default=None, help="folder of MANO_RIGHT/LEFT.pkl (default: synthetic hand)")
    parser.add_argument("--side", choices=("right", "left"), default="right", help="side for boxes without one")
    parser.add_argument("--box-scale", type=float, default=1.0, help="scale boxes about their centre (demo: 2.0)")
    parser.add_argument("--threshold", type=float, default=None, help="probability threshold (default: backbone's)")
    parser.add_argument("--min-component", type=int, default=MIN_COMPONENT_SIZE, help="smallest contact patch kept")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    parser.add_argument("--no-render", action="store_true", help="skip the heat-map renders")
    return parser


def _image_paths(entries: Sequence[str]) -> list[Path]:
    paths: list[Path] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        elif path.is_file():
            paths.append(path)
        else:
            raise AssetError(f"--images: {path} is neither an image file nor a folder")
    if not paths:
        raise InputError(f"--images: no images found in {list(entries)} (suffixes {', '.join(_IMAGE_SUFFIXES)})")
    return paths


def read_boxes_file(path: str | os.PathLike) -> dict[str, tuple[list[float], str | None]]:
    """Read a boxes file (JSON or text, see ``--boxes``) into {name: (xyxy box, side or None)}."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise AssetError(f"--boxes: file not found: {file}")
    text = file.read_text()
    entries: dict[str, tuple[list[float], str | None]] = {}
    if file.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise InputError(f"{file}: expected a JSON object {{image name: box}}, got {type(data).__name__}")
        for name, value in data.items():
            box, side = (value.get("box"), value.get("side")) if isinstance(value, dict) else (value, None)
            entries[str(name)] = ([float(v) for v in box], side)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split("#")[0].split()
            if not fields:
                continue
            if len(fields) not in (5, 6):
                raise InputError(f"{file}:{number}: expected 'name x0 y0 x1 y1 [side]', got {line!r}")
            entries[fields[0]] = ([float(v) for v in fields[1:5]], fields[5] if len(fields) == 6 else None)
    for name, (box, side) in entries.items():
        if len(box) != 4 or side not in (None, "right", "left"):
            raise InputError(f"{file}: entry {name!r} needs 4 box values and side right/left, got {box}, {side!r}")
    return entries


def _render_heat_map(
    data: Any, probabilities: np.ndarray, side: str, crop: np.ndarray, threshold: float, title: str
) -> np.ndarray:
    """The figure of one prediction: the input crop, palm and back views of the template hand, a colour bar.

    Args:
        data: the hand model (``v_template`` (778, 3), ``faces``, ``J_regressor``). probabilities: (778,) in [0, 1].
        crop: (S, S, 3) uint8, the crop the model saw, un-mirrored for a left hand. threshold: the contact threshold.
    """
    from haco_grasp.viz.figures import hand_heat_map_figure

    verts = np.asarray(data.v_template, dtype=np.float64)
    joints = np.asarray(data.J_regressor @ verts)  # (16, 3), MANO order
    return hand_heat_map_figure(verts, data.faces, joints, probabilities, side, crop=crop, threshold=threshold,
                                title=title)  # fmt: skip


def _display_crop(image: np.ndarray, box: Sequence[float], side: str, box_scale: float) -> np.ndarray:
    """(S, S, 3) uint8: the hand crop the model saw, flipped back for a left hand (the model sees it mirrored)."""
    crop = crop_hands([image], [box], [side], box_scale=box_scale)[0].permute(1, 2, 0).numpy()  # (S, S, 3)
    crop = np.clip(np.rint(crop * 255.0), 0, 255).astype(np.uint8)
    return crop[:, ::-1].copy() if side == "left" else crop


def run_predict(args: argparse.Namespace) -> int:
    """Run ``haco-grasp predict``: contact maps (.npz) and heat-map renders for every image with a box.

    Returns:
        0 on success (errors raise HacoGraspError subclasses).
    """
    started = time.time()
    paths = _image_paths(args.images)
    boxes = read_boxes_file(args.boxes)
    selected = []
    for path in paths:
        entry = boxes.get(path.name, boxes.get(path.stem))
        if entry is None:
            logger.warning("no box for %s; skipped", path.name)
            continue
        selected.append((path, entry[0], entry[1] or args.side))
    if not selected:
        raise InputError(f"--boxes: none of the {len(paths)} images has a box in {args.boxes}")
    predictor = HacoPredictor.from_checkpoint(
        args.checkpoint,
        device=args.device,
        backbone=args.backbone,
        mano_root=args.mano_root,
        threshold=args.threshold,
        min_component_size=args.min_component,
        box_scale=args.box_scale,
    )
    from PIL import Image

    probabilities, contact, crops = [], [], []
    for path, box, side in selected:
        with Image.open(path) as handle:
            image = np.asarray(handle.convert("RGB"))
        result = predictor.predict([image], [box], [side], batch_size=args.batch_size)
        probabilities.append(result.probabilities[0].numpy())
        contact.append(result.contact[0].numpy())
        if not args.no_render:
            crops.append(_display_crop(image, box, side, args.box_scale))
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "contact.npz",
        names=np.array([p.name for p, _, _ in selected]),
        probabilities=np.stack(probabilities).astype(np.float32),
        contact=np.stack(contact),
        boxes=np.array([b for _, b, _ in selected], dtype=np.float64),
        sides=np.array([s for _, _, s in selected]),
        threshold=np.float64(predictor.threshold),
    )
    if not args.no_render:
        from haco_grasp.viz.render import save_png

        hand = "mano" if args.mano_root is not None else getattr(predictor.model.config, "hand", "synthetic")
        templates = {side: _hand_data(hand, args.mano_root, side) for side in {s for _, _, s in selected}}
        for (path, _, side), probs, crop in zip(selected, probabilities, crops, strict=True):
            figure = _render_heat_map(templates[side], probs, side, crop, predictor.threshold, path.name)
            save_png(figure, out / "renders" / f"{path.stem}.png")
    config = {key: value for key, value in vars(args).items() if not callable(value)}
    provenance = {"command": " ".join(sys.argv), "config": config, "threshold": predictor.threshold}
    provenance["backbone"] = predictor.model.spec.name if predictor.model.spec else None
    provenance["torch"] = torch.__version__
    provenance["seconds"] = round(time.time() - started, 3)
    (out / "predict_config.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    logger.info("wrote %d contact maps to %s", len(selected), out)
    return 0
