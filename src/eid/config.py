"""Configs as dataclasses, presets as YAML data.

A config class is a (possibly nested) dataclass whose defaults are the package default, the ``fast``
preset that the commands use unless told otherwise. A preset is a YAML file ``eid/configs/<kind>/<name>.yaml``
holding the fields that differ from those defaults (``extends: OTHER`` starts from another preset); a user's
``--config FILE`` and explicit overrides are applied on top, in that order. The resolved config is saved next to
every checkpoint, so a run can be rebuilt from its folder (:func:`saved_config`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from eid.errors import EIDError
from eid.utils import atomic_write

T = TypeVar("T")


def preset_names(kind: str) -> list[str]:
    """Names of the presets shipped for ``kind`` (e.g. ``"operator"``, ``"dehazer"``)."""
    folder = resources.files("eid") / "configs" / kind
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping safely (``yaml.safe_load``); empty files give ``{}``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise EIDError(f"{path}: config file not found; check the path") from exc
    except yaml.YAMLError as exc:
        raise EIDError(f"{path}: invalid YAML ({str(exc).splitlines()[0]}); fix the file") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EIDError(f"{path}: a config must be a YAML mapping of field: value")
    return data


def preset_dict(kind: str, name: str) -> dict[str, Any]:
    """The overrides stored in preset ``name`` of ``kind``; ``extends: OTHER`` starts from preset ``OTHER``."""
    if name not in preset_names(kind):
        raise EIDError(
            f"unknown {kind} preset {name!r}; choose one of: {', '.join(preset_names(kind))}"
        )
    with resources.as_file(resources.files("eid") / "configs" / kind / f"{name}.yaml") as path:
        data = read_yaml(path)
    base = data.pop("extends", None)
    return merge_dicts(preset_dict(kind, base), data) if base else data


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain (YAML-serialisable) dict of a dataclass config; tuples become lists."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _nested_dataclass(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def merge_dicts(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge: nested mappings merge key by key, other values replace."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def config_from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build ``cls`` from ``data``; unknown keys raise an error listing the valid ones."""
    types_ = _field_types(cls)
    unknown = set(data) - set(types_)
    removed = getattr(cls, "REMOVED_FIELDS", {})
    if unknown & set(removed):
        name = min(unknown & set(removed))
        raise EIDError(f"{where}: {name} is not a config field any more; {removed[name]}")
    if unknown:
        raise EIDError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; valid fields: {', '.join(types_)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        nested = _nested_dataclass(types_[name])
        if nested is not None and isinstance(value, dict):
            kwargs[name] = config_from_dict(nested, value, where=f"{where}.{name}")
        else:
            kwargs[name] = _typed(value, types_[name], f"{where}.{name}")
    return cls(**kwargs)


def saved_config(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Rebuild ``cls`` from the full config a run saved (``config.yaml``, a checkpoint). A field it lacks was added
    after it was written: it takes ``cls.SAVED_DEFAULTS`` where the default has changed since (the value the run
    was made with), else the dataclass default. A field named in ``cls.REMOVED_FIELDS`` (one that is no longer part
    of the recipe, such as a machine setting) is dropped; a user's config naming one gets an error instead
    (:func:`config_from_dict`)."""
    removed = getattr(cls, "REMOVED_FIELDS", {})
    kept = {k: v for k, v in data.items() if k not in removed}
    return config_from_dict(cls, merge_dicts(getattr(cls, "SAVED_DEFAULTS", {}), kept), where=where)


_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a text"}


def _typed(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the field type ``tp`` (lists become tuples, numeric text such as ``1e-4``,
    which YAML reads as text, becomes a float); a mismatch is one line naming the field and the type wanted.
    ``None`` is always accepted: presets use it to drop a default (``epochs: null`` with a step budget)."""
    if value is None:
        return None
    options = (
        typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    )
    for option in options:
        ok, converted = _convert(value, option)
        if ok:
            return converted
    wanted = " or ".join(_type_name(o) for o in options if o is not type(None))
    raise EIDError(f"{where}: {value!r} is not {wanted}; fix the config")


def _type_name(tp: Any) -> str:
    """How a field type reads in an error message."""
    if _nested_dataclass(tp) is not None:
        return "a mapping of field: value"
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        count = "" if len(args) == 2 and args[1] is Ellipsis else f"{len(args)} "
        return f"a list of {count}values ({_type_name(args[0])} each)"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits type ``tp``, and the value to use."""
    if tp is Any:
        return True, value
    if tp is type(None):
        return value is None, value
    if tp is float and isinstance(value, str):
        try:
            return True, float(value)
        except ValueError:
            return False, value
    if tp in (int, float):
        return isinstance(value, (int, float) if tp is float else int) and not isinstance(
            value, bool
        ), value
    if tp in (bool, str):
        return isinstance(value, tp), value
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(tp)
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            return False, value
        checked = [_convert(v, t) for v, t in zip(value, items)]
        return all(ok for ok, _ in checked), tuple(v for _, v in checked)
    if _nested_dataclass(tp) is not None:
        return False, value  # a section given as something other than a mapping
    return True, value


def load_config(
    cls: type[T],
    kind: str,
    preset: str | None = None,
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> T:
    """Resolve a config: dataclass defaults <- preset <- YAML file <- explicit overrides."""
    data: dict[str, Any] = {}
    if preset:
        data = merge_dicts(data, preset_dict(kind, preset))
    if path:
        data = merge_dicts(data, read_yaml(path))
    if overrides:
        data = merge_dicts(data, {k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(cls, data, where=f"{kind} config")


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write a config (dataclass or dict) as YAML, atomically."""
    data = cfg if isinstance(cfg, dict) else config_to_dict(cfg)
    with atomic_write(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    return Path(path)
