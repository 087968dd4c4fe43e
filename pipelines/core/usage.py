"""What a stage cost: its wall seconds and its peak memory, recorded in its manifest.

Peak memory is the kernel's resident-set high-water mark of the process (`VmHWM`, the same number
`resource.getrusage` returns as `ru_maxrss`): the most physical memory the process held at once,
which is what decides whether a run fits a machine (the OOM killer acts on resident memory). The
kernel keeps it at no cost, so no sampling thread can miss a short peak, and it counts the native
allocations of torch and ONNX Runtime that `tracemalloc` does not see.

The mark only rises over a process's life, and the stages of a run share one process. On Linux it
is reset at each stage's start (writing 5 to /proc/self/clear_refs), so each stage records its own
peak (`scope: "stage"`); where that is refused (macOS, a locked-down kernel) the record is the
process's peak so far, an upper bound of the stage's (`scope: "process"`). Worker processes the
stage started and waited for (the bench's) are counted apart: `children_rss_bytes` is the largest
child's peak, recorded only when it is above this process's own. Below that it says nothing: a
child started by fork or vfork inherits the parent's mark, and Linux keeps it through `exec`, so
every worker of a 600 MiB process reports at least 600 MiB. On CUDA, torch's peak allocated bytes.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")
_KB = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux


def _rusage_peak(who: int) -> int:
    return resource.getrusage(who).ru_maxrss * _KB


def process_peak_rss() -> int:
    """The process's resident-set high-water mark in bytes (since start or the last reset)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _rusage_peak(resource.RUSAGE_SELF)


def reset_peak_rss() -> bool:
    """Lower the high-water mark to the current resident size; False where the kernel refuses."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class StageUsage:
    """Started when a stage starts; `record()` at its end gives the manifest's `usage` entry."""

    def __init__(self) -> None:
        self.scope = "stage" if reset_peak_rss() else "process"
        self.children_before = _rusage_peak(resource.RUSAGE_CHILDREN)
        self.started = time.perf_counter()
        self._reset_cuda()

    def record(self) -> dict[str, Any]:
        children = _rusage_peak(resource.RUSAGE_CHILDREN)
        own = process_peak_rss()
        return {
            "seconds": round(time.perf_counter() - self.started, 2),
            "peak_rss_bytes": own,
            "scope": self.scope,
            # a worker's own peak only when above ours and above earlier stages' (module doc)
            "children_rss_bytes": children if children > max(own, self.children_before) else None,
            "cuda_peak_bytes": self._cuda_peak(),
        }

    @staticmethod
    def _cuda():
        torch = sys.modules.get("torch")  # never imported here: a stage without torch has no CUDA
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        return torch.cuda

    def _reset_cuda(self) -> None:
        cuda = self._cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()

    def _cuda_peak(self) -> int | None:
        cuda = self._cuda()
        return int(cuda.max_memory_allocated()) if cuda is not None else None


def size(n: int) -> str:
    """'87 MiB', '1.4 GiB'."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def peak_text(usage: dict[str, Any]) -> str:
    """'612 MiB' (the process), '612 MiB (workers 1.2 GiB)' when worker processes peaked apart."""
    text = size(usage["peak_rss_bytes"])
    if usage.get("children_rss_bytes"):
        text += f" (workers {size(usage['children_rss_bytes'])})"
    return text


def peak_of(manifest: dict[str, Any]) -> int | None:
    """The larger of a manifest's process and worker peaks in bytes (None for manifests written
    before `usage` was recorded)."""
    usage = manifest.get("usage") or {}
    peaks = [usage.get("peak_rss_bytes"), usage.get("children_rss_bytes")]
    return max((p for p in peaks if p), default=None)
