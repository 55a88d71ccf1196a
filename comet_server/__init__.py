"""comet_server: a CppComet-compatible comet server (CPython asyncio + aiohttp).

Run it with ``python -m comet_server --help``. Internals are described in docs/design.md §2-§3.
"""

__version__ = "0.1"
SERVER_NAME = f"comet_server {__version__} (CppComet-compatible)"

__all__ = ["__version__", "SERVER_NAME"]
