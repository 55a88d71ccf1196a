"""Connection authorization: users_auth hash or HS256 JWT (docs/protocol.md §4).

* Hash: the ``sesion`` value equals the stored users_auth hash of (dev_id, myid) exactly.
* JWT: HS256 signed with ``password + str(dev_id)``; ``exp`` required and in the future (no leeway);
  claim ``user_id`` must be a JSON integer equal to ``myid`` (a string "5" fails); the token must
  not be in revoked_tokens for that dev_id. Unlike CppComet, a JWT login hands out nothing that
  outlives the token: serverInfo ``data`` is ``""`` and no users_auth hash is created (CppComet
  creates one and sends it, so a 5-minute token gave a session for ever). The connection learns
  the token's ``exp`` (``AuthResult.expires``) and is closed when it passes (ws.py); revoking the
  token through CometQL closes the user's connections (cometql/tables.py).

Nothing is cached: hashes and revocations are read from the store on every connect.
"""

from __future__ import annotations

import hmac
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import jwt

from .seams import StoreAPI as Store

try:  # PyJWT 2.10+: HMAC keys shorter than 32 bytes warn; CppComet's secret scheme is short.
    from jwt.warnings import InsecureKeyLengthWarning as _KeyWarning
except ImportError:  # pragma: no cover
    _KeyWarning = UserWarning  # type: ignore[misc,assignment]

__all__ = ["AuthResult", "authenticate", "decode_jwt", "MAX_TOKEN_LEN"]

log = logging.getLogger("comet_server.auth")

#: the longest text ``decode_jwt`` will parse. One cap for both callers: a connect's ``sesion``
#: is already cut to 600 characters by the URL parser (wire.MAX_SESSION_LEN), so this bound only
#: matters for CometQL's ``revoked_tokens``, which stores tokens up to 4,096 characters and must
#: still recognise a valid one to cut its user off. It keeps PyJWT from parsing huge input.
MAX_TOKEN_LEN = 4096


@dataclass(frozen=True)
class AuthResult:
    authorized: bool
    #: serverInfo ``data``: the users_auth hash of a hash login, ``""`` otherwise
    key: str = ""
    #: a JWT login's ``exp`` (Unix time): the connection must end then
    expires: float | None = None


_REFUSED = AuthResult(False)


def decode_jwt(token: str, password: str, dev_id: int) -> dict[str, Any] | None:
    """The claims of a valid, unexpired HS256 JWT signed with ``password + str(dev_id)``, else
    None. Neither the user nor revocation is checked here."""
    if token.count(".") != 2 or len(token) > MAX_TOKEN_LEN:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _KeyWarning)
            claims = jwt.decode(token, password + str(dev_id), algorithms=["HS256"],
                                options={"require": ["exp"], "verify_exp": True})
    except jwt.PyJWTError:
        return None
    except Exception:  # noqa: BLE001 - never let a hostile token crash a connect
        log.debug("jwt decode failed", exc_info=True)
        return None
    return claims if isinstance(claims, dict) else None


def _jwt_claims(token: str, password: str, dev_id: int, user_id: int, store: Store) -> dict[str, Any] | None:
    """The claims of a valid, unexpired, unrevoked HS256 JWT for ``user_id``, else None."""
    claims = decode_jwt(token, password, dev_id)
    if claims is None:
        return None
    uid = claims.get("user_id")
    if type(uid) is not int or uid != user_id:
        return None
    if store.is_token_revoked(dev_id, token):
        return None
    return claims


def authenticate(store: Store, password: str, dev_id: int, user_id: int, session: str) -> AuthResult:
    """How the connection ``(dev_id, user_id, session)`` is authorized (see the module doc)."""
    if user_id <= 0 or not session:
        return _REFUSED
    claims = _jwt_claims(session, password, dev_id, user_id, store)
    if claims is not None:
        exp = claims["exp"]  # PyJWT has checked it is a number in the future
        return AuthResult(True, "", float(exp))
    stored = store.get_user_hash(dev_id, user_id)
    if stored is not None and hmac.compare_digest(stored.encode("utf-8"), session.encode("utf-8")):
        return AuthResult(True, stored)
    return _REFUSED
