"""Prepared statements (COM_STMT_PREPARE / EXECUTE / RESET / CLOSE / SEND_LONG_DATA) from the
clients backends use: mysql-connector-python in its pure and C (libmysqlclient) forms, and the
placeholder scanner / literal binder underneath."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from comet_server.cometql import prepared as P
from comet_server.cometql import sql as S
from comet_server.cometql.errors import CometQLError
from comet_server.cometql.packets import DecimalText

from .conftest import DB, PASSWORD, REPO, mysql_cli, ws_open, ws_recv, ws_sync

TEXT = "it's \"q\" back\\slash \\' nul\x00 ü 😀\n\ttab"


# --------------------------------------------------------------------------------------------
# the scanner and the binder


@pytest.mark.parametrize("sql, n", [
    ("SELECT ?", 1),
    ("INSERT INTO t (a, b) VALUES (?, ?)", 2),
    ("SELECT '?', \"?\", `?` FROM t WHERE a = ?", 1),
    ("SELECT 'it\\'s ?' , ?", 1),
    ("SELECT 'a''?''b', ?", 1),
    ("SELECT ? -- ?\n, ?", 2),
    ("SELECT ? # ?\n, ?", 2),
    ("SELECT ? /* ? */, ?", 2),
    ("SELECT ?--?", 2),                  # '--' without a space is not a comment in MySQL
    ("SELECT 'unterminated ?", 0),
])
def test_placeholders_are_found_outside_quotes_and_comments(sql, n):
    assert len(P.split_placeholders(sql)) == n + 1


def test_split_is_linear_on_hostile_text():
    import time
    for sql in ("'" + "\\'" * 40000, "?" * 60000, "/*" * 30000, "'a'" * 20000 + "?"):
        start = time.process_time()
        P.split_placeholders(sql)
        assert time.process_time() - start < 0.5


@pytest.mark.parametrize("value, literal", [
    (None, "NULL"), (5, "5"), (-5, " -5"), (True, "1"), (1.25, "1.25"), (-0.5, " -0.5"),
    (DecimalText("-12.50"), " -12.50"), (DecimalText("1; DROP"), "'1; DROP'"),
    ("a'b\\c", "'a\\'b\\\\c'"), (b"bin", "'bin'"),
])
def test_sql_literal(value, literal):
    assert P.sql_literal(value) == literal


def test_bad_values_are_refused_with_cometql_errors():
    for bad in (float("nan"), float("inf"), b"\xff\xfe", object()):
        with pytest.raises(CometQLError) as e:
            P.sql_literal(bad)
        assert e.value.code == 12
    with pytest.raises(CometQLError):
        P.bind(["a", "b"], [])


@pytest.mark.parametrize("template", [
    "INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)",       # one-regex path
    "INSERT INTO pipes_messages (event, name, message) VALUES (?, ?, ?)",       # fast INSERT path
    "INSERT INTO pipes_messages /* c */ (event, name, message) VALUES (?, ?, ?)",  # sqlglot
])
def test_bound_text_survives_every_parse_path(template):
    parts = P.split_placeholders(template)
    sql = P.bind(parts, ["e", "web_x", TEXT] if "(event" in template else ["web_x", "e", TEXT])
    hot = S.fast_publish(sql)
    st = S.fast_insert(sql) or S.parse(sql)
    assert hot is None or hot[3] == TEXT
    assert isinstance(st, S.Insert) and st.rows[0][st.columns.index("message")] == TEXT


# --------------------------------------------------------------------------------------------
# real clients

_CEXT_SCRIPT = r"""
import _mysql_connector   # first: the wheel's vendored OpenSSL 3.2 must load before Python's ssl
import json, sys
import mysql.connector
port, dev, text = int(sys.argv[1]), sys.argv[2], json.loads(sys.stdin.read())
c = mysql.connector.connect(host="127.0.0.1", port=port, user=dev, password=sys.argv[3],
                            database=sys.argv[4], use_pure=False, autocommit=True)
