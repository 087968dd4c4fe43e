"""Node, npm and Chromium for the bundle's runtime checks (pipelines/bundle/runtimes.py): finding
them, the bundle's npm packages installed once into a cache outside the bundle, and a staged
copy of the bundle that Node resolves those packages from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from pipelines.bundle.verify import BundleError

INSTALL = "apt-get update && apt-get install -y nodejs npm chromium"
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")
NPM_TIMEOUT_S = 900.0


class RuntimeSkipped(Exception):
    """A runtime this machine lacks (Node, npm, Chromium, the npm registry); the message says
    how to install it. Never a failure: the bundle itself may be fine."""


def find_tools(runtime: str, path: str | None = None) -> dict[str, str]:
    """{tool: executable} for a runtime; RuntimeSkipped naming the install command otherwise.
    `path` replaces $PATH in the lookup (tests point it at an empty folder)."""
    wanted = {"node": ("node", "npm"), "browser": ("node", "npm", "chromium"), "ort": ()}[runtime]
    found, missing = {}, []
    for tool in wanted:
        names = CHROMIUMS if tool == "chromium" else (tool,)
        exe = next((w for n in names if (w := shutil.which(n, path=path))), None)
        if exe:
            found[tool] = exe
        else:
            missing.append(tool)
    if missing:
        raise RuntimeSkipped(
            f"{runtime}: {', '.join(missing)} not found on PATH; install with `{INSTALL}`"
        )
    return found


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "distillery" / "node"


def node_modules(bundle: Path, npm: str, cache: Path | None = None) -> Path:
    """The bundle's npm dependencies, installed once per package.json + lock into the cache by
    `npm ci --ignore-scripts` (onnxruntime-node's CPU binaries ship in its package; its install
    script would fetch CUDA ones). A half-done install never becomes the cache: it is renamed
    into place when complete."""
    lock = (bundle / "package.json").read_bytes() + (bundle / "package-lock.json").read_bytes()
    folder = (cache or cache_root()) / hashlib.sha256(lock).hexdigest()[:16]
    if (folder / "node_modules" / ".package-lock.json").is_file():
        return folder / "node_modules"
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(bundle / name, work / name)
        cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            done = subprocess.run(
                cmd, cwd=work, capture_output=True, text=True, timeout=NPM_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise RuntimeSkipped(f"npm ci did not finish within {NPM_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            raise RuntimeSkipped(
                f"npm ci failed in {work} (no access to the npm registry?): "
                f"{done.stderr.strip()[-400:]}"
            )
        with suppress(OSError):  # another process installed the same lock meanwhile: use it
            work.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder / "node_modules"


@contextmanager
def staged(bundle: Path, modules: Path):
    """A copy of the bundle with node_modules linked in: Node resolves packages from the real
    folder of predict.mjs, and the bundle itself must stay as its SHA256SUMS lists it."""
    with tempfile.TemporaryDirectory(prefix="distillery-js-") as tmp:
        copy = Path(tmp) / "bundle"
        shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("node_modules"))
        (copy / "node_modules").symlink_to(modules, target_is_directory=True)
        yield copy


def run_node(folder: Path, node: str, args: list[str]) -> list[dict[str, Any]]:
    cmd = [node, str(folder / "predict.mjs"), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise BundleError(
            f"node predict.mjs failed (exit {done.returncode}): {done.stderr.strip()[-800:]}"
        )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def tool_version(exe: str) -> str:
    """The first line of `exe --version` (Node, Chromium), for the model card."""
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "?"
