"""``comet_py.platform.Platform`` is precise enough to catch a platform that drifts.

mypy checks that comet_py.browser (the module) and the fake FakePage are Platforms: the checks
are at the end of browser.py and next to FakePage, and tests/unit/test_types.py runs mypy over
them. Here: a FakePage whose socket callback or clock has the wrong type is not a Platform.
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

DRIFTED = '''
from collections.abc import Callable

from comet_py.platform import Platform
from tests.support.fake_browser import FakePage, FakeSocket


class OnCloseWithoutCode(FakePage):
    def Socket(self, url: str, on_open: Callable[[], None], on_text: Callable[[str], None],  # type: ignore[override]
               on_close: Callable[[str], None]) -> FakeSocket:
        raise NotImplementedError


class ClockAsText(FakePage):
    def now_ms(self) -> str:  # type: ignore[override]
        return "0"


def socket_check(page: OnCloseWithoutCode) -> Platform:
    return page


def clock_check(page: ClockAsText) -> Platform:
    return page
'''


def test_a_fake_page_with_a_drifted_member_is_not_a_platform(tmp_path: pathlib.Path) -> None:
    snippet = tmp_path / "drifted_platform.py"
    snippet.write_text(DRIFTED)
    proc = subprocess.run([sys.executable, "-m", "mypy", str(snippet)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    # By file name: from its cache, mypy reports an unchanged module under the path it had then.
    errors = [line for line in proc.stdout.splitlines()
              if pathlib.Path(line.split(":")[0]).name == snippet.name and ": error:" in line]
    expected = [str(n) for n, line in enumerate(DRIFTED.splitlines(), 1) if line == "    return page"]
    assert [line.split(":")[1] for line in errors] == expected, proc.stdout + proc.stderr
    assert all('expected "Platform"' in line for line in errors), errors
