"""The stock MySQL clients CppComet users have, each behind one call: ``client.run(request)``.

A request is a dict: connection (host, port, user, password, database), ``op`` and its arguments:

* ``publish`` / ``prepared_publish``: pipe, event, messages -> {"affected": [n per INSERT]}.
  ``publish`` lets the client escape the values itself (its own quoting or client-side
  placeholders); ``prepared_publish`` sends COM_STMT_PREPARE + COM_STMT_EXECUTE.
* ``personal``: user_id, event, message -> {"affected": [n]} (INSERT INTO users_messages)
* ``users_time``: ids -> {"rows": [[id, time], ...]} as the client types them
* ``query``: sql -> {"rows": [...] or None}

php-mysqli and mysql-cli also take ``charset`` (the connection character set, utf8mb4 when
absent); php-mysqli also takes ``native_types`` (MYSQLI_OPT_INT_AND_FLOAT_NATIVE) and the op
``prepared_users_time``.

Any error comes back as {"error": {"errno": <the MySQL error number the client exposes>, ...}}
with the client's own fields beside it (PHP's exception class and getCode(), PDO's errorInfo,
node's err.code ...). PHP and node run as subprocesses on tests/clients/php/client.php and
tests/clients/node/client.js: the request goes to them as JSON on stdin, never through a shell.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
PHP_SCRIPT = HERE / "php" / "client.php"
NODE_DIR = HERE / "node"
NODE_SCRIPT = NODE_DIR / "client.js"
CONNECTOR_C_SCRIPT = HERE / "python" / "connector_c.py"
SUBPROCESS_TIMEOUT = 60

INSERT_PIPE = "INSERT INTO pipes_messages (name, event, message) VALUES ({0}, {0}, {0})"
INSERT_USER = "INSERT INTO users_messages (id, event, message) VALUES ({0}, {0}, {0})"


@dataclass(frozen=True)
class Client:
    name: str
    run: Callable[[dict], dict]
    missing: Callable[[], str | None]       # why it cannot run here, or None
    prepares: bool                          # has server-side prepared statements
    slow_install: bool = False


# ---------------------------------------------------------------------------------------------
# PHP and node: one subprocess per request


def _subprocess(argv: list[str], request: dict, cwd: Path) -> dict:
    done = subprocess.run(argv, input=json.dumps(request), capture_output=True, text=True, cwd=cwd,
                          timeout=SUBPROCESS_TIMEOUT)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"{argv[0]} gave no JSON (exit {done.returncode})\nstdout: {done.stdout!r}\n"
                             f"stderr: {done.stderr}") from None
    return result


@cache
def _php_extensions() -> frozenset[str]:
    php = shutil.which("php")
    if php is None:
        return frozenset()
    out = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30).stdout
    return frozenset(line.strip().lower() for line in out.splitlines())


def _php_missing(extension: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        if shutil.which("php") is None:
            return "php is not installed (apt-get install php-cli php-mysql)"
        if extension not in _php_extensions():
            return f"PHP extension {extension} is missing (apt-get install php-mysql)"
        return None
    return missing


def _php(api: str) -> Callable[[dict], dict]:
    def run(request: dict) -> dict:
        result = _subprocess(["php", str(PHP_SCRIPT)], {**request, "api": api}, HERE)
        if "error" in result:
            err = result["error"]
            # PDOException::getCode() is the SQLSTATE; the server's number is errorInfo[1].
            err["errno"] = err["errorInfo"][1] if "errorInfo" in err else err["code"]
        return result
    return run


def _node_missing(lib: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        if shutil.which("node") is None:
            return "node is not installed (apt-get install nodejs npm)"
        if not (NODE_DIR / "node_modules" / lib / "package.json").exists():
            return f"npm package {lib} is not installed (npm ci in {NODE_DIR})"
        return None
    return missing


def _node(lib: str) -> Callable[[dict], dict]:
    def run(request: dict) -> dict:
        return _subprocess(["node", str(NODE_SCRIPT)], {**request, "lib": lib}, NODE_DIR)
    return run


# ---------------------------------------------------------------------------------------------
# Python DB-API clients, in this process


def _module_missing(module: str, pip_name: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"{pip_name} is not installed (scripts/setup_clients.sh)"
        return None
    return missing


def _dbapi_op(conn: Any, request: dict, *, prepared_cursor: Callable[[], Any] | None = None) -> dict:
    """One op on an open DB-API connection whose paramstyle is %s."""
    op = request["op"]
    if op == "prepared_publish":
        assert prepared_cursor is not None, "this client has no server-side prepared statements"
        cur = prepared_cursor()
    else:
        cur = conn.cursor()
    sql = INSERT_PIPE.format("%s")
    try:
        if op in ("publish", "prepared_publish"):
            affected = []
            for m in request["messages"]:
                cur.execute(sql, (request["pipe"], request["event"], m))
                affected.append(cur.rowcount)
            return {"affected": affected}
        if op == "personal":
            cur.execute(INSERT_USER.format("%s"), (request["user_id"], request["event"], request["message"]))
            return {"affected": [cur.rowcount]}
        if op == "users_time":
            ids = ", ".join(str(int(i)) for i in request["ids"])
            cur.execute(f"SELECT id, time FROM users_time WHERE id IN ({ids})")
            return {"rows": [list(r) for r in cur.fetchall()]}
        if op == "query":
            cur.execute(request["sql"])
            return {"rows": [list(r) for r in cur.fetchall()] if cur.description else None}
        raise ValueError(f"unknown op {op}")
    finally:
        cur.close()


def _dbapi_error(e: Exception) -> dict:
    errno = getattr(e, "errno", None)
    if not isinstance(errno, int) or errno < 0:
        errno = e.args[0] if e.args and isinstance(e.args[0], int) else None
    return {"errno": errno, "class": type(e).__name__, "message": str(getattr(e, "msg", "") or e)}


def _pymysql(request: dict) -> dict:
    import pymysql
    try:
        conn = pymysql.connect(host=request["host"], port=request["port"], user=request["user"],
                               password=request["password"], database=request["database"], charset="utf8mb4")
    except pymysql.MySQLError as e:
        return {"error": _dbapi_error(e)}
    try:
        return _dbapi_op(conn, request)
    except pymysql.MySQLError as e:
        return {"error": _dbapi_error(e)}
    finally:
        conn.close()


def _mysqlclient(request: dict) -> dict:
    import MySQLdb
    try:
        conn = MySQLdb.connect(host=request["host"], port=request["port"], user=request["user"],
                               password=request["password"], database=request["database"], charset="utf8mb4")
    except MySQLdb.MySQLError as e:
        return {"error": _dbapi_error(e)}
    try:
        return _dbapi_op(conn, request)
    except MySQLdb.MySQLError as e:
        return {"error": _dbapi_error(e)}
    finally:
        conn.close()


def run_connector(request: dict, *, use_pure: bool) -> dict:
    import mysql.connector
    try:
        conn = mysql.connector.connect(host=request["host"], port=request["port"], user=request["user"],
                                       password=request["password"], database=request["database"],
                                       use_pure=use_pure, connection_timeout=10)
    except mysql.connector.Error as e:
        return {"error": _dbapi_error(e)}
    try:
        is_cext = type(conn).__name__ == "CMySQLConnection"
        assert is_cext != use_pure, f"asked for use_pure={use_pure}, got {type(conn).__name__}"
        return _dbapi_op(conn, request, prepared_cursor=lambda: conn.cursor(prepared=True))
    except mysql.connector.Error as e:
        return {"error": _dbapi_error(e)}
    finally:
        try:
            conn.close()
        except mysql.connector.Error:
            pass        # a connection the server dropped cannot say goodbye


def _connector_pure(request: dict) -> dict:
    return run_connector(request, use_pure=True)


def _connector_c(request: dict) -> dict:
    # A subprocess: see the docstring of python/connector_c.py (OpenSSL clash).
    return _subprocess([sys.executable, str(CONNECTOR_C_SCRIPT)], request, HERE)


def _connector_c_missing() -> str | None:
    reason = _module_missing("mysql.connector", "mysql-connector-python")()
    if reason:
        return reason
    if importlib.util.find_spec("_mysql_connector") is None:
        return "mysql-connector-python has no C extension on this platform"
    return None


def _aiomysql(request: dict) -> dict:
    import aiomysql
    import pymysql

    async def main() -> dict:
        conn = await aiomysql.connect(host=request["host"], port=request["port"], user=request["user"],
                                      password=request["password"], db=request["database"], charset="utf8mb4")
        try:
            async with conn.cursor() as cur:
                op = request["op"]
                if op == "publish":
                    affected = []
                    for m in request["messages"]:
                        affected.append(await cur.execute(INSERT_PIPE.format("%s"),
                                                          (request["pipe"], request["event"], m)))
                    return {"affected": affected}
                if op == "personal":
                    n = await cur.execute(INSERT_USER.format("%s"),
                                          (request["user_id"], request["event"], request["message"]))
                    return {"affected": [n]}
                if op == "users_time":
                    ids = ", ".join(str(int(i)) for i in request["ids"])
                    await cur.execute(f"SELECT id, time FROM users_time WHERE id IN ({ids})")
                    return {"rows": [list(r) for r in await cur.fetchall()]}
                if op == "query":
                    await cur.execute(request["sql"])
                    return {"rows": [list(r) for r in await cur.fetchall()] if cur.description else None}
                raise ValueError(f"unknown op {op}")
        finally:
            conn.close()

    try:
        return asyncio.run(main())
    except pymysql.MySQLError as e:
        return {"error": _dbapi_error(e)}


# ---------------------------------------------------------------------------------------------
# MariaDB Connector/C (libmariadb), through a small C program built on first use

C_SOURCE = HERE / "c" / "client.c"


def _libmariadb_missing() -> str | None:
    if shutil.which("cc") is None:
        return "no C compiler (apt-get install gcc)"
    if shutil.which("pkg-config") is None or \
            subprocess.run(["pkg-config", "--exists", "libmariadb"], capture_output=True).returncode != 0:
        return "MariaDB Connector/C headers are missing (apt-get install pkg-config libmariadb-dev)"
    return None


@cache
def _libmariadb_binary() -> Path:
    digest = hashlib.sha256(C_SOURCE.read_bytes()).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / f"comet_clients_libmariadb_{digest}"
    if not binary.exists():
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmariadb"], capture_output=True, text=True,
                               check=True).stdout.split()
        partial = binary.with_name(f"{binary.name}.{os.getpid()}")
        done = subprocess.run(["cc", "-O1", "-o", str(partial), str(C_SOURCE), *flags], capture_output=True,
                              text=True)
        assert done.returncode == 0, f"cc failed: {done.stderr}"
        os.replace(partial, binary)
    return binary


def _libmariadb(request: dict) -> dict:
    op = request["op"]
    stdin = ""
    if op in ("publish", "prepared_publish"):
        args = [request["pipe"], request["event"]]
        stdin = "".join(m + "\0" for m in request["messages"])
    elif op == "personal":
        args = [str(int(request["user_id"])), request["event"]]
        stdin = request["message"] + "\0"
    elif op == "users_time":
        op, args = "query", [f"SELECT id, time FROM users_time WHERE id IN ({', '.join(str(int(i)) for i in request['ids'])})"]
    elif op == "query":
        args = [request["sql"]]
    else:
        raise ValueError(f"unknown op {op}")
    argv = [str(_libmariadb_binary()), op, request["host"], str(request["port"]), request["user"],
            request["password"], request["database"], *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"libmariadb client gave no JSON (exit {done.returncode})\nstdout: {done.stdout!r}\n"
                             f"stderr: {done.stderr}") from None


# ---------------------------------------------------------------------------------------------
# the mysql command line (MariaDB's), batch mode


def _sql_literal(value: object) -> str:
    """A MySQL string literal: what a shell-script user writes, escaped by MySQL's own rules."""
    from pymysql.converters import escape_string
    return "'" + escape_string(str(value)) + "'"


