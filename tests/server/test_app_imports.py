"""CometQL and the HTTP publish API are part of the server, not optional: when one cannot be
imported the server must not start (it used to log a warning and run without them)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .helpers import REPO


@pytest.mark.parametrize("module", ["comet_server.http_api", "comet_server.cometql"])
def test_server_does_not_start_without_a_part(module):
    # sys.modules[name] = None makes ``import name`` raise ImportError, as a broken module would.
    code = (f"import sys; sys.modules[{module!r}] = None; "
            "from comet_server.__main__ import main; sys.exit(main(['--port', '0', '--cometql-port', '0', '--db', ':memory:']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"import of {module} halted" in r.stderr, r.stderr[-2000:]
    assert "listening on" not in r.stdout
