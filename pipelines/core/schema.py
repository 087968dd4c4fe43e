"""The recipe schema's machinery: pydantic v2 models that speak in recipe key paths.

Sections subclass `Section` (a pydantic model: unknown keys forbidden, integers and booleans
strict, so `2.5` is not an int and `"yes"` not a bool). Fields are declared with `f(default,
help=..., min=..., max=...)`: `help` is the line `distillery keys` shows, `min`/`max` are
inclusive bounds that apply to a number or to every element of a list or mapping of numbers.
Cross-field rules live in each section's `check` (a pydantic after-validator) and raise
`ConfigError` with a complete message.

`build(cls, raw)` validates a plain dict (YAML) and turns pydantic's `ValidationError` into one
`ConfigError` whose lines name the full key path (`teacher.epochs`), the value and the fix (the
valid keys with a "did you mean", the allowed values, the range). Those messages are the
project's interface and its tests pin them, so the translation (`_message`) is written here
rather than shown in pydantic's own wording.

Why one module: the types (`Int`, `Float`, ...), the field helper, the section base and the
error translation are one idea, "pydantic that speaks in recipe key paths"; the translation
walks the same annotations the types define.
"""

from __future__ import annotations

import copy
import difflib
import math
import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)
from pydantic import field_validator as field_validator  # re-exported for the sections
from pydantic import model_validator as model_validator
from pydantic_core import PydanticUndefined

from pipelines.core.errors import ConfigError, shown


def _number(value: Any) -> Any:
    """Numbers stay, numeric strings become floats (PyYAML reads `1e-4` as a string: YAML 1.1
    wants a dot), booleans and anything else are refused."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {shown(value)}.")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {shown(value)}.") from None
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{shown(value)} is not a finite number; give a real value.")
    return value


Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Float = Annotated[float, BeforeValidator(_number), AfterValidator(_finite)]


def checks(rule: typing.Callable[[Any], None]) -> Any:
    """Mark a section's cross-field rule: it runs after the fields validated and raises
    ConfigError with a complete message (key path, value, fix)."""

    def run(self):
        rule(self)
        return self

    run.__name__ = rule.__name__
    return model_validator(mode="after")(run)


def names(*values: str) -> Any:
    """`Literal[values]`: the allowed names of a registry, read from the registry itself."""
    return Literal.__getitem__(tuple(values))


class Section(BaseModel):
    """A recipe section: unknown keys are errors, bounds from `f(min=, max=)` are checked."""

    model_config = ConfigDict(
        extra="forbid", validate_default=False, use_attribute_docstrings=False
    )

    @model_validator(mode="after")
    def _bounds(self):
        for name, info in type(self).model_fields.items():
            meta = info.json_schema_extra or {}
            if isinstance(meta, dict) and ("min" in meta or "max" in meta):
                _check_bounds(getattr(self, name), meta.get("min"), meta.get("max"), name)
            if isinstance(meta, dict) and meta.get("nonempty") and getattr(self, name) == []:
                raise _FieldError(
                    name, "is empty; give at least one value, or leave the key out for its default."
                )
        return self


def _check_bounds(value: Any, lo: Any, hi: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        items = [(f"{name}.{k}", v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(f"{name}[{i}]", v) for i, v in enumerate(value)]
    else:
        items = [(name, value)]
    for where, v in items:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            lo_s = "-inf" if lo is None else lo
            hi_s = "inf" if hi is None else hi
            raise _FieldError(
                where, f"{shown(v)} is out of range; allowed values: [{lo_s}, {hi_s}]."
            )


class _FieldError(ValueError):
    """A bound broken by field `name` of the section being validated (path added by `build`)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


# How a key enters the hash of the stages that read its section (pipelines/run/hashing.py):
# always (no marker); "when_set": only when set away from its default, for a key added after runs
# existed (a run made before it did what the default does, so it stays done); "never": the key
# changes how a run is shown, logged or scheduled, not what it computes; "whole" (a section):
# every key of it hashed as written, its keys' own markers not applied.
HASH_POLICIES = ("when_set", "never", "whole")


