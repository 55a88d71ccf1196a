"""The site configuration that pages rely on."""

import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_pyscript_toml_maps_every_comet_py_module_and_uses_the_local_pyodide():
    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    assert config["interpreter"] == "/vendor/pyodide/pyodide.mjs"  # never a CDN
    mapped = {dest for dest in config["files"].values()}
    shipped = {f"./comet_py/{p.name}" for p in (ROOT / "comet_py").iterdir() if p.suffix == ".py" or p.name == "py.typed"}
    assert mapped == shipped


def test_the_sans_io_core_never_imports_the_browser():
    browser_only = {"browser.py"}
    for path in (ROOT / "comet_py").glob("*.py"):
        if path.name in browser_only:
            continue
        imports = re.findall(r"^\s*(?:import|from)\s+([\w.]+)", path.read_text(), re.M)
        assert not {name.split(".")[0] for name in imports} & {"js", "pyodide", "pyscript"}, path.name
