"""comet_py reaches a page in the ways api.md §1 promises: [files], the wheel, the legacy tag."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_wheel_installs_with_micropip_inside_pyodide(new_context):
    wheels = sorted((ROOT / "vendor" / "wheels").glob("comet_py-*-py3-none-any.whl"))
    assert wheels, "scripts/setup.sh builds the wheel into vendor/wheels/"
    tab = new_context().open(f"/tests/pages/wheel.html?wheel=/vendor/wheels/{wheels[-1].name}")
    assert "site-packages/comet_py/" in tab.page.evaluate("window.cometFile")
    assert tab.page.evaluate("window.cometVersion") == "0.1.0"


def test_the_legacy_py_script_tag_runs_comet_py(new_context, dev_id):
    tab = new_context().open(f"/tests/pages/legacy.html?dev={dev_id}")
    tab.page.wait_for_function("window.cometState === 'connected'", timeout=15_000)
