"""Turn plain YAML/JSON data into typed, validated config dataclasses.

Why by hand: the recipe must reject unknown keys with a "did you mean" suggestion, name the full key
path (`teacher.epochs`) and list allowed values, and `--set` overrides must go through exactly the
same checks. pydantic could do most of it but would add a dependency and its own message format that
tests would then have to pin; this module is ~150 lines over `dataclasses` and `typing`.

Field metadata understood by `build`:
  ``min`` / ``max``: inclusive numeric bounds;  ``choices``: allowed values (besides `Literal`);
  ``help``: one line shown by `distillery keys`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pipelines.errors import ConfigError

_MISSING = dataclasses.MISSING


def suggest(name: str, candidates: list[str], prefix: str = "") -> str:
    """' Did you mean 'prefix.x'?' for the closest candidate, or ''."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" Did you mean '{_join(prefix, close[0])}'?" if close else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp)
        return f"a list of {_type_name(inner)}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{path}: {value!r} is not allowed. Allowed values: {', '.join(map(str, allowed))}."
            )
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, path)
            except ConfigError as exc:
                errors.append(str(exc))
        literal_errors = [e for e in errors if "Allowed values" in e]
        hint = f" ({literal_errors[0].split(': ', 1)[1]})" if literal_errors else ""
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}.{hint}")
    if origin is list:
        (inner,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}.")
        return [_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}.")
        return {
            _coerce(k, key_tp, path): _coerce(v, val_tp, _join(path, str(k)))
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string: YAML 1.1's float rule
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}.")
        return value
    if tp is Any:
        return value
    raise TypeError(f"schema: unsupported annotation {tp!r} at {path}")  # a bug, not user input


def _check_bounds(value: Any, meta: typing.Mapping[str, Any], path: str) -> None:
    if value is None:
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            lo_s = "-inf" if lo is None else lo
            hi_s = "inf" if hi is None else hi
            raise ConfigError(f"{path}: {v!r} is out of range; allowed values: [{lo_s}, {hi_s}].")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(
            f"{path}: {value!r} is not allowed. Allowed values: {', '.join(meta['choices'])}."
        )


def build(cls: type, raw: Any, path: str = "") -> Any:
    """Validate `raw` (a dict from YAML) into `cls`, naming the key path in every error."""
    where = path or "the recipe"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {raw!r}.")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in fields:
            valid = sorted(fields)
            raise ConfigError(
                f"{_join(path, str(key))}: unknown key.{suggest(str(key), valid, path)} "
                f"Valid keys under {where}: {', '.join(valid)}."
            )
    kwargs = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name not in raw:
            if field.default is _MISSING and field.default_factory is _MISSING:
                raise ConfigError(f"{key_path}: missing required key ({_type_name(hints[name])}).")
            continue
        value = _coerce(raw[name], hints[name], key_path)
        _check_bounds(value, field.metadata, key_path)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass tree → plain JSON-able data (the inverse of `build`)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def key_paths(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every leaf key: (path, type description, default, help), for docs and `distillery keys`."""
    rows = []
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        path = _join(prefix, field.name)
        if dataclasses.is_dataclass(tp):
            rows.extend(key_paths(tp, path))
            continue
        if field.default is not _MISSING:
            default = field.default
        elif field.default_factory is not _MISSING:
            default = to_dict(field.default_factory())
        else:
            default = "(required)"
        rows.append((path, _type_name(tp), default, field.metadata.get("help", "")))
    return rows


def all_key_paths(cls: type) -> list[str]:
    return [row[0] for row in key_paths(cls)]


def f(default: Any = _MISSING, *, help: str = "", **meta: Any) -> Any:  # noqa: A002
    """A dataclass field with a help line and bounds; mutable defaults become factories."""
    meta["help"] = help
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: _copy(value), metadata=meta)
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        value = default
        return dataclasses.field(default_factory=lambda: dataclasses.replace(value), metadata=meta)
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)
