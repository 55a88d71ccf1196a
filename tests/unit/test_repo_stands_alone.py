"""The repository stands alone: nothing in it points at files that only exist next to it.

The project was written with reference material in a sibling folder (specs, the JS API seed, a
load generator). Whoever clones the repo has none of it, so no tracked file may refer to it.
"""

import pathlib
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Built from parts so that this file does not match itself.
OUTSIDE = "shared"
FORBIDDEN = ["../" + OUTSIDE, "/work/" + OUTSIDE] + [f"{OUTSIDE}/{d}" for d in ("spec", "seed", "tools", "notes")]
# Not in git (see .gitignore): the venv, vendored npm packages, build output.
UNTRACKED_DIRS = {".git", ".venv", "vendor", "node_modules", "build", "dist", "__pycache__", "test-results"}


def tracked_files() -> list[pathlib.Path]:
    if shutil.which("git") and (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [ROOT / p for p in out.decode().split("\0") if p]
    # No git (a bare machine that got the tree another way): everything outside the ignored dirs.
    return [p for p in ROOT.rglob("*")
            if p.is_file() and not UNTRACKED_DIRS & set(p.relative_to(ROOT).parts)]


def test_no_tracked_file_points_outside_the_repository():
    files = tracked_files()
    assert len(files) > 50, "expected the whole tree"
    hits = []
    for path in files:
        if not path.is_file():
            continue  # deleted in the work tree, not yet committed
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images, favicon
        for lineno, line in enumerate(text.splitlines(), 1):
            for needle in FORBIDDEN:
                if needle in line:
                    hits.append(f"{path.relative_to(ROOT)}:{lineno}: {needle}")
    assert not hits, "files point outside the repository:\n" + "\n".join(hits)


def test_the_docs_the_readme_links_to_exist():
    readme = (ROOT / "README.md").read_text()
    for doc in ("docs/api.md", "docs/protocol.md", "docs/design.md", "bench/README.md"):
        assert f"({doc})" in readme, f"README links {doc}"
        assert (ROOT / doc).is_file(), doc
    assert (ROOT / "bench" / "cometload.py").is_file()
