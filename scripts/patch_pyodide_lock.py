"""Rewrite pyodide-lock.json so the sha256 of every wheel present in the folder matches the file.

npm's pyodide ships no wheels; the ones we fetch from PyPI differ from Pyodide's own builds,
and the loader's SRI check would refuse them. The npm original is kept as pyodide-lock.orig.json.
"""

import hashlib
import json
import pathlib
import shutil
import sys

folder = pathlib.Path(sys.argv[1])
lock_path, orig_path = folder / "pyodide-lock.json", folder / "pyodide-lock.orig.json"
if not orig_path.exists():
    shutil.copy(lock_path, orig_path)
lock = json.loads(orig_path.read_text())
for entry in lock["packages"].values():
    wheel = folder / entry["file_name"]
    if wheel.exists():
        entry["sha256"] = hashlib.sha256(wheel.read_bytes()).hexdigest()
lock_path.write_text(json.dumps(lock))
