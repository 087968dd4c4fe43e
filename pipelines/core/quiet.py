"""Third-party noise hidden from the console, in one place; `distillery --verbose` shows it all.

Each entry is a line a user saw on every run that says nothing about their run: a kernel an
optional package could not load, a deprecation inside a library, a hint meant for another task.
Matched by message or logger name, so nothing here imports torch, transformers or onnxruntime:
`install` runs at CLI start, before any of them loads, and filters what they emit later.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# `warnings` message regexes (matched from the start, as `warnings.filterwarnings` does).
NOISY_WARNINGS: dict[str, str] = {
    r".*_pytree": "torch: `_register_pytree_node` deprecations raised by libraries built on it",
    r"mtime may not be reliable": "datasets: file times on some file systems",
}
# Warning classes hidden by name: importing torch here to name `torch.jit.TracerWarning` would
# load it for `distillery keys`.
NOISY_CATEGORIES: dict[str, str] = {
    "TracerWarning": "torch.jit: ONNX export traces Python branches it cannot record; parity "
    "with PyTorch is checked after export instead",
}
# Logger name → message fragments dropped from it (an empty tuple drops below ERROR).
NOISY_LOGS: dict[str, tuple[str, ...]] = {
    "torchao": (),  # "Failed to load ... _C_mxfp8": optional kernels this project does not use
    # onnxruntime.quantization logs through the root logger; the hint points at an image example
    "root": (
        "Please consider to run pre-processing before quantization",  # quantize_dynamic
        "Please consider pre-processing before quantization",  # quantize_static
    ),
    # checkpoints saved before transformers renamed `torch_dtype` to `dtype`
    **{
        f"transformers.{module}": ("`torch_dtype` is deprecated",)
        for module in ("configuration_utils", "modeling_utils", "pipelines")
    },
    # torch's own log line (W1207 ... _pytree.py) when torchao registers its enums at import
    "torch.utils._pytree": ("is deprecated",),
}
# Progress bars libraries draw on stderr for their own steps (datasets' "tokenize" map), read from
# the environment when the library loads: the pipeline shows its long steps itself
# (pipelines.core.progress), one line each, and a bar redrawn into a log file is noise.
NOISY_BARS: dict[str, str] = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "datasets"}


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


_installed: list[tuple[logging.Logger, logging.Filter | int]] = []
_set_env: list[str] = []


def install(verbose: bool = False) -> None:
    """Hide the noise above (idempotent); with `verbose`, undo it so every line shows."""
    uninstall()
    if verbose:
        return
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name, fragments in NOISY_LOGS.items():
        logger = logging.getLogger(None if name == "root" else name)
        if fragments:
            rule: logging.Filter | int = _DropMessages(fragments)
            logger.addFilter(rule)
        else:
            rule = logger.level
            logger.setLevel(logging.ERROR)
        _installed.append((logger, rule))
    if not isinstance(warnings.showwarning, _QuietShow):
        warnings.showwarning = _QuietShow(warnings.showwarning)
    for variable, module in NOISY_BARS.items():
        if variable not in os.environ:  # a user's own setting wins
            os.environ[variable] = "1"
            _set_env.append(variable)
            _bars(module, enabled=False)


def uninstall() -> None:
    """Remove the logger rules and the warning-class hook `install` added."""
    while _installed:
        logger, rule = _installed.pop()
        if isinstance(rule, logging.Filter):
            logger.removeFilter(rule)
        else:
            logger.setLevel(rule)
    if isinstance(warnings.showwarning, _QuietShow):
        warnings.showwarning = warnings.showwarning.shown
    warnings.filters[:] = [f for f in warnings.filters if not (f[0] == "ignore" and _is_ours(f[1]))]
    while _set_env:
        variable = _set_env.pop()
        os.environ.pop(variable, None)
        _bars(NOISY_BARS[variable], enabled=True)


def _bars(module: str, enabled: bool) -> None:
    """Switch a library's bars when it is loaded already (the environment only counts at load;
    when it did, the library refuses to switch back and says so, so it is left as it is)."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return
    if not enabled:
        loaded.disable_progress_bars()
    elif getattr(getattr(loaded, "config", None), variable_of(module), None) is None:
        loaded.enable_progress_bars()


def variable_of(module: str) -> str:
    return next(v for v, m in NOISY_BARS.items() if m == module)


def _is_ours(message: object) -> bool:
    return getattr(message, "pattern", None) in NOISY_WARNINGS


class _QuietShow:
    """`warnings.showwarning` that skips NOISY_CATEGORIES by class name, else shows as before."""

    def __init__(self, shown) -> None:
        self.shown = shown

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:
        if category.__name__ in NOISY_CATEGORIES:
            return
        self.shown(message, category, filename, lineno, file, line)
