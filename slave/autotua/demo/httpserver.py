"""A small static HTTP server with Range support, in a thread: the demo's and the tests' mirror.

It serves a directory as Gentoo mirrors do (autobuilds, snapshots, distfiles; a directory's URL
with its trailing ``/`` is an HTML index, as a mirror's is) and honours ``Range: bytes=N-``
so resumed downloads are exercised for real. ``faults`` lets a test make a path misbehave:
``"truncate"`` (send half and close), ``"stall"`` (send nothing for a while) or an int status.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from functools import partial
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "AutotuA-mirror/1"

    def log_message(self, fmt, *args) -> None:  # quiet
        self.server.requests.append((self.command, self.path, self.headers.get("Range")))

    def do_GET(self) -> None:
        fault = self.server.faults.get(self.path)
        if isinstance(fault, int):
            self.send_error(fault)
            return
        path = Path(self.translate_path(self.path))
        if path.is_dir() and self.path.split("?", 1)[0].endswith("/"):
            listing = self.list_directory(str(path))  # as a mirror's index (the snapshots/ directory)
            if listing is not None:
                with listing:
                    self.wfile.write(listing.read())
            return
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start = 0
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-") and rng[6:-1].isdigit():
            start = int(rng[6:-1])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            remaining = size - start
            if fault == "truncate":
                remaining //= 2
            if fault == "stall":
                time.sleep(self.server.stall_seconds)
            while remaining > 0:
                chunk = f.read(min(65536, remaining))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                remaining -= len(chunk)
        if fault == "truncate":
            self.close_connection = True


class MirrorServer:
    """``with MirrorServer(root) as m: m.url`` — serves ``root`` on 127.0.0.1 at a free port."""

    def __init__(self, root: str | os.PathLike, host: str = "127.0.0.1", port: int = 0):
        handler = partial(_Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.httpd.faults = {}
        self.httpd.requests = []
        self.httpd.stall_seconds = 5
        self.root = Path(root)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def faults(self) -> dict:
        return self.httpd.faults

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def start(self) -> MirrorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
