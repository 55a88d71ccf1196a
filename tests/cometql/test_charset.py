"""Text on connections that declare a single-byte character set: UTF-8 bytes (what the mysql
CLI under LANG=C and legacy PHP apps send) arrive intact, as with CppComet, and real latin1
bytes still decode as latin1."""

from __future__ import annotations

import os
import subprocess

from .conftest import DB, PASSWORD, connect_db, ws_open, ws_recv, ws_sync


def test_utf8_text_on_a_latin1_mysql_cli_connection(server, dev):
    ws, _ = ws_open(server, dev_id=dev)
    try:
        ws.send("subscription\nweb_latin")
        ws_sync(ws)
        text = "emoji 😀 и ü"
        sql = f"INSERT INTO pipes_messages (name, event, message) VALUES ('web_latin', 'cli', '{text}')"
        env = dict(os.environ, LANG="C", LC_ALL="C")
        r = subprocess.run(["mysql", "-h127.0.0.1", f"-P{server.cometql_port}", f"-u{dev}", f"-p{PASSWORD}",
                            "--skip-ssl", "--default-character-set=latin1", f"-D{DB}", "-e", sql.encode()],
                           capture_output=True, timeout=20, env=env)
        assert r.returncode == 0, r.stderr
        assert ws_recv(ws)["data"] == text
    finally:
        ws.close()


def test_latin1_bytes_still_decode_as_latin1(server, dev):
    ws, _ = ws_open(server, dev_id=dev)
    conn = connect_db(server.cometql_port, dev, charset="latin1")
    try:
        ws.send("subscription\nweb_latin")
        ws_sync(ws)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO pipes_messages (name, event, message) VALUES ('web_latin', 'l1', %s)",
                        ("café",))        # PyMySQL encodes this as latin1: 0xE9 is not UTF-8
        m = ws_recv(ws)
        assert m["event"] == "l1" and m["data"] == "café"
    finally:
        conn.close()
        ws.close()
