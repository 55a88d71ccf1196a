"""Every CometQL table and statement through PyMySQL, against CometQL in-process (real Hub and
Store, in-memory db). What a backend developer sees: rows, affected-row counts, error codes."""

from __future__ import annotations

import time
import warnings

import jwt
import pymysql
import pytest

from .conftest import DB, PASSWORD, connect_db


@pytest.fixture
def db(cq, dev):
    conn = connect_db(cq.port, dev)
    yield conn.cursor()
    conn.close()


def q(cur, sql, args=None):
    n = cur.execute(sql, args)
    return n, cur.fetchall()


def err(cur, sql, args=None) -> int:
    with pytest.raises(pymysql.MySQLError) as ei:
        cur.execute(sql, args)
    return ei.value.args[0]


# ---------------------------------------------------------------------------------------------
# pipes_messages / pipes_settings

def test_pipes_settings_and_history(db):
    assert q(db, "INSERT INTO pipes_settings (name, length) VALUES ('web_log', 3)")[0] == 1
    assert q(db, "SELECT * FROM pipes_settings WHERE name = 'web_log'")[1] == (("web_log", 3),)
    for i in range(4):
        db.execute("INSERT INTO pipes_messages (name, event, message) VALUES (%s, %s, %s)",
                   ("web_log", f"e{i}", f'{{"i":{i}}}'))
    n, rows = q(db, "SELECT * FROM pipes_messages WHERE name = 'web_log'")
    assert n == 3
    assert [r[4] for r in rows] == ["e1", "e2", "e3"]                 # newest 3, oldest first
    assert [r[5] for r in rows] == ['{"i":1}', '{"i":2}', '{"i":3}']
    assert [r[2] for r in rows] == ["web_log"] * 3 and [r[3] for r in rows] == [0, 1, 2]
    assert all(abs(r[1] - time.time()) < 10 and r[6] == 0 for r in rows)
    ids = [r[0] for r in rows]
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert [d[0] for d in db.description] == ["id", "time", "name", "index", "event", "message", "user_id"]

    # column subset, extra filter, LIMIT, IN
    assert q(db, "SELECT event, message FROM pipes_messages WHERE name = 'web_log' AND event = 'e2'")[1] == \
        (("e2", '{"i":2}'),)
    assert q(db, "SELECT event FROM pipes_messages WHERE name IN ('web_log', 'web_none') LIMIT 2")[1] == \
        (("e1",), ("e2",))

    # DELETE one by id, then all by name (also rows written in the same second)
    assert q(db, f"DELETE FROM pipes_messages WHERE id = '{ids[0]}'")[0] == 1
    assert q(db, "DELETE FROM pipes_messages WHERE id IN ('99999999999999999999999', 'x', '')")[0] == 0
    assert [r[4] for r in q(db, "SELECT * FROM pipes_messages WHERE name = 'web_log'")[1]] == ["e2", "e3"]
    db.execute("INSERT INTO pipes_messages (name, event, message) VALUES ('web_log', 'e4', 'same second')")
    assert q(db, "DELETE FROM pipes_messages WHERE name = 'web_log'")[0] == 3
    assert q(db, "SELECT * FROM pipes_messages WHERE name = 'web_log'") == (0, ())

    # settings delete also clears the log; an unset pipe reads as length 0
    db.execute("INSERT INTO pipes_messages (name, event, message) VALUES ('web_log', 'e5', 'x')")
    assert q(db, "DELETE FROM pipes_settings WHERE name = 'web_log'")[0] == 1
    assert q(db, "SELECT * FROM pipes_settings WHERE name = 'web_log'")[1] == (("web_log", 0),)
    assert q(db, "SELECT * FROM pipes_messages WHERE name = 'web_log'")[0] == 0


def test_pipes_settings_limits(db):
    assert q(db, "INSERT INTO pipes_settings (name, length) VALUES ('web_max', 1000)")[0] == 1
    assert err(db, "INSERT INTO pipes_settings (name, length) VALUES ('web_max', 1001)") == 11
    assert err(db, "INSERT INTO pipes_settings (name, length) VALUES ('web_max', -1)") == 12
    assert err(db, "INSERT INTO pipes_settings (name, length) VALUES ('web_max', 'ten')") == 12
    assert q(db, "SELECT length FROM pipes_settings WHERE name = 'web_max'")[1] == ((1000,),)


