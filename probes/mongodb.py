"""The `mongodb` probe kind: a `ping`, then optionally one small timed `find`.

The ping proves a server is selectable and answering; the find proves the data path a
service depends on (the collection, its index, read permission) still works. One
`AsyncMongoClient` per target is kept between runs, as an application would keep it, so
steady-state latency is measured rather than connection setup every time; pymongo
rediscovers a server that went away. The whole run sits under one deadline (`timeout`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from bson import json_util
from bson.errors import BSONError
from pydantic import ConfigDict, Field, field_validator, model_validator
from pymongo import AsyncMongoClient
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ProtocolError,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from pymongo.uri_parser import parse_userinfo, split_hosts, split_options

from probes.base import (
    ErrorClass,
    ProbeContext,
    ProbeKind,
    ProbeResult,
    Signals,
    StrictModel,
    TargetConfig,
)
from probes.http_fetch import classify_transport_error

log = logging.getLogger(__name__)

_SCHEMES = ("mongodb://", "mongodb+srv://")
_AUTH_CODES = frozenset({13, 18})  # Unauthorized, AuthenticationFailed
_CONFIGURED_TIMEOUTS = re.compile(r" \(configured timeouts: [^)]*\)")  # noise in every error


class MongoQuery(StrictModel):
    """One small read: `find(filter).limit(limit)` on `collection` in the target's database."""

    collection: str = Field(min_length=1)
    filter: dict[str, Any] = Field(default_factory=dict,
                                   description="MongoDB Extended JSON, e.g. {'_id': {'$oid': ...}}")
    limit: int = Field(default=1, ge=1, le=1000)

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: dict[str, Any]) -> dict[str, Any]:
        to_bson_filter(value)
        return value


class MongoExpect(StrictModel):
    """What a good run looks like, beyond the server answering."""

    min_documents: int | None = Field(default=None, ge=0)


class MongoTarget(TargetConfig):
    """A MongoDB deployment (standalone, replica set, Atlas via mongodb+srv://)."""

    # the URL may carry a password: keep it out of reprs and validation errors
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["mongodb"] = "mongodb"
    url: str = Field(repr=False)
    database: str = Field(default="admin", min_length=1, pattern=r'^[^/\\. "$]+$')
    query: MongoQuery | None = None
    expect: MongoExpect = Field(default_factory=MongoExpect)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parse_mongo_url(value)
        return value

    @model_validator(mode="after")
    def _check_expect(self) -> MongoTarget:
        if self.expect.min_documents is not None and self.query is None:
            raise ValueError("expect.min_documents needs a `query` to count documents from")
        return self

    def display_url(self) -> str:
        return parse_mongo_url(self.url).redacted

    def signals(self) -> Signals:
        return Signals(values=frozenset({"ping_seconds", "query_seconds", "documents"}))


@dataclass(frozen=True, slots=True)
class MongoUrl:
    """What the probe needs to know about a connection string, parsed without any I/O."""

    srv: bool
    hosts: int
    options: frozenset[str]  # lower-cased option names
    username: str | None
    password: str | None
    redacted: str


