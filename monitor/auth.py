"""Bearer tokens for the API's write routes, compared in constant time.

A deployment with no write token configured refuses every write (403) rather than
accepting anonymous ones.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from monitor.config import ApiToken


def match_token(tokens: list[ApiToken], presented: str) -> ApiToken | None:
    """The configured token equal to `presented`; every token is compared, in constant
    time, so timing tells nothing about how close a guess was."""
    found: ApiToken | None = None
    given = presented.encode()
    for token in tokens:
        secret = token.token.get_secret_value().encode() if token.token else b""
        if secret and hmac.compare_digest(secret, given):
            found = token
    return found


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HTTPException(401, "this route needs `Authorization: Bearer <token>`",
                            headers={"WWW-Authenticate": "Bearer"})
    return value.strip()


def require_write(request: Request) -> str:
    """FastAPI dependency: the name of the write-scoped token presented, or 401/403."""
    tokens: list[ApiToken] = request.app.state.runtime.settings.server.tokens
    if not any(t.token and t.token.get_secret_value() for t in tokens):
        raise HTTPException(403, "writes are disabled: no API token is configured "
                                 "(server.tokens)")
    token = match_token(tokens, _bearer(request))
    if token is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    if token.scope != "write":
        raise HTTPException(403, f"token {token.name!r} is read-only")
    return token.name


Writer = Annotated[str, Depends(require_write)]
"""Route parameter type: the authenticated writer's token name (audit author)."""
