"""A bundle's SHA256SUMS: written last by the bundle stage, checked first by verify and push.

A bundle is regular files inside its folder, each listed with its sha256 in `sha256sum` format
(so `sha256sum -c SHA256SUMS` checks it too). Reading the list refuses a name outside the folder
(an absolute path, `..`); checking it refuses a symlink (it could point out of the bundle), a
special file, a missing, altered or unlisted file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from pipelines.core.errors import DistilleryError, file_error_message, shown
from pipelines.core.runs import atomic_write_text, sha256_file
from pipelines.core.user_files import kind_of

SUMS = "SHA256SUMS"
RUN_RECORDS = ("manifest.json", "log.txt")  # the pipeline's records of the stage, not bundle files
REBUILD = "Restore the bundle from its source, or rebuild it (distillery bundle RECIPE --force)."


class BundleError(DistilleryError):
    """A bundle is incomplete, altered, or its predict.py disagrees with its reference."""


# ---------------------------------------------------------------- checksums


def bundle_files(folder: Path) -> list[str]:
    """Every entry of the bundle (posix paths relative to it), SHA256SUMS and run records aside.
    Symlinks and special files are listed, not followed: they are refused by `check_sha256sums`."""
    found = []
    for root, dirs, files in os.walk(folder):  # does not descend into symlinked folders
        base = Path(root)
        for name in files + [d for d in dirs if (base / d).is_symlink()]:
            rel = (base / name).relative_to(folder).as_posix()
            if rel not in (SUMS, *RUN_RECORDS):
                found.append(rel)
    return sorted(found)


def write_sha256sums(folder: Path) -> dict[str, str]:
    """Write SHA256SUMS in `sha256sum` format ("<hex>  <name>"), so `sha256sum -c` checks it too."""
    sums = {name: sha256_file(folder / name) for name in bundle_files(folder)}
    atomic_write_text(folder / SUMS, "".join(f"{h}  {name}\n" for name, h in sums.items()))
    return sums


def read_sha256sums(folder: Path) -> dict[str, str]:
    """{name: sha256} of SHA256SUMS; BundleError for a line that is not '<sha256>  <file>' or
    names a file outside the folder (an absolute path, `..`)."""
    path = folder / SUMS
    if kind_of(path) != "file":
        raise BundleError(
            f"{path}: missing (or not a regular file), so nothing in {folder} can be checked. "
            "Rebuild the bundle (distillery bundle RECIPE --force)."
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path}: {file_error_message(exc)}; {REBUILD}") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep:  # `sha256sum -b` writes "<hex> *<name>"
            digest, sep, name = line.partition(" *")
        if not sep or not re.fullmatch(r"[0-9a-fA-F]{64}", digest) or not name:
            raise BundleError(f"{path}: line {number} is not '<sha256>  <file>': {line[:80]!r}")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or ".." in parts or "\0" in name:
            raise BundleError(
                f"{path}: line {number} names {shown(name, 80)}, outside the bundle folder; "
                f"every entry must be a path inside it. {REBUILD}"
            )
        if name in sums:
            raise BundleError(f"{path}: line {number} lists {name!r} a second time. {REBUILD}")
        sums[name] = digest.lower()
    return sums


def _not_regular(folder: Path, name: str) -> str | None:
    """Why `folder/name` is not a regular file inside the folder, or None. Each component is
    looked at without following links: a symlink could point out of the bundle."""
    path = folder
    for part in PurePosixPath(name).parts:
        path = path / part
        if path.is_symlink():
            return f"{path}: a symbolic link; a bundle holds regular files only"
    kind = kind_of(path)
    if kind == "missing":
        return f"{path}: listed in {SUMS} but missing"
    return None if kind == "file" else f"{path}: a {kind}, not a regular file"


def check_sha256sums(folder: Path) -> list[str]:
    """The files checked; BundleError naming every missing, altered, unlisted, linked or special
    file (a bundle is regular files inside its folder, each listed with its sha256)."""
    sums = read_sha256sums(folder)
    problems = []
    for name, expected in sums.items():
        why = _not_regular(folder, name)
        if why:
            problems.append(why)
        elif sha256_file(folder / name) != expected:
            problems.append(
                f"{folder / name}: altered after the bundle was built (sha256 differs from {SUMS})"
            )
    # A stray file matters: a numpy.py beside predict.py would be imported ahead of numpy.
    for name in bundle_files(folder):
        if name not in sums:
            link = " (a symbolic link)" if (folder / name).is_symlink() else ""
            problems.append(f"{folder / name}: not listed in {SUMS}{link}")
    if problems:
        raise BundleError(
            "; ".join(problems) + ". Restore the bundle from its source, or rebuild it with "
            "`distillery bundle RECIPE --force`."
        )
    return list(sums)
