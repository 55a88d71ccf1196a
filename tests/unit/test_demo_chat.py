"""demo/chat/chat.py's check of display names, which has its own table of hidden characters
because MicroPython has no unicodedata. The page module imports ``js``, so only the table and
the function are taken from its source; tests/e2e/test_demo.py checks them on both interpreters."""

import ast
import pathlib
import unicodedata

CHAT = pathlib.Path(__file__).resolve().parents[2] / "demo" / "chat" / "chat.py"
HIDDEN_CATEGORIES = ("Cc", "Cf", "Co", "Cs")


def _load() -> dict:
    tree = ast.parse(CHAT.read_text())
    wanted = [node for node in tree.body
              if (isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["HIDDEN_RANGES"])
              or (isinstance(node, ast.FunctionDef) and node.name == "is_hidden")]
    assert len(wanted) == 2, "chat.py defines HIDDEN_RANGES and is_hidden at module level"
    namespace: dict = {}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(CHAT), "exec"), namespace)
    return namespace


def test_the_table_is_the_hidden_categories_of_unicode():
    ns = _load()
    table = bytearray(0x110000)
    for first, last in ns["HIDDEN_RANGES"]:
        assert first <= last
        table[first:last + 1] = b"\1" * (last - first + 1)
    for cp in range(0x110000):
        category = unicodedata.category(chr(cp))
        if category in HIDDEN_CATEGORIES:
            assert table[cp], f"U+{cp:04X} ({category}) is missing"
        elif table[cp]:
            # The table is of Unicode 16 (Pyodide's); CPython 3.11 has Unicode 14, where the
            # format characters added since are still unassigned.
            assert category == "Cn" and unicodedata.unidata_version < "16", f"U+{cp:04X} is {category}"


def test_is_hidden_refuses_controls_and_invisibles_and_keeps_letters_of_any_script():
    is_hidden = _load()["is_hidden"]
    for char in "\x00\x07\x1b\x7f\x85\u00ad\u200b\u200e\u202e\u2066\ufeff\ue000\U000e0041\U0010fffd":
        assert is_hidden(char), f"U+{ord(char):04X}"
    for char in "aZ9 ëß\u0645\u05d0\u4e2d\U0001f600-_.":
        assert not is_hidden(char), f"U+{ord(char):04X}"
