"""SHOW STATUS: the (Variable_name, Value) rows a MySQL client expects, with comet_server's
counters (CppComet's PHP example runs this query)."""

from __future__ import annotations

from .conftest import connect_db, mysql_cli, ws_open, ws_sync


def _status(cur, sql: str = "SHOW STATUS") -> dict[str, int]:
    cur.execute(sql)
    assert [d[0] for d in cur.description] == ["Variable_name", "Value"]
    return {name: int(value) for name, value in cur.fetchall()}


def test_show_status_reports_connections_uptime_and_messages(server, dev):
    a, _ = ws_open(server, dev_id=dev)
    b, _ = ws_open(server, dev_id=dev)
    conn = connect_db(server.cometql_port, dev)
    try:
        for c in (a, b):
            c.send("subscription\nweb_status")
            ws_sync(c)
        cur = conn.cursor()
        before = _status(cur)
        for k in ("Uptime", "Connections", "Threads_connected", "Questions", "Comet_ws_connections",
                  "Comet_messages_published", "Comet_user_messages_sent"):
            assert k in before, before
        assert before["Comet_ws_connections"] == 2
        assert before["Comet_pipes_with_subscribers"] == 1
        assert before["Threads_connected"] >= 1 and before["Connections"] >= before["Threads_connected"]
        assert before["Uptime"] >= 0
        for i in range(3):
            cur.execute("INSERT INTO pipes_messages (name, event, message) VALUES ('web_status', 'e', %s)", (str(i),))
        cur.execute("INSERT INTO pipes_messages (event, name, message) VALUES ('e', 'web_status', 'x'), "
                    "('e', 'web_nobody', 'y')")
        cur.execute("INSERT INTO users_messages (id, event, message) VALUES (5, 'e', 'queued')")
        after = _status(cur)
        assert after["Comet_messages_published"] - before["Comet_messages_published"] == 5
        assert after["Comet_message_deliveries"] - before["Comet_message_deliveries"] == 8
        assert after["Comet_user_messages_sent"] - before["Comet_user_messages_sent"] == 1
        assert after["Comet_user_message_deliveries"] == before["Comet_user_message_deliveries"]
        assert after["Questions"] > before["Questions"]
        assert set(_status(cur, "SHOW GLOBAL STATUS LIKE 'comet\\_messages%'")) == {"Comet_messages_published"}
        assert set(_status(cur, "SHOW SESSION STATUS LIKE 'Uptime'")) == {"Uptime"}
    finally:
        conn.close()
        a.close()
        b.close()


def test_show_status_in_the_mysql_cli(server, dev):
    r = mysql_cli(server.cometql_port, "SHOW STATUS LIKE 'Uptime'", dev_id=dev)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Variable_name\tValue" and lines[1].startswith("Uptime\t") and lines[1].split("\t")[1].isdigit()
