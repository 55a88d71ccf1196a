"""CometQL: comet_server's backend API over the MySQL wire protocol (docs/protocol.md §5).

The app starts it with ``server = await cometql.start_cometql(hub, host, port)`` and stops it
with ``await server.close()``. Any MySQL client works::

    mysql -h127.0.0.1 -P3307 -u1 -p"$PASSWORD" -DCometQL_v1 --skip-ssl \\
          -e "INSERT INTO pipes_messages (name, event, message) VALUES ('web_chat', 'new', 'hi')"

Login: user = dev_id (digits; ``root`` or ``0`` = dev_id 0), password = ``--password``,
database ``CometQL_v1`` (at connect time, ``USE`` or COM_INIT_DB). Layout:

* ``server.py``    mysql-mimic glue (auth, database, error codes, limits, the security fixes)
* ``packets.py``   strict parsers for every client packet (mysql-mimic's spin on truncated input)
* ``prepared.py``  prepared statements: placeholders found once, values bound as literals
* ``sql.py``       statements: a regex fast path for plain INSERTs, sqlglot for the rest
* ``tables.py``    the tables, executed against the Hub / Store
* ``errors.py``    CometQL error codes

Limits: a client must log in within ``login_timeout`` seconds (10) and may send at most
``preauth_max_packet`` bytes (64 KiB) per packet before that (``start_cometql`` keywords).

String literals (a deliberate difference from CppComet)
-------------------------------------------------------
comet_server decodes string literals exactly as MySQL does, so the text a subscriber receives is
the text the client library was given. PyMySQL (``cursor.execute(sql, params)``), PHP's
``mysqli_real_escape_string``/PDO, node ``mysql`` etc. escape ``'`` as ``\\'`` (or ``''``), and
both arrive as ``'``. CppComet keeps the escapes (``frames.md``, "CometQL string literal"):

=============================  ===================  ====================
SQL literal                    CppComet delivers    comet_server delivers
=============================  ===================  ====================
``'a''b'``                     ``a\\'b``             ``a'b``
``'a\\'b'``                     ``a\\'b``             ``a'b``
``"a\\"b"``                     ``a\\"b``             ``a"b``
``'a"b'`` / ``"a'b"``          verbatim             verbatim
``'line1\\nline2'``             backslash + ``n``    a newline
``'back\\\\slash'``              two backslashes      one backslash
``'x\\%y'``                     ``x\\%y``              ``x\\%y`` (MySQL keeps ``\\%``, ``\\_``)
=============================  ===================  ====================

So a backend that "stripslashes" what CppComet delivered must stop doing so; a backend that
quoted its text with the quote character that does not occur in it, without escapes (the
workaround CppComet needed), sees no difference. The server does not report
``SERVER_STATUS_NO_BACKSLASH_ESCAPES``, so drivers escape with backslashes, as for MySQL.
"""

from .errors import CometQLError
from .server import CometQLServer, start_cometql

__all__ = ["start_cometql", "CometQLServer", "CometQLError"]
