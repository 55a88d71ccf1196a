"""Bad command-line values of comet-server get a clear usage error (exit status 2) before
anything listens; they never start a server with a nonsense limit."""

from __future__ import annotations

import contextlib
import io

import pytest

from comet_server.__main__ import main


@pytest.mark.parametrize("args, says", [
    (["--ping-interval", "-1"], "--ping-interval must be >= 0"),
    (["--ping-timeout", "-0.5"], "--ping-timeout must be >= 0"),
    (["--max-connections", "-3"], "--max-connections must be >= 0"),
    (["--max-connections-per-ip", "-1"], "--max-connections-per-ip must be >= 0"),
    (["--header-timeout", "0"], "--header-timeout must be > 0"),
    (["--cometql-login-timeout", "-2"], "--cometql-login-timeout must be > 0"),
    (["--cometql-preauth-max-packet", "100"], "--cometql-preauth-max-packet must be >= 1024"),
    (["--site", "/nonexistent/comet-site"], "not a directory"),
    (["--ping-interval", "soon"], "invalid float value"),
])
def test_bad_option_values_exit_with_a_usage_error(args, says):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main(["--port", "0", "--cometql-port", "0", "--db", ":memory:", *args])
    assert exit_info.value.code == 2
    assert says in err.getvalue(), err.getvalue()
