"""comet_py reaches a page in the ways docs/api.md §1 promises ([files], the wheel, the legacy tag),
and scripts/setup.sh leaves a dependency-free wheel and the comet-server command behind."""

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


def test_the_comet_py_wheel_declares_no_dependencies():
    import zipfile

    wheel = sorted((ROOT / "vendor" / "wheels").glob("comet_py-*-py3-none-any.whl"))[-1]
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
        shipped = {n for n in zf.namelist() if n.startswith("comet_py/")}
    assert "Requires-Dist" not in text  # micropip installs it alone
    assert shipped == {f"comet_py/{p.name}" for p in (ROOT / "comet_py").iterdir()
                       if p.suffix == ".py" or p.name == "py.typed"}


def test_setup_installs_the_comet_server_command():
    import subprocess

    command = ROOT / ".venv" / "bin" / "comet-server"
    assert command.exists(), "scripts/setup.sh installs the project (pip install -e .) into .venv"
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--cometql-port" in result.stdout


def test_setup_byte_compiles_every_module_for_the_vendored_pyodide():
    """The .pyc files pyscript.toml maps are there, made by the vendored Pyodide's Python, and
    checked-hash pycs of today's sources (a stale one would only cost a compile in the page)."""
    import _imp
    import json
    import tomllib

    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    python = json.loads((ROOT / "vendor" / "pyodide" / "pyodide-lock.json").read_text())["info"]["python"]
    tag = "cpython-" + "".join(python.split(".")[:2])
    compiled = {url: dest for url, dest in config["files"].items() if dest.endswith(".pyc")}
    assert compiled
    for url, dest in compiled.items():
        module, dest_tag, _ = dest.rsplit("/", 1)[1].split(".")
        assert dest_tag == tag, dest
        data = (ROOT / url.lstrip("/")).read_bytes()
        source = (ROOT / "comet_py" / f"{module}.py").read_bytes()
        assert int.from_bytes(data[4:8], "little") == 0b11, f"{url}: not a checked-hash pyc"
        assert data[8:16] == _imp.source_hash(int.from_bytes(data[:4], "little"), source), \
            f"{url} is older than comet_py/{module}.py: run scripts/setup.sh"
