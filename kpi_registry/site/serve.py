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

import html
import http.server
import mimetypes
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


#: Sent with every answer. The page's own policy (site/overrides/main.html puts it in each page,
#: with the hashes of the page's inline scripts) is sent as a header too, with frame-ancestors,
#: which a <meta> policy cannot carry; anything else gets the site's policy without them.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
SITE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'none'"
)
FRAMES = "frame-ancestors 'none'"
_PAGE_POLICY = re.compile(
    rb'<meta http-equiv="Content-Security-Policy" content="([^"<>]*)"', re.IGNORECASE
)
#: Pending connections the listening socket holds (the standard library's 5 drops a burst).
LISTEN_BACKLOG = 1024


def _allows_own_scripts(policy: str) -> bool:
    """Whether a Content-Security-Policy lets the page load a script from its own site."""
    directives = {}
    for part in policy.split(";"):
        if words := part.split():
            directives.setdefault(words[0].lower(), words[1:])
    sources = directives.get("script-src-elem", directives.get("script-src"))
    if sources is None:
        sources = directives.get("default-src", ["*"])
    return "'self'" in sources or "*" in sources


class SiteServer(http.server.ThreadingHTTPServer):
    """A thread per connection, a deep listen queue, and no traceback for a client that went
    away or sent nonsense (the handler answers those itself)."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            print(f"error answering {client_address[0]}: {error!r}", file=sys.stderr)


def _handler(root: Path, state: _State):
    site = root.resolve()

    class Handler(http.server.BaseHTTPRequestHandler):
        """Files of the built site only: no folder listings (a folder is its index.html or
        404), nothing outside the site or hidden (.name), and 400 for a path that is not one."""

        server_version = "kpi-site"
        sys_version = ""
        policy = SITE_POLICY

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._answer(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            self.policy = SITE_POLICY
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/__kpi_build_id":
                return self._send(state.build_id.encode(), "text/plain", body)
            if url.path == "/__kpi_livereload.js":
                return self._send(RELOAD_SCRIPT, "text/javascript", body)
            found = self._locate(url.path)
            if isinstance(found, int):
                return self.send_error(found)
            if found.is_dir():
                if not url.path.endswith("/"):
                    location = urllib.parse.urlunsplit(("", "", url.path + "/", url.query, ""))
                    return self._redirect(location)
                found = found / "index.html"
                if not found.is_file():
                    return self.send_error(404)  # a folder without a page: no listing
            try:
                data = found.read_bytes()
            except OSError:
                return self.send_error(404)
            kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
            if kind == "text/html":
                if match := _PAGE_POLICY.search(data):
                    self.policy = html.unescape(match.group(1).decode("utf-8", "replace"))
                if _allows_own_scripts(self.policy):  # not a page that forbids scripts
                    data = data.replace(
                        b"</body>", b'<script src="/__kpi_livereload.js"></script></body>', 1
                    )
                kind = "text/html; charset=utf-8"
            elif kind.startswith("text/") or kind in ("application/json", "image/svg+xml"):
                kind += "; charset=utf-8"
            return self._send(data, kind, body)

        def _locate(self, path: str) -> Path | int:
            """The file or folder a URL path names, or the status to answer with."""
            try:
                text = urllib.parse.unquote(path, errors="strict")
            except UnicodeDecodeError:
                return 400
            if not text.startswith("/") or "\x00" in text or "\\" in text:
                return 400
            parts = [part for part in text.split("/") if part]
            if any(part.startswith(".") for part in parts):
                return 404  # .., and hidden files such as the build's marker
            target = site.joinpath(*parts)
            try:
                resolved = target.resolve()
                exists = resolved.exists()
            except (OSError, ValueError):  # a name too long, a loop of links
                return 404
            if not exists or (resolved != site and site not in resolved.parents):
                return 404
            return resolved

        def send_error(self, code: int, message: str | None = None, explain=None) -> None:
            """The site's own 404 page where it has one; the standard short page otherwise."""
            page = site / "404.html"
            if code == 404 and getattr(self, "command", "") in ("GET", "HEAD") and page.is_file():
                self.close_connection = True
                data = page.read_bytes()
                self.send_response(404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                if match := _PAGE_POLICY.search(data):
                    self.policy = html.unescape(match.group(1).decode("utf-8", "replace"))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(data)
                return
            super().send_error(code, message, explain)

        def _redirect(self, location: str) -> None:
            self.send_response(301)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, data: bytes, kind: str, body: bool = True) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def end_headers(self) -> None:
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.send_header("Content-Security-Policy", f"{self.policy}; {FRAMES}")
            super().end_headers()

        def log_message(self, format: str, *args) -> None:  # quiet: one line per request is noise
            pass

    return Handler


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0) -> SiteServer:
    """The server ``kpi site serve`` runs, for the built site in ``root`` (tests use it too)."""
    return SiteServer((host, port), _handler(root, _State()))


def watched_paths(args: Any, project: Path) -> list[Path]:
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


def build_command(args: Any, out: Path, docs: Path) -> list[str]:
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


def serve(args: Any) -> int:
    from .build import default_layout

    layout = default_layout(args.out, args.docs_dir)
    command = build_command(args, layout.out, layout.docs)
    if not args.no_build or not (layout.out / "index.html").is_file():
        code = _build(command)
        if code:  # a first build that fails ends the command; its errors are printed
            return code
    state = _State()
    try:
        server = SiteServer((args.host, args.port), _handler(layout.out, state))
    except OSError as e:  # most often: the port is taken
        raise KPIError(
            f"cannot serve on {args.host}:{args.port}: {e.strerror or e} "
            "(choose another with --port)"
        ) from None
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
