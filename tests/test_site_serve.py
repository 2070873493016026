"""``kpi site serve`` as a web server: many clients at once, hostile paths, no folder listings,
the usual security headers, and a Content-Security-Policy without 'unsafe-inline' scripts.

Every server here listens on 127.0.0.1 on a free port and is shut down by the test."""

from __future__ import annotations

import base64
import hashlib
import html
import http.client
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from site_helpers import fixture_site

from kpi_registry.site.serve import make_server

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _running(root: Path) -> Iterator[tuple[str, int]]:
    server = make_server(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def site_dir(tmp_path) -> Path:
    (tmp_path / "index.html").write_text("<html><body><p>home</p></body></html>")
    (tmp_path / "404.html").write_text("<html><body><p>not here</p></body></html>")
    (tmp_path / "empty").mkdir()  # a folder without index.html
    (tmp_path / "empty" / "data.json").write_text("{}")
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("<html><body>page</body></html>")
    (tmp_path / ".kpi-site").write_text("marker")
    return tmp_path


@pytest.fixture
def address(site_dir) -> Iterator[tuple[str, int]]:
    yield from _running(site_dir)


def get(address, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)  # sent as given
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path, status",
    [
        ("/%00", 400),
        ("/page/%00/x", 400),
        ("/%ff%fe", 400),
        ("/a\\..\\b", 400),
        ("/../../etc/passwd", 404),
        ("/..%2f..%2fetc%2fpasswd", 404),
        ("/%2e%2e/%2e%2e/etc/passwd", 404),
        ("/.kpi-site", 404),
        ("/empty/", 404),  # no listing of a folder without index.html
        ("/nothing/here", 404),
        ("/" + "x" * 5000, 404),
    ],
)
def test_bad_paths_answer_cleanly(address, capsys, path, status):
    code, headers, body = get(address, path)
    assert code == status
    for name, value in HEADERS.items():
        assert headers[name] == value
    assert b"Traceback" not in body and b"empty/data.json" not in body
    if status == 404:
        assert b"not here" in body  # the site's own 404 page
    assert capsys.readouterr().err == ""  # nothing printed: no traceback


def test_a_folder_is_its_index_page_and_is_never_listed(address):
    code, headers, _ = get(address, "/page")
    assert code == 301 and headers["Location"] == "/page/"
    code, _, body = get(address, "/page/")
    assert code == 200 and body.startswith(b"<html><body>page")
    code, _, body = get(address, "/empty/data.json")
    assert code == 200 and body == b"{}"
    code, headers, body = get(address, "/", "HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_every_answer_has_the_security_headers(address):
    for path, method in (("/", "GET"), ("/empty/data.json", "GET"), ("/%00", "GET"), ("/", "POST")):
        code, headers, _ = get(address, path, method)
        assert code in (200, 400, 501), (path, method)
        for name, value in HEADERS.items():
            assert headers[name] == value, (path, method, name)
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy


def test_200_concurrent_requests_all_answered(address):
    """200 clients connect at the same moment, each with a 5 s time-out: the listen queue must
    hold them all (with the standard library's 5, dozens time out waiting to connect)."""
    n, answers, errors = 200, [], []
    go = threading.Event()

    def client() -> None:
        go.wait(30)
        try:
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(b"GET /page/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            answers.append(data.split(b"\r\n", 1)[0])
        except Exception as e:  # noqa: BLE001 - counted and shown below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], f"{len(errors)} of {n} failed, e.g. {errors[0]}"
    assert answers == [b"HTTP/1.0 200 OK"] * n


def _inline_scripts(page: str) -> list[str]:
    return [
        body
        for attrs, body in re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
        if "src=" not in attrs and "application/json" not in attrs
    ]


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_page_policy_allows_only_its_own_inline_scripts_by_hash():
    site, report = fixture_site()
    assert report.calculators > 0
    pages = list(site.rglob("*.html"))
    hashed = 0
    for page in pages:
        text = page.read_text()
        meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', text)
        assert meta, page
        policy = html.unescape(meta.group(1))
        script_src = re.search(r"script-src ([^;]*)", policy).group(1).split()
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        inline = [_sha256(body) for body in _inline_scripts(text)]
        assert sorted(script_src) == sorted(["'self'", *inline]), page
        hashed += len(inline)
    assert hashed == report.calculators  # the theme's own inline scripts are files now


def test_serve_sends_the_page_policy_as_a_header():
    site, _ = fixture_site()
    page = next(p for p in site.glob("kpi/*/index.html") if _inline_scripts(p.read_text()))
    with_calculator = "/" + page.parent.relative_to(site).as_posix() + "/"
    for address in _running(site):
        code, headers, body = get(address, with_calculator)
        assert code == 200
        policy = headers["Content-Security-Policy"]
        (script,) = _inline_scripts(body.decode())
        assert _sha256(script) in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
        assert policy.endswith("frame-ancestors 'none'")


def test_the_theme_scripts_moved_to_files_are_the_theme_s_own():
    """site/assets/md-scope.js and md-palette.js run mkdocs-material's inline scripts from files:
    they must stay the code of the installed theme (an upgrade that changes it fails here)."""
    import material

    root = Path(__file__).resolve().parents[1]
    partials = Path(material.__file__).parent / "templates" / "partials" / "javascripts"
    for partial, asset, scope in (
        ("base.html", "md-scope.js", '"{{ config.extra.scope | d(base_url) }}"'),
        ("palette.html", "md-palette.js", None),
    ):
        theirs = re.search(r"<script>(.*)</script>", (partials / partial).read_text(), re.S)[1]
        if scope:
            assert scope in theirs
            theirs = theirs.replace(scope, "document.currentScript.dataset.mdScope")
        ours = (root / "site" / "assets" / asset).read_text()
        code = "\n".join(line for line in ours.splitlines() if not line.startswith("//"))
        assert code == theirs


def test_a_page_that_forbids_scripts_is_served_without_the_reload_script(tmp_path):
    """A page with its own strict policy (kpi scorecard's: default-src 'none') gets no live
    reload script, which its policy would block (a console error)."""
    strict = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
    (tmp_path / "strict.html").write_text(f"<html><head>{strict}</head><body>s</body></html>")
    (tmp_path / "open.html").write_text("<html><body>o</body></html>")
    for address in _running(tmp_path):
        _, headers, body = get(address, "/strict.html")
        assert b"__kpi_livereload" not in body
        assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        _, _, body = get(address, "/open.html")
        assert b'<script src="/__kpi_livereload.js"></script></body>' in body