def f(
    default: Any = PydanticUndefined,
    *,
    help: str = "",  # noqa: A002
    hash: str | None = None,  # noqa: A002
    **bounds: Any,
) -> Any:
    """A field with a help line, optional `min`/`max` (for a list: of each value),
    `nonempty=True` (a list: at least one value) and an optional hash policy (`HASH_POLICIES`);
    mutable defaults become factories, a Section class as default means "that section with its
    defaults"."""
    extra = {k: v for k, v in bounds.items() if k in ("min", "max", "nonempty")}
    unknown = set(bounds) - {"min", "max", "nonempty"}
    if unknown:
        raise TypeError(f"f(): unknown options {sorted(unknown)}")  # a schema bug, not user input
    if hash is not None:
        if hash not in HASH_POLICIES:
            raise TypeError(f"f(): hash={hash!r}; allowed: {', '.join(HASH_POLICIES)}")
        extra["hash"] = hash
    kwargs: dict[str, Any] = {"description": help, "json_schema_extra": extra or None}
    if isinstance(default, type) and issubclass(default, BaseModel):
        return Field(default_factory=default, **kwargs)
    if isinstance(default, (list, dict)):
        value = default
        return Field(default_factory=lambda: copy.deepcopy(value), **kwargs)
    return Field(default, **kwargs)


# ---------------------------------------------------------------- build and messages


def build(cls: type[BaseModel], raw: Any, path: str = "") -> Any:
    """Validate `raw` (a dict from YAML) into `cls`; ConfigError naming every bad key path."""
    where = path or "the recipe"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {shown(raw)}.")
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        lines = list(dict.fromkeys(_messages(cls, exc, path)))
        raise ConfigError("\n".join(lines)) from None


def _messages(cls: type[BaseModel], exc: ValidationError, prefix: str) -> list[str]:
    union_seen: set[tuple] = set()
    out = []
    for error in exc.errors(include_url=False):
        steps = _walk(cls, error["loc"])
        field_loc = tuple(s.key for s in steps if not s.union_tag)
        key_path = _join(prefix, ".".join(_key(k) for k in field_loc))
        if any(s.union_tag for s in steps):  # one message per union field, not one per member
            union_field = next(s for s in steps if s.union_tag).field_loc
            if union_field in union_seen:
                continue
            union_seen.add(union_field)
            out.append(_union_message(cls, exc, union_field, _join(prefix, _dotted(union_field))))
            continue
        out.append(_message(cls, error, steps, key_path))
    return out


def _message(cls: type[BaseModel], error: dict, steps: list[_Step], key_path: str) -> str:
    kind, value = error["type"], error.get("input")
    annotation = steps[-1].annotation if steps else None
    if kind == "value_error":
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):
            return str(cause)  # a section's own check: the message is complete
        if isinstance(cause, _FieldError):
            return f"{_join(key_path, cause.name)}: {cause}"
        return f"{key_path}: {cause if cause is not None else error['msg']}"
    if kind == "extra_forbidden":
        owner = steps[-2].model if len(steps) > 1 else cls
        valid = sorted(owner.model_fields) if owner else []
        parent = key_path.rpartition(".")[0]
        return (
            f"{key_path}: unknown key.{suggest(str(error['loc'][-1]), valid, parent)} "
            f"Valid keys under {parent or 'the recipe'}: {', '.join(valid)}."
        )
    if kind == "missing":
        return f"{key_path}: missing required key ({type_name(annotation)})."
    if kind == "literal_error":
        return f"{key_path}: {shown(value)} is not allowed. Allowed values: {_literal_values(annotation)}."
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key_path or 'the recipe'}: expected a mapping of keys, got {shown(value)}."
    return f"{key_path}: expected {type_name(annotation)}, got {shown(value)}."


def _union_message(cls, exc: ValidationError, field_loc: tuple, key_path: str) -> str:
    annotation = _walk(cls, field_loc)[-1].annotation
    value = _value_at(exc, field_loc)
    hint = ""
    for option in get_args(_unwrap(annotation)):
        if get_origin(_unwrap(option)) is Literal and isinstance(value, str):
            hint = f" ({shown(value)} is not allowed. Allowed values: {_literal_values(option)}.)"
    return f"{key_path}: expected {type_name(annotation)}, got {shown(value)}.{hint}"


def _value_at(exc: ValidationError, field_loc: tuple) -> Any:
    for error in exc.errors(include_url=False):
        if tuple(error["loc"][: len(field_loc)]) == field_loc and len(error["loc"]) > len(
            field_loc
        ):
            return error.get("input")
    return None


class _Step(typing.NamedTuple):
    key: Any  # the loc element (field name, list index, dict key, or union member tag)
    annotation: Any  # the type at this step
    model: type[BaseModel] | None  # the section class at this step, if any
    union_tag: bool
    field_loc: tuple


