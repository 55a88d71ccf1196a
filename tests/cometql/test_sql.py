"""The statement parser: fast path and sqlglot agree, literals decode as MySQL, errors have codes."""

from __future__ import annotations

import pytest
import sqlglot

from comet_server.cometql import sql as S
from comet_server.cometql.errors import CometQLError

LITERALS = [
    (r"'plain'", "plain"),
    (r"'a''b'", "a'b"),
    (r"'a\'b'", "a'b"),
    (r'"a\"b"', 'a"b'),
    (r'"a""b"', 'a"b'),
    (r"""'a"b'""", 'a"b'),
    (r'''"a'b"''', "a'b"),
    (r"'a\"b'", 'a"b'),
    (r"'line1\nline2'", "line1\nline2"),
    (r"'back\\slash'", "back\\slash"),
    (r"'x\%y\_z'", "x\\%y\\_z"),
    (r"'\0\b\r\t\Z'", "\0\b\r\t\x1a"),
    (r"'\q'", "q"),
    (r"'ends with \\'", "ends with \\"),
    ("'unicode é 😀 \u2028'", "unicode é 😀 \u2028"),
    (r"""'{"k":"v \\"q\\""}'""", '{"k":"v \\"q\\""}'),
    ("''", ""),
    ('"multi\nline"', "multi\nline"),
]


@pytest.mark.parametrize("lit,expected", LITERALS)
def test_literal_decoding_fast_path_matches_mysql_and_sqlglot(lit, expected):
    q = f"INSERT INTO pipes_messages (name, event, message) VALUES ('web_x', 'e', {lit})"
    fast = S.fast_insert(q)
    assert fast is not None and fast.rows == [["web_x", "e", expected]]
    slow = S.parse(q)
    assert isinstance(slow, S.Insert) and slow.rows == fast.rows
    assert S.fast_publish(q) == ("pipes_messages", "web_x", "e", expected)


def test_fast_publish_shapes():
    assert S.fast_publish("insert into users_messages (id, event, message) values (7, \"e\", 'm');") == \
        ("users_messages", 7, "e", "m")
    assert S.fast_publish("INSERT INTO users_messages (id, event, message) VALUES ('7', 'e', 'm')") == \
        ("users_messages", "7", "e", "m")
    for q in ["INSERT INTO PIPES_MESSAGES (name, event, message) VALUES ('p', 'e', 'm')",
              "INSERT INTO pipes_messages (NAME, event, message) VALUES ('p', 'e', 'm')",
              "INSERT INTO pipes_messages (id, event, message) VALUES (1, 'e', 'm')",
              "INSERT INTO pipes_messages (name, event, message) VALUES ('p', 'e', 'm'), ('q', 'e', 'm')",
              "INSERT INTO pipes_messages (name, event, message) VALUES ('p', 'e', NULL)",
              "INSERT INTO pipes_messages (name, event, message) VALUES ('p', 'e', 'm'); SELECT 1"]:
        assert S.fast_publish(q) is None, q


def test_pymysql_escaping_round_trips():
    from pymysql.converters import escape_string
    for text in ["it's", 'say "hi"', "back\\slash", "nl\nz\x1a\0", "{\"a\":\"b'c\"}", "ünï 😀", "\\'", "%_"]:
        q = f"INSERT INTO users_data (id, data) VALUES (1, '{escape_string(text)}')"
        assert S.fast_insert(q).rows == [[1, text]]


def test_fast_path_shapes():
    st = S.fast_insert(" insert  into `users_messages` (id, index, `event`, 'message') values (3,'x',\"e\",'m'),"
                       " (4 , 'y', 'e', NULL) ; ")
    assert st == S.Insert("users_messages", None, ["id", "index", "event", "message"],
                          [[3, "x", "e", "m"], [4, "y", "e", None]])
    assert S.fast_insert("REPLACE INTO CometQL_v1.users_data (id, data) VALUES (-7, 1.50)") == \
        S.Insert("users_data", "CometQL_v1", ["id", "data"], [[-7, "1.50"]])


