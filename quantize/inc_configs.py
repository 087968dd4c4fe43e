"""The registry of Intel Neural Compressor configs that `quantize.inc` autotunes over.

Each factory imports neural_compressor when called, so recipe validation reads the names
(`quantize.inc.configs`) without loading torch or INC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelkit.errors import InputError


def static_minmax() -> Any:
    """PT2E static, INC's default: per-channel symmetric s8 weights, u8 activations from min/max."""
    from neural_compressor.torch.quantization import INT8StaticQuantConfig

    return INT8StaticQuantConfig()


def static_kl() -> Any:
    """PT2E static with KL-histogram activation ranges: clips the outliers min/max would keep."""
    from neural_compressor.torch.quantization import INT8StaticQuantConfig

    return INT8StaticQuantConfig(act_algo="kl")


def dynamic() -> Any:
    """PT2E dynamic: s8 weights, activation ranges per batch at run time; calibration unused."""
    from neural_compressor.torch.quantization import DynamicQuantConfig

    return DynamicQuantConfig()


INC_CONFIGS: dict[str, Callable[[], Any]] = {
    "static_minmax": static_minmax,
    "static_kl": static_kl,
    "dynamic": dynamic,
}

DEFAULT_CONFIGS = ("static_minmax", "static_kl", "dynamic")  # fastest kernels first


def get_inc_config(name: str) -> Any:
    """A fresh INC config object for a registered name; unknown names list the known ones."""
    if name not in INC_CONFIGS:
        raise InputError(f"unknown INC config {name!r}; choose from {sorted(INC_CONFIGS)}")
    return INC_CONFIGS[name]()
