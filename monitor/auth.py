"""Bearer tokens for the API, kept and compared as sha256 digests in constant time.

A deployment with no write token configured refuses every write (403) rather than
accepting anonymous ones. Wrong credentials count against the client's address
(`server.failed_auth`); once locked out it gets 429 until the window has passed, so
guessing costs a minute per handful of tries. A token that has already authenticated
from that address is the exception (see `FailedAuthLimiter`): someone else's guesses
from a shared address must not lock out a client that was working.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from monitor.config import ApiToken, token_digest
from monitor.ratelimit import FailedAuthLimiter, client_address, retry_after_seconds

ACTOR_STATE = "primewatch_actor"
"""`request.state` attribute naming the token a request authenticated with (the audit's
"who"); unset for anonymous requests."""


def match_token(tokens: list[ApiToken], presented: str) -> ApiToken | None:
    """The configured token whose digest is sha256(`presented`). Every digest is
    compared, in constant time, so timing tells nothing about which one or how close."""
    given = token_digest(presented)
    found: ApiToken | None = None
    for token in tokens:
        digest = token.digest
        if digest is not None and hmac.compare_digest(digest, given):
            found = token
    return found


def _limiter(request: Request) -> FailedAuthLimiter:
    limiter: FailedAuthLimiter = request.app.state.failed_auth  # set by create_app
    return limiter


def refuse_if_locked_out(request: Request) -> None:
    """429 with Retry-After while this client is locked out for failed authentications,
    unless it presents a token that authenticated from this address before."""
    limiter, client = _limiter(request), client_address(request.scope)
    wait = limiter.retry_after(client)
    if wait is None:
        return
    token = _known_token(request)
    if token is not None and limiter.known(client, token.name):
        return
    seconds = retry_after_seconds(wait)
    raise HTTPException(429, "too many failed authentications from this address; "
                             f"try again in {seconds}s",
                        headers={"Retry-After": str(seconds)})


def _known_token(request: Request) -> ApiToken | None:
    """The configured token the request presents (Bearer, or the dashboard's `?token=`
    or cookie), if any."""
    from dashboards.security import TOKEN_COOKIE  # dashboards imports this module

    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    presented = value.strip() if scheme.lower() == "bearer" else ""
    presented = presented or request.query_params.get("token") \
        or request.cookies.get(TOKEN_COOKIE, "")
    if not presented:
        return None
    tokens: list[ApiToken] = request.app.state.runtime.settings.server.tokens
    return match_token(tokens, presented)


def record_failure(request: Request) -> None:
    """Count wrong credentials presented by this client."""
    _limiter(request).record_failure(client_address(request.scope))


def record_actor(request: Request, name: str) -> None:
    """Name the token this request authenticated with, for the audit's "who", and
    remember it authenticated from this address (which a lockout then spares)."""
    setattr(request.state, ACTOR_STATE, name)
    _limiter(request).record_success(client_address(request.scope), name)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HTTPException(401, "this route needs `Authorization: Bearer <token>`",
                            headers={"WWW-Authenticate": "Bearer"})
    return value.strip()


def require_write(request: Request) -> str:
    """FastAPI dependency: the name of the write-scoped token presented, or 401/403/429."""
    refuse_if_locked_out(request)
    tokens: list[ApiToken] = request.app.state.runtime.settings.server.tokens
    if not any(t.digest is not None for t in tokens):
        raise HTTPException(403, "writes are disabled: no API token is configured "
                                 "(server.tokens)")
    token = match_token(tokens, _bearer(request))
    if token is None:
        record_failure(request)
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    record_actor(request, token.name)
    if token.scope != "write":
        raise HTTPException(403, f"token {token.name!r} is read-only")
    return token.name


Writer = Annotated[str, Depends(require_write)]
"""Route parameter type: the authenticated writer's token name (audit author)."""
