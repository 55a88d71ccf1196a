"""Fuzzing CometQL in-process (no sockets), seeded (``derandomize=True``) so CI is repeatable.

* the statement path: SQL text -> result or error (``CometSession.handle_query``);
* prepared statements: any bound text arrives exactly as bound;
* the MySQL packets a client sends before and after login, through our parsers and through
  ``CometConnection``'s connection and command phases on an in-memory stream.

Property: only our defined error types come out (``MysqlError``, which includes
``MalformedPacket`` and the CometQL codes), and no call uses more than 100 ms of CPU. The
hypothesis deadline itself is a generous wall-clock bound, because the CI machine is shared.
"""

from __future__ import annotations

import asyncio
import struct
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mysql_mimic.constants import DEFAULT_SERVER_CAPABILITIES
from mysql_mimic.control import LocalControl
from mysql_mimic.errors import MysqlError
from mysql_mimic.stream import ConnectionClosed

from comet_server.cometql import packets as PK
from comet_server.cometql import prepared as P
from comet_server.cometql import server as SRV
from comet_server.cometql import sql as S
from comet_server.hub import Hub
from comet_server.store import Store
from tests.hostile.cpu import CPU_LIMIT, cpu_of

FUZZ = settings(derandomize=True, deadline=timedelta(seconds=1), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def env():
    SRV._install()
    loop = asyncio.new_event_loop()
    store = Store(":memory:")
    hub = Hub(store, "pw")
    server = SRV.CometQLServer(hub, "127.0.0.1", 0)
    session = SRV.CometSession(hub, server)
    session.username = "5"
    session.database = "CometQL_v1"
    # warm up lazy imports and caches so that they are not billed to the first example
    for q in ("SELECT 1", "SHOW VARIABLES LIKE 'a%'", "SELECT table_name FROM information_schema.tables",
              "SET NAMES utf8mb4", "SELECT @@version_comment"):
        loop.run_until_complete(session.handle_query(q, {}))
    yield loop, hub, session
    loop.close()
    store.close()


def timed(fn, *args, **kwargs):
    """Call ``fn``; our error types are an answer. Returns (result or error, CPU seconds)."""
    def answer():
        try:
            return fn(*args, **kwargs)
        except MysqlError as e:
            return e
    return cpu_of(answer)


# --------------------------------------------------------------------------------------------
# SQL statements

WORDS = ["SELECT", "INSERT", "INTO", "VALUES", "FROM", "WHERE", "IN", "AND", "OR", "NOT", "LIKE",
         "SHOW", "FULL", "GLOBAL", "VARIABLES", "STATUS", "TABLES", "COLUMNS", "DATABASES", "SET",
         "NAMES", "DELETE", "LIMIT", "ORDER", "BY", "UPDATE", "REPLACE", "DESCRIBE", "USE", "REGEXP",
         "information_schema.tables", "table_name", "CometQL_v1", "pipes_messages", "users_messages",
         "users_time", "users_auth", "pipes", "users_in_pipes", "pipes_settings", "name", "event",
         "message", "id", "hash", "length", "@@version", "@a", "DATABASE()", "NOW()", "NULL", "*",
         "(", ")", ",", ";", "=", "+", "-", "/", "%", "'", '"', "`", "\\", "?", "--", "#", "/*", "*/",
         "9", "99999999999999999999", "1.5e10", "'web_x'", "'%%a%%z'", "'it\\'s'", "\n"]

sql_text = st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=40).map("".join),
    st.text(max_size=300),
    st.builds(lambda n, op: "SELECT " + op.join(["9"] * n), st.integers(1, 3000), st.sampled_from("*+-/")),
    st.builds(lambda p: f"SHOW VARIABLES LIKE '{p}'", st.text(alphabet="%_a\\z'", max_size=60)),
    st.builds(lambda p: f"SELECT table_name FROM information_schema.tables WHERE table_name LIKE '{p}'",
              st.text(alphabet="%_az", max_size=40)),
    st.builds(lambda d: "SELECT " + "(" * d + "1" + ")" * d, st.integers(0, 5000)),
)


@FUZZ
@given(sql=sql_text)
def test_statement_path_answers_or_refuses_quickly(env, sql):
    loop, _, session = env
    out, cpu = timed(lambda: loop.run_until_complete(session.handle_query(sql, {})))
    assert cpu < CPU_LIMIT, f"{cpu * 1000:.0f} ms CPU for {sql[:200]!r}"


@FUZZ
@given(text=st.text(max_size=200), event=st.sampled_from(["e", "x'y", "a\\b"]),
       template=st.sampled_from([
           "INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)",
           "INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?), ('web_b', 'e', 'f')",
           "insert into pipes_messages /* ? */ (name, event, message) values (?, ?, ?)",
       ]))
