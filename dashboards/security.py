"""Security headers on every response, and who may read the dashboard pages.

Why a strict CSP: the pages render names and messages from probed targets (hostile
input); with `script-src 'self'` and no inline scripts or styles, an injected tag
cannot run. Charts use SVG presentation attributes, never `style=`.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.auth import (
    match_token,
    record_actor,
    record_failure,
    refuse_if_locked_out,
)
from monitor.config import Settings
from monitor.error_response import error_response

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
TOKEN_COOKIE = "primewatch_token"


def require_reader(request: Request) -> None:
    """FastAPI dependency for dashboard pages: enforce `dashboard.auth`."""
    settings: Settings = request.app.state.runtime.settings
    mode = settings.dashboard.auth
    if mode == "none":
        return
    refuse_if_locked_out(request)
    if mode == "basic":
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            # API clients with a configured token read without a password
            token = match_token(settings.server.tokens, header[7:].strip())
            if token is not None:
                record_actor(request, token.name)
                return
        if not _basic_ok(settings, header):
            if header:
                record_failure(request)
            raise HTTPException(401, "log in to see the dashboard",
                                headers={"WWW-Authenticate": 'Basic realm="primewatch"'})
        return
    presented = _presented_token(request)
    token = match_token(settings.server.tokens, presented) if presented else None
    if token is None:
        if presented:
            record_failure(request)
        raise HTTPException(401, "this dashboard needs a token: open it once with "
                                 "?token=<token> or send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    record_actor(request, token.name)


class ApiReadsNeedReader:
    """ASGI middleware: the JSON API's reads are as private as the pages (its writes
    check their write token themselves). /healthz, /readyz and /metrics stay open for
    orchestrators and Prometheus. Pure ASGI: it reads only headers, never the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/v1/") and \
                scope["method"] in ("GET", "HEAD"):
            try:
                require_reader(Request(scope, receive))
            except HTTPException as exc:
                response = error_response(exc.status_code, exc.detail,
                                          headers=exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _basic_ok(settings: Settings, header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    found = False
    for user in settings.dashboard.users:  # every user compared: timing tells nothing
        same_name = hmac.compare_digest(user.username.encode(), username.encode())
        same_password = hmac.compare_digest(user.password.get_secret_value().encode(),
                                            password.encode())
        found |= same_name and same_password
    return found


def _presented_token(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE, "")


def remember_token(request: Request, response: Response) -> None:
    """After `?token=` worked, keep it in an HttpOnly cookie so links need no token."""
    token = request.query_params.get("token")
    if token:
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
