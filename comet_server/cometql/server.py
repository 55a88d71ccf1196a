"""The MySQL wire protocol side of CometQL, on mysql-mimic 3.0.5 (pinned in requirements.txt).

mysql-mimic has no public hooks for what CometQL needs, so this module subclasses its
``Connection`` (and ``MysqlServer`` to make it use that subclass). Everything overridden here
was read from mysql-mimic 3.0.5's ``connection.py`` / ``server.py`` / ``session.py``:

* **Auth error 16 and a closed connection.** mimic sends 1045 (wrong password) or 3162 (unknown
  user) and then keeps the connection in the command phase. We map both to 16 and return from
  ``command_phase`` at once, so the socket is closed and a client that ignores the ERR packet
  gets nothing (mimic as shipped would answer its queries: the spike's auth bypass).
* **COM_CHANGE_USER** is refused with 16 and the connection is closed (mimic would keep the old
  identity after a failed change).
* **Database**: the connect-time database is checked while authenticating (the OK packet is
  replaced by ERR 15 and the connection closed); ``USE`` / COM_INIT_DB accept only CometQL_v1.
* **Affected rows / last insert id** of INSERT and DELETE (mimic always sends 0).
* **Version**: ``5.7.99-comet_server`` in the handshake (PyMySQL and friends parse the leading
  digits), no CLIENT_SSL capability (no TLS is offered, so clients use plain TCP; the MariaDB 11.4+
  CLI needs ``--skip-ssl``).
* **Hostile input** (``packets.py``, ``prepared.py``): every client packet is parsed by our strict
  parsers (mimic's spin on truncated input); before login a packet may have at most
  ``preauth_max_packet`` bytes and the login must finish within ``login_timeout`` seconds;
  prepared statements bind values as literals; COM_STMT_PREPARE's answer follows
  CLIENT_DEPRECATE_EOF, so libmysqlclient / MariaDB Connector/C clients can prepare.
* ``haproxy_check`` with an empty password logs in (for HAProxy's mysql-check) but every query
  gets 403, as CppComet.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from sqlglot.errors import SqlglotError
from sqlglot.executor import env as sqlglot_env

from mysql_mimic import IdentityProvider, MysqlServer, NativePasswordAuthPlugin, ResultColumn, Session, User
from mysql_mimic import connection as mm_connection
from mysql_mimic import packets as mm_packets
from mysql_mimic.control import TooManyConnections
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.packets import make_column_definition_41, make_error
from mysql_mimic.results import ResultSet, ensure_result_set
from mysql_mimic.stream import ConnectionClosed, MysqlStream
from mysql_mimic.types import ColumnType, Commands, ServerStatus, uint_len
from mysql_mimic.utils import aiterate, cooperative_iterate
from mysql_mimic.variables import SYSTEM_VARIABLES, GlobalVariables, SessionVariables

from ..limits import LOG_INTERVAL, ConnectionLimits
from ..ratelog import RateLimitedLog
from . import prepared as P
from . import sql as S
from . import tables as T
from .errors import (
    ACCESS_DENIED,
    AUTH,
    INTERNAL,
    INVALID_DATA,
    NOT_FOUND,
    NOT_IMPLEMENTED,
    SYNTAX,
    TOO_LONG,
    TOO_SHORT,
    CometQLError,
)
from .packets import (
    MalformedPacket,
    decode,
    parse_com_field_list,
    parse_com_query,
    parse_com_stmt_execute,
    parse_com_stmt_fetch,
    parse_com_stmt_send_long_data,
    parse_handshake_response,
    parse_stmt_id,
    peek_stmt_id,
)

log = logging.getLogger("comet_server.cometql")

#: mysql-mimic version whose internals (connection.py, server.py, session.py) this module overrides
TESTED_MYSQL_MIMIC = "3.0.5"
SERVER_VERSION = "5.7.99-comet_server"
VERSION_COMMENT = "comet_server CometQL (CppComet-compatible)"
HAPROXY_USER = "haproxy_check"
#: CppComet refuses queries of 9000 chars or more; comet_server accepts up to this (error 11 above).
MAX_QUERY_LEN = 65536
#: largest MySQL packet payload accepted after login (one packet; multi-packet payloads close the connection)
MAX_PACKET = 0xFFFFFF - 1
#: seconds from connect to a completed login, then the connection is closed (start_cometql's login_timeout)
DEFAULT_LOGIN_TIMEOUT = 10.0
#: largest packet accepted before login, in bytes (start_cometql's preauth_max_packet)
DEFAULT_PREAUTH_MAX_PACKET = 64 * 1024
#: prepared statements one connection may hold open
MAX_STATEMENTS = 1024

_USER_RE = re.compile(r"[0-9]{1,9}")

try:  # the WebSocket side maps a devid above this to 0 (CppComet's DEV_INDEX_SIZE)
    from ..wire import DEV_INDEX_SIZE as MAX_DEV_ID
except ImportError:  # pragma: no cover
    MAX_DEV_ID = 100000

_VARIABLES = dict(SYSTEM_VARIABLES)
_VARIABLES["version"] = (str, SERVER_VERSION, False)
_VARIABLES["version_comment"] = (str, VERSION_COMMENT, False)
_VARIABLES["default_storage_engine"] = (str, "comet_server", True)
_VARIABLES["default_tmp_storage_engine"] = (str, "comet_server", True)
_VARIABLES["license"] = (str, "MIT", False)
_GLOBALS = GlobalVariables(_VARIABLES)


def dev_id_of(username: str | None) -> int | None:
    """MySQL user name -> dev_id: digits (0..100000, the dev_ids a WebSocket URL can name), or
    ``root`` / ``0`` for dev_id 0. None for anything else."""
    if username is None:
        return None
    if username == "root":
        return 0
    if _USER_RE.fullmatch(username) and int(username) <= MAX_DEV_ID:
        return int(username)
    return None


class _Identity(IdentityProvider):
    def __init__(self, password: str) -> None:
        self._auth_string = NativePasswordAuthPlugin.create_auth_string(password)

    def get_plugins(self) -> list:
        return [NativePasswordAuthPlugin()]

    async def get_user(self, username: str) -> User | None:
        if username == HAPROXY_USER:
            return User(name=username, auth_plugin=NativePasswordAuthPlugin.name, auth_string=None)
        if dev_id_of(username) is None:
            return None
        return User(name=username, auth_plugin=NativePasswordAuthPlugin.name, auth_string=self._auth_string)


def _column(name: str, typ: str) -> ResultColumn:
    return ResultColumn(name=name, type=ColumnType.LONGLONG if typ == "int" else ColumnType.VAR_STRING)


@dataclass
class DevStats:
    """What SHOW STATUS reports per dev_id (since the process started)."""

    queries: int = 0
    messages_published: int = 0          # pipes_messages rows
    message_deliveries: int = 0          # ... times the WebSocket clients received one
    user_messages_sent: int = 0          # users_messages rows
    user_message_deliveries: int = 0     # ... delivered live (the others were queued)

    def count(self, table: str, rows: int, deliveries: int) -> None:
        if table == "pipes_messages":
            self.messages_published += rows
            self.message_deliveries += deliveries
        elif table == "users_messages":
            self.user_messages_sent += rows
            self.user_message_deliveries += deliveries


class CometSession(Session):
    def __init__(self, hub: Any, server: "CometQLServer | None" = None) -> None:
        super().__init__(SessionVariables(_GLOBALS))
        self.hub = hub
        self.server = server
        self.affected = 0
        self.last_insert_id = 0

    # -- identity ----------------------------------------------------------------------------
    @property
    def dev_id(self) -> int | None:
        return dev_id_of(self.username)

    def _require_auth(self) -> int:
        dev_id = self.dev_id
        if dev_id is None:
            raise CometQLError(ACCESS_DENIED, "Access denied")
        return dev_id

    async def use(self, database: str) -> None:
        try:
            self._require_auth()
            if database != T.DATABASE:
                raise CometQLError(NOT_FOUND, f"Unknown database '{database}'; CometQL has only {T.DATABASE}")
        except CometQLError as e:
            raise MysqlError(e.msg, e.code) from None
        self.database = database

    async def schema(self) -> dict:
        return T.info_schema()

    # -- queries -----------------------------------------------------------------------------
    async def handle_query(self, sql: str, attrs: dict[str, str], *, max_len: int = MAX_QUERY_LEN) -> Any:
        self.affected = 0
        self.last_insert_id = 0
        try:
            return await self._handle(sql, attrs, max_len)
        except CometQLError as e:
            raise MysqlError(e.msg, e.code) from None
        except MysqlError as e:
            if e.code == ErrorCode.NOT_SUPPORTED_YET:      # mimic: "Unsupported SHOW command" etc.
                raise MysqlError(e.msg, NOT_IMPLEMENTED) from None
            raise
        except RecursionError:
            raise MysqlError("Syntax error: query is nested too deeply", SYNTAX) from None
        except SqlglotError as e:       # e.g. the executor behind SELECT-without-FROM
            raise MysqlError(f"Not supported: {str(e).splitlines()[0][:200]}", NOT_IMPLEMENTED) from None
        except Exception:  # noqa: BLE001 - a query must never take the connection or server down
            _log_internal_error("CometQL internal error on query %.200r", sql)
            raise MysqlError("Internal error", INTERNAL) from None

    async def _handle(self, sql: str, attrs: dict[str, str], max_len: int) -> Any:
        dev_id = self._require_auth()
        text = sql.strip()
        if len(text) < 4:
            raise CometQLError(TOO_SHORT, "Query is too short")
        if len(sql) > max_len:
            raise CometQLError(TOO_LONG, f"Query is longer than {max_len} characters")
        stats = self._stats(dev_id)
        stats.queries += 1
        hot = S.fast_publish(sql)
        if hot is not None and self.database == T.DATABASE:
            table, key, event, message = hot
            if table == "pipes_messages":
                self.affected = T.publish_to_pipe(self.hub, dev_id, key, event, message)
                stats.count(table, 1, self.affected)
            else:
                self.affected = T.send_to_user(self.hub, dev_id, key, event, message)
                self.last_insert_id = T.check_user_id(key)  # valid: send_to_user checked it
                stats.count(table, 1, self.affected)
            return None
        fast = S.fast_insert(sql)
        st = fast if fast is not None else S.parse(sql)
        if st is S.PASS:
            # SET, SELECT @@x / DATABASE() / 1, SHOW VARIABLES, COMMIT ...: mysql-mimic's middlewares
            return await super().handle_query(sql, attrs)
        if isinstance(st, S.Show):
            if st.kind in ("STATUS", "VARIABLES"):
                like = T.like_matcher(st.like)
                pairs = self.status(dev_id) if st.kind == "STATUS" else self.variables.list()
                rows = [(k, None if v is None else str(v)) for k, v in pairs if like(k)]
                return self._result(T.Result(rows=rows, columns=[("Variable_name", "str"), ("Value", "str")]))
            if st.kind != "DATABASES" and self.database != T.DATABASE and st.db is None:
                raise CometQLError(NOT_FOUND, f"No database selected: USE {T.DATABASE}")
            return self._result(T.show(st, self.database))
        if self.database != T.DATABASE and st.db is None:
            raise CometQLError(NOT_FOUND, f"No database selected: USE {T.DATABASE} "
                               f"(or connect with database {T.DATABASE})")
        result = self._result(T.execute(T.Context(self.hub, dev_id), st))
        if isinstance(st, S.Insert) and st.db in (None, T.DATABASE):
            stats.count(st.table, len(st.rows), self.affected)
        return result

    def _stats(self, dev_id: int) -> "DevStats":
        if self.server is None:
            return DevStats()
        return self.server.dev_stats.setdefault(dev_id, DevStats())

    def status(self, dev_id: int) -> list[tuple[str, int]]:
        """SHOW STATUS rows: this server's CometQL counters, and the caller's (dev_id's)
        WebSocket and message counts. Counters start at 0 when the process starts."""
        srv = self.server
        mine = self._stats(dev_id)
        rows: list[tuple[str, int]] = []
        if srv is not None:
            rows += [
                ("Uptime", int(time.time() - srv.started)),
                ("Connections", srv.connections_total),
                ("Threads_connected", srv.open_connections),
                ("Questions", sum(d.queries for d in srv.dev_stats.values())),
            ]
        rows += [
            ("Comet_ws_connections", self.hub.connection_count(dev_id)),
            ("Comet_pipes_with_subscribers", len(self.hub.pipes(dev_id))),
            ("Comet_queries", mine.queries),
            ("Comet_messages_published", mine.messages_published),
            ("Comet_message_deliveries", mine.message_deliveries),
            ("Comet_user_messages_sent", mine.user_messages_sent),
            ("Comet_user_message_deliveries", mine.user_message_deliveries),
        ]
        return rows

    def _result(self, r: T.Result) -> Any:
        if r.rows is None:
            self.affected = r.affected
            self.last_insert_id = r.last_insert_id
            return None
        assert r.columns is not None
        return ResultSet(rows=r.rows, columns=[_column(n, t) for n, t in r.columns])


class CometConnection(mm_connection.Connection):
    """mysql-mimic Connection with CometQL's auth, database and error-code rules, strict packet
    parsing (``packets.py``), pre-auth limits and safe prepared statements (``prepared.py``)."""

    _in_auth = False
    _authorized = False

    def __init__(self, *args: Any, login_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.login_timeout = login_timeout
        self.statements: dict[int, P.PreparedStatement] = {}

    def error(self, **kwargs: Any) -> bytes:
        code = kwargs.get("code")
        if code in (ErrorCode.ACCESS_DENIED_ERROR, ErrorCode.USER_DOES_NOT_EXIST):
            kwargs["code"] = AUTH
            if code == ErrorCode.USER_DOES_NOT_EXIST:
                kwargs["msg"] = f"{kwargs.get('msg')}: the user must be a dev_id (digits) or root"
        return super().error(**kwargs)

    # -- connection phase ----------------------------------------------------------------------
    async def connection_phase(self) -> None:
        """mysql-mimic 3.0.5 ``Connection.connection_phase`` with our strict handshake parser
        (its own spins on a user name without NUL) and a login deadline (it has none). Any
        failure raises, and mimic's ``_start`` then sends ERR and closes the socket."""
        try:
            async with asyncio.timeout(self.login_timeout):
                await self._connection_phase()
        except TimeoutError:
            raise MysqlError(f"Login timeout ({self.login_timeout:g} s)", ErrorCode.HANDSHAKE_ERROR) from None
        reader = self.stream.reader
        if isinstance(reader, _LimitedReader):
            reader.max_packet = MAX_PACKET            # logged in: full-size packets from now on

    async def _connection_phase(self) -> None:
        plugin = self.identity_provider.get_default_plugin()
        auth_data, auth_state = await plugin.start()
        assert isinstance(auth_data, bytes)
        self.handshake_auth_data = auth_data
        self.handshake_auth_plugin = plugin.name
        await self.stream.write(mm_packets.make_handshake_v10(
            capabilities=self.server_capabilities, server_charset=self.server_charset,
            server_version=str(self.session.variables.get("version")), connection_id=self.connection_id,
            auth_data=auth_data, status_flags=self.status_flags, auth_plugin_name=plugin.name))
        response = parse_handshake_response(self.server_capabilities, await self.stream.read())
        if response.ssl_request:
            raise MalformedPacket("TLS is not offered by this server")
        self.capabilities = response.capabilities
        self.max_packet_size = response.max_packet_size
        self.session.variables.set("character_set_client", response.client_charset.name)
        self.session.database = response.database
        self.client_plugin_name = response.client_plugin
        self.client_connect_attrs = response.connect_attrs
        self.zstd_compression_level = response.zstd_compression_level
        self.session.variables.set("external_user", response.username, force=True)
        await self.authenticate(auth_state=auth_state, server_plugin=plugin, username=response.username,
                                client_plugin_name=response.client_plugin,
                                auth_response=response.auth_response, connect_attrs=response.connect_attrs)
        self.stream.reset_seq()

    async def authenticate(self, *args: Any, **kwargs: Any) -> None:
        self._in_auth = True
        try:
            await super().authenticate(*args, **kwargs)
        finally:
            self._in_auth = False

    def ok(self, **kwargs: Any) -> bytes:
        if self._in_auth:
            # Called only for a successful login: check the connect-time database now, so a bad
            # one gets ERR 15 instead of the handshake OK (and the connection is then closed).
            db = self.session.database
            if db in ("", None) or db == T.DATABASE:
                self.session.database = db or None
                self._authorized = True
                return super().ok(**kwargs)
            self._authorized = False
            self.session.username = None
            return self.error(msg=f"Unknown database '{db}'; CometQL has only {T.DATABASE}", code=NOT_FOUND)
        return super().ok(**kwargs)

    # -- command phase -------------------------------------------------------------------------
    async def command_phase(self) -> None:
        """mysql-mimic 3.0.5 ``Connection.command_phase``, but: nothing for a failed login, our
        handlers for every command, and client errors are answered without a log traceback."""
        if not self._authorized or self.session.username is None:
            return          # failed login: close; never serve a client that ignores the ERR
        handlers = {
            Commands.COM_QUERY: self.handle_query,
            Commands.COM_STMT_PREPARE: self.handle_stmt_prepare,
            Commands.COM_STMT_SEND_LONG_DATA: self.handle_stmt_send_long_data,
            Commands.COM_STMT_EXECUTE: self.handle_stmt_execute,
            Commands.COM_STMT_FETCH: self.handle_stmt_fetch,
            Commands.COM_STMT_RESET: self.handle_stmt_reset,
            Commands.COM_STMT_CLOSE: self.handle_stmt_close,
            Commands.COM_PING: self.handle_ping,
            Commands.COM_CHANGE_USER: self.handle_change_user,
            Commands.COM_RESET_CONNECTION: self.handle_reset_connection,
            Commands.COM_DEBUG: self.handle_debug,
            Commands.COM_INIT_DB: self.handle_init_db,
            Commands.COM_FIELD_LIST: self.handle_field_list,
        }
        while True:
            try:
                data = await self.stream.read()
            except ConnectionClosed:
                return
            try:
                if not data:
                    raise MalformedPacket("empty command packet")
                if data[0] == Commands.COM_QUIT:
                    return
                handler = handlers.get(data[0])
                if handler is None:
                    raise MysqlError(f"Unsupported command 0x{data[0]:02x}", ErrorCode.UNKNOWN_COM_ERROR)
                await handler(data[1:])
            except MysqlError as e:
                await self.stream.write(self.error(msg=e.msg, code=e.code))
            except CometQLError as e:
                await self.stream.write(self.error(msg=e.msg, code=e.code))
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception:  # noqa: BLE001 - one bad command must not end the connection
                _log_internal_error("CometQL internal error on command 0x%02x", data[0] if data else -1)
                await self.stream.write(self.error(msg="Internal error", code=INTERNAL))
            finally:
                self.stream.reset_seq()

    def _require_login(self) -> None:
        if self.session.username is None or dev_id_of(self.session.username) is None:
            raise MysqlError("Access denied", ACCESS_DENIED)

    async def handle_change_user(self, data: bytes) -> None:
        self._authorized = False
        self.session.username = None
        await self.stream.write(self.error(
            msg="COM_CHANGE_USER is not supported by CometQL: open a new connection", code=AUTH))
        self.stream.writer.close()

    async def handle_init_db(self, data: bytes) -> None:
        await self.session.use(decode(self.client_charset, data, "database name"))
        await self.stream.write(self.ok())

    async def handle_field_list(self, data: bytes) -> None:
        # mimic 3.0.5 sends all column definitions joined in ONE packet; the protocol wants one
        # packet per column (what the mysql CLI's auto-rehash reads), then EOF.
        com_field_list = parse_com_field_list(self.client_charset, data)
        self._require_login()
        show = S.Show("COLUMNS", target=com_field_list.table, like=com_field_list.wildcard or None)
        try:
            result = T.show(show, self.session.database)
        except CometQLError as e:
            raise MysqlError(e.msg, e.code) from None
        for row in result.rows or []:
            await self.stream.write(make_column_definition_41(
                server_charset=self.server_charset, table=com_field_list.table, name=row[0],
                is_com_field_list=True, default=row[4]), drain=False)
        await self.stream.write(self.ok_or_eof())

    async def handle_query(self, data: bytes) -> None:
        if len(data) > MAX_QUERY_LEN * 4 + 64:
            raise MysqlError(f"Query is longer than {MAX_QUERY_LEN} characters", TOO_LONG)
        com_query = parse_com_query(self.capabilities, self.client_charset, data)
        result_set = await self.query(com_query.sql, com_query.query_attrs)
        if not result_set:
            await self.stream.write(self._ok_with_counts())
            return
        await self.write_text_resultset(result_set)

    def _ok_with_counts(self) -> bytes:
        session = self.session
        return self.ok(affected_rows=getattr(session, "affected", 0),
                       last_insert_id=getattr(session, "last_insert_id", 0))

    # -- prepared statements -------------------------------------------------------------------
    async def handle_stmt_prepare(self, data: bytes) -> None:
        self._require_login()
        if len(data) > MAX_QUERY_LEN * 4 + 64:
            raise MysqlError(f"Query is longer than {MAX_QUERY_LEN} characters", TOO_LONG)
        sql = decode(self.client_charset, data, "query")
        stmt_id = next(self.prepared_stmt_seq) or next(self.prepared_stmt_seq)     # MySQL's ids start at 1
        stmt = P.PreparedStatement(stmt_id=stmt_id, parts=P.split_placeholders(sql))
        if len(self.statements) >= MAX_STATEMENTS:
            raise MysqlError(f"At most {MAX_STATEMENTS} prepared statements per connection", TOO_LONG)
        self.statements[stmt.stmt_id] = stmt
        # COM_STMT_PREPARE_OK, then one definition per parameter and an EOF, unless the client
        # set CLIENT_DEPRECATE_EOF (mimic 3.0.5 always sends the EOF: libmysqlclient and
        # MariaDB Connector/C then read it as the answer to their next command and hang up).
        # The column count is 0: the result set's columns come with each EXECUTE.
        packets = [bytes([0]) + stmt.stmt_id.to_bytes(4, "little") + (0).to_bytes(2, "little")
                   + stmt.num_params.to_bytes(2, "little") + b"\0" + (0).to_bytes(2, "little")]
        if stmt.num_params:
            param = make_column_definition_41(server_charset=self.server_charset, name="?",
                                              column_type=ColumnType.VAR_STRING)
            packets += [param] * stmt.num_params
            if not self.deprecate_eof():
                packets.append(self.eof())
        self.stream.write_many(packets)
        await self.stream.drain()

    def _statement(self, stmt_id: int) -> P.PreparedStatement:
        stmt = self.statements.get(stmt_id)
        if stmt is None:
            raise MysqlError(f"Unknown prepared statement handler ({stmt_id})", ErrorCode.UNKNOWN_PROCEDURE)
        return stmt

    async def handle_stmt_send_long_data(self, data: bytes) -> None:
        try:
            long_data = parse_com_stmt_send_long_data(data)
        except MalformedPacket:
            return                                       # this command has no reply
        stmt = self.statements.get(long_data.stmt_id)
        if stmt is not None:
            stmt.add_long_data(long_data.param_id, long_data.data)

    async def handle_stmt_execute(self, data: bytes) -> None:
        self._require_login()
        stmt = self._statement(peek_stmt_id(data))
        try:
            if stmt.long_data_overflow:
                raise MysqlError(f"Long data is limited to {P.MAX_LONG_DATA} bytes per statement", TOO_LONG)
            execute = parse_com_stmt_execute(
                self.capabilities, self.client_charset, data, num_params=stmt.num_params,
                long_data={i: bytes(b) for i, b in stmt.long_data.items()}, prior_types=stmt.types)
        finally:
            stmt.long_data.clear()
            stmt.long_data_size = 0
            stmt.long_data_overflow = False
        if execute.types is not None:
            stmt.types = execute.types
        sql = P.bind(stmt.parts, execute.params)
        session = self.session
        if isinstance(session, CometSession):
            result_set = await ensure_result_set(await session.handle_query(
                sql, execute.query_attrs, max_len=MAX_QUERY_LEN * 4 + len(sql) // 2))
        else:  # pragma: no cover
            result_set = await self.query(sql, execute.query_attrs)
        if not result_set:
            await self.stream.write(self._ok_with_counts())
            return
        header = [uint_len(len(result_set.columns))]
        header += [make_column_definition_41(server_charset=self.server_charset, name=c.name,
                                             column_type=c.type, character_set=c.character_set)
                   for c in result_set.columns]
        self.stream.write_many(header)

        async def rows() -> AsyncIterator[bytes]:
            async for r in cooperative_iterate(aiterate(result_set.rows)):
                yield mm_packets.make_binary_resultrow(r, result_set.columns)

        if execute.use_cursor:
            stmt.cursor = rows()
            await self.stream.write(self.ok_or_eof(flags=ServerStatus.SERVER_STATUS_CURSOR_EXISTS))
            return
        if not self.deprecate_eof():
            self.stream.write_many([self.eof()])
        async for row in rows():
            await self.stream.write(row, drain=False)
        await self.stream.write(self.ok_or_eof())

    async def handle_stmt_fetch(self, data: bytes) -> None:
        fetch = parse_com_stmt_fetch(data)
        stmt = self._statement(fetch.stmt_id)
        if stmt.cursor is None:
            raise MysqlError("The statement has no open cursor", ErrorCode.UNKNOWN_PROCEDURE)
        count = 0
        async for row in stmt.cursor:
            await self.stream.write(row, drain=False)
            count += 1
            if count >= fetch.num_rows:
                break
        done = count < fetch.num_rows
        if done:
            stmt.cursor = None
        await self.stream.write(self.ok_or_eof(
            flags=ServerStatus.SERVER_STATUS_LAST_ROW_SENT if done else ServerStatus.SERVER_STATUS_CURSOR_EXISTS))

    async def handle_stmt_reset(self, data: bytes) -> None:
        # long data and cursor only (mimic also resets the session, which is not what MySQL does)
        self._statement(parse_stmt_id(data)).reset()
        await self.stream.write(self.ok())

    async def handle_stmt_close(self, data: bytes) -> None:
        try:
            self.statements.pop(parse_stmt_id(data), None)
        except MalformedPacket:
            pass                                         # this command has no reply


class _LimitedReader:
    """StreamReader proxy: a packet larger than ``max_packet`` closes the connection before its
    body is read (so an unauthenticated client cannot make us buffer 16 MB), and a truncated
    packet header is an error rather than a short read."""

    def __init__(self, reader: asyncio.StreamReader, max_packet: int) -> None:
        self._reader = reader
        self.max_packet = max_packet

    async def read(self, n: int = -1) -> bytes:
        if n <= 0:
            return await self._reader.read(n)
        try:
            return await self._reader.readexactly(n)     # mimic reads the 4-byte header with read(4)
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                return b""                               # clean EOF between packets
            raise ConnectionResetError("CometQL: truncated packet header") from None

    async def readexactly(self, n: int) -> bytes:
        if n > self.max_packet:
            raise ConnectionResetError(f"CometQL: {n}-byte packet, the limit is {self.max_packet}")
        return await self._reader.readexactly(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class _QuietMysqlErrors(logging.Filter):
    """mysql-mimic logs every error sent to a client at ERROR level; CometQL user errors
    (bad SQL, wrong password ...) are not server errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not isinstance(record.msg, MysqlError)


class CometQLServer:
    """The CometQL listener. ``await start()``, then ``port``; ``await close()`` stops it and
    closes every open CometQL connection.

    ``login_timeout``: seconds a client has from connecting to a completed login;
    ``preauth_max_packet``: largest packet accepted before login (bytes). Either limit closes
    the connection."""

    def __init__(self, hub: Any, host: str | None, port: int, *, login_timeout: float | None = None,
                 preauth_max_packet: int | None = None, limits: ConnectionLimits | None = None) -> None:
        self.hub = hub
        self.limits = limits
        self.host = host
        self.requested_port = port
        self.login_timeout = DEFAULT_LOGIN_TIMEOUT if login_timeout is None else float(login_timeout)
        self.preauth_max_packet = DEFAULT_PREAUTH_MAX_PACKET if preauth_max_packet is None else int(preauth_max_packet)
        if self.login_timeout <= 0 or self.preauth_max_packet < 1024:
            raise ValueError("login_timeout must be > 0 and preauth_max_packet >= 1024")
        self.started = time.time()
        self.connections_total = 0
        self.dev_stats: dict[int, DevStats] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        identity = _Identity(hub.password)
        outer = self

        class _Server(MysqlServer):
            async def _client_connected_cb(self, reader: asyncio.StreamReader,
                                           writer: asyncio.StreamWriter) -> None:
                ip = _peer_ip(writer)
                if outer.limits is not None:
                    refusal = outer.limits.admit(ip)
                    if refusal is not None:
                        await _refuse(writer, ip, refusal)
                        return
                try:
                    await self._counted(reader, writer)
                finally:
                    if outer.limits is not None:
                        outer.limits.release(ip)

            async def _counted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                outer._writers.add(writer)
                outer.connections_total += 1
                task = asyncio.current_task()
                if task is not None:
                    outer._tasks.add(task)
                try:
                    await self._serve(reader, writer)
                except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                    pass
                except asyncio.CancelledError:
                    pass        # server shutdown: this task is the top of its stack
                except MysqlError:
                    pass        # already answered with ERR (malformed handshake, login timeout ...)
                except Exception:  # noqa: BLE001
                    log.debug("CometQL connection ended with an error", exc_info=True)
                finally:
                    if task is not None:
                        outer._tasks.discard(task)
                    outer._writers.discard(writer)
                    if not writer.is_closing():
                        writer.close()

            async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                # mysql-mimic 3.0.5 MysqlServer._client_connected_cb, building our Connection
                # with our limits (mimic builds ``Connection(...)`` by name, without a factory)
                stream = MysqlStream(_LimitedReader(reader, outer.preauth_max_packet), writer)
                session = self.session_factory()
                connection = CometConnection(
                    stream=stream, session=session, control=self.control,
                    server_capabilities=self.capabilities, identity_provider=self.identity_provider,
                    ssl=None, login_timeout=outer.login_timeout)
                try:
                    connection.connection_id = await self.control.add(connection)
                except TooManyConnections:
                    await stream.write(connection.error(msg="Too many connections", code=ErrorCode.CON_COUNT_ERROR))
                    return
                try:
                    await connection.start()
                finally:
                    writer.close()
                    await self.control.remove(connection.connection_id)

        self._server = _Server(session_factory=lambda: CometSession(hub, outer), identity_provider=identity)

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    async def start(self) -> "CometQLServer":
        await self._server.start_server(host=self.host, port=self.requested_port)
        return self

    @property
    def port(self) -> int:
        return self._server.sockets()[0].getsockname()[1]

    @property
    def sockets(self) -> Any:
        return self._server.sockets()

    async def close(self) -> None:
        self._server.close()
        for w in list(self._writers):
            try:
                w.close()
            except Exception:  # noqa: BLE001
                pass
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:       # let each connection see its socket close and end normally
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            for t in pending:
                t.cancel()
        await self._server.wait_closed()


_refused_log = RateLimitedLog(log, interval=LOG_INTERVAL)


def _peer_ip(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


async def _refuse(writer: asyncio.StreamWriter, ip: str, reason: str) -> None:
    """Answer a connection over a cap as MySQL does (ERR 1040 in place of the handshake)."""
    _refused_log.report(f"refused:{reason}", "CometQL: refused connections from %s and others: %s",
                        ip or "?", reason)
    payload = make_error(msg="Too many connections", code=ErrorCode.CON_COUNT_ERROR)
    try:
        writer.write(len(payload).to_bytes(3, "little") + b"\x00" + payload)
        writer.close()
    except Exception:  # noqa: BLE001 - the peer may already be gone
        pass


_internal_errors = {"last": 0.0, "count": 0}


def _log_internal_error(msg: str, *args: Any) -> None:
    """Log an unexpected error with its traceback at most once a minute (with a count), so
    that no input can write a traceback per request."""
    _internal_errors["count"] += 1
    now = time.monotonic()
    if now - _internal_errors["last"] >= 60.0:
        n = _internal_errors["count"]
        _internal_errors["last"] = now
        _internal_errors["count"] = 0
        log.exception(msg + " (%d in the last minute)", *args, n)


_patched = False


def _install() -> None:
    """Check mysql-mimic's version and quieten its per-error logging."""
    global _patched
    if _patched:
        return
    from mysql_mimic.version import __version__ as mimic_version
    if mimic_version != TESTED_MYSQL_MIMIC:
        log.warning("CometQL was written against mysql-mimic %s (its internals are subclassed), "
                    "found %s: check requirements.txt", TESTED_MYSQL_MIMIC, mimic_version)
    logging.getLogger("mysql_mimic.connection").addFilter(_QuietMysqlErrors())
    # ... and logs every connect/close at INFO
    if logging.getLogger("mysql_mimic").level == logging.NOTSET:
        logging.getLogger("mysql_mimic").setLevel(logging.WARNING)
    # sqlglot warns when it falls back to a generic Command (e.g. REPLACE ..., SHOW FIELDS)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    # sqlglot 30.30.0 executor (env._like, used by mimic for INFORMATION_SCHEMA queries) turns
    # LIKE into a backtracking regex, exponential in the number of '%': use our linear matcher
    sqlglot_env.ENV["LIKE"] = lambda this, e: T.like(this, e, case_insensitive=False)
    sqlglot_env.ENV["ILIKE"] = lambda this, e: T.like(this, e)
    _patched = True


async def start_cometql(hub: Any, host: str | None, port: int, *, login_timeout: float | None = None,
                        preauth_max_packet: int | None = None,
                        limits: ConnectionLimits | None = None) -> CometQLServer:
    """Start the CometQL listener on ``host:port`` (port 0 = any free port).

    ``login_timeout`` (seconds, default :data:`DEFAULT_LOGIN_TIMEOUT`) and ``preauth_max_packet``
    (bytes, default :data:`DEFAULT_PREAUTH_MAX_PACKET`) bound what a client that has not logged
    in can cost: past either, its connection is closed. ``limits`` (total and per-IP caps) is
    shared with the HTTP/WebSocket port when given: a connection over a cap gets ERR 1040."""
    _install()
    server = CometQLServer(hub, host, port, login_timeout=login_timeout,
                           preauth_max_packet=preauth_max_packet, limits=limits)
    await server.start()
    log.info("CometQL listening on %s:%s", host, server.port)
    return server


__all__ = ["CometQLServer", "CometSession", "CometConnection", "start_cometql", "dev_id_of",
           "SERVER_VERSION", "MAX_QUERY_LEN"]
