"""The MicroPython lane: tests/mpy/test_mpy_*.py run under the vendored MicroPython in node
(tests/mpy/run.mjs), as they also run here under CPython. Every comet_py module is either PORTED
(it must import under MicroPython) or PENDING (it must still fail to: when one starts to import,
this lane fails until it is moved to PORTED), so nothing is skipped silently.
"""

import json
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "mpy" / "run.mjs"

#: comet_py modules that import under MicroPython (``_package_init`` is comet_py/__init__.py)
#: (api imports; its async iterator of a subscription still needs asyncio.Queue, which MicroPython
#: lacks)
PORTED = {"_package_init", "aio", "api", "backoff", "browser", "channels", "connection", "coordinator",
          "election", "errors", "jsonlimit", "jsonsafe", "message", "options", "platform", "protocol",
          "records", "registry", "relay", "roles", "session"}
#: comet_py modules that do not yet, and why (none left: browser.py imports in node's MicroPython,
#: which has js and jsffi; its page behaviour is tested by tests/e2e/test_mpy_*.py)
PENDING: "dict[str, str]" = {}
#: test modules of tests/mpy that cannot import under MicroPython yet (they run under CPython)
PENDING_TESTS: "dict[str, str]" = {}

TEST_MODULES = sorted(p.stem for p in (ROOT / "tests" / "mpy").glob("test_mpy_*.py"))


@pytest.fixture(scope="module")
def lane() -> dict:
    mjs = ROOT / "vendor" / "micropython" / "micropython.mjs"
    node = shutil.which("node")
    if node is None or not mjs.is_file():
        pytest.fail("the MicroPython lane needs node and vendor/micropython (run scripts/setup.sh)")
    proc = subprocess.run([node, str(RUNNER)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("MPY-RESULT ")]
    if proc.returncode != 0 or len(lines) != 1:
        pytest.fail(f"tests/mpy/run.mjs failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[0][len("MPY-RESULT "):])


def test_every_comet_py_module_is_ported_or_pending() -> None:
    modules = {p.stem for p in (ROOT / "comet_py").glob("*.py")} - {"__init__"} | {"_package_init"}
    assert not PORTED & set(PENDING)
    assert PORTED | set(PENDING) == modules


def test_ported_modules_import_under_micropython(lane: dict) -> None:
    failed = {m: lane["imports"][m] for m in sorted(PORTED) if lane["imports"][m] is not None}
    assert not failed, "\n".join(f"{m}:\n{err}" for m, err in failed.items())


def test_pending_modules_still_fail_to_import_under_micropython(lane: dict) -> None:
    # one that imports now belongs in PORTED, with its tests in the lane
    now_importing = sorted(m for m in PENDING if lane["imports"][m] is None)
    assert not now_importing, f"these import under MicroPython now: move them to PORTED: {now_importing}"


@pytest.mark.parametrize("module", TEST_MODULES)
def test_module_passes_under_micropython(lane: dict, module: str) -> None:
    entry = lane["tests"][module]
    if module in PENDING_TESTS:
        assert entry["import"] is not None, f"{module} imports under MicroPython now: drop it from PENDING_TESTS"
        pytest.xfail(f"not under MicroPython yet: {PENDING_TESTS[module]}")
    assert entry["import"] is None, entry["import"]
    source = (ROOT / "tests" / "mpy" / f"{module}.py").read_text()
    expected = {line.split("(")[0].split("def ")[1] for line in source.splitlines()
                if line.startswith(("def test_", "async def test_"))}
    assert set(entry["results"]) == expected, "a test function did not run under MicroPython"
    failed = {t: err for t, err in sorted(entry["results"].items()) if err is not None}
    assert not failed, "\n".join(f"{t}:\n{err}" for t, err in failed.items())
