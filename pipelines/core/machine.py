"""The facts every manifest records about where it ran: library versions and the machine."""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib import metadata
from typing import Any

from modelkit.cpu import cpu_flags, cpu_model, usable_cores

PACKAGES = (
    "distillery",
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "datasets",
    "accelerate",
    "neural-compressor-pt",
    "tokenizers",
)
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
    "bf16",
)


@cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "isa": sorted(cpu_flags() & set(ISA_FLAGS)),
        "cores": os.cpu_count(),
        "affinity": usable_cores(),
        "os": platform.platform(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info
