"""The allow-listed static site (api.md §7).

The site root is the repository root, but only these are served (everything else is 404):

* ``/`` and ``/index.html``, ``/pyscript.toml``, ``/pyscript-mpy.toml``, ``/favicon.ico``
* everything under ``/demo/`` (a directory URL ending in ``/`` serves its ``index.html``; without
  the slash it redirects there), except the server console ``/demo/console/`` and the demo's
  public keys ``/demo/accounts.json``, which are served in demo mode (``--demo``) only
* ``/comet_py/``: only ``*.py`` and ``py.typed``
* ``/vendor/pyodide/`` (no ``*.html``: Pyodide's ``console.html`` is a Python REPL that would run
  on the app's origin), ``/vendor/pyscript/``, ``/vendor/wheels/``
* ``/vendor/micropython/``: only ``micropython.mjs`` and ``micropython.wasm`` (the interpreter of
  ``type="mpy"`` pages) and ``comet_py.zip`` (comet_py for those pages, built by scripts/setup.sh)
* with ``--test-pages``: ``/tests/pages/`` and ``/bench/pages/``
* with ``--site DIR``: every other path, from DIR (``/`` is DIR/index.html when it exists). The
  paths above always come from comet_server, so a site cannot shadow them.

The request target is checked on its raw (still percent-encoded) form and again after decoding:
any dot segment, dotfile, backslash, NUL, encoded slash, empty segment or absolute/drive path is
refused, and the final file must resolve (symlinks followed) inside the allowed directory.
Database files (``*.db``, ``*.sqlite*``, SQLite's ``-wal``/``-shm``/``-journal``, and the
server's own ``--db`` file) are never served from any tree.
Responses carry ``Cache-Control: no-cache`` plus ETag / Last-Modified (aiohttp's FileResponse
answers conditional requests with 304), so reloads revalidate.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

__all__ = ["StaticSite", "MIME_TYPES", "content_type_for"]

log = logging.getLogger("comet_server.static")

MIME_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".toml": "text/plain; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".css": "text/css; charset=utf-8",
    ".ico": "image/x-icon",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
    ".tar": "application/x-tar",
    ".gz": "application/gzip",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
}

#: top-level single files: URL path -> file relative to the root
_FILES = {
    "/": "index.html",
    "/index.html": "index.html",
    "/pyscript.toml": "pyscript.toml",
    "/pyscript-mpy.toml": "pyscript-mpy.toml",
    "/favicon.ico": "favicon.ico",
}


def content_type_for(name: str) -> str:
    if name == "py.typed":
        return "text/plain; charset=utf-8"
    ext = os.path.splitext(name)[1].lower()
    return MIME_TYPES.get(ext, "application/octet-stream")


#: served under /demo/ only in demo mode: the server console and the demo users' public keys
_DEMO_ONLY = (("console",), ("accounts.json",))
#: comet_py's own PyScript configs: a --site never replaces them
_SITE_CONFIGS = ("/pyscript.toml", "/pyscript-mpy.toml")
#: the only files served under /vendor/micropython/ (the interpreter, comet_py's bundle)
_MICROPYTHON_FILES = (("micropython.mjs",), ("micropython.wasm",), ("comet_py.zip",))
#: first URL segments that belong to comet_server's routes (besides its static trees)
_ROUTE_PREFIXES = frozenset({"ws", "comet-server", "api", "info", "stats"})
#: never served from any tree: SQLite databases and their side files
_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3", "-wal", "-shm", "-journal")


def _is_db_file(name: str) -> bool:
    return name.lower().endswith(_DB_SUFFIXES)


class StaticSite:
    def __init__(self, root: str | os.PathLike[str], *, test_pages: bool = False, demo: bool = False,
                 site: str | os.PathLike[str] | None = None,
                 deny_files: "tuple[str | os.PathLike[str], ...]" = ()) -> None:
        self.root = Path(root).resolve()
        self.demo = demo
        self.site = Path(site).resolve() if site is not None else None
        # exact files never served (the server's own database and its side files)
        self.deny: set[Path] = set()
        for f in deny_files:
            p = Path(f).resolve()
            self.deny.update({p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm"),
                              p.with_name(p.name + "-journal")})
        # URL prefix (as path segments) -> (directory, file filter)
        self.trees: list[tuple[tuple[str, ...], Path, str]] = [
            (("demo",), self.root / "demo", "demo"),
            (("comet_py",), self.root / "comet_py", "py"),
            (("vendor", "pyodide"), self.root / "vendor" / "pyodide", "no_html"),
            (("vendor", "pyscript"), self.root / "vendor" / "pyscript", "any"),
            (("vendor", "wheels"), self.root / "vendor" / "wheels", "any"),
            (("vendor", "micropython"), self.root / "vendor" / "micropython", "micropython"),
        ]
        if test_pages:
            self.trees.append((("tests", "pages"), self.root / "tests" / "pages", "any"))
            self.trees.append((("bench", "pages"), self.root / "bench" / "pages", "any"))
        # first URL segments a --site cannot take: comet_server's own trees and routes
        self.reserved = frozenset(prefix[0] for prefix, _, _ in self.trees) | _ROUTE_PREFIXES

    # ---------------------------------------------------------------------------------------
    def resolve(self, raw_path: str) -> Path | None:
        """Map a raw request target to an allowed existing file, or None (-> 404)."""
        raw = raw_path.split("?", 1)[0].split("#", 1)[0]
        if not raw.startswith("/") or raw.startswith("//"):
            return None
        lowered = raw.lower()
        if "%2f" in lowered or "%5c" in lowered or "%00" in lowered or "\\" in raw:
            return None
        try:
            path = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None
        if "\\" in path or "\x00" in path or ":" in path:
            return None
        segments = path[1:].split("/")
        if path.endswith("/"):
            segments[-1] = "index.html"  # a directory URL serves its index.html (never a listing)
        for seg in segments:
            if not seg or seg.startswith(".") or seg in ("..", "."):
                return None
        if _is_db_file(segments[-1]):
            return None
        if self.site is not None and segments[0] not in self.reserved and path not in _SITE_CONFIGS:
            # the user's own pages: /, /index.html, /favicon.ico too when the site has them
            found = self._check(self.site.joinpath(*segments), self.site)
            if found is not None or path not in _FILES:
                return found
        if path in _FILES:
            return self._check(self.root / _FILES[path], self.root, allow_root_file=True)
        for prefix, base, kind in self.trees:
            n = len(prefix)
            if len(segments) > n and tuple(segments[:n]) == prefix:
                rest = segments[n:]
                if kind == "py" and not (rest[-1].endswith(".py") or rest[-1] == "py.typed"):
                    return None
                if kind == "micropython" and tuple(rest) not in _MICROPYTHON_FILES:
                    return None
                if kind == "no_html" and os.path.splitext(rest[-1])[1].lower() in (".html", ".htm"):
                    return None
                if kind == "demo" and not self.demo and any(
                        tuple(rest[:len(p)]) == p for p in _DEMO_ONLY):
                    return None
                return self._check(base.joinpath(*rest), base)
        return None

    def _check(self, candidate: Path, base: Path, *, allow_root_file: bool = False) -> Path | None:
        try:
            resolved = candidate.resolve(strict=True)
            base_resolved = base.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if allow_root_file:
            if resolved.parent != self.root or resolved.name != candidate.name:
                return None
        elif not resolved.is_relative_to(base_resolved) or resolved == base_resolved:
            return None
        if not resolved.is_file() or resolved in self.deny or _is_db_file(resolved.name):
            return None
        return resolved

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPNotFound()
        raw = request.raw_path
        try:
            path = self.resolve(raw)
            if path is None and not raw.split("?", 1)[0].endswith("/"):
                # "/demo/chat" -> "/demo/chat/" when that directory has an index.html
                target = raw.split("?", 1)[0] + "/"
                if self.resolve(target) is not None:
                    raise web.HTTPMovedPermanently(location=target)
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - hostile paths must never raise past here
            log.debug("static resolve failed", exc_info=True)
            path = None
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={
            "Content-Type": content_type_for(path.name),
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        })