def test_pipes_messages_insert_validation(db):
    ok = "INSERT INTO pipes_messages (name, event, message) VALUES (%s, %s, %s)"
    assert err(db, ok, ("ab", "e", "m")) == 17                 # name < 3
    assert err(db, ok, ("a" * 65, "e", "m")) == 11             # name > 64
    assert err(db, ok, ("bad.name", "e", "m")) == 12           # bad characters
    assert err(db, ok, ("web_x", "bad event", "m")) == 12
    assert err(db, ok, ("web_x", "e" * 65, "m")) == 11
    assert err(db, ok, ("web_x", "e", None)) == 12             # NULL
    assert err(db, "INSERT INTO pipes_messages (name, event) VALUES ('web_x', 'e')") == 12   # missing column
    assert err(db, "INSERT INTO pipes_messages (name, event, message, nope) VALUES ('web_x', 'e', 'm', 1)") == 14
    assert err(db, "INSERT INTO pipes_messages (name, event, message) VALUES ('web_x', 'e')") == 14
    assert err(db, "INSERT INTO pipes_messages (name, name, message) VALUES ('web_x', 'e', 'm')") == 14
    assert err(db, "INSERT INTO pipes_messages (Name, event, message) VALUES ('web_x', 'e', 'm')") == 14
    assert err(db, "SELECT * FROM pipes_messages") == 13
    assert err(db, "SELECT * FROM pipes_messages WHERE event = 'e'") == 13
    assert err(db, "DELETE FROM pipes_messages") == 13
    # a rejected multi-row INSERT changes nothing
    assert err(db, "INSERT INTO pipes_settings (name, length) VALUES ('web_ok', 5), ('bad!', 5)") == 12
    assert q(db, "SELECT * FROM pipes_settings WHERE name = 'web_ok'")[1] == (("web_ok", 0),)


def test_insert_reports_deliveries(cq, db, dev):
    # no subscriber: 0 deliveries (CppComet always reports 0)
    assert q(db, "INSERT INTO pipes_messages (name, event, message) VALUES ('web_nobody', 'e', 'm')")[0] == 0


# ---------------------------------------------------------------------------------------------
# users_*

def test_users_auth(cq, db, dev):
    n = db.execute("INSERT INTO users_auth (id, hash) VALUES (12, 'hash1'), (13, 'a+b/c=d_E9')")
    assert n == 2 and db.lastrowid == 13
    assert q(db, "SELECT * FROM users_auth WHERE id IN (12, 13, 14)")[1] == ((12, "hash1"), (13, "a+b/c=d_E9"))
    db.execute("INSERT INTO users_auth (id, hash) VALUES (12, 'hash2')")        # replaces
    assert q(db, "SELECT hash FROM users_auth WHERE id = 12")[1] == (("hash2",),)
    assert cq.call(cq.store.get_user_hash, dev, 12) == "hash2"
    assert q(db, "DELETE FROM users_auth WHERE id = 12")[0] == 1
    assert q(db, "SELECT * FROM users_auth WHERE id = 12") == (0, ())
    assert err(db, "INSERT INTO users_auth (id, hash) VALUES (0, 'x')") == 12
    assert err(db, "INSERT INTO users_auth (id, hash) VALUES (-3, 'x')") == 12
    assert err(db, "INSERT INTO users_auth (id, hash) VALUES (5, %s)", ("x" * 33,)) == 11
    assert err(db, "INSERT INTO users_auth (id, hash) VALUES (5, 'bad-hash')") == 12
    assert err(db, "INSERT INTO users_auth (id, hash) VALUES (5, '')") == 17
    assert err(db, "SELECT * FROM users_auth") == 13
    assert err(db, "DELETE FROM users_auth WHERE hash = 'x'") == 13