def _walk(cls: type[BaseModel], loc: tuple) -> list[_Step]:
    """Follow a pydantic error location through the model's annotations."""
    steps: list[_Step] = []
    annotation: Any = cls
    done: list[Any] = []
    for key in loc:
        plain = _unwrap(annotation)
        origin = get_origin(plain)
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(plain) if a is not type(None)]
            if len(members) == 1:  # Optional[T]: pydantic's locations go straight into T
                plain = _unwrap(members[0])
                origin = get_origin(plain)
        if isinstance(plain, type) and issubclass(plain, BaseModel) and key in plain.model_fields:
            annotation = plain.model_fields[key].annotation
            done.append(key)
            steps.append(_Step(key, annotation, _model(annotation), False, tuple(done)))
        elif origin in (Union, types.UnionType) and isinstance(key, str):
            steps.append(_Step(key, annotation, None, True, tuple(done)))
            member = next(
                (a for a in get_args(plain) if _tag(a) == key),
                next(a for a in get_args(plain) if a is not type(None)),
            )
            annotation = member
        elif origin is list:
            annotation = get_args(plain)[0]
            done.append(key)
            steps.append(_Step(key, annotation, _model(annotation), False, tuple(done)))
        elif origin is dict:
            annotation = get_args(plain)[1]
            done.append(key)
            steps.append(_Step(key, annotation, _model(annotation), False, tuple(done)))
        else:
            done.append(key)
            steps.append(_Step(key, None, None, False, tuple(done)))
    return steps


def _tag(annotation: Any) -> str:
    plain = _unwrap(annotation)
    if get_origin(plain) is Literal:
        return "literal[" + ",".join(repr(a) for a in get_args(plain)) + "]"
    if get_origin(plain) is list:
        return f"list[{_tag(get_args(plain)[0])}]"
    return getattr(plain, "__name__", str(plain))


def _model(annotation: Any) -> type[BaseModel] | None:
    plain = _unwrap(annotation)
    return plain if isinstance(plain, type) and issubclass(plain, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Annotated[T, ...] → T; Optional[T] stays a Union."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _key(key: Any) -> str:
    return f"[{key}]" if isinstance(key, int) else str(key)


def _dotted(loc: tuple) -> str:
    return ".".join(_key(k) for k in loc).replace(".[", "[")


def _join(path: str, key: str) -> str:
    key = key.replace(".[", "[")
    if not path:
        return key
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}" if key else path


def _literal_values(annotation: Any) -> str:
    plain = _unwrap(annotation)
    if get_origin(plain) in (Union, types.UnionType):
        plain = next(a for a in map(_unwrap, get_args(plain)) if get_origin(a) is Literal)
    return ", ".join(map(str, get_args(plain)))


def suggest(name: str, candidates: list[str], prefix: str = "") -> str:
    """' Did you mean 'prefix.x'?' for the closest candidate, or ''."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" Did you mean '{_join(prefix, close[0])}'?" if close else ""


def type_name(annotation: Any) -> str:
    """How a type reads in messages and in `distillery keys`."""
    tp = _unwrap(annotation)
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {type_name(get_args(tp)[0])}"
    if origin is dict or (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return "a mapping"
    if tp is type(None):
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


# ---------------------------------------------------------------- plain data and key listings


def to_dict(obj: BaseModel) -> dict[str, Any]:
    """Section tree → plain JSON-able data (the inverse of `build`)."""
    return obj.model_dump(mode="python")


def key_paths(cls: type[BaseModel], prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every leaf key: (path, type description, default, help), for docs and `distillery keys`."""
    rows = []
    for name, info in cls.model_fields.items():
        path = _join(prefix, name)
        nested = _model(info.annotation)
        if nested is not None:
            rows.extend(key_paths(nested, path))
            continue
        if info.default is not PydanticUndefined:
            default = info.default
        elif info.default_factory is not None:
            default = info.default_factory()
            default = default.model_dump() if isinstance(default, BaseModel) else default
        else:
            default = "(required)"
        rows.append((path, type_name(info.annotation), default, info.description or ""))
    return rows


def all_key_paths(cls: type[BaseModel]) -> list[str]:
    return [row[0] for row in key_paths(cls)]


def hash_policy(info: Any) -> str | None:
    """A field's hash policy from `f(hash=...)`: None (always hashed), "when_set" or "never"."""
    meta = info.json_schema_extra
    return meta.get("hash") if isinstance(meta, dict) else None


def default_value(info: Any) -> Any:
    """A field's default as plain data (a section default as its dict), as `to_dict` writes it."""
    value = info.get_default(call_default_factory=True)
    return value.model_dump(mode="python") if isinstance(value, BaseModel) else value
