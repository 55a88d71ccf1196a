"""What `pip install .` and the comet_py wheel are built from.

The repository's pyproject.toml is the server (`comet-server` command + its runtime
dependencies); packaging/comet_py/pyproject.toml is the browser library, which must stay
dependency-free so micropip installs it alone in Pyodide.
"""

import ast
import contextlib
import fnmatch
import functools
import importlib.metadata as metadata
import io
import pathlib
import re
import sys
import tomllib

import pytest

import comet_py
import comet_server
from comet_server import __main__ as server_main

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVER = tomllib.loads((ROOT / "pyproject.toml").read_text())
BROWSER = tomllib.loads((ROOT / "packaging" / "comet_py" / "pyproject.toml").read_text())


def pins(path: pathlib.Path) -> dict[str, str]:
    """name -> version of every `name==version` line, following `-r other.txt`."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out.update(pins(path.parent / line[3:].strip()))
        elif line:
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: {line!r} is not pinned with =="
            out[canonical(name)] = version.strip()
    return out


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def third_party_imports(paths) -> set[str]:
    """Top-level module names imported by these files that are neither stdlib nor ours."""
    ours = {"comet_py", "comet_server", "demo", "tests", "bench", "common", "server_fanout"}
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ours}


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    """module -> canonical names of the installed distributions providing it ({} if none)."""
    provided = installed_distributions()
    return {m: {canonical(d) for d in provided.get(m, [])} for m in modules}


def test_pip_install_dot_gives_the_comet_server_command():
    assert SERVER["project"]["name"] == "comet-server"
    assert SERVER["project"]["scripts"] == {"comet-server": "comet_server.__main__:main"}
    include = SERVER["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.parent.relative_to(ROOT).as_posix().replace("/", ".")
                for p in ROOT.glob("*/**/__init__.py") if not {".venv", "vendor"} & set(p.parts)}
    found = {name for name in packages if any(fnmatch.fnmatchcase(name, pattern) for pattern in include)}
    assert found == {name for name in packages if name.split(".")[0] == "comet_server"}  # the server, nothing else
    assert "comet_server.cometql" in found
    # the entry point runs: --help prints the options and exits 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        server_main.main(["--help"])
    assert exit_info.value.code == 0
    assert "--port" in out.getvalue() and "--cometql-port" in out.getvalue()
    assert SERVER["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "comet_server.__version__"}
    assert comet_server.__version__


def test_the_server_declares_every_library_it_imports_and_pins_match_requirements_txt():
    declared = {}
    for requirement in SERVER["project"]["dependencies"]:
        name, sep, version = requirement.partition("==")
        assert sep, f"pyproject.toml: {requirement!r} is not pinned"
        declared[canonical(name)] = version
    runtime = pins(ROOT / "requirements.txt")
    for name, version in declared.items():
        assert runtime.get(name) == version, f"{name}: pyproject {version}, requirements.txt {runtime.get(name)}"
    imported = third_party_imports((ROOT / "comet_server").rglob("*.py"))
    assert imported, "comet_server imports its libraries"
    for module, dists in distributions_of(imported).items():
        assert dists & declared.keys(), f"comet_server imports {module} ({dists or 'not installed'}), not in pyproject dependencies"


def test_every_installed_library_the_tests_and_benches_import_is_pinned():
    pinned = pins(ROOT / "requirements-dev.txt")
    assert pins(ROOT / "requirements.txt").items() <= pinned.items(), "requirements-dev.txt starts with -r requirements.txt"
    files = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").glob("*.py"), *(ROOT / "demo").rglob("*.py")]
    for module, dists in distributions_of(third_party_imports(files)).items():
        if not dists:
            continue  # browser-only (js, pyodide) or optional and not installed here
        assert dists & pinned.keys(), f"{module} is imported by tests/bench/demo but {dists} is not pinned in requirements-dev.txt"


def test_the_comet_py_wheel_config_has_no_dependencies_and_ships_every_module():
    project = BROWSER["project"]
    assert project["name"] == "comet_py"
    assert project["dependencies"] == []
    assert project["version"] == comet_py.__version__
    assert BROWSER["tool"]["setuptools"]["packages"] == ["comet_py"]
    assert BROWSER["tool"]["setuptools"]["package-data"] == {"comet_py": ["py.typed"]}
    # everything comet_py imports at run time is stdlib, its own modules or the browser's
    # (pyscript: PyScript's runtime module, tried only in a worker, for the page's visibility;
    # jsffi: MicroPython's FFI, imported only there)
    assert third_party_imports((ROOT / "comet_py").glob("*.py")) <= {"js", "pyodide", "pyscript", "jsffi"}
