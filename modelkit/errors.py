"""The one exception the libraries raise for input their caller can fix.

The same idea one layer up: pipelines.core.errors, the pipeline's own user-facing errors (the
runner and the CLI print both kinds as one-line messages).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input to a library call (a layer index out of range, an unknown registry name, a shape
    that cannot be cut); the message names the problem and the fix.

    A `ValueError`, so library users catching ValueError keep working. The pipeline converts
    exactly this class into a user-facing error; anything else raised inside a library is a bug
    and keeps its traceback.
    """


def lookup(registry: dict, name: str, kind: str):
    """registry[name], or an InputError listing the known names (sorted)."""
    if name not in registry:
        raise InputError(f"unknown {kind} {name!r}; known: {sorted(registry)}")
    return registry[name]
