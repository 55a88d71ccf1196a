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
    ("/pyscript-mpy.toml", "text/plain"),
    ("/vendor/micropython/comet_py.zip", "application/zip"),
])
def test_allowed_files_served_with_mime_type(server, path, ctype):
    if not (REPO / path.lstrip("/")).exists():
        pytest.skip(f"{path} not in this checkout")
    c = http.client.HTTPConnection(server.host, server.port, timeout=5)
    c.request("HEAD", path)
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").split(";")[0] == ctype
    c.close()


def test_micropython_interpreter_served_and_nothing_else_of_its_package(server, tmp_path):
    mpy = REPO / "vendor" / "micropython"
    if not (mpy / "micropython.mjs").exists():
        pytest.skip("no vendored MicroPython (run scripts/setup.sh)")
    status, h, body = get(server, "/vendor/micropython/micropython.mjs")
    assert status == 200 and h["content-type"].startswith("text/javascript")
    assert body == (mpy / "micropython.mjs").read_bytes()
    status, h, body = get(server, "/vendor/micropython/micropython.wasm")
    assert status == 200 and h["content-type"] == "application/wasm"
    assert body[:4] == b"\0asm"
    # the allow-list names the two files: anything else placed in that tree stays 404
    from comet_server.static import StaticSite
    root = tmp_path / "root"
    (root / "vendor" / "micropython" / "sub").mkdir(parents=True)
    for name in ("micropython.mjs", "micropython.wasm", "README.md", "package.json", "x.html",
                 "micropython.mjs.map", "sub/micropython.mjs"):
        (root / "vendor" / "micropython" / name).write_text("x")
    site = StaticSite(root)
    assert site.resolve("/vendor/micropython/micropython.mjs") is not None
    assert site.resolve("/vendor/micropython/micropython.wasm") is not None
    for name in ("README.md", "package.json", "x.html", "micropython.mjs.map", "sub/micropython.mjs",
                 "", "MICROPYTHON.MJS", "micropython.mjs/", "../micropython/README.md"):
        assert site.resolve(f"/vendor/micropython/{name}") is None, name


def test_micropython_bundle_served_and_no_file_beside_it(server, tmp_path):
    bundle = REPO / "vendor" / "micropython" / "comet_py.zip"
    if not bundle.exists():
        pytest.skip("no MicroPython bundle (run scripts/setup.sh)")
    status, h, body = get(server, "/vendor/micropython/comet_py.zip")
    assert status == 200 and h["content-type"] == "application/zip"
    assert body == bundle.read_bytes() and body[:4] == b"PK\3\4"
    # the bundle's build leftovers and its contents are not served from that tree
    from comet_server.static import StaticSite
    root = tmp_path / "root"
    (root / "vendor" / "micropython" / "comet_py.zip").mkdir(parents=True)
    (root / "vendor" / "micropython" / "comet_py.zip" / "typing.py").write_text("x")
    for name in ("comet_py.zip.tmp", "typing.py", "comet_py.tar.gz", "other.zip"):
        (root / "vendor" / "micropython" / name).write_text("x")
    site = StaticSite(root)
    for name in ("comet_py.zip.tmp", "typing.py", "comet_py.tar.gz", "other.zip", "COMET_PY.ZIP",
                 "comet_py.zip/typing.py", "comet_py.zip/"):
        assert site.resolve(f"/vendor/micropython/{name}") is None, name
    assert site.resolve("/vendor/micropython/comet_py.zip") is None  # a directory, never listed


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
    "/vendor/micropython/", "/vendor/micropython/README.md", "/vendor/micropython/package.json",
    "/vendor/micropython/%2e%2e/pyscript/core.js",
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


def test_ws_subprotocol_offered_by_client_is_echoed(server, dev):
    from websockets.sync.client import connect as ws_connect

    with ws_connect(server.ws_url(dev_id=dev), ping_interval=None, subprotocols=["chat", "x"], legacy=True) as c:
        assert c.subprotocol == "chat"
        assert json.loads(c.recv(timeout=5))["event"] == "serverInfo"


# -- in-process checks of StaticSite on a temporary tree (nothing is written into the repo) --------

def _site(tmp_path, **kw):
    from comet_server.static import StaticSite

    root = tmp_path / "root"
    (root / "demo" / "app").mkdir(parents=True)
    (root / "demo" / "app" / "index.html").write_text("<p>hi</p>")
    (root / "demo" / "ok.js").write_text("x")
    (root / "comet_py").mkdir()
    (root / "comet_py" / "a.py").write_text("x")
    (root / "comet_py" / "a.pyc").write_text("x")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "demo" / "link_out").symlink_to(tmp_path / "outside.txt")
    (root / "demo" / "link_git").symlink_to(root / ".git" / "HEAD")
    (root / "demo" / "link_dir").symlink_to(tmp_path)
    (root / "index.html").symlink_to(tmp_path / "outside.txt")
    return StaticSite(root, **kw), root


def test_symlinks_resolving_outside_the_allowed_tree_are_refused(tmp_path):
    site, root = _site(tmp_path)
    assert site.resolve("/demo/ok.js") == (root / "demo" / "ok.js").resolve()
    for target in ("/demo/link_out", "/demo/link_git", "/demo/link_dir/outside.txt", "/", "/index.html"):
        assert site.resolve(target) is None, target


def test_directory_url_maps_to_its_index_html_only(tmp_path):
    site, root = _site(tmp_path)
    assert site.resolve("/demo/app/") == (root / "demo" / "app" / "index.html").resolve()
    assert site.resolve("/demo/app") is None  # the handler redirects this one to /demo/app/
    assert site.resolve("/comet_py/a.py") is not None and site.resolve("/comet_py/a.pyc") is None
    assert site.resolve("/comet_py/") is None


