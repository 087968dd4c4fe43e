"""Reading a file the user handed us: only regular files, UTF-8, JSON; every failure one line.

A path from a recipe or a flag may be anything: a FIFO (reading it waits forever for a writer),
a device, a symlink loop, a folder, undecodable bytes, malformed JSON. These helpers check the
kind of file before opening it and turn each failure into a `DistilleryError` naming the file,
what is wrong and what to do; `pipelines.core.errors.file_error_message` is the last resort for
a read that does not go through them.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from pipelines.core.errors import DistilleryError, file_error_message


def kind_of(path: Path) -> str:
    """'file', 'folder', 'missing', 'loop' (a symlink that never ends), or what else it is
    (a FIFO, a socket, a device): decided without opening it, so a FIFO never blocks us."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks: a link to a file is that file
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "loop"
        return "missing" if not os.path.lexists(path) else "unreadable"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def local_path(path: Path, key: str) -> Path:
    """`path` resolved (symlinks followed); a DistilleryError naming `key` for a link that loops
    (pathlib raises RuntimeError for one) or a FIFO, socket or device (reading one blocks or never
    ends): a local source is a regular file or a folder."""
    kind = kind_of(path)
    if kind not in ("file", "folder", "missing"):
        require_file(path, key, allow_folder=True)
    return path.resolve()


def require_file(path: Path, what: str, allow_folder: bool = False) -> str:
    """The kind of `path` ('file' or 'folder'); DistilleryError for anything else."""
    kind = kind_of(Path(path))
    if kind == "file" or (allow_folder and kind == "folder"):
        return kind
    wanted = "a regular file or a folder" if allow_folder else "a regular file"
    if kind == "missing":
        raise DistilleryError(f"{what} {path}: no such file or folder; check the path.")
    if kind == "loop":
        raise DistilleryError(
            f"{what} {path}: a symbolic link that loops (it points, through other links, back at "
            f"itself); point it at {wanted}."
        )
    raise DistilleryError(f"{what} {path}: is a {kind}, not {wanted}; give {wanted}.")


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of a regular file; DistilleryError naming the file (and line) otherwise."""
    require_file(path, what)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DistilleryError(f"{what} {path}: cannot read it ({exc.strerror}).") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DistilleryError(
            f"{what} {path}: line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save the file as UTF-8."
        ) from None


def read_json(path: Path, what: str) -> Any:
    """The JSON value of a regular UTF-8 file; DistilleryError naming the file and line."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DistilleryError(f"{what} {path}: {file_error_message(exc)}.") from None
