"""Reading and writing HACO checkpoints, official and the toolkit's own.

Official files (``haco_final_<name>_checkpoint.ckpt``) are ``torch.save`` dicts with ``epoch``, ``global_step``,
``state_dict``, ``optimizer`` and ``scheduler``; the ``state_dict`` keys are ``backbone.*`` and ``decoder.*``
(haco.md §10). :func:`load_haco` also accepts a bare state_dict and a DataParallel ``module.`` prefix, and always
reads with ``torch.load(weights_only=True)`` (no arbitrary code runs). The toolkit writes the same container with
:func:`save_haco_checkpoint` plus a ``<checkpoint>.json`` beside it holding the :class:`HacoConfig` (backbone and
decoder sizes, hand topology of the coarse regressors), which :func:`load_haco` reads when present.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from haco_grasp.atomic import atomic_open, atomic_write_bytes
from haco_grasp.contact.backbones import get_backbone_spec
from haco_grasp.contact.haco_model import HACO, HacoConfig, build_haco_from_config
from haco_grasp.contact.regressors import ContactRegressors, build_contact_regressors
from haco_grasp.errors import AssetError, HacoGraspError, InputError, torch_load_reason

__all__ = [
    "config_path_for",
    "extract_state_dict",
    "load_haco",
    "load_hamer_backbone",
    "read_checkpoint",
    "save_haco_checkpoint",
]

_RELEASE_PATTERN = re.compile(r"haco_(?:final|neurips)_(.+)_checkpoint")
_LISTED = 10


def config_path_for(checkpoint_path: str | os.PathLike) -> Path:
    """The JSON config path beside a checkpoint: ``x.ckpt`` -> ``x.json``."""
    return Path(checkpoint_path).with_suffix(".json")


def read_checkpoint(path: str | os.PathLike, weights_only: bool = True) -> Any:
    """``torch.load`` a checkpoint onto the CPU, by default with ``weights_only=True``.

    Raises:
        AssetError: the file is missing.
        HacoGraspError: the file holds objects the weights-only unpickler refuses (re-save its state_dict, or
            pass weights_only=False for a file you trust).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise AssetError(
            f"checkpoint not found: {file}; HACO's releases are on Hugging Face (dqj5182/haco-checkpoints)"
        )
    try:
        return torch.load(file, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        raise HacoGraspError(
            f"{file}: torch.load(weights_only=True) refused it ({torch_load_reason(exc)}); re-save only its "
            "state_dict, or pass weights_only=False if you trust the file"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise InputError(
            f"{file}: not a readable torch checkpoint ({torch_load_reason(exc)}); the file is truncated or corrupt, "
            "download or save it again"
        ) from None


def _read_config_json(json_path: Path) -> HacoConfig:
    """The :class:`HacoConfig` in the ``.json`` beside a checkpoint, or an InputError naming the file and field."""
    fix = "fix it, or delete it and pass backbone=NAME"
    try:
        values = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{json_path}: not valid JSON ({str(exc)[:120]}); {fix}") from None
    if not isinstance(values, dict):
        raise InputError(
            f"{json_path}: expected a JSON object of HacoConfig fields, got {type(values).__name__}; {fix}"
        )
    try:
        return HacoConfig.from_dict(values)
    except HacoGraspError as exc:
        raise InputError(f"{json_path}: {exc}; {fix}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InputError(f"{json_path}: not a valid HacoConfig ({str(exc)[:120]}); {fix}") from None


def extract_state_dict(checkpoint: Any, source: str = "checkpoint") -> dict[str, Tensor]:
    """The state_dict inside a loaded checkpoint: ``checkpoint['state_dict']`` or the dict itself; a ``module.``
    prefix on every key is removed."""
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise InputError(f"{source}: expected a state_dict or a dict with a 'state_dict' entry, got {type(checkpoint)}")
    non_tensors = [key for key, value in checkpoint.items() if not isinstance(value, Tensor)]
    if non_tensors:
        raise InputError(
            f"{source}: expected tensors only in the state_dict, got non-tensor entries {non_tensors[:_LISTED]}"
        )
    state = dict(checkpoint)
    not_finite = [key for key, value in state.items() if value.is_floating_point() and not bool(value.isfinite().all())]
    if not_finite:
        raise InputError(
            f"{source}: tensor {not_finite[0]!r} (and {len(not_finite) - 1} more) holds NaN or inf weights; the "
            "checkpoint is corrupt (or saved from a diverged run), use another one"
        )
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _infer_backbone(path: Path) -> str | None:
    match = _RELEASE_PATTERN.search(path.stem)
    if match is None:
        return None
    try:
        return get_backbone_spec(match.group(1)).name
    except InputError:
        return None


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return f"{len(keys)} [{shown}{', ...' if len(keys) > _LISTED else ''}]"


def _check_keys(model: nn.Module, state: Mapping[str, Tensor], source: str, backbone: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"{source} does not match HACO(backbone={backbone!r}): missing keys {_listing(missing)}, unexpected keys "
            f"{_listing(unexpected)}; check the backbone name (or the .json beside the checkpoint), or pass "
            "strict=False"
        )
    wrong = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    if wrong:
        raise InputError(f"{source}: tensor shapes differ from HACO(backbone={backbone!r}): {_listing(wrong)}")


def load_haco(
    checkpoint_path: str | os.PathLike,
    backbone: str | None = None,
    device: str | torch.device = "cpu",
    strict: bool = True,
    regressors: ContactRegressors | None = None,
    config: HacoConfig | None = None,
) -> HACO:
    """Load an official or toolkit HACO checkpoint into a freshly built model (eval mode).

    The model description comes from ``config``, else the ``.json`` beside the checkpoint, else ``backbone`` (or
    the backbone named in an official file name such as ``haco_final_vit_b_checkpoint.ckpt``) with the official
    decoder sizes.

    Args:
        checkpoint_path: the ``.ckpt`` file.
        backbone: registry name (``hamer``, ``vit-b-16``, ``resnet-18``, ...) or release spelling (``vit_b``).
        device: where the model goes (any torch device).
        strict: every key must match (as the official scripts load); False loads the overlap.
        regressors: coarse regressors; default from the config's hand ("synthetic" unless the JSON says "mano").
        config: overrides the JSON and ``backbone``.

    Raises:
        AssetError: missing file. InputError: the keys or shapes do not match (the message lists them).
    """
    path = Path(checkpoint_path).expanduser()
    state = extract_state_dict(read_checkpoint(path), str(path))
    if config is None:
        json_path = config_path_for(path)
        if json_path.is_file():
            config = _read_config_json(json_path)
            if backbone is not None and get_backbone_spec(backbone).name != config.backbone:
                raise InputError(
                    f"backbone={backbone!r} contradicts {json_path} (backbone {config.backbone!r}); drop one of them"
                )
        else:
            name = backbone if backbone is not None else _infer_backbone(path)
            if name is None:
                raise InputError(
                    f"{path}: cannot tell the backbone (no {json_path.name} beside it and not an official file name); "
                    "pass backbone=NAME"
                )
            config = HacoConfig(backbone=get_backbone_spec(name).name)
    if regressors is None:
        regressors = build_contact_regressors(config.hand, tip_vertex_ids=config.tip_vertex_ids)  # type: ignore[arg-type]
    if strict:
        with torch.device("meta"):  # no random initialisation of weights that are overwritten anyway
            model = build_haco_from_config(config, regressors)
        _check_keys(model, state, str(path), config.backbone)
        model.load_state_dict(state, strict=True, assign=True)
        for name, matrix in (
            ("regressor_336", regressors.vertex_336),
            ("regressor_84", regressors.vertex_84),
            ("regressor_joint", regressors.joint),
        ):
            setattr(model, name, torch.tensor(np.asarray(matrix, dtype=np.float32)))
        still_meta = [name for name, tensor in model.state_dict(keep_vars=True).items() if tensor.is_meta]
        still_meta += [name for name, tensor in model.named_buffers() if tensor.is_meta]
        if still_meta:
            raise HacoGraspError(f"{path}: internal error, tensors left uninitialised after loading: {still_meta}")
    else:
        model = build_haco_from_config(config, regressors)
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise InputError(f"{path}: tensor shapes differ from HACO(backbone={config.backbone!r}): {exc}") from exc
    model.config = config
    return model.to(device).eval()


def save_haco_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    config: HacoConfig | None = None,
    epoch: int = 0,
    global_step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> Path:
    """Write the official container (``epoch``, ``global_step``, ``state_dict``, ``optimizer``, ``scheduler``) and
    the :class:`HacoConfig` as ``<path>.json`` beside it. Both are written to temporary files and then moved.

    ``config`` defaults to ``model.config`` (set by :func:`build_haco` / :func:`load_haco`).

    Returns:
        the checkpoint path.
    """
    config = config if config is not None else getattr(model, "config", None)
    if not isinstance(config, HacoConfig):
        raise InputError("save_haco_checkpoint needs a HacoConfig: pass config=... or build the model with build_haco")
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "epoch": int(epoch),
        "global_step": int(global_step),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
    }
    with atomic_open(target) as stream:
        torch.save(payload, stream)
    atomic_write_bytes(config_path_for(target), (json.dumps(config.to_dict(), indent=2) + "\n").encode())
    return target


def load_hamer_backbone(model: HACO, hamer_ckpt: str | os.PathLike, weights_only: bool = True) -> HACO:
    """Initialise ``model.backbone`` from the ``backbone.*`` keys of HaMeR's ``hamer.ckpt`` (as the official
    HACO does before training); any file with those keys works, HACO checkpoints included.

    ``hamer.ckpt`` is a PyTorch Lightning checkpoint whose extra entries may need ``weights_only=False``; pass it
    only for a file you trust.

    Raises:
        InputError: the model's backbone is not hamer-shaped, or keys are missing/unexpected.
    """
    state = extract_state_dict(read_checkpoint(hamer_ckpt, weights_only=weights_only), str(hamer_ckpt))
    backbone_state = {key[len("backbone.") :]: value for key, value in state.items() if key.startswith("backbone.")}
    if not backbone_state:
        raise InputError(f"{hamer_ckpt}: no 'backbone.*' keys; expected HaMeR's hamer.ckpt or a HACO hamer checkpoint")
    expected = model.backbone.state_dict()
    missing = sorted(set(expected) - set(backbone_state))
    unexpected = sorted(set(backbone_state) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"{hamer_ckpt}: backbone keys do not match the model's backbone: missing {_listing(missing)}, "
            f"unexpected {_listing(unexpected)}; build the model with backbone='hamer'"
        )
    try:
        model.backbone.load_state_dict(backbone_state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{hamer_ckpt}: backbone tensor shapes differ: {exc}") from exc
    return model