def _cli(request: dict) -> dict:
    from tests.cometql.conftest import mysql_cli

    op = request["op"]
    if op == "publish":
        sql = ";\n".join(INSERT_PIPE.format("{}").format(*map(_sql_literal, (request["pipe"], request["event"], m)))
                         for m in request["messages"])
    elif op == "personal":
        sql = INSERT_USER.format("{}").format(int(request["user_id"]), _sql_literal(request["event"]),
                                              _sql_literal(request["message"]))
    elif op == "users_time":
        sql = f"SELECT id, time FROM users_time WHERE id IN ({', '.join(str(int(i)) for i in request['ids'])})"
    elif op == "query":
        sql = request["sql"]
    else:
        raise ValueError(f"unknown op {op}")
    # -v -v prints "Query OK, N rows affected" per statement in batch mode.
    charset = f"--default-character-set={request.get('charset', 'utf8mb4')}"
    extra = (charset, "-vv") if op in ("publish", "personal") else (charset, "--skip-column-names")
    done = mysql_cli(request["port"], sql, dev_id=request["user"], password=request["password"],
                     database=request["database"], extra=extra)
    if done.returncode != 0:
        m = re.search(r"ERROR (\d+) \(([0-9A-Z]{5})\)[^:]*: (.*)", done.stderr.strip(), re.S)
        if not m:
            raise AssertionError(f"mysql exited {done.returncode}: {done.stderr}")
        return {"error": {"errno": int(m[1]), "sqlstate": m[2], "message": m[3]}}
    if op in ("publish", "personal"):
        return {"affected": [int(n) for n in re.findall(r"Query OK, (\d+) rows? affected", done.stdout)]}
    lines = done.stdout.splitlines()
    return {"rows": [line.split("\t") for line in lines] if lines else None}


