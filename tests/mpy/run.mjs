// The MicroPython lane: runs tests/mpy/test_mpy_*.py under the vendored MicroPython
// (vendor/micropython/micropython.mjs, from scripts/setup.sh) in node.
//
// The sources go into MicroPython's in-memory FS: comet_py's modules under /repo/comet_py with an
// empty package __init__ (so that each module imports on its own: the real __init__ imports them
// all; it is mounted as comet_py/_package_init.py and reported like any other module), the tests
// under /repo/tests/mpy, and packaging/micropython/lib (the typing stand-in) under /lib, which is on
// MicroPython's sys.path as it is on a page.
//
// `async def` tests are awaited. Prints one line "MPY-RESULT <json>": {"imports": {module: null |
// error}, "tests": {module: {"import": null | error, "results": {test: null | error}}}}. Exit code
// 0 when the runner itself worked: tests/mpy/test_lane.py judges the results.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const { loadMicroPython } = await import(
  pathToFileURL(path.join(repo, "vendor", "micropython", "micropython.mjs")).href);

let out = "";
const mp = await loadMicroPython({
  heapsize: 32 * 1024 * 1024,
  linebuffer: true,
  stdout: (line) => { out += line + "\n"; },
  stderr: (line) => { process.stderr.write(line + "\n"); },
});

function mount(fromDir, toDir, keep, rename = (name) => name) {
  mp.FS.mkdirTree(toDir);
  for (const name of fs.readdirSync(fromDir).sort()) {
    if (keep(name)) mp.FS.writeFile(`${toDir}/${rename(name)}`, fs.readFileSync(path.join(fromDir, name)));
  }
}
const py = (name) => name.endsWith(".py");
mount(path.join(repo, "comet_py"), "/repo/comet_py", py,
  (name) => (name === "__init__.py" ? "_package_init.py" : name));
mp.FS.writeFile("/repo/comet_py/__init__.py", "");
mount(path.join(repo, "tests"), "/repo/tests", (name) => name === "__init__.py");
mount(path.join(repo, "tests", "mpy"), "/repo/tests/mpy",
  (name) => py(name) && name !== "test_lane.py");
mount(path.join(repo, "tests", "unit"), "/repo/tests/unit", (name) => name === "frames.py");
mount(path.join(repo, "packaging", "micropython", "lib"), "/lib", py);

const modules = fs.readdirSync(path.join(repo, "comet_py")).filter(py).sort()
  .map((name) => (name === "__init__.py" ? "_package_init" : name.slice(0, -3)));
const testModules = fs.readdirSync(path.join(repo, "tests", "mpy"))
  .filter((name) => /^test_mpy_.*\.py$/.test(name)).sort().map((name) => name.slice(0, -3));

mp.globals.set("MODULES", JSON.stringify(modules));
mp.globals.set("TEST_MODULES", JSON.stringify(testModules));
await mp.runPythonAsync(`
import io, json, sys
sys.path.insert(0, "/repo")

def _error(exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    return buf.getvalue()

imports = {}
for name in json.loads(MODULES):
    try:
        __import__("comet_py." + name)
        imports[name] = None
    except BaseException as exc:
        imports[name] = _error(exc)

tests = {}
for name in json.loads(TEST_MODULES):
    entry = {"import": None, "results": {}}
    tests[name] = entry
    try:
        module = __import__("tests.mpy." + name, None, None, ["x"])
    except BaseException as exc:
        entry["import"] = _error(exc)
        continue
    for test in sorted(dir(module)):
        fn = getattr(module, test)
        if test.startswith("test_") and callable(fn):
            try:
                result = fn()
                if hasattr(result, "send"):  # an async test: a coroutine is a generator here
                    await result
                entry["results"][test] = None
            except BaseException as exc:
                entry["results"][test] = _error(exc)

print("MPY-RESULT " + json.dumps({"imports": imports, "tests": tests}))
`);
process.stdout.write(out);
