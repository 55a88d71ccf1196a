"""Build comet_py's bundle for MicroPython pages: one zip that pyscript-mpy.toml unpacks into
the page's working directory (on MicroPython's sys.path): comet_py/*.py and the typing stand-in.

Reproducible: sorted entries, fixed timestamps, so an unchanged source gives the same bytes.
Usage: python packaging/micropython/build_bundle.py OUT.zip  (scripts/setup.sh runs it)
"""

import pathlib
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def entries() -> "list[tuple[str, pathlib.Path]]":
    """(name in the zip, source file): every comet_py module, then the stand-ins of lib/."""
    found = [(f"comet_py/{p.name}", p) for p in sorted((ROOT / "comet_py").glob("*.py"))]
    found += [(p.name, p) for p in sorted((ROOT / "packaging" / "micropython" / "lib").glob("*.py"))]
    return found


def build(out: pathlib.Path) -> None:
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, src in entries():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, src.read_bytes())
    tmp.replace(out)


if __name__ == "__main__":
    build(pathlib.Path(sys.argv[1]))
