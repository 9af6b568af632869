"""``kubectl logs`` for local-0: the kubelet's ``/containerLogs`` endpoint over mutual TLS.

The API server connects with its kubelet client certificate (signed by the cluster CA); the logs are
the files the agent writes under ``<home>/logs/pods/<ns>_<pod>_<uid>/<container>/<restart>.log``.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fulcrum.dev.paths import DevHome


def log_files(logs_root: Path, ns: str, pod: str, container: str) -> list[Path]:
    """Log files of a container, oldest restart first (newest pod incarnation only)."""
    dirs = sorted((logs_root / "pods").glob(f"{ns}_{pod}_*"), key=lambda p: p.stat().st_mtime)
    if not dirs:
        return []
    cdir = dirs[-1] / container
    return sorted(cdir.glob("*.log"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)


def tail_lines(data: bytes, n: int) -> bytes:
    if n < 0:
        return data
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:]) if n else b""


class LogServer:
    def __init__(self, home: DevHome, port: int, workers: dict[str, Any]) -> None:
        self.home, self.port, self.workers = home, port, workers
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        logs_root = self.home.logs
        stop = threading.Event()
        self._stop = stop

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                url = urllib.parse.urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404, "only /containerLogs/{namespace}/{pod}/{container} is served")
                    return
                _, ns, pod, container = parts
                query = urllib.parse.parse_qs(url.query)
                files = log_files(logs_root, ns, pod, container)
                previous = query.get("previous", ["false"])[0] == "true"
                if previous:
                    files = files[:-1]
                if not files:
                    self.send_error(404, f"no logs for {ns}/{pod}/{container}")
                    return
                path = files[-1]
                data = path.read_bytes()
                if "tailLines" in query:
                    data = tail_lines(data, int(query["tailLines"][0]))
                if "limitBytes" in query:
                    data = data[: int(query["limitBytes"][0])]
                follow = query.get("follow", ["false"])[0] == "true" and not previous
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                if not follow:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if follow:
                    self._follow(path, path.stat().st_size, files)

            def _follow(self, path: Path, offset: int, files: list[Path]) -> None:
                with contextlib.suppress(OSError), open(path, "rb") as fh:
                    fh.seek(offset)
                    idle = 0.0
                    while not stop.is_set():
                        chunk = fh.read(65536)
                        if chunk:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                            idle = 0.0
                            continue
                        newer = [p for p in path.parent.glob("*.log") if p not in files]
                        if newer or (idle > 2.0 and not _writer_alive(path)):
                            return
                        time.sleep(0.2)
                        idle += 0.2

        pki = self.home.pki
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "kubelet-local-0.crt"), str(pki / "kubelet-local-0.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name="logs", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._stop.set()
            self._server.shutdown()
            self._server.server_close()


def _writer_alive(path: Path) -> bool:
    """Whether some process still has the log open for writing (the container is running)."""
    target = str(path)
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) == target:
                        return True
    return False