assert type(c).__name__ == "CMySQLConnection", type(c)
out = {}
cur = c.cursor(prepared=True)
for i in range(3):     # the same statement again and again (prepare, reset, execute)
    cur.execute("INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)",
                ("web_cext", "ev%d" % i, text))
cur.execute("SELECT name, users FROM pipes WHERE name = ?", ("web_cext",))
out["pipes"] = [list(r) for r in cur.fetchall()]
cur.execute("SELECT id FROM users_time WHERE id IN (?, ?)", (5, 6))
out["ids"] = sorted(r[0] for r in cur.fetchall())
try:
    cur.execute("SELECT * FROM pipes_messages", ())
except mysql.connector.Error as e:
    out["error"] = e.errno
cur.close()
c.ping()
print(json.dumps(out))
"""


def _cext_available() -> bool:
    r = subprocess.run([sys.executable, "-c", "import _mysql_connector, mysql.connector.connection_cext"],
                       capture_output=True)
    return r.returncode == 0


def test_mysql_connector_c_extension_prepares(server, dev):
    if not _cext_available():
        pytest.skip("mysql-connector-python C extension not importable")
    ws, _ = ws_open(server, dev_id=dev)
    try:
        ws.send("subscription\nweb_cext")
        ws_sync(ws)
        r = subprocess.run([sys.executable, "-c", _CEXT_SCRIPT, str(server.cometql_port), str(dev), PASSWORD,
                            DB], input=json.dumps(TEXT), capture_output=True, text=True, timeout=30, cwd=str(REPO))
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out == {"pipes": [["web_cext", 1]], "ids": [5, 6], "error": 13}
        for i in range(3):
            m = ws_recv(ws)
            assert m["event"] == f"ev{i}" and m["data"] == TEXT, m
    finally:
        ws.close()


def test_mysql_connector_pure_long_data_cursor_and_close(server, dev):
    mysql_connector = pytest.importorskip("mysql.connector")
    ws, _ = ws_open(server, dev_id=dev)
    conn = mysql_connector.connect(host="127.0.0.1", port=server.cometql_port, user=str(dev),
                                   password=PASSWORD, database=DB, use_pure=True, autocommit=True)
    try:
        ws.send("subscription\nweb_long")
        ws_sync(ws)
        cur = conn.cursor(prepared=True)
        big = ("x" * 1000 + TEXT) * 30
        # a file-like value goes through COM_STMT_SEND_LONG_DATA
        cur.execute("INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)",
                    ("web_long", "big", io.BytesIO(big.encode())))
        m = ws_recv(ws)
        assert m["event"] == "big" and m["data"] == big
        cur.close()                                         # COM_STMT_CLOSE: no reply expected
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT id FROM users_time WHERE id = ?", (42,))
        assert cur.fetchall() == [(42,)]
        conn.cmd_reset_connection()
        assert conn.is_connected()
    finally:
        conn.close()
        ws.close()


def test_mysqldb_publishes_with_its_own_escaping(server, dev):
    MySQLdb = pytest.importorskip("MySQLdb")
    ws, _ = ws_open(server, dev_id=dev)
    conn = MySQLdb.connect(host="127.0.0.1", port=server.cometql_port, user=str(dev), password=PASSWORD,
                           database=DB, charset="utf8mb4", autocommit=True)
    try:
        ws.send("subscription\nweb_mysqldb")
        ws_sync(ws)
        cur = conn.cursor()            # MySQLdb has no server-side prepare: it escapes client-side
        cur.execute("INSERT INTO pipes_messages (name, event, message) VALUES (%s, %s, %s)",
                    ("web_mysqldb", "e", TEXT))
        assert ws_recv(ws)["data"] == TEXT
        cur.execute("SELECT id FROM users_time WHERE id = %s", (9,))
        assert cur.fetchall() == ((9,),)
    finally:
        conn.close()
        ws.close()


def test_sql_prepare_statement_is_refused_clearly(server, dev):
    r = mysql_cli(server.cometql_port, "PREPARE s FROM 'SELECT 1'", dev_id=dev)
    assert r.returncode != 0 and "ERROR 2 " in r.stderr and "not supported" in r.stderr, r.stderr
