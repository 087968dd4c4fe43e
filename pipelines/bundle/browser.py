"""The bundle's index.html in headless Chromium, served from a loopback-only HTTP server.

The page (pipelines/bundle/files/index.html) runs with `?check=ROWS&report=URL`: it predicts the
rows with onnxruntime-web as predict.py would and POSTs its answers and timings back to this
server; Chromium is then stopped. No driver library: the page reports by itself, so the check
needs only Chromium and the bundle's own npm packages (pipelines/bundle/runtimes.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pipelines.bundle.verify import BundleError

# Without these Chromium reaches for the network (updates, sync, QUIC probes) or wants a GPU
# and a sandbox that containers lack; a fresh profile per launch keeps each start cold.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
REPORT = "/__distillery_report"
PAGE_TIMEOUT_S = 300.0


class _Handler(SimpleHTTPRequestHandler):
    """Static files of one folder; a POST to REPORT hands its JSON body to the waiting check."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}

    def __init__(self, *args, inbox: list, arrived: threading.Event, served: list, **kwargs):
        self.inbox, self.arrived, self.served = inbox, arrived, served
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = Path(self.translate_path(self.path))
        if path.is_file() and not path.name.startswith("__"):  # the page's own downloads
            self.served.append(path.stat().st_size)
        super().do_GET()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        if self.path != REPORT:
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()
        self.inbox.append(body)
        self.arrived.set()

    def log_message(self, format: str, *args) -> None:  # quiet: the check reports what matters
        pass


def run_page(folder: Path, chromium: str, query: dict[str, str]) -> dict[str, Any]:
    """Open folder/index.html?query in a fresh headless Chromium; the page's report, with
    `launch_to_report_s` (browser start to the page's POST) and `served_bytes` (what the page
    downloaded: libraries, WebAssembly, model, tokenizer) added. BundleError if the page
    reports an error or nothing within PAGE_TIMEOUT_S."""
    inbox: list[bytes] = []
    served: list[int] = []
    arrived = threading.Event()
    handler = partial(_Handler, directory=str(folder), inbox=inbox, arrived=arrived, served=served)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # loopback only, a free port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?" + urlencode(
        {**query, "report": REPORT}
    )
    try:
        with tempfile.TemporaryDirectory(prefix="distillery-chromium-") as profile:
            log = Path(profile) / "chromium.log"
            with log.open("w") as err:
                start = time.perf_counter()
                proc = subprocess.Popen(
                    [chromium, *FLAGS, f"--user-data-dir={profile}/data", url],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,  # its own group: every Chromium child stops with it
                )
                try:
                    arrived.wait(PAGE_TIMEOUT_S)
                    elapsed = time.perf_counter() - start
                finally:
                    stop(proc)
            if not inbox:
                tail = log.read_text(errors="replace").strip()[-600:]
                raise BundleError(
                    f"{folder}/index.html reported nothing within {PAGE_TIMEOUT_S:.0f} s in "
                    f"headless Chromium ({url}); its log: {tail}"
                )
    finally:
        server.shutdown()
        server.server_close()
    report = json.loads(inbox[0])
    if "error" in report:
        raise BundleError(f"{folder}/index.html failed in headless Chromium: {report['error']}")
    return {**report, "launch_to_report_s": elapsed, "served_bytes": sum(served)}


def stop(proc: subprocess.Popen) -> None:
    """End the Chromium this module started: its process group (SIGTERM, then SIGKILL)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
