"""Connection authorization: users_auth hash or HS256 JWT (protocol.md §5).

* Hash: the ``sesion`` value equals the stored users_auth hash of (dev_id, myid) exactly.
* JWT: HS256 signed with ``password + str(dev_id)``; ``exp`` required and in the future (no leeway);
  claim ``user_id`` must be a JSON integer equal to ``myid`` (a string "5" fails); the token must
  not be in revoked_tokens for that dev_id. On success the user gets a random 32-char hash in
  users_auth if it has none, and serverInfo carries the stored hash.

Nothing is cached: hashes and revocations are read from the store on every connect.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import warnings

import jwt

from .store import Store

try:  # PyJWT 2.10+: HMAC keys shorter than 32 bytes warn; CppComet's secret scheme is short.
    from jwt.warnings import InsecureKeyLengthWarning

    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
except ImportError:  # pragma: no cover
    pass

__all__ = ["authenticate", "verify_jwt", "new_hash", "MAX_SESSION_LEN"]

log = logging.getLogger("comet_server.auth")

MAX_SESSION_LEN = 600


def new_hash() -> str:
    """A random 32-char users_auth hash (valid for CometQL: [0-9a-f])."""
    return secrets.token_hex(16)


def verify_jwt(token: str, password: str, dev_id: int, user_id: int, store: Store | None = None) -> bool:
    """True when ``token`` is a valid, unexpired, unrevoked HS256 JWT for ``user_id``."""
    if token.count(".") != 2 or len(token) > MAX_SESSION_LEN:
        return False
    try:
        claims = jwt.decode(token, password + str(dev_id), algorithms=["HS256"],
                            options={"require": ["exp"], "verify_exp": True})
    except jwt.PyJWTError:
        return False
    except Exception:  # noqa: BLE001 - never let a hostile token crash a connect
        log.debug("jwt decode failed", exc_info=True)
        return False
    uid = claims.get("user_id")
    if type(uid) is not int or uid != user_id:
        return False
    if store is not None and store.is_token_revoked(dev_id, token):
        return False
    return True


def authenticate(store: Store, password: str, dev_id: int, user_id: int, session: str) -> tuple[bool, str]:
    """Returns ``(authorized, hash_for_serverInfo)``; ``(False, "")`` when not authorized."""
    if user_id <= 0 or not session:
        return False, ""
    if verify_jwt(session, password, dev_id, user_id, store):
        stored = store.get_user_hash(dev_id, user_id)
        if stored is None:
            stored = new_hash()
            store.set_user_hash(dev_id, user_id, stored)
        return True, stored
    stored = store.get_user_hash(dev_id, user_id)
    if stored is not None and hmac.compare_digest(stored.encode("utf-8"), session.encode("utf-8")):
        return True, stored
    return False, ""