def test_users_messages_queue(cq, db, dev):
    n = db.execute("INSERT INTO users_messages (id, event, message) VALUES (7, 'chat', %s)", ("it's 1",))
    assert n == 0 and db.lastrowid == 7                      # 0 live deliveries: queued
    db.execute("INSERT INTO users_messages (id, index, event, message) VALUES (7, 'ignored', 'chat', '2')")
    rows = q(db, "SELECT * FROM users_messages WHERE id = 7")[1]
    assert [(r[0], r[2], r[3]) for r in rows] == [(7, "chat", "it's 1"), (7, "chat", "2")]
    assert [d[0] for d in db.description] == ["id", "index", "event", "message"]
    first_index = rows[0][1]
    assert q(db, "DELETE FROM users_messages WHERE id = 7 AND `index` = %s", (first_index,))[0] == 1
    assert [r[3] for r in q(db, "SELECT * FROM users_messages WHERE id = 7")[1]] == ["2"]
    db.execute("INSERT INTO users_messages (id, event, message) VALUES (7, 'chat', 'same second')")
    assert q(db, "DELETE FROM users_messages WHERE id = 7")[0] == 2            # nothing survives
    assert q(db, "SELECT * FROM users_messages WHERE id = 7") == (0, ())
    assert err(db, "INSERT INTO users_messages (id, event, message) VALUES (0, 'e', 'm')") == 12
    assert err(db, "SELECT * FROM users_messages") == 13


def test_users_time_and_data(cq, db, dev):
    cq.call(cq.store.set_user_time, dev, 21, 1_700_000_000)
    assert q(db, "SELECT * FROM users_time WHERE id IN (21, 22)")[1] == ((21, 1_700_000_000), (22, -1))
    assert err(db, "INSERT INTO users_time (id, time) VALUES (1, 0)") == 10
    assert err(db, "DELETE FROM users_time WHERE id = 1") == 10

    db.execute("INSERT INTO users_data (id, data) VALUES (7, %s)", ('{"name":"Seven"}',))
    assert q(db, "SELECT * FROM users_data WHERE id = 7")[1] == ((7, '{"name":"Seven"}'),)
    db.execute("INSERT INTO users_data (id, data) VALUES (7, 'replaced')")
    assert q(db, "SELECT data FROM users_data WHERE id IN (7, 8)")[1] == (("replaced",),)
    assert q(db, "DELETE FROM users_data WHERE id = 7")[0] == 1
    assert q(db, "SELECT * FROM users_data WHERE id = 7") == (0, ())


def _jwt(dev: int, user_id, exp_in: int = 3600, secret: str | None = None) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode({"user_id": user_id, "exp": int(time.time()) + exp_in},
                      secret if secret is not None else PASSWORD + str(dev), algorithm="HS256")


def test_revoked_tokens(cq, db, dev):
    good = _jwt(dev, 5)
    db.execute("INSERT INTO users_auth (id, hash) VALUES (5, 'hash5')")
    assert q(db, "SELECT * FROM revoked_tokens") == (0, ())
    assert db.execute("INSERT INTO revoked_tokens (token) VALUES (%s)", (good,)) == 1
    # a valid token of user 5: that user's hash is gone too
    assert q(db, "SELECT * FROM users_auth WHERE id = 5") == (0, ())
    assert q(db, "SELECT * FROM revoked_tokens WHERE token = %s", (good,))[1] == ((good,),)
    # an invalid token (wrong secret) is stored but touches no user
    db.execute("INSERT INTO users_auth (id, hash) VALUES (6, 'hash6')")
    bad = _jwt(dev, 6, secret="wrong")
    db.execute("INSERT INTO revoked_tokens (token) VALUES (%s)", (bad,))
    assert q(db, "SELECT * FROM users_auth WHERE id = 6")[0] == 1
    assert q(db, "SELECT * FROM revoked_tokens")[1] == ((good,), (bad,))     # no WHERE: all of this dev_id
    assert q(db, "DELETE FROM revoked_tokens WHERE token = %s", (good,))[0] == 1
    assert q(db, "SELECT * FROM revoked_tokens WHERE token IN (%s, %s)", (good, bad))[1] == ((bad,),)
    assert err(db, "INSERT INTO revoked_tokens (token) VALUES ('')") == 17


