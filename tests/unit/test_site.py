"""The site configuration that pages rely on."""

import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_pyscript_toml_maps_every_comet_py_module_and_uses_the_local_pyodide():
    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    assert config["interpreter"] == "/vendor/pyodide/pyodide.mjs"  # never a CDN
    sources = {url: dest for url, dest in config["files"].items() if not dest.endswith(".pyc")}
    shipped = {f"./comet_py/{p.name}" for p in (ROOT / "comet_py").iterdir() if p.suffix == ".py" or p.name == "py.typed"}
    assert set(sources.values()) == shipped
    assert all(url == dest[1:] for url, dest in sources.items())  # straight from the source tree


def test_pyscript_toml_maps_a_byte_compiled_module_beside_every_comet_py_module():
    """scripts/setup.sh writes them into vendor/wheels/pycache/ (tests/e2e/test_packaging.py
    checks that they are there and fresh); each lands where Python looks for it."""
    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    compiled = {url: dest for url, dest in config["files"].items() if dest.endswith(".pyc")}
    tags = {dest.rsplit(".", 2)[1] for dest in compiled.values()}
    assert len(tags) == 1, tags  # one interpreter
    tag = tags.pop()
    modules = {p.stem for p in (ROOT / "comet_py").glob("*.py")}
    assert set(compiled.values()) == {f"./comet_py/__pycache__/{m}.{tag}.pyc" for m in modules}
    assert all(url == f"/vendor/wheels/pycache/{dest.rsplit('/', 1)[1]}" for url, dest in compiled.items())


def test_the_sans_io_core_never_imports_the_browser():
    browser_only = {"browser.py"}
    for path in (ROOT / "comet_py").glob("*.py"):
        if path.name in browser_only:
            continue
        imports = re.findall(r"^\s*(?:import|from)\s+([\w.]+)", path.read_text(), re.M)
        assert not {name.split(".")[0] for name in imports} & {"js", "jsffi", "pyodide", "pyscript"}, path.name


def test_pyscript_mpy_toml_loads_the_local_micropython_and_comet_py_as_one_bundle():
    """MicroPython pages: the vendored interpreter and the zip scripts/setup.sh builds (every
    comet_py module and every stand-in of packaging/micropython/lib), nothing else, no CDN."""
    import sys
    sys.path.insert(0, str(ROOT / "packaging" / "micropython"))
    try:
        import build_bundle
    finally:
        sys.path.pop(0)
    config = tomllib.loads((ROOT / "pyscript-mpy.toml").read_text())
    assert config["interpreter"] == "/vendor/micropython/micropython.mjs"
    assert config["files"] == {"/vendor/micropython/comet_py.zip": "./*"}
    assert set(config) <= {"name", "interpreter", "files"}  # no packages: nothing fetched elsewhere
    names = {name for name, _ in build_bundle.entries()}
    assert names == {f"comet_py/{p.stem}.mpy" for p in (ROOT / "comet_py").glob("*.py")} | {
        f"{p.stem}.mpy" for p in (ROOT / "packaging" / "micropython" / "lib").glob("*.py")}
    assert "typing.mpy" in names
    # .mpy bytecode is tied to the MicroPython release: the compiler is the vendored one's
    assert build_bundle.mpy_cross_version() == build_bundle.micropython_version() == "1.27.0"


def test_the_micropython_bundle_is_reproducible(tmp_path):
    import sys
    import zipfile
    sys.path.insert(0, str(ROOT / "packaging" / "micropython"))
    try:
        import build_bundle
    finally:
        sys.path.pop(0)
    build_bundle.build(tmp_path / "a.zip")
    build_bundle.build(tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        browser = zf.read("comet_py/browser.mpy")
    assert browser[:2] == b"M\x06" and b"browser.py" in browser  # .mpy v6, tracebacks name the file
