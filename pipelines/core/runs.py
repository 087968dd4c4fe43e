"""Run folders and manifests: `runs/<name>/<stage>/manifest.json`, written last and atomically.

A stage is done when its manifest exists and its `hash` equals the hash of the stage's config
sections plus its inputs (upstream manifests' hashes and the data hash). A stage that fails, or is
killed, leaves no manifest, so the next run redoes it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from modelkit.files import atomic_write
from pipelines.core.errors import DistilleryError

MANIFEST = "manifest.json"


def canonical_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then `os.replace` onto `path`."""
    atomic_write(path, lambda handle: handle.write(text))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


class RunDir:
    """`runs/<name>/` and the manifests of its stages."""

    def __init__(self, root: Path, name: str):
        # absolute: the bench's worker processes run in another working directory, and a relative
        # `--runs-dir runs` given outside the checkout made every bench row an error
        self.path = Path(root).absolute() / name

    def stage(self, stage: str) -> Path:
        return self.path / stage

    def manifest_path(self, stage: str) -> Path:
        return self.stage(stage) / MANIFEST

    def read_manifest(self, stage: str) -> dict[str, Any] | None:
        return _read_json(self.manifest_path(stage))

    def require_manifest(self, stage: str) -> dict[str, Any]:
        found = self.read_manifest(stage)
        if found is None:
            raise DistilleryError(
                f"{self.manifest_path(stage)}: stage '{stage}' has not finished; run it first "
                f"(distillery run RECIPE --stage {stage})."
            )
        return found

    def previous(self, stage: str) -> Path:
        """Where a finished stage waits while an attempt under another config runs."""
        return self.path / f".{stage}.previous"

    def read_previous_manifest(self, stage: str) -> dict[str, Any] | None:
        return _read_json(self.previous(stage) / MANIFEST)

    def set_aside(self, stage: str) -> bool:
        """Before rerunning a finished stage, move its folder aside (True), so a failed or
        interrupted attempt loses nothing: the finished run is restored when its config is asked
        for again, and dropped only once the new attempt has written its manifest."""
        folder = self.stage(stage)
        if not self.manifest_path(stage).is_file():
            for stale in folder.glob(f".{MANIFEST}.*.tmp"):  # from a write cut short
                stale.unlink(missing_ok=True)
            return False
        shutil.rmtree(self.previous(stage), ignore_errors=True)
        os.replace(folder, self.previous(stage))
        return True

    def restore_previous(self, stage: str) -> None:
        """Put the set-aside finished run back. An unfinished attempt in its place is dropped; a
        finished one (of yet another config) is set aside in turn, so no finished run is lost."""
        folder, previous = self.stage(stage), self.previous(stage)
        if self.manifest_path(stage).is_file():
            swap = self.path / f".{stage}.swap"
            shutil.rmtree(swap, ignore_errors=True)
            os.replace(folder, swap)
            os.replace(previous, folder)
            os.replace(swap, previous)
            return
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(previous, folder)

    def drop_previous(self, stage: str) -> None:
        shutil.rmtree(self.previous(stage), ignore_errors=True)

    def start_attempt(self, stage: str, digest: str) -> str | None:
        """Record that `stage` is being run for config hash `digest`; return why old checkpoints
        were dropped, or None.

        Training stages resume from `checkpoints/` after an interruption. That is only right when
        the config is the one the checkpoints were trained with: a rerun after an edit (learning
        rate, student, data) must start over, not continue the old run under the new hash.
        """
        folder = self.stage(stage)
        marker = folder / ATTEMPT
        previous = (
            marker.read_bytes().decode("utf-8", "replace").strip() if marker.is_file() else None
        )  # a damaged marker reads as "an unknown config": checkpoints are dropped
        dropped = None
        checkpoints = folder / "checkpoints"
        if checkpoints.is_dir() and previous != digest:
            shutil.rmtree(checkpoints)
            was = f"hash {previous[:12]}" if previous else "an unknown config"
            dropped = (
                f"checkpoints of an interrupted run with {was} removed: the config is now "
                f"{digest[:12]}, so training starts over"
            )
        atomic_write_text(marker, digest + "\n")
        return dropped

    def write_manifest(self, stage: str, manifest: dict[str, Any]) -> Path:
        path = self.manifest_path(stage)
        try:
            atomic_write_json(path, manifest)
        except OSError as exc:
            raise DistilleryError(f"{path}: cannot write the manifest ({exc.strerror}).") from None
        return path


UNTRACKED = {MANIFEST, "log.txt"}
ATTEMPT = ".attempt"  # the config hash a stage's current files (checkpoints) belong to


def file_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {bytes, sha256}} for every file a stage left in its folder (manifest, log
    and hidden temporaries aside), so later stages can tell a finished artifact from a damaged one."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or rel in UNTRACKED or any(p.startswith(".") for p in rel.split("/")):
            continue
        found[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return found


def damaged_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """'<path>: <problem>' for each file the manifest recorded that is missing or changed."""
    problems = []
    for rel, want in (manifest.get("files") or {}).items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"{path}: is missing")
        elif path.stat().st_size != want["bytes"]:
            problems.append(
                f"{path}: has {path.stat().st_size} bytes, the manifest recorded {want['bytes']}"
            )
        elif sha256_file(path) != want["sha256"]:
            problems.append(f"{path}: has changed since the stage finished (sha256 differs)")
    return problems


def verify_files(folder: Path, stage: str, manifest: dict[str, Any]) -> None:
    """Every file the stage's manifest recorded is still there, same size and hash."""
    problems = damaged_files(folder, manifest)
    if problems:
        raise DistilleryError(
            f"{problems[0]}; the file is truncated, corrupted or was edited after stage "
            f"'{stage}' finished. Rerun that stage: distillery run RECIPE --stage {stage} --force."
        )


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged manifest counts as "not done"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_writable(path: Path) -> None:
    """Fail early, naming the folder, when a run folder cannot be created or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True):
            pass
    except OSError as exc:
        raise DistilleryError(
            f"{path}: cannot write here ({exc.strerror}). {_fix(exc, path)}"
        ) from None


def _fix(exc: OSError, path: Path) -> str:
    """What to do about a run folder that cannot be made, by errno: disk space is only one cause."""
    if exc.errno == errno.ENAMETOOLONG:
        return "The name is too long for the file system: shorten the recipe's `name`."
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        file = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        return f"{file} is a file, not a folder: pass --runs-dir with a folder (or move the file)."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "No permission to write there: pass --runs-dir with a writable folder."
    return "Free disk space or pass --runs-dir with a writable folder."
