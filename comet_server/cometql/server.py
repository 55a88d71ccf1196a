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
* ``haproxy_check`` with an empty password logs in (for HAProxy's mysql-check) but every query
  gets 403, as CppComet.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from sqlglot.errors import SqlglotError

from mysql_mimic import IdentityProvider, MysqlServer, NativePasswordAuthPlugin, ResultColumn, Session, User
from mysql_mimic import connection as mm_connection
from mysql_mimic import server as mm_server
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.packets import make_column_definition_41, parse_com_field_list, parse_com_query
from mysql_mimic.results import ResultSet
from mysql_mimic.types import ColumnType
from mysql_mimic.variables import SYSTEM_VARIABLES, GlobalVariables, SessionVariables

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

log = logging.getLogger("comet_server.cometql")

#: mysql-mimic version whose internals (connection.py, server.py, session.py) this module overrides
TESTED_MYSQL_MIMIC = "3.0.5"
SERVER_VERSION = "5.7.99-comet_server"
VERSION_COMMENT = "comet_server CometQL (CppComet-compatible)"
HAPROXY_USER = "haproxy_check"
#: CppComet refuses queries of 9000 chars or more; comet_server accepts up to this (error 11 above).
MAX_QUERY_LEN = 65536
#: largest MySQL packet payload accepted (one packet; multi-packet payloads close the connection)
MAX_PACKET = 0xFFFFFF - 1

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


class CometSession(Session):
    def __init__(self, hub: Any) -> None:
        super().__init__(SessionVariables(_GLOBALS))
        self.hub = hub
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
    async def handle_query(self, sql: str, attrs: dict[str, str]) -> Any:
        self.affected = 0
        self.last_insert_id = 0
        try:
            return await self._handle(sql, attrs)
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
            log.exception("CometQL internal error on query %.200r", sql)
            raise MysqlError("Internal error", INTERNAL) from None

    async def _handle(self, sql: str, attrs: dict[str, str]) -> Any:
        dev_id = self._require_auth()
        text = sql.strip()
        if len(text) < 4:
            raise CometQLError(TOO_SHORT, "Query is too short")
        if len(sql) > MAX_QUERY_LEN:
            raise CometQLError(TOO_LONG, f"Query is longer than {MAX_QUERY_LEN} characters")
        hot = S.fast_publish(sql)
        if hot is not None and self.database == T.DATABASE:
            table, key, event, message = hot
            if table == "pipes_messages":
                self.affected = T.publish_to_pipe(self.hub, dev_id, key, event, message)
            else:
                self.affected = T.send_to_user(self.hub, dev_id, key, event, message)
                self.last_insert_id = int(key)        # valid: send_to_user checked it
            return None
        st = S.fast_insert(sql)
        if st is None:
            st = S.parse(sql)
        if st is S.PASS:
            # SET, SELECT @@x / DATABASE() / 1, SHOW VARIABLES, COMMIT ...: mysql-mimic's middlewares
            return await super().handle_query(sql, attrs)
        if isinstance(st, S.Show):
            if st.kind == "VARIABLES":
                like = T.like_matcher(st.like)
                rows = [(k, None if v is None else str(v)) for k, v in self.variables.list() if like(k)]
                return self._result(T.Result(rows=rows, columns=[("Variable_name", "str"), ("Value", "str")]))
            if st.kind != "DATABASES" and self.database != T.DATABASE and st.db is None:
                raise CometQLError(NOT_FOUND, f"No database selected: USE {T.DATABASE}")
            return self._result(T.show(st, self.database))
        if self.database != T.DATABASE and st.db is None:
            raise CometQLError(NOT_FOUND, f"No database selected: USE {T.DATABASE} "
                               f"(or connect with database {T.DATABASE})")
        return self._result(T.execute(T.Context(self.hub, dev_id), st))

    def _result(self, r: T.Result) -> Any:
        if r.rows is None:
            self.affected = r.affected
            self.last_insert_id = r.last_insert_id
            return None
        assert r.columns is not None
        return ResultSet(rows=r.rows, columns=[_column(n, t) for n, t in r.columns])


class CometConnection(mm_connection.Connection):
    """mysql-mimic Connection with CometQL's auth, database and error-code rules."""

    _in_auth = False
    _authorized = False

    def error(self, **kwargs: Any) -> bytes:
        code = kwargs.get("code")
        if code in (ErrorCode.ACCESS_DENIED_ERROR, ErrorCode.USER_DOES_NOT_EXIST):
            kwargs["code"] = AUTH
            if code == ErrorCode.USER_DOES_NOT_EXIST:
                kwargs["msg"] = f"{kwargs.get('msg')}: the user must be a dev_id (digits) or root"
        return super().error(**kwargs)

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

    async def command_phase(self) -> None:
        if not self._authorized or self.session.username is None:
            return          # failed login: close; never serve a client that ignores the ERR
        await super().command_phase()

    async def handle_change_user(self, data: bytes) -> None:
        self._authorized = False
        self.session.username = None
        await self.stream.write(self.error(
            msg="COM_CHANGE_USER is not supported by CometQL: open a new connection", code=AUTH))
        self.stream.writer.close()

    async def handle_field_list(self, data: bytes) -> None:
        # mimic 3.0.5 sends all column definitions joined in ONE packet; the protocol wants one
        # packet per column (what the mysql CLI's auto-rehash reads), then EOF.
        com_field_list = parse_com_field_list(self.client_charset, data)
        if self.session.username is None or dev_id_of(self.session.username) is None:
            raise MysqlError("Access denied", ACCESS_DENIED)
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
        try:
            com_query = parse_com_query(capabilities=self.capabilities, client_charset=self.client_charset,
                                        data=data)
        except UnicodeDecodeError:
            raise MysqlError("Query is not valid text in the connection character set", INVALID_DATA) from None
        result_set = await self.query(com_query.sql, com_query.query_attrs)
        if not result_set:
            session = self.session
            await self.stream.write(self.ok(affected_rows=getattr(session, "affected", 0),
                                            last_insert_id=getattr(session, "last_insert_id", 0)))
            return
        await self.write_text_resultset(result_set)


class _LimitedReader:
    """StreamReader proxy: refuses multi-packet (>= 16 MiB) MySQL payloads."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def read(self, n: int = -1) -> bytes:
        return await self._reader.read(n)

    async def readexactly(self, n: int) -> bytes:
        if n > MAX_PACKET:
            raise ConnectionResetError("CometQL: packet too large")
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
    closes every open CometQL connection."""

    def __init__(self, hub: Any, host: str | None, port: int) -> None:
        self.hub = hub
        self.host = host
        self.requested_port = port
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        identity = _Identity(hub.password)
        outer = self

        class _Server(MysqlServer):
            async def _client_connected_cb(self, reader: asyncio.StreamReader,
                                           writer: asyncio.StreamWriter) -> None:
                outer._writers.add(writer)
                task = asyncio.current_task()
                if task is not None:
                    outer._tasks.add(task)
                try:
                    await super()._client_connected_cb(_LimitedReader(reader), writer)  # type: ignore[arg-type]
                except (ConnectionError, asyncio.IncompleteReadError):
                    pass
                except asyncio.CancelledError:
                    pass        # server shutdown: this task is the top of its stack
                except Exception:  # noqa: BLE001
                    log.debug("CometQL connection ended with an error", exc_info=True)
                finally:
                    if task is not None:
                        outer._tasks.discard(task)
                    outer._writers.discard(writer)
                    if not writer.is_closing():
                        writer.close()

        self._server = _Server(session_factory=lambda: CometSession(hub), identity_provider=identity)

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


_patched = False


def _install() -> None:
    """Make mysql-mimic build CometConnection objects (server.py calls ``Connection(...)`` by
    name and has no factory) and quieten its per-error logging."""
    global _patched
    if _patched:
        return
    from mysql_mimic.version import __version__ as mimic_version
    if mimic_version != TESTED_MYSQL_MIMIC:
        log.warning("CometQL was written against mysql-mimic %s (its internals are subclassed), "
                    "found %s: check requirements.txt", TESTED_MYSQL_MIMIC, mimic_version)
    mm_server.Connection = CometConnection  # type: ignore[misc]
    logging.getLogger("mysql_mimic.connection").addFilter(_QuietMysqlErrors())
    # ... and logs every connect/close at INFO
    if logging.getLogger("mysql_mimic").level == logging.NOTSET:
        logging.getLogger("mysql_mimic").setLevel(logging.WARNING)
    # sqlglot warns when it falls back to a generic Command (e.g. REPLACE ..., SHOW FIELDS)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    _patched = True


async def start_cometql(hub: Any, host: str | None, port: int) -> CometQLServer:
    """Start the CometQL listener on ``host:port`` (port 0 = any free port)."""
    _install()
    server = CometQLServer(hub, host, port)
    await server.start()
    log.info("CometQL listening on %s:%s", host, server.port)
    return server


__all__ = ["CometQLServer", "CometSession", "CometConnection", "start_cometql", "dev_id_of",
           "SERVER_VERSION", "MAX_QUERY_LEN"]
