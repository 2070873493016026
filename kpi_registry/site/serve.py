"""``kpi site serve``: the built site over HTTP, rebuilt when a definition changes.

A watcher polls the definition folders, templates and site files; a change triggers a full
build (into temporary folders, swapped in on success). Pages carry a small same-origin script
that reloads them once a new build is in place. A build that fails prints its errors (file,
line, field) and the previous site stays online.

Every build is a ``kpi site build`` in a fresh Python process. The build forks worker
processes, and forking this one, which runs the web server's and the watcher's threads, could
leave a child stuck on a lock one of those threads held; a child process also takes its
worker processes and its memory with it when it ends.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import KPIError
from ..registry import bundled_dir, search_paths

RELOAD_SCRIPT = b"""(function () {
  var seen = null;
  function poll() {
    fetch("/__kpi_build_id", { cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (id) {
        if (seen !== null && id !== seen) { location.reload(); return; }
        seen = id;
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
"""


class _State:
    def __init__(self) -> None:
        self.build_id = str(time.time())
        self.lock = threading.Lock()


def _handler(root: Path, state: _State):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path == "/__kpi_build_id":
                return self._send(state.build_id.encode(), "text/plain")
            if self.path == "/__kpi_livereload.js":
                return self._send(RELOAD_SCRIPT, "text/javascript")
            path = Path(self.translate_path(self.path))
            if path.is_dir():
                if not self.path.split("?", 1)[0].endswith("/"):
                    return super().do_GET()  # the base class redirects to the slash URL
                path = path / "index.html"
            if path.suffix == ".html" and path.is_file():
                body = path.read_bytes().replace(
                    b"</body>", b'<script src="/__kpi_livereload.js"></script></body>', 1
                )
                return self._send(body, "text/html; charset=utf-8")
            return super().do_GET()

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # quiet: one line per request is noise
            pass

    return functools.partial(Handler, directory=str(root))


def watched_paths(args: argparse.Namespace, project: Path) -> list[Path]:
    """The definition folders the build loads (as load() finds them), and the site's files."""
    paths = [folder for folder, _ in search_paths(args.paths, not args.no_bundled)]
    paths += [bundled_dir("templates") / "site", project / "mkdocs.yml", project / "assets"]
    paths += [project / "overrides", bundled_dir("docs") / "guides"]
    return [p for p in paths if p.exists()]


def snapshot(paths: Iterable[Path]) -> dict[str, float]:
    """Modification time of every file under the paths (what a change looks like)."""
    out: dict[str, float] = {}
    for root in paths:
        if root.is_file():
            out[str(root)] = root.stat().st_mtime
            continue
        for folder, _, files in os.walk(root):
            for name in files:
                p = os.path.join(folder, name)
                try:
                    out[p] = os.stat(p).st_mtime
                except OSError:
                    pass
    return out


def build_command(args: argparse.Namespace, out: Path, docs: Path) -> list[str]:
    """The ``kpi site build`` that serve runs for each build, with serve's own options."""
    command = [sys.executable, "-m", "kpi_registry.cli", "site", "build", *map(str, args.paths)]
    command += ["--out", str(out), "--docs-dir", str(docs)]
    if args.no_bundled:
        command.append("--no-bundled")
    if args.no_strict:
        command.append("--no-strict")
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    return command


def _build(command: list[str]) -> int:
    """Run one build; it prints its own progress, errors (file, line, field) and summary."""
    return subprocess.run(command, check=False).returncode


def serve(args: argparse.Namespace) -> int:
    from .build import default_layout

    layout = default_layout(args.out, args.docs_dir)
    command = build_command(args, layout.out, layout.docs)
    if not args.no_build or not (layout.out / "index.html").is_file():
        code = _build(command)
        if code:  # a first build that fails ends the command; its errors are printed
            return code
    state = _State()
    try:
        server = http.server.ThreadingHTTPServer(
            (args.host, args.port), _handler(layout.out, state)
        )
    except OSError as e:  # most often: the port is taken
        raise KPIError(
            f"cannot serve on {args.host}:{args.port}: {e.strerror or e} "
            "(choose another with --port)"
        ) from None
    server.daemon_threads = True
    paths = watched_paths(args, layout.project)
    stop = threading.Event()

    def watch() -> None:
        seen = snapshot(paths)
        while not stop.wait(1.0):
            now = snapshot(paths)
            if now == seen:
                continue
            time.sleep(0.3)  # let an editor finish writing
            seen = snapshot(paths)
            print("change detected, rebuilding ...", file=sys.stderr)
            if _build(command):
                print("build failed; still serving the previous site", file=sys.stderr)
                continue
            with state.lock:
                state.build_id = str(time.time())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    host = "localhost" if args.host in ("127.0.0.1", "::1") else args.host
    print(f"serving {layout.out} on http://{host}:{args.port}/ (Ctrl+C to stop)")
    print("watching: " + ", ".join(str(p) for p in paths))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    return 0
