"""mypy (pinned in requirements-dev.txt, configured in pyproject.toml) finds nothing in comet_py,
comet_server and the fake browser, so the test command type-checks them.

One mypy run over all of it; its incremental cache (.mypy_cache) makes a repeat take seconds.
"""

import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MYPY = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]

# comet_py's sans-I/O modules (and the role objects): checked with `strict = true`.
STRICT = ["aio", "backoff", "channels", "election", "errors", "jsonlimit", "jsonsafe", "message",
          "options", "platform", "protocol", "records", "registry", "relay", "roles", "session"]


def test_mypy_finds_no_errors() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"mypy found errors:\n{proc.stdout}{proc.stderr}", pytrace=False)


def test_the_sans_io_modules_are_strict() -> None:
    assert MYPY["strict"] is True
    assert {"comet_py", "comet_server"} <= set(MYPY["files"])
    relaxed = {m for o in MYPY.get("overrides", []) if o.get("disallow_untyped_defs") is False
               for m in o["module"]}
    assert not relaxed & {f"comet_py.{m}" for m in STRICT} and "comet_py.*" not in relaxed
    for m in STRICT:
        assert (ROOT / "comet_py" / f"{m}.py").is_file(), m