def test_pipes_and_users_in_pipes_read_only(db):
    assert q(db, "SELECT * FROM pipes WHERE name IN ('web_a', 'web_b')")[1] == (("web_a", 0), ("web_b", 0))
    assert q(db, "SELECT * FROM pipes")[0] == 0                       # no WHERE: every subscribed channel
    assert q(db, "SELECT * FROM users_in_pipes WHERE name = 'web_a'") == (0, ())
    assert [d[0] for d in db.description] == ["name", "user_id", "user_uuid", "user_agent", "ip", "origin",
                                              "language"]
    assert err(db, "SELECT * FROM users_in_pipes") == 13
    assert err(db, "INSERT INTO pipes (name, users) VALUES ('web_a', 1)") == 10
    assert err(db, "DELETE FROM users_in_pipes WHERE name = 'web_a'") == 10


def test_tables_are_per_dev_id(cq, dev):
    a, b = connect_db(cq.port, dev), connect_db(cq.port, dev + 1)
    try:
        a.cursor().execute("INSERT INTO users_data (id, data) VALUES (1, 'mine')")
        cur = b.cursor()
        assert cur.execute("SELECT * FROM users_data WHERE id = 1") == 0
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------------------------
# client compatibility statements

def test_client_statements(db):
    assert q(db, "SELECT @@version_comment LIMIT 1")[1][0][0].startswith("comet_server")
    assert q(db, "SELECT DATABASE()")[1] == ((DB,),)
    assert q(db, "SELECT 1")[1] == ((1,),)
    assert q(db, "SET NAMES utf8mb4")[0] == 0
    assert q(db, "SET autocommit = 1")[0] == 0
    assert q(db, "SHOW DATABASES")[1] == ((DB,),)
    tables = [r[0] for r in q(db, "SHOW TABLES")[1]]
    assert db.description[0][0] == f"Tables_in_{DB}"
    assert set(tables) == {"pipes_messages", "pipes_settings", "users_messages", "users_auth", "users_time",
                           "users_data", "revoked_tokens", "pipes", "users_in_pipes"}
    assert q(db, "SHOW TABLES LIKE 'users\\_%'")[0] == 5
    assert q(db, "DESCRIBE users_auth")[1] == (("id", "int(11)", "NO", "PRI", None, ""),
                                               ("hash", "varchar(32)", "NO", "", None, ""))
    assert [r[0] for r in q(db, "SHOW COLUMNS FROM pipes_messages")[1]] == \
        ["id", "time", "name", "index", "event", "message", "user_id"]
    assert q(db, "SHOW FULL COLUMNS FROM users_auth")[0] == 2
    assert q(db, "SHOW VARIABLES LIKE 'version'")[1] == (("version", "5.7.99-comet_server"),)
    assert q(db, "SHOW WARNINGS")[0] == 0
    assert q(db, "SHOW TABLE STATUS")[0] == 9
    assert q(db, "SHOW PROCESSLIST")[0] == 0
    # what common drivers send while connecting (Connector/J, connector-python, SQLAlchemy, Go)
    for sql in ["/* mysql-connector-java */SELECT @@session.auto_increment_increment AS auto_increment_increment, "
                "@@character_set_client AS character_set_client, @@wait_timeout AS wait_timeout",
                "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'", "SET @@session.autocommit = OFF",
                "SELECT @@max_allowed_packet", "SELECT VERSION()", "SELECT @@transaction_isolation",
                "SHOW VARIABLES LIKE 'sql_mode'", "SELECT CONNECTION_ID()", "SELECT USER()", "START TRANSACTION",
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'CometQL_v1'"]:
        db.execute(sql)
    assert err(db, "SHOW ENGINES") == 2
    assert err(db, "SELECT CAST('x' AS CHAR(60))") == 2
    db.connection.commit()
    db.connection.rollback()
    db.connection.ping()
    assert err(db, "SELECT * FROM nope WHERE id = 1") == 15
    assert err(db, "DESCRIBE nope") == 15
    assert err(db, "SELECT * FROM other_db.users_auth WHERE id = 1") == 15
    assert err(db, "SELECT * FROM conference WHERE id = 1") == 2
    assert err(db, "SELECT * FROM USERS_AUTH WHERE id = 1") == 15


def test_server_version_parses(cq, dev):
    conn = connect_db(cq.port, dev)
    try:
        assert conn.get_server_info() == "5.7.99-comet_server"
        assert conn._server_version_tuple()[:2] if hasattr(conn, "_server_version_tuple") else True
        assert not (conn.server_capabilities & pymysql.constants.CLIENT.SSL)     # TLS not advertised
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# errors and robustness

def test_error_codes_and_the_connection_keeps_working(db):
    cases = [
        ("SELECT * FROM users_auth WHERE id = 1 OR id = 2", 2),
        ("SELECT * FROM pipes_messages WHERE name = 'web_x' ORDER BY id", 2),
        ("UPDATE users_auth SET hash = 'x' WHERE id = 1", 2),
        ("SELEKT * FROM users_auth", 3),
        ("INSERT INTO pipes_messages (name, event, message) VALUES ('web_x', 'e', 'unterminated)", 3),
        ("SELECT * FROM users_time WHERE id = 'abc'", 12),
        ("SELECT * FROM pipes_messages WHERE name = 'bad name!'", 12),
        ("SELECT nope FROM users_auth WHERE id = 1", 14),
        ("abc", 17),
        ("", 17),
        ("x" * 70000, 11),
        ("SELECT * FROM users_time WHERE id IN (" + ",".join(["1"] * 1001) + ")", 19),
        ("SELECT 1; SELECT 2", 2),
        ("KILL 1", 2),
        ("SELECT * FROM users_time WHERE " + "(" * 3000 + "id = 1" + ")" * 3000, None),
        ("\x00\x01\x02 garbage \xff", 3),
        ("SELECT * FROM users_time WHERE id = 99999999999999999999999", 11),
        ("INSERT INTO users_messages (id, event, message) VALUES (99999999999999999999999, 'e', 'm')", 11),
        ("INSERT INTO users_auth (id, hash) VALUES (-99999999999999999999999, 'h')", 11),
    ]
    for sql, code in cases:
        got = err(db, sql)
        if code is not None:
            assert got == code, (sql[:80], got)
        # the same connection answers the next query normally
        assert q(db, "SELECT * FROM users_time WHERE id = 1")[1] == ((1, -1),)


def test_no_database_selected(cq, dev):
    conn = connect_db(cq.port, dev, database=None)
    cur = conn.cursor()
    try:
        assert err(cur, "SELECT * FROM users_time WHERE id = 1") == 15
        assert err(cur, "INSERT INTO pipes_messages (name, event, message) VALUES ('web_x', 'e', 'm')") == 15
        assert err(cur, "SHOW TABLES") == 15
        assert q(cur, "SELECT 1")[1] == ((1,),)
        with pytest.raises(pymysql.MySQLError) as ei:
            conn.select_db("nope")
        assert ei.value.args[0] == 15
        conn.select_db(DB)                                   # COM_INIT_DB
        assert q(cur, "SELECT * FROM users_time WHERE id = 1")[1] == ((1, -1),)
        assert q(cur, "SELECT * FROM CometQL_v1.users_time WHERE id = 2")[1] == ((2, -1),)
    finally:
        conn.close()
    conn = connect_db(cq.port, dev, database=None)
    try:
        cur = conn.cursor()
        cur.execute("USE CometQL_v1")                         # SQL USE
        assert q(cur, "SELECT * FROM users_time WHERE id = 1")[1] == ((1, -1),)
        assert err(cur, "USE mysql") == 15
        assert q(cur, "SELECT DATABASE()")[1] == ((DB,),)
    finally:
        conn.close()


def test_users_root_and_zero_are_dev_id_0(cq):
    for user in ("root", "0"):
        conn = connect_db(cq.port, user)
        try:
            conn.cursor().execute("INSERT INTO users_data (id, data) VALUES (1, %s)", (user,))
        finally:
            conn.close()
    assert cq.call(cq.store.get_user_data, 0, 1) == "0"


def test_many_statements_fast(cq, dev):
    conn = connect_db(cq.port, dev)
    cur = conn.cursor()
    t0 = time.perf_counter()
    for i in range(500):
        cur.execute("INSERT INTO pipes_messages (name, event, message) VALUES (%s, %s, %s)", ("web_speed", "e", str(i)))
    assert time.perf_counter() - t0 < 5
    conn.close()


def test_concurrent_clients(cq, dev):
    """4 connections inserting and selecting at once: every statement answered, nothing lost."""
    import threading
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            conn = connect_db(cq.port, dev)
            cur = conn.cursor()
            for i in range(150):
                cur.execute("INSERT INTO users_messages (id, event, message) VALUES (%s, 'e', %s)", (k + 1, str(i)))
                if i % 10 == 0:
                    cur.execute("SELECT * FROM users_time WHERE id IN (1, 2, 3)")
                    assert len(cur.fetchall()) == 3
            conn.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    for k in range(4):
        msgs = cq.call(cq.store.queued_user_messages, dev, k + 1)
        assert [m.data for m in msgs] == [str(i) for i in range(150)]


def test_mangled_queries_never_give_internal_errors(cq, dev):
    """Valid statements with random tokens inserted/deleted: every answer is a CometQL code (or a
    result), never 500, and the connection keeps working."""
    import random
    rnd = random.Random(7)
    base = ["INSERT INTO pipes_messages (name, event, message) VALUES ('web_a', 'e', 'm')",
            "INSERT INTO users_messages (id, event, message) VALUES (3, 'e', 'm')",
            "SELECT * FROM pipes_messages WHERE name IN ('web_a', 'web_b') LIMIT 3",
            "SELECT id, hash FROM users_auth WHERE id IN (1, 2) AND hash = 'x'",
            "DELETE FROM users_messages WHERE id = 3 AND `index` = '1'",
            "SELECT * FROM revoked_tokens", "SHOW COLUMNS FROM users_auth LIKE 'h%'",
            "SELECT @@version_comment LIMIT 1", "DESCRIBE pipes",
            "DELETE FROM pipes_messages WHERE name = 'web_a' AND event = 'e'"]
    toks = list("'\"`()=,;*-+.\\%_ \n") + ["OR", "AND", "IN", "NULL", "SELECT", "FROM", "WHERE", "0x1f", "1e999",
                                            "@@x", "/*", "*/", "--", "é", "\x00", "LIMIT", "ORDER BY",
                                            "99999999999999999999", "-1", "''"]
    conn = connect_db(cq.port, dev)
    cur = conn.cursor()
    try:
        for _ in range(1500):
            chars = list(rnd.choice(base))
            for _ in range(rnd.randint(1, 4)):
                p = rnd.randrange(len(chars) + 1)
                if rnd.random() < 0.5:
                    chars.insert(p, rnd.choice(toks))
                else:
                    chars[p:p + rnd.randint(0, 5)] = [rnd.choice(toks)]
            sql = "".join(chars)
            try:
                cur.execute(sql)
                cur.fetchall()
            except pymysql.MySQLError as e:
                assert e.args[0] in (2, 3, 10, 11, 12, 13, 14, 15, 17, 18, 19, 1193), (sql, e.args)
        assert cur.execute("SELECT * FROM users_time WHERE id = 1") == 1
    finally:
        conn.close()


def test_internal_error_is_500_and_the_connection_survives(cq, db):
    store = cq.store

    def broken(*a, **kw):
        raise RuntimeError("disk on fire")

    cq.call(setattr, store, "get_user_data", broken)
    try:
        assert err(db, "SELECT * FROM users_data WHERE id = 1") == 500
    finally:
        cq.call(delattr, store, "get_user_data")
    assert q(db, "SELECT * FROM users_data WHERE id = 1") == (0, ())
