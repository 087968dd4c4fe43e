"""How busy the machine was around a bench: load averages, CPU use by others, CPU steal."""

from __future__ import annotations

import os


def machine_load(sample_s: float = 0.0) -> dict[str, float]:
    """Load averages and cumulative CPU steal, to compare before and after the grid; with
    `sample_s`, also how busy the CPUs were over that many seconds while this process waited
    (the load average would count the pipeline's own previous stage)."""
    import psutil

    one, five, _ = os.getloadavg()
    busy = psutil.cpu_percent(interval=sample_s) if sample_s else None
    times = psutil.cpu_times()
    return {
        "loadavg_1m": round(one, 2),
        "loadavg_5m": round(five, 2),
        **({"busy_pct": busy} if busy is not None else {}),
        "steal_s": float(getattr(times, "steal", 0.0)),
        "total_s": float(sum(times)),
    }


def steal_since(before: dict[str, float]) -> float:
    """Percent of CPU time stolen by the hypervisor since `before` (other guests on the host)."""
    now = machine_load()
    total = now["total_s"] - before["total_s"]
    return round(100.0 * (now["steal_s"] - before["steal_s"]) / total, 2) if total > 0 else 0.0
