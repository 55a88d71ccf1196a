"""mysql-connector-python's C extension (libmysqlclient), one request from stdin as JSON.

Its own process, because the extension must be loaded before anything loads the system OpenSSL:
mysql-connector-python 26.10.0's wheel links a bundled libssl.so.3 that needs OPENSSL_3.2.0, and
once Python's ssl module has put Debian 12's OpenSSL 3.0 into the process the extension fails to
load and mysql.connector silently falls back to its pure-Python protocol (HAVE_CEXT is False).
"""

import _mysql_connector  # noqa: F401  (first, before ssl: see above)

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import mysql.connector  # noqa: E402

from tests.clients.drivers import run_connector  # noqa: E402

if __name__ == "__main__":
    assert mysql.connector.HAVE_CEXT, "the C extension did not load"
    print(json.dumps(run_connector(json.load(sys.stdin), use_pure=False)))
