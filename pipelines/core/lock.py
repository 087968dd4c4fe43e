"""One pipeline at a time per run folder: an exclusive lock on `runs/<name>/.lock`.

Two runs of one name at once would share checkpoints, caches and manifests: one deletes the
other's checkpoints, resumes from them under its own config, and reports a number neither run
made. The lock is `fcntl.flock` on an open file, so the operating system releases it when its
holder exits, however it exits (a killed run leaves no stale lock). The file holds who holds it
(pid, host, command, start time), which the second run's error names.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from pipelines.core.errors import DistilleryError

LOCK_FILE = ".lock"


class RunLock:
    """`with RunLock(run_dir):` holds runs/<name>/ exclusively, or raises DistilleryError."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._handle = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", errors="replace")  # noqa: SIM115 (held while locked)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise DistilleryError(
                f"{self.path.parent}: another distillery run is using this run folder "
                f"({describe(holder)}). Wait for it to finish, stop it, or give this run another "
                "name (--set name=...) or --runs-dir."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "command": " ".join(sys.argv),
                }
            )
            + "\n"
        )
        handle.flush()
        self._handle = handle
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def describe(holder: str) -> str:
    try:
        info = json.loads(holder)
    except json.JSONDecodeError:
        return "holder unknown"
    if not isinstance(info, dict):
        return "holder unknown"
    return (
        f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: "
        f"{info.get('command')}"
    )
