"""Facts about the CPU this process runs on, from py-cpuinfo and psutil (no /proc parsing here).

quantize reads the ISA flags to pick int8 settings for this CPU; the pipeline records them in
every manifest and the benchmark uses the clock and the usable cores for its roofline.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from typing import Any


@cache
def cpu_info() -> dict[str, Any]:
    """py-cpuinfo's record of this CPU (brand, flags, clocks); {} when it cannot read one.

    Cached: py-cpuinfo reads it in a child process, about a second.
    """
    try:
        import cpuinfo

        return dict(cpuinfo.get_cpu_info())
    except Exception:  # an unreadable CPU must not stop a run; every caller has a fallback
        return {}


def cpu_flags() -> set[str]:
    """ISA flags in /proc/cpuinfo spelling (avx2, avx512f, avx512_vnni, amx_int8, asimddp, ...)."""
    return {str(f).lower() for f in cpu_info().get("flags", [])}


def cpu_model() -> str:
    return cpu_info().get("brand_raw") or platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (its affinity), else the logical core count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def physical_cores() -> int | None:
    import psutil

    return psutil.cpu_count(logical=False)


def cpu_ghz(default: float = 2.0) -> tuple[float, str]:
    """(clock in GHz, where it came from): the advertised clock, else psutil's, else `default`."""
    hz = cpu_info().get("hz_advertised") or cpu_info().get("hz_actual")
    if hz and hz[0]:
        return float(hz[0]) / 1e9, "py-cpuinfo (advertised base clock, not turbo)"
    try:
        import psutil

        freq = psutil.cpu_freq()
    except Exception:
        freq = None
    if freq and (freq.max or freq.current):
        return float(freq.max or freq.current) / 1000.0, "psutil.cpu_freq"
    return default, f"fallback {default} GHz (no clock reported)"


def cpu_vendor_family() -> tuple[str, int | None]:
    """(vendor id, family) as cpuid reports them: ("AuthenticAMD", 25) for Zen 3/4, ("", None)
    when unknown. The roofline needs it: the same AVX-512 flags run at half width on Zen 4."""
    info = cpu_info()
    family = info.get("family")
    return str(info.get("vendor_id_raw") or ""), int(family) if family is not None else None
