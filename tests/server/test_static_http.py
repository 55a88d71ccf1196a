"""Static site allow-list, /info, /stats: what an HTTP client gets."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from .helpers import REPO, connect


def get(server, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    c = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        c.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw_get(server, target: str) -> bytes:
    """Send the request target exactly as given (no client-side normalisation)."""
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1"))
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def test_favicon_served_as_icon_with_revalidation_headers(server):
    status, h, body = get(server, "/favicon.ico")
    assert status == 200 and h["content-type"] == "image/x-icon"
    assert h["cache-control"] == "no-cache" and "etag" in h and "last-modified" in h
    assert body == (REPO / "favicon.ico").read_bytes()
    status, _, body = get(server, "/favicon.ico", {"If-None-Match": h["etag"]})
    assert status == 304 and body == b""


def test_index_served_when_present(server):
    status, h, _ = get(server, "/")
    if (REPO / "index.html").exists():
        assert status == 200 and h["content-type"].startswith("text/html")
        assert get(server, "/index.html")[0] == 200
    else:
        assert status == 404


@pytest.mark.parametrize("path, ctype", [
    ("/vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
    ("/vendor/pyodide/pyodide.mjs", "text/javascript"),
    ("/vendor/pyodide/pyodide-lock.json", "application/json"),
    ("/vendor/pyodide/python_stdlib.zip", "application/zip"),
    ("/comet_py/__init__.py", "text/plain"),
    ("/pyscript.toml", "text/plain"),
])
def test_allowed_files_served_with_mime_type(server, path, ctype):
    if not (REPO / path.lstrip("/")).exists():
        pytest.skip(f"{path} not in this checkout")
    c = http.client.HTTPConnection(server.host, server.port, timeout=5)
    c.request("HEAD", path)
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").split(";")[0] == ctype
    c.close()


def test_wheels_served_as_zip(server):
    wheels = sorted((REPO / "vendor" / "wheels").glob("*.whl"))
    if not wheels:
        pytest.skip("no vendored wheels")
    status, h, _ = get(server, f"/vendor/wheels/{wheels[0].name}")
    assert status == 200 and h["content-type"] == "application/zip"


@pytest.mark.parametrize("target", [
    "/.git/config", "/.git/HEAD", "/.venv/pyvenv.cfg", "/.gitignore", "/comet_server.db",
    "/../etc/passwd", "/%2e%2e/etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/demo/../.git/HEAD",
    "/demo/%2e%2e/.git/HEAD", "/demo/..%2f.git/HEAD", "/demo/..%2F..%2Fetc/passwd", "/demo/..\\.git\\HEAD",
    "/demo/%5c..%5c.git/HEAD", "/comet_server/app.py", "/comet_server/", "/comet_py/", "/comet_py/../README.md",
    "/README.md", "/pyproject.toml", "/requirements.txt", "/scripts/setup.sh", "/docs/design.md",
    "/tests/pages/harness.html", "/bench/pages/x.html", "/vendor/.versions", "/vendor/.wheel.sha",
    "/vendor/pyodide/../../.git/HEAD", "/etc/passwd", "//etc/passwd", "/demo/", "/vendor/",
    "/%00", "/demo/%00x", "/comet_py/__init__.pyc", "/C:/Windows/win.ini", "/demo/.hidden",
    "/demo/x%2f..%2f..%2f.git%2fHEAD", "/nonexistent.html",
])
def test_everything_outside_the_allow_list_is_404(server, target):
    resp = raw_get(server, target)
    assert resp.split(b"\r\n", 1)[0] in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request"), (target, resp[:200])
    assert b"[core]" not in resp and b"root:" not in resp and b"ref: refs" not in resp


def test_absolute_form_request_target_is_not_served(server):
    resp = raw_get(server, "http://evil/../../.git/HEAD")
    assert b"ref: refs" not in resp and b" 200 " not in resp.split(b"\r\n", 1)[0]


def test_symlink_pointing_outside_is_404(server, tmp_path):
    demo = REPO / "demo"
    link = demo / "zz_test_symlink_outside"
    try:
        link.symlink_to(REPO / ".git" / "HEAD")
    except OSError:
        pytest.skip("cannot create symlink")
    try:
        assert get(server, "/demo/zz_test_symlink_outside")[0] == 404
    finally:
        link.unlink()


def test_info_answers_like_cppcomet(server):
    status, h, body = get(server, "/info")
    assert status == 200 and json.loads(body) == {"status": "ok", "node": "n1________"}
    assert h["access-control-allow-origin"] == "*"


def test_stats_counts_connections(server, dev):
    before = json.loads(get(server, "/stats")[2])["connections"]
    conn, _ = connect(server, dev_id=dev)
    with conn:
        assert json.loads(get(server, "/stats")[2]) == {"connections": before + 1}


def test_post_and_other_methods_are_404(server):
    c = http.client.HTTPConnection(server.host, server.port, timeout=5)
    c.request("POST", "/ws/sesion=&myid=&devid=0&v=4.08", body=b"x")
    assert c.getresponse().status in (400, 404, 405)
    c.close()
