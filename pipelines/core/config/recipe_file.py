"""Reading a recipe file: YAML (a key given twice is an error), `--set key.path=value`
overrides, local paths resolved against the recipe's folder, then validation into `Recipe`.

Relative local paths in a recipe file resolve against the recipe's folder, so a recipe runs from
any working directory; paths given with `--set` resolve against the current directory.
"""

import os
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.config.recipe import Recipe
from pipelines.core.errors import ConfigError, shown
from pipelines.core.schema import all_key_paths, build, suggest
from pipelines.core.user_files import kind_of, local_path
from pipelines.core.yaml_limits import BoundedComposer
from pipelines.core.yaml_limits import safe_load as bounded_safe_load

# Keys whose string value may be a local path (else a hub id).
PATH_KEYS = (
    "data.source",
    "teacher.model",
    "teacher.tokenizer",
    "student.model",
    "distill.unlabelled",
)


def _looks_local(value: str, base: Path) -> bool:
    return value.startswith(("/", "./", "../", "~")) or os.path.lexists(base / value)


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    transfer = raw.get("transfer")
    if isinstance(transfer, dict) and isinstance(transfer.get("sources"), list):
        for source in transfer["sources"]:  # each source task's data.source, like data.source
            if isinstance(source, dict) and isinstance(source.get("data"), dict):
                _resolve_paths({"data": source["data"]}, base)
    for key in PATH_KEYS:
        section, leaf = key.split(".")
        node = raw.get(section)
        if isinstance(node, dict) and isinstance(node.get(leaf), str):
            value = node[leaf]
            if not value.startswith("synthetic:") and _looks_local(value, base):
                node[leaf] = str(local_path(base / Path(value).expanduser(), key))


def parse_override(item: str) -> tuple[list[str], Any]:
    """`teacher.epochs=2` → (['teacher', 'epochs'], 2); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {shown(item)}: expected key.path=value, e.g. teacher.epochs=2.")
    key, _, text = item.partition("=")
    key = key.strip()
    try:
        value = bounded_safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {shown(text)} ({exc}).") from None
    parts = key.split(".")
    valid = all_key_paths(Recipe)
    prefixes = {".".join(p.split(".")[:i]) for p in valid for i in range(1, p.count(".") + 2)}
    dict_parents = ("distill.weights", "distill.weight_schedules")
    if key not in prefixes and not key.startswith(tuple(p + "." for p in dict_parents)):
        raise ConfigError(f"--set {key}: unknown key.{suggest(key, valid)} See `distillery keys`.")
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str], cwd: Path) -> dict[str, Any]:
    for item in overrides:
        parts, value = parse_override(item)
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
        sub = {parts[0]: {parts[1]: value}} if len(parts) == 2 else {}
        if sub:
            _resolve_paths(sub, cwd)
            if isinstance(value, str):
                node[parts[-1]] = sub[parts[0]][parts[1]]
    return raw


class UniqueKeyLoader(BoundedComposer, yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that appears twice in one mapping (PyYAML keeps the
    last silently, so `epochs: 3` ... `epochs: 1` would train one epoch without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first on line {seen[key]}); "
                    "keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override, resolve and validate a recipe file."""
    path = Path(path)
    if not path.is_file():
        what = "no such file" if kind_of(path) == "missing" else f"a {kind_of(path)}, not a file"
        raise ConfigError(
            f"recipe {path}: {what}. Recipes live in recipes/, e.g. recipes/demo.yaml."
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"recipe {path}: line {line} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
            "save the recipe as UTF-8."
        ) from None
    try:
        raw = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {path}: expected a mapping of keys at the top level.")
    _resolve_paths(raw, path.parent.resolve())
    apply_overrides(raw, overrides or [], Path.cwd())
    try:
        return build(Recipe, raw)
    except ConfigError as exc:
        raise ConfigError(f"recipe {path}: {exc}") from None