def _cli_missing() -> str | None:
    return None if shutil.which("mysql") else "the mysql command line is not installed (apt-get install mariadb-client)"


# ---------------------------------------------------------------------------------------------

CLIENTS = [
    Client("php-mysqli", _php("mysqli"), _php_missing("mysqli"), prepares=True),
    Client("php-pdo", _php("pdo"), _php_missing("pdo_mysql"), prepares=True),
    Client("php-pdo-emulated", _php("pdo-emulated"), _php_missing("pdo_mysql"), prepares=False),
    Client("node-mysql2", _node("mysql2"), _node_missing("mysql2"), prepares=True),
    Client("node-mysql", _node("mysql"), _node_missing("mysql"), prepares=False),
    Client("connector-pure", _connector_pure, _module_missing("mysql.connector", "mysql-connector-python"),
           prepares=True),
    Client("connector-c", _connector_c, _connector_c_missing, prepares=True),
    Client("pymysql", _pymysql, _module_missing("pymysql", "PyMySQL"), prepares=False),
    Client("aiomysql", _aiomysql, _module_missing("aiomysql", "aiomysql"), prepares=False),
    Client("mysqlclient", _mysqlclient, _module_missing("MySQLdb", "mysqlclient"), prepares=False),
    Client("mysql-cli", _cli, _cli_missing, prepares=False),
    Client("libmariadb-c", _libmariadb, _libmariadb_missing, prepares=True),
]
