"""User-facing errors.

Every error a user can cause (bad recipe, bad data, unreachable hub, refused file) is a
`DistilleryError`, or a `modelkit.errors.InputError` raised by a library: the CLI prints its
message and exits 2, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DistilleryError(Exception):
    """An error caused by input the user can fix; the message names the problem and the fix."""


class ConfigError(DistilleryError, ValueError):
    """A recipe key is unknown, missing, of the wrong type or out of range."""


class DataError(DistilleryError, ValueError):
    """The data does not match what the recipe declares."""


class SourceError(DistilleryError):
    """A model or dataset source cannot be found or reached."""


class UnsafeSourceError(DistilleryError):
    """A file or model would run untrusted code (pickle, remote code) and the recipe did not allow it."""


class StageFailedError(DistilleryError):
    """A stage ran but its own acceptance gate (parity, accuracy) failed."""


# ---------------------------------------------------------------- one line for the user

SHOWN_CHARS = 200  # a value quoted in a message: enough to recognise it, never the whole of it


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters (a recipe value can be megabytes long). The repr
    of a huge container is never built whole: reprlib walks only what it shows."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxtuple = 4, 8, 8, 8
    short.maxstring = short.maxother = short.maxlong = limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def file_error_message(exc: BaseException) -> str | None:
    """The one-line message for an OSError, UnicodeDecodeError or JSON error that a file the user
    handed us raised where the code did not expect it; None for anything else (a bug, which keeps
    its traceback). Every entry point goes through this: the CLI (pipelines/cli.py) and, as its
    own small copy, the bundle's predict.py, which ships alone."""
    import json

    if isinstance(exc, json.JSONDecodeError):
        return (
            f"not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); fix or "
            "regenerate the file"
        )
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save "
            "the file as UTF-8"
        )
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else "a file"
        reason = exc.strerror or type(exc).__name__
        return f"{where}: {reason}; check the path and that it is a readable regular file"
    return None