def test_bound_text_is_a_literal(text, event, template):
    sql = P.bind(P.split_placeholders(template), ["web_a", event, text])
    hot = S.fast_publish(sql)
    stmt = S.fast_insert(sql) or S.parse(sql)
    assert isinstance(stmt, S.Insert)
    assert stmt.rows[0] == ["web_a", event, text]
    assert hot is None or hot[1:] == ("web_a", event, text)


# --------------------------------------------------------------------------------------------
# packets before and after login

CAPS = 0x200 | 0x8000 | 0x80000 | 0x200000 | 0x8 | 0x100000 | (1 << 27)

packet_bytes = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda caps, cs, tail: struct.pack("<IIB", caps, 0, cs) + bytes(23) + tail,
              st.sampled_from([CAPS, 0x200 | 0x8000, 0x200, 0xFFFFFFFF, 0]),
              st.sampled_from([33, 45, 63, 8, 0, 255]), st.binary(max_size=200)),
)


@FUZZ
@given(data=packet_bytes)
def test_handshake_parser(data):
    out, cpu = timed(PK.parse_handshake_response, DEFAULT_SERVER_CAPABILITIES, data)
    assert cpu < CPU_LIMIT
    assert isinstance(out, (PK.HandshakeResponse, MysqlError))


@FUZZ
@given(data=st.binary(max_size=300), num_params=st.integers(0, 70),
       prior=st.one_of(st.none(), st.lists(st.tuples(st.integers(0, 255), st.booleans()), max_size=70)))
def test_command_parsers(data, num_params, prior):
    from mysql_mimic.charset import CharacterSet
    cs = CharacterSet.utf8mb4
    for fn in (lambda: PK.parse_com_query(DEFAULT_SERVER_CAPABILITIES, cs, data),
               lambda: PK.parse_com_field_list(cs, data),
               lambda: PK.parse_com_stmt_execute(DEFAULT_SERVER_CAPABILITIES, cs, data, num_params=num_params,
                                                 long_data={0: b"x"}, prior_types=prior),
               lambda: PK.parse_com_stmt_send_long_data(data),
               lambda: PK.parse_com_stmt_fetch(data),
               lambda: PK.parse_stmt_id(data)):
        _, cpu = timed(fn)
        assert cpu < CPU_LIMIT


class MemoryStream:
    """Stands in for mysql-mimic's MysqlStream: serves the given packets, records the output."""

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = list(packets)
        self.out: list[bytes] = []
        self.reader = SRV._LimitedReader(None, 64 * 1024)  # type: ignore[arg-type]
        self.writer = self

    async def read(self) -> bytes:
        if not self.packets:
            raise ConnectionClosed()
        return self.packets.pop(0)

    async def write(self, data: bytes, drain: bool = True) -> None:
        self.out.append(bytes(data))

    def write_many(self, packets) -> None:
        self.out.extend(bytes(p) for p in packets)

    def write_text_rows(self, rows, columns) -> int:
        self.out.append(b"rows")
        return len(rows)

    async def drain(self) -> None:
        pass

    def reset_seq(self) -> None:
        pass

    def close(self) -> None:
        pass


def _connection(env, packets: list[bytes]) -> SRV.CometConnection:
    _, hub, _ = env
    return SRV.CometConnection(stream=MemoryStream(packets), session=SRV.CometSession(hub),
                               control=LocalControl(), identity_provider=SRV._Identity("pw"),
                               server_capabilities=DEFAULT_SERVER_CAPABILITIES, ssl=None, login_timeout=1.0)


@FUZZ
@given(data=packet_bytes, more=st.lists(st.binary(max_size=100), max_size=2))
def test_connection_phase_on_arbitrary_bytes(env, data, more):
    loop, _, _ = env
    conn = _connection(env, [data, *more])
    out, cpu = timed(lambda: loop.run_until_complete(conn.connection_phase()))
    assert cpu < CPU_LIMIT
    assert not conn._authorized         # without the password nobody logs in


COMMANDS = [0x03, 0x04, 0x02, 0x0E, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C, 0x11, 0x1F, 0x0D, 0x00, 0xFF]
command_packet = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda c, tail: bytes([c]) + tail, st.sampled_from(COMMANDS), st.binary(max_size=200)),
    st.builds(lambda tail: b"\x17\x01\x00\x00\x00" + tail, st.binary(max_size=120)),   # execute stmt 1
    st.builds(lambda q: b"\x16" + q.encode(), st.sampled_from([
        "SELECT ?", "INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)",
        "SELECT * FROM users_time WHERE id IN (?, ?, ?)", "SHOW STATUS"])),
)


@FUZZ
@given(packets=st.lists(command_packet, min_size=1, max_size=6))
def test_command_phase_on_arbitrary_packets(env, packets):
    loop, _, _ = env
    conn = _connection(env, packets)
    conn._authorized = True
    conn.session.username = "5"
    conn.session.database = "CometQL_v1"
    # CHANGE_USER ends the connection by design; everything else must be answered in place
    _, cpu = cpu_of(loop.run_until_complete, conn.command_phase())
    assert cpu < CPU_LIMIT * len(packets)