def test_slashless_directory_url_redirects(tmp_path):
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    site, _ = _site(tmp_path)

    async def run():
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", site.handle)
        async with TestClient(TestServer(app)) as client:
            r = await client.get("/demo/app", allow_redirects=False)
            assert r.status == 301 and r.headers["Location"] == "/demo/app/"
            r = await client.get("/demo/app/")
            assert r.status == 200 and await r.text() == "<p>hi</p>"
            assert r.headers["Cache-Control"] == "no-cache" and "ETag" in r.headers
            r = await client.post("/demo/ok.js")
            assert r.status == 404

    asyncio.run(run())


def test_stats_per_dev_id_counts_only_that_developer(server, dev):
    conn, _ = connect(server, dev_id=dev)
    with conn:
        assert json.loads(get(server, f"/stats?dev_id={dev}")[2]) == {"connections": 1}
        assert json.loads(get(server, f"/stats?dev_id={dev + 1}")[2]) == {"connections": 0}


# -- --site DIR: the user's own pages, same allow-list rules (issue 10 item 3) ------------------

def _user_site(tmp_path):
    from comet_server.static import StaticSite

    site = tmp_path / "mysite"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_text("<p>my home</p>")
    (site / "page.html").write_text("<p>page</p>")
    (site / "sub" / "index.html").write_text("<p>sub</p>")
    (site / "app.py").write_text("print('hi')")
    (site / ".env").write_text("SECRET=1")
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[core]")
    (site / ".venv").mkdir()
    (site / ".venv" / "pyvenv.cfg").write_text("home = /usr")
    for name in ("data.db", "x.sqlite3", "y.sqlite", "data.db-wal", "data.db-shm", "j.db-journal", "state.bin"):
        (site / name).write_text("SQLite format 3")
    (tmp_path / "secret.txt").write_text("outside")
    (site / "link_out").symlink_to(tmp_path / "secret.txt")
    (site / "link_dir").symlink_to(tmp_path)
    (site / "link_in").symlink_to(site / "page.html")
    (site / "vendor").mkdir()
    (site / "vendor" / "x.js").write_text("shadow")
    (site / "pyscript.toml").write_text("shadow")
    (site / "pyscript-mpy.toml").write_text("shadow")
    return StaticSite(REPO, site=site, deny_files=(str(site / "state.bin"),)), site


def test_site_serves_the_users_pages_next_to_vendor_and_comet_py(tmp_path):
    static, site = _user_site(tmp_path)
    assert static.resolve("/") == site / "index.html"
    assert static.resolve("/index.html") == site / "index.html"
    assert static.resolve("/page.html") == site / "page.html"
    assert static.resolve("/sub/") == site / "sub" / "index.html"
    assert static.resolve("/app.py") == site / "app.py"
    assert static.resolve("/link_in") == site / "page.html"  # a symlink that stays inside
    # comet_server's own paths are not the site's to shadow
    assert static.resolve("/comet_py/__init__.py") == REPO / "comet_py" / "__init__.py"
    assert static.resolve("/pyscript.toml") == REPO / "pyscript.toml"
    assert static.resolve("/pyscript-mpy.toml") == REPO / "pyscript-mpy.toml"
    assert static.resolve("/vendor/x.js") is None
    if (REPO / "vendor" / "pyscript" / "core.js").exists():
        assert static.resolve("/vendor/pyscript/core.js") == REPO / "vendor" / "pyscript" / "core.js"
    # files the site lacks fall back to comet_server's (favicon), anything else is 404
    if (REPO / "favicon.ico").exists():
        assert static.resolve("/favicon.ico") == REPO / "favicon.ico"
    assert static.resolve("/README.md") is None


@pytest.mark.parametrize("target", [
    "/.env", "/.git/config", "/.venv/pyvenv.cfg", "/%2egit/config", "/%2e%2e/secret.txt", "/../secret.txt",
    "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/link_out", "/link_dir/secret.txt",
    "/data.db", "/x.sqlite3", "/y.sqlite", "/data.db-wal", "/data.db-shm", "/j.db-journal", "/DATA.DB",
    "/state.bin", "/sub%2f..%2f..%2fsecret.txt", "/sub\\..\\secret.txt", "//secret.txt", "/C:/x",
])
def test_site_keeps_the_allow_list_rules(tmp_path, target):
    static, _ = _user_site(tmp_path)
    assert static.resolve(target) is None, target


def test_site_over_http(tmp_path):
    from tests.support.server import ServerProcess

    _, site = _user_site(tmp_path)
    srv = ServerProcess(cometql=False, test_pages=False, extra_args=["--site", str(site)]).start()
    try:
        srv.host = "127.0.0.1"
        status, h, body = get(srv, "/")
        assert status == 200 and body == b"<p>my home</p>" and h["content-type"].startswith("text/html")
        assert get(srv, "/sub")[0] in (200, 301)
        assert get(srv, "/comet_py/__init__.py")[0] == 200
        for target in ("/.env", "/.git/config", "/data.db", "/link_out", "/%2e%2e/secret.txt"):
            resp = raw_get(srv, target)
            assert resp.split(b"\r\n", 1)[0] in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request"), target
            assert b"SECRET" not in resp and b"outside" not in resp and b"SQLite" not in resp
    finally:
        srv.close()


def test_server_database_is_never_served_even_from_the_site(tmp_path):
    from comet_server.static import StaticSite

    (tmp_path / "comet.sqlite3").write_text("x")
    (tmp_path / "mydb").write_text("x")
    static = StaticSite(REPO, site=tmp_path, deny_files=(str(tmp_path / "mydb"),))
    assert static.resolve("/mydb") is None and static.resolve("/comet.sqlite3") is None
