"""CometQL error codes (CppComet ``CometQL.h``; docs/protocol.md §5).

Every error a client can see is a :class:`CometQLError` carrying one of these codes; the
MySQL glue turns it into an ERR packet with that code (SQLSTATE ``HY000``).
"""

from __future__ import annotations

UNSPECIFIED = 1
NOT_IMPLEMENTED = 2      # OR, ORDER BY, JOIN, UPDATE, ... (valid SQL, not part of CometQL)
SYNTAX = 3               # unparseable query
READ_ONLY = 10           # INSERT/DELETE on pipes, users_in_pipes, users_time
TOO_LONG = 11            # name > 64, query too long, history length > 1000, ...
INVALID_DATA = 12        # bad characters, missing/NULL required field, id <= 0, ...
NO_KEY = 13              # SELECT/DELETE without the table's key in WHERE
BAD_COLUMNS = 14         # unknown column, column/value count mismatch, no column list
NOT_FOUND = 15           # unknown table or database, no database selected
AUTH = 16                # authentication failure (the connection is closed)
TOO_SHORT = 17           # channel name < 3, query < 4 chars, empty hash
TOO_MANY_CONDITIONS = 18
TOO_MANY_VALUES = 19
ACCESS_DENIED = 403      # query on a session that is not authorized to run queries
INTERNAL = 500


class CometQLError(Exception):
    """A CometQL-level error: ``code`` is what the MySQL client sees as the error number."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
