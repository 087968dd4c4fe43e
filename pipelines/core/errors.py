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