@pytest.mark.parametrize("q", [
    "INSERT INTO t (a) VALUES ('x'); DELETE FROM users_auth WHERE id=1",   # second statement
    "INSERT INTO t (a) VALUES ('x' 'y')",                                   # adjacent strings
    "INSERT INTO t (a) VALUES (CONCAT('x'))",
    "INSERT INTO t (a) VALUES ('unterminated)",
    "INSERT INTO t (a) VALUES ('x') -- comment",
    "INSERT INTO t SET a = 'x'",
    "INSERT INTO t (a) SELECT 1",
])
def test_fast_path_declines_anything_fancier(q):
    assert S.fast_insert(q) is None


def test_pinned_versions():
    # server.py subclasses mysql-mimic internals and sql.py reads sqlglot AST shapes (e.g.
    # Select.args["from_"]) of these versions; requirements.txt pins both.
    from mysql_mimic.version import __version__ as mimic_version

    from comet_server.cometql.server import TESTED_MYSQL_MIMIC
    assert sqlglot.__version__.startswith("30.30.")
    assert mimic_version == TESTED_MYSQL_MIMIC == "3.0.5"


@pytest.mark.parametrize("q,code", [
    ("SELECT * FROM pipes_messages WHERE name = 'a' OR name = 'b'", 2),
    ("SELECT * FROM pipes_messages WHERE name = 'a' ORDER BY id", 2),
    ("SELECT * FROM pipes_messages WHERE name = 'a' AND (id = '1' OR id = '2')", 2),
    ("SELECT * FROM pipes_messages WHERE name LIKE 'a%'", 2),
    ("SELECT * FROM pipes_messages WHERE name = 'a' GROUP BY id", 2),
    ("SELECT * FROM a, b WHERE id = 1", 2),
    ("SELECT * FROM users_auth WHERE id = 1 UNION SELECT * FROM users_auth WHERE id = 2", 2),
    ("UPDATE users_auth SET hash = 'x' WHERE id = 1", 2),
    ("DROP TABLE users_auth", 2),
    ("KILL 1", 2),
    ("SELECT 1; SELECT 2", 2),
    ("SELECT REPEAT('a', 1000000000)", 2),
    ("SELECT 1 << 100000000", 2),
    ("SELECT * FROM pipes_messages WHERE name = (SELECT 1)", 2),
    ("selec * from x", 3),
    ("SELECT * FROM", 3),
    ("INSERT INTO pipes_messages (name, event, message) VALUES ('a', 'b'", 3),
    ("'", 3),
    ("SELECT count(*) FROM pipes WHERE name = 'x'", 14),
    ("SELECT * FROM users_time WHERE id = 1 AND id = 2", 14),
    ("INSERT INTO users_auth VALUES (1, 'x')", 14),
    ("SELECT * FROM users_time WHERE id IN (" + ",".join(["1"] * 1001) + ")", 19),
    ("SELECT * FROM users_time WHERE " + " AND ".join(f"c{i} = 1" for i in range(11)), 18),
])
def test_parse_errors(q, code):
    with pytest.raises(CometQLError) as ei:
        st = S.fast_insert(q)
        if st is None:
            S.parse(q)
    assert ei.value.code == code, ei.value.msg


def test_deep_nesting_is_a_syntax_error_not_a_crash():
    q = "SELECT * FROM users_time WHERE " + "(" * 1400 + "id = 1" + ")" * 1400
    with pytest.raises(CometQLError) as ei:
        S.parse(q)
    assert ei.value.code in (2, 3)
    q = "SELECT * FROM users_time WHERE " + "(" * 5000 + "id = 1" + ")" * 5000
    with pytest.raises(CometQLError) as ei:
        S.parse(q)
    assert ei.value.code == 11            # refused before sqlglot: too many tokens


def test_select_and_delete_shapes():
    st = S.parse("select `name`, 'users' from CometQL_v1.pipes where name in ('a', \"b\") and users = -1 limit 5")
    assert st == S.Select("pipes", "CometQL_v1", ["name", "users"],
                          [S.Cond("name", ["a", "b"]), S.Cond("users", [-1])], 5)
    assert S.parse("DELETE FROM users_auth WHERE (id = 3)") == S.Delete("users_auth", None, [S.Cond("id", [3])])
    assert S.parse("SELECT @@version_comment LIMIT 1") is S.PASS
    assert S.parse("SET NAMES utf8mb4") is S.PASS
    assert S.parse("SHOW FULL TABLES") == S.Show("TABLES", full=True)
    assert S.parse("DESCRIBE users_auth") == S.Show("COLUMNS", target="users_auth")
