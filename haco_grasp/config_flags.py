"""Configs on the command line: ``--config FILE`` (YAML or JSON) and a ``--<prefix>.<field>`` flag per dataclass field.

One mechanism for every command that runs the optimizer (``refine``, ``demo``): the flags are generated from the
fields of :class:`~haco_grasp.optimize.OptimizeConfig` (``--opt.lr 0.1``, ``--opt.n-iter 50``), their help from the
field docs of its docstring, their defaults shown per preset. Values apply on top of ``--preset`` in this order: the
preset, then ``--config FILE``, then the ``--opt.*`` flags. Unknown keys are one-line errors naming the key, the
closest field and every known one.

This module imports only the standard library; the config class is imported when a parser or an override needs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from haco_grasp.errors import InputError

__all__ = [
    "OPT_PREFIX",
    "add_config_flags",
    "add_optimizer_flags",
    "apply_optimizer_overrides",
    "apply_overrides",
    "explain_unknown_flags",
    "field_docs",
    "optimizer_overrides",
    "overrides_from_args",
    "read_config_file",
]

#: Prefix of the optimizer's flags: ``--opt.<field>`` with ``-`` for ``_``.
OPT_PREFIX = "opt"
#: Keys under which a saved run config holds the optimizer settings (``refine``'s ``<out>.config.json``: the
#: resolved ``optimize_config``; the demo's ``config.json``: ``optimizer``), so that file can be passed back.
SAVED_CONFIG_KEYS = ("optimize_config", "optimizer")
#: ``--config`` is parsed into this attribute.
CONFIG_FILE_DEST = "config_file"

# one field name, optionally with a parenthesised unit: "restart_trans_sigma (metres)"
_NAME = r"[a-z_][a-z0-9_]*(?:\s*\([^()]*\))?"
_NAMES = rf"{_NAME}(?:\s*[,/]\s*{_NAME})*"


# ----------------------------------------------------------------------------------------------- field docs
def field_docs(cls: type) -> dict[str, str]:
    """``field name -> text`` from a config class docstring.

    Definitions are ``name: text`` (also ``a, b: text`` and ``a / b: text``, several per line or per continued
    definition after ``.`` or ``;``), continued on more indented lines; a unit after a name (``sigma (metres), b:
    text``) is appended to that name's text. reStructuredText roles and backquotes are removed, and "as named" becomes
    the field's name.
    """
    entries: list[str] = []
    indent = -1
    for line in (cls.__doc__ or "").splitlines():
        match = re.match(rf"^(\s*)({_NAMES})\s*:\s+(.*)$", line)
        if match:
            indent = len(match.group(1))
            entries.append(line.strip())
        elif entries and indent >= 0 and line.strip() and len(line) - len(line.lstrip()) > indent:
            entries[-1] += " " + line.strip()
        else:
            indent = -1
    docs: dict[str, str] = {}
    for entry in entries:
        for part in re.split(rf"(?<=[.;])\s+(?={_NAMES}\s*:\s)", entry):
            definition = re.match(rf"({_NAMES})\s*:\s+(.*)$", part)
            if not definition:
                continue
            text = definition.group(2).strip()
            for raw in re.split(r"\s*[,/]\s*(?![^()]*\))", definition.group(1)):
                named = re.match(r"([a-z_][a-z0-9_]*)\s*(?:\(([^()]*)\))?", raw.strip())
                if named:
                    unit = named.group(2)
                    docs[named.group(1)] = f"{text.rstrip('.; ')}; {unit}" if unit else text
    for name, text in docs.items():  # "batch_size, epochs: as named (...)" -> "batch size (...)"
        if text.startswith("as named"):
            docs[name] = name.replace("_", " ") + text[len("as named") :]
    return {k: re.sub(r":\w+:`~?([^`]*)`", r"\1", v).replace("``", "").rstrip(".; ") for k, v in docs.items()}


def _doc_of(name: str, docs: Mapping[str, str]) -> str:
    """The field's own doc, else the first definition that mentions it ("see early_stop_patience: ..."), else its
    name."""
    if name in docs:
        return docs[name]
    for other, text in docs.items():
        if re.search(rf"\b{re.escape(name)}\b", text):
            return f"see {other}: {text}"
    return name.replace("_", " ")


# ----------------------------------------------------------------------------------------------- value types
def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _with_none(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


class _FieldType(typing.NamedTuple):
    """How one dataclass field is read from text and checked when it comes typed (from YAML / JSON)."""

    parse: Callable[[str], Any]
    metavar: str
    choices: tuple[str, ...] | None
    accepts: Callable[[Any], bool]


def _field_type(annotation: Any) -> _FieldType:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    optional = False
    if origin in (typing.Union, types.UnionType):
        optional = type(None) in args
        members = [a for a in args if a is not type(None)]
        annotation = members[0] if len(members) == 1 else str  # e.g. str | NoiseProfile: given as text
        args, origin = typing.get_args(annotation), typing.get_origin(annotation)
    if origin is typing.Literal:
        choices = tuple(str(a) for a in args)
        kind = _FieldType(str, "{" + ",".join(choices) + "}", choices, lambda v: v in choices)
    elif annotation is bool:
        kind = _FieldType(_parse_bool, "{true,false}", None, lambda v: isinstance(v, bool))
    elif annotation is int:
        kind = _FieldType(int, "N", None, lambda v: isinstance(v, int) and not isinstance(v, bool))
    elif annotation is float:
        kind = _FieldType(float, "X", None, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
    else:
        kind = _FieldType(str, "TEXT", None, lambda v: isinstance(v, str))
    if optional:
        accepts = kind.accepts
        kind = kind._replace(parse=_with_none(kind.parse), metavar=f"{kind.metavar}|none",
                             accepts=lambda v: v is None or accepts(v))  # fmt: skip
    return kind


def _field_types(cls: type) -> dict[str, _FieldType]:
    hints = typing.get_type_hints(cls)
    return {item.name: _field_type(hints[item.name]) for item in dataclasses.fields(cls)}


# ----------------------------------------------------------------------------------------------- flags
def _flag(prefix: str, name: str) -> str:
    return f"--{prefix}.{name.replace('_', '-')}"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value).replace("%", "%%")


def _defaults_text(name: str, presets: Mapping[str, Any]) -> str:
    values = {preset: _shown(getattr(config, name)) for preset, config in presets.items()}
    if len(set(values.values())) == 1:
        return f"(default: {next(iter(values.values()))} in every preset)"
    return "(default: the preset's: " + ", ".join(f"{preset} {value}" for preset, value in values.items()) + ")"


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    presets: Mapping[str, Any],
    prefix: str,
    exclude: Sequence[str] = (),
    title: str | None = None,
) -> None:
    """Add ``--config FILE`` and one ``--<prefix>.<field>`` flag per field of the dataclass ``cls`` to ``parser``.

    Flags default to "not given" (absent from the parsed namespace); :func:`overrides_from_args` collects the given
    ones. Help texts come from the field docs of ``cls`` (:func:`field_docs`), the defaults shown from ``presets``.

    Args:
        parser: the command's parser.
        cls: a dataclass whose fields are the settings.
        presets: preset name -> instance of ``cls`` (their values are the defaults shown in the help).
        prefix: flag prefix (``opt`` gives ``--opt.n-iter``).
        exclude: fields without a flag (set by a command flag of their own); a config file may still set them.
        title: the help section's title.
    """
    docs = field_docs(cls)
    group = parser.add_argument_group(
        title or f"{cls.__name__} (on top of --preset: first --config FILE, then --{prefix}.* flags)"
    )
    group.add_argument(
        "--config",
        dest=CONFIG_FILE_DEST,
        metavar="FILE",
        default=None,
        help=f"YAML or JSON file of {cls.__name__} fields (e.g. 'lr: 0.1'), applied on top of --preset; a saved "
        f"run config ({' or '.join(SAVED_CONFIG_KEYS)} inside) works too (default: none)",
    )
    kinds = _field_types(cls)
    for item in dataclasses.fields(cls):
        if item.name in exclude:
            continue
        kind = kinds[item.name]
        help_text = _doc_of(item.name, docs).replace("%", "%%") + " " + _defaults_text(item.name, presets)
        group.add_argument(_flag(prefix, item.name), dest=f"{prefix}.{item.name}", type=kind.parse,
                           choices=kind.choices, metavar=kind.metavar, default=argparse.SUPPRESS,
                           help=help_text)  # fmt: skip


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a YAML or JSON file: a mapping of field names, or a saved run config holding one under a key
    of :data:`SAVED_CONFIG_KEYS`.

    Raises:
        InputError: the file is missing, unreadable or not a mapping.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"--config {path}: file not found; pass a YAML or JSON file of optimizer settings")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise InputError(f"--config {path}: not valid JSON ({exc})") from None
    else:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"--config {path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"--config {path}: expected a mapping of settings (e.g. 'lr: 0.1'), got {type(raw).__name__}")
    for key in SAVED_CONFIG_KEYS:
        if isinstance(raw.get(key), dict):
            return dict(raw[key])
    return raw


def _unknown(key: str, known: Sequence[str], where: str, spell: Callable[[str], str]) -> InputError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"did you mean {spell(close[0])}? " if close else ""
    return InputError(f"{where}: unknown setting {spell(key)}; {hint}known: {', '.join(spell(k) for k in known)}")


def apply_overrides(config: Any, overrides: Mapping[str, Any], where: str = "config") -> Any:
    """A copy of the dataclass ``config`` with ``overrides`` (field name -> value; ``-`` may spell ``_``) applied.

    Text values are parsed as the field's type (``"0.1"``, ``"true"``, ``"none"``); typed values are checked.

    Raises:
        InputError: an unknown key (naming the closest field and every known one) or a value of the wrong type.
    """
    kinds = _field_types(type(config))
    known = list(kinds)
    changes: dict[str, Any] = {}
    for raw_key, value in overrides.items():
        key = str(raw_key).replace("-", "_")
        if key not in kinds:
            raise _unknown(key, known, where, lambda k: repr(k))
        kind = kinds[key]
        if isinstance(value, str) and kind.parse is not str:
            try:
                value = kind.parse(value)
            except ValueError as exc:
                raise InputError(f"{where}: {key}: {exc}") from None
        if not kind.accepts(value):
            expected = f"one of {', '.join(kind.choices)}" if kind.choices else kind.metavar
            raise InputError(f"{where}: {key}: expected {expected}, got {value!r}")
        changes[key] = float(value) if kind.metavar.startswith("X") and isinstance(value, int) else value
    if not changes:
        return config
    return dataclasses.replace(config, **changes)


def overrides_from_args(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """Field name -> value from ``--config FILE`` and then the given ``--<prefix>.*`` flags (the flags win)."""
    values = vars(args)
    overrides: dict[str, Any] = {}
    if values.get(CONFIG_FILE_DEST):
        overrides.update(read_config_file(values[CONFIG_FILE_DEST]))
    for dest, value in values.items():
        if dest.startswith(prefix + "."):
            overrides[dest[len(prefix) + 1 :]] = value
    return overrides


def explain_unknown_flags(message: str, prefix: str = OPT_PREFIX) -> str:
    """argparse's "unrecognized arguments" message, with the closest ``--<prefix>.*`` flag for each unknown one."""
    unknown = re.findall(rf"--{re.escape(prefix)}\.[\w-]+", message)
    if "unrecognized arguments" not in message or not unknown:
        return message
    from haco_grasp.optimize.config import OptimizeConfig

    known = [f.name.replace("_", "-") for f in dataclasses.fields(OptimizeConfig)]
    hints = []
    for flag in unknown:
        name = flag[len(prefix) + 3 :]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hints.append(f"{flag}: no such optimizer setting" + (f", did you mean --{prefix}.{close[0]}?" if close else ""))
    return f"{message} ({'; '.join(hints)}; known: {', '.join(known)})"


# ----------------------------------------------------------------------------------------------- the optimizer
def add_optimizer_flags(parser: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """Add ``--config FILE`` and the ``--opt.*`` flags of :class:`~haco_grasp.optimize.OptimizeConfig` to a command
    that runs the optimizer (imports the optimizer's config, hence torch)."""
    from haco_grasp.optimize.config import PRESETS, OptimizeConfig, preset_names

    presets = {name: PRESETS[name] for name in preset_names()}  # the default preset first
    add_config_flags(parser, OptimizeConfig, presets, OPT_PREFIX, exclude=exclude,
                     title="optimizer settings, on top of --preset (first --config FILE, then --opt.* flags; the "
                     "resolved settings are saved beside the outputs)")  # fmt: skip


def optimizer_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The optimizer settings given on the command line (``--config FILE``, then ``--opt.*``); {} if none."""
    return overrides_from_args(args, OPT_PREFIX)


def apply_optimizer_overrides(config: Any, overrides: Mapping[str, Any] | None, where: str = "--config/--opt") -> Any:
    """``config`` (an OptimizeConfig) with the command line's settings applied and validated."""
    if not overrides:
        return config
    return apply_overrides(config, overrides, where)  # dataclasses.replace runs OptimizeConfig's checks