def parse_mongo_url(url: str) -> MongoUrl:
    """Validate a mongodb:// or mongodb+srv:// URL; errors never repeat the credentials.

    Uses pymongo's own host and option parsers but not `parse_uri`, which resolves SRV
    records: config loading must not depend on DNS.
    """
    scheme = next((s for s in _SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise ValueError("invalid MongoDB URL: expected mongodb://host[:port][,host...]/ "
                         "or mongodb+srv://host/")
    rest = url[len(scheme):]
    location, _, opts = rest.partition("?")
    authority = location.split("/", 1)[0]
    userinfo, at, hosts = authority.rpartition("@")
    redacted = f"{scheme}***@{rest[len(userinfo) + 1:]}" if at else url
    try:
        username, password = parse_userinfo(userinfo) if at else (None, None)
        srv = scheme == "mongodb+srv://"
        nodes = split_hosts(hosts, default_port=None if srv else 27017)
        options = split_options(opts) if opts else {}
    except (PyMongoError, ValueError) as exc:
        raise ValueError(f"invalid MongoDB URL {redacted}: {exc}") from None
    names = frozenset(str(name).lower() for name in options)
    if srv and (len(nodes) != 1 or nodes[0][1] is not None):
        raise ValueError(f"invalid MongoDB URL {redacted}: mongodb+srv:// takes exactly one "
                         "host name and no port")
    if srv and options.get("directConnection"):
        raise ValueError(f"invalid MongoDB URL {redacted}: directConnection=true cannot be "
                         "used with mongodb+srv://")
    return MongoUrl(srv, len(nodes), names, username, password or None, redacted)


def to_bson_filter(value: dict[str, Any]) -> dict[str, Any]:
    """Read Extended JSON (`{"$oid": ...}`, `{"$date": ...}`) so YAML can name BSON types."""
    try:
        converted: dict[str, Any] = json_util.loads(json.dumps(value))
    except (TypeError, ValueError, BSONError) as exc:
        raise ValueError(f"filter is not valid MongoDB Extended JSON: {exc}") from None
    return converted


class MongoProbe:
    """Runs one MongoTarget with a client of its own, created on the first run."""

    def __init__(self, config: MongoTarget, *, region: str) -> None:
        self.config = config
        self.region = region
        self._url = parse_mongo_url(config.url)
        self._filter = to_bson_filter(config.query.filter) if config.query else {}
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    def _get_client(self) -> AsyncMongoClient[dict[str, Any]]:
        """Create the client on first use, inside the event loop that will drive it."""
        if self._client is None:
            timeout_ms = max(int(self.config.timeout * 1000), 1)
            options: dict[str, Any] = {
                "appname": "primewatch",
                # selection retries until this deadline; ours usually fires first and
                # the cause is then read from the monitors (see `_timeout_cause`)
                "serverSelectionTimeoutMS": timeout_ms,
                "connectTimeoutMS": timeout_ms,
                "socketTimeoutMS": timeout_ms,
                # a probe measures one attempt; a silent retry would hide the failure
                "retryWrites": False,
                "retryReads": False,
            }
            url = self._url
            if (not url.srv and url.hosts == 1 and "replicaset" not in url.options
                    and "loadbalanced" not in url.options
                    and "directconnection" not in url.options):
                # a lone host is that server, whatever its role, as the operator meant
                options["directConnection"] = True
            self._client = AsyncMongoClient(self.config.url, **options)
        return self._client

    async def run(self, started_at: float) -> ProbeResult:
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout):
                return await self._measure(started_at, t0)
        except TimeoutError:
            return self._fail(started_at, t0, *self._timeout_cause())
        except (PyMongoError, BSONError) as exc:
            error_class, message = classify_mongo_error(exc)
            return self._fail(started_at, t0, error_class, message)
        except Exception as exc:  # boundary: a probe never raises into the scheduler
            log.exception("mongodb probe %s failed unexpectedly", self.config.name)
            return self._fail(started_at, t0, ErrorClass.INTERNAL,
                              f"internal error: {type(exc).__name__}")

    async def _measure(self, started_at: float, t0: float) -> ProbeResult:
        config = self.config
        database = self._get_client()[config.database]
        await database.command("ping")
        values = {"ping_seconds": time.perf_counter() - t0}
        failure: tuple[str, str] | None = None
        if config.query is not None:
            q0 = time.perf_counter()
            cursor = database[config.query.collection].find(
                self._filter, limit=config.query.limit, batch_size=config.query.limit,
                max_time_ms=max(int(config.timeout * 1000), 1))
            documents = len(await cursor.to_list(config.query.limit))
            values["query_seconds"] = time.perf_counter() - q0
            values["documents"] = float(documents)
            wanted = config.expect.min_documents
            if wanted is not None and documents < wanted:
                failure = (ErrorClass.ASSERTION,
                           f"find on {config.query.collection!r} returned {documents} "
                           f"documents, expected at least {wanted}")
        result = ProbeResult(target=config.name, started_at=started_at, ok=failure is None,
                             latency=values["ping_seconds"] + values.get("query_seconds", 0.0),
                             region=self.region, values=values)
        if failure is not None:
            result.error_class, result.error = failure
        return result

    def _timeout_cause(self) -> tuple[str, str]:
        """Why the deadline passed: a server that never became reachable (refused, DNS,
        TLS) is reported as such from the monitors' last errors; otherwise it was slow."""
        slow = (ErrorClass.TIMEOUT, f"no complete answer within {self.config.timeout:g}s")
        if self._client is None:
            return slow
        servers = self._client.topology_description.server_descriptions().values()
        if any(server.is_server_type_known for server in servers):
            return slow
        errors = [server.error for server in servers if server.error is not None]
        if not errors:
            return slow
        error_class, message = classify_mongo_error(errors[0])
        return error_class, f"no server reachable within {self.config.timeout:g}s: {message}"

    def _fail(self, started_at: float, t0: float, error_class: str,
              message: str) -> ProbeResult:
        return ProbeResult(
            target=self.config.name, started_at=started_at, ok=False,
            latency=time.perf_counter() - t0, region=self.region,
            error_class=error_class, error=self._scrub(message)[:300],
        )

    def _scrub(self, message: str) -> str:
        """Driver messages should not carry the password; make sure of it."""
        password = self._url.password
        return message.replace(password, "***") if password else message

    async def aclose(self) -> None:
        """Close the client: ends server sessions, stops monitor tasks, closes sockets."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def classify_mongo_error(exc: BaseException) -> tuple[str, str]:
    """Map a pymongo error to an error class and a short message.

    Server selection errors only say why in their text ("Connection refused", "Name or
    service not known", "timed out"), so those are read from the first line of it.
    """
    if isinstance(exc, ServerSelectionTimeoutError):
        return _classify_selection(str(exc))
    if isinstance(exc, ExecutionTimeout | NetworkTimeout):
        return ErrorClass.TIMEOUT, f"timed out: {_short(exc)}"
    if isinstance(exc, OperationFailure):
        details = exc.details or {}
        label = " ".join(str(part) for part in (exc.code, details.get("codeName")) if part)
        text = details.get("errmsg") or str(exc)
        error_class = ErrorClass.AUTH if exc.code in _AUTH_CODES else ErrorClass.QUERY
        return error_class, f"server error {label}: {_short(text)}" if label \
            else f"server error: {_short(text)}"
    if isinstance(exc, ProtocolError | BSONError):
        return ErrorClass.PROTOCOL, f"not a valid MongoDB reply: {_short(exc)}"
    if isinstance(exc, ConfigurationError):
        # at run time this is the SRV/TXT lookup of a mongodb+srv:// URL
        return ErrorClass.DNS, f"DNS lookup failed: {_short(exc)}"
    if isinstance(exc, ConnectionFailure):
        error_class, message = classify_transport_error(exc)
        if error_class == ErrorClass.CONNECTION:
            message = f"connection failed: {_short(exc) or type(exc).__name__}"
        return error_class, message
    return ErrorClass.CONNECTION, f"{type(exc).__name__}: {_short(exc)}"


def _classify_selection(text: str) -> tuple[str, str]:
    cause = _short(text.split(", Timeout:", 1)[0])
    lowered = cause.lower()
    if "timed out" in lowered:
        return ErrorClass.TIMEOUT, f"no server answered in time: {_short(cause)}"
    error_class, message = classify_transport_error(Exception(cause))
    if error_class == ErrorClass.CONNECTION:
        message = f"no server available: {_short(cause)}"
    return error_class, message


def _short(value: object) -> str:
    text = _CONFIGURED_TIMEOUTS.sub("", str(value))
    return text if len(text) <= 160 else text[:157] + "..."


def _build(config: MongoTarget, ctx: ProbeContext) -> MongoProbe:
    return MongoProbe(config, region=ctx.region)


KIND = ProbeKind(MongoTarget, _build)
