"""Shared httpx clients for HTTP-based probes, one per TLS setting.

Why shared: building an `httpx.AsyncClient` costs 30–45 ms of CPU (SSL context and CA
bundle), so a client per probe would cost more than the probe. Why keep-alive off by
default: a fresh connection per probe measures what a new user meets (DNS, connect, TLS)
like blackbox_exporter does, and the httpcore pool degrades badly under overload.
"""

from __future__ import annotations

import ssl

import httpx


class HttpClientPool:
    """Hands out one long-lived AsyncClient per (verify, ca_file, keepalive) combination."""

    def __init__(self, *, user_agent: str = "primewatch") -> None:
        self._clients: dict[tuple[bool, str | None, bool], httpx.AsyncClient] = {}
        self._user_agent = user_agent

    def get(self, *, verify: bool = True, ca_file: str | None = None,
            keepalive: bool = False) -> httpx.AsyncClient:
        key = (verify, ca_file, keepalive)
        client = self._clients.get(key)
        if client is None:
            client = httpx.AsyncClient(
                verify=self._ssl_context(verify, ca_file),
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=None,
                    max_keepalive_connections=None if keepalive else 0,
                ),
                headers={"User-Agent": self._user_agent},
                trust_env=False,
            )
            self._clients[key] = client
        return client

    @staticmethod
    def _ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
        if not verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if ca_file:
            return ssl.create_default_context(cafile=ca_file)
        return ssl.create_default_context()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
