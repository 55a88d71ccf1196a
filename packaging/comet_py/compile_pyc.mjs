// Byte-compiles comet_py for the vendored Pyodide, with Pyodide's own Python (run by node), so
// that a page does not compile the modules at every load (bench/README.md §1).
//
//   node packaging/comet_py/compile_pyc.mjs PYODIDE_DIR SOURCE_DIR OUT_DIR
//
// Each SOURCE_DIR/*.py becomes OUT_DIR/<module>.<cache tag>.pyc (e.g. api.cpython-314.pyc),
// which pyscript.toml maps into comet_py/__pycache__/. They are "checked-hash" pycs: Python
// compares the hash of the .py beside them and compiles the source itself when it changed, so
// a stale .pyc costs time, never correctness.
import fs from "node:fs";
import path from "node:path";

const [pyodideDir, sourceDir, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: node compile_pyc.mjs PYODIDE_DIR SOURCE_DIR OUT_DIR");
  process.exit(2);
}
const { loadPyodide } = await import(path.resolve(pyodideDir, "pyodide.mjs"));
const pyodide = await loadPyodide({ indexURL: path.resolve(pyodideDir) + "/" });
const work = "/tmp/comet_py";
pyodide.FS.mkdirTree(work);
for (const name of fs.readdirSync(sourceDir).filter((n) => n.endsWith(".py"))) {
  pyodide.FS.writeFile(`${work}/${name}`, fs.readFileSync(path.join(sourceDir, name)));
}
const compiled = pyodide.runPython(`
import compileall, importlib.util, os, py_compile
ok = compileall.compile_dir(${JSON.stringify(work)}, quiet=1, maxlevels=0,
                            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
if not ok:
    raise SystemExit("comet_py: a module does not compile")
[importlib.util.cache_from_source(f"${work}/{n}") for n in sorted(os.listdir(${JSON.stringify(work)})) if n.endswith(".py")]
`).toJs();
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
for (const pyc of compiled) {
  fs.writeFileSync(path.join(outDir, path.basename(pyc)), pyodide.FS.readFile(pyc));
}
console.log(`compiled ${compiled.length} modules for Python ${pyodide.runPython("import sys; sys.version.split()[0]")}`);
