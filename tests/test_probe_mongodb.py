"""The mongodb probe against a wire-protocol test double on loopback, and a real server
when PRIMEWATCH_TEST_MONGODB_URL names one."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    OperationFailure,
    ProtocolError,
    ServerSelectionTimeoutError,
)

from probes.base import ErrorClass, ProbeContext, ProbeResult
from probes.http_client import HttpClientPool
from probes.mongodb import KIND, MongoProbe, MongoTarget, classify_mongo_error
from tests.mongo_wire import MongoWireServer, mongo_wire_server
from tests.servers import free_port

ORDERS = [{"_id": 1, "status": "paid"}, {"_id": 2, "status": "new"},
          {"_id": 3, "status": "paid"}]


@pytest.fixture
def wire() -> Iterator[MongoWireServer]:
    with mongo_wire_server({"shop.orders": ORDERS}) as server:
        yield server


def make_probe(**target: Any) -> MongoProbe:
    config = MongoTarget.model_validate({"name": "db", "type": "mongodb", "timeout": "1s",
                                         **target})
    probe = KIND.build(config, ProbeContext(HttpClientPool(), region="test"))
    assert isinstance(probe, MongoProbe)
    return probe


def with_probe(probe: MongoProbe, body: Callable[[MongoProbe], Awaitable[Any]]) -> Any:
    """Run `body` in one event loop (the client's), then close the probe's client."""
    async def main() -> Any:
        try:
            return await body(probe)
        finally:
            await probe.aclose()
    return asyncio.run(main())


def run_once(**target: Any) -> ProbeResult:
    result: ProbeResult = with_probe(make_probe(**target), lambda p: p.run(time.time()))
    return result


def test_ping_succeeds_and_is_timed(wire: MongoWireServer) -> None:
    result = run_once(url=wire.url)
    assert result.ok, result.error
    assert result.region == "test"
    assert set(result.values) == {"ping_seconds"}
    assert 0 < result.values["ping_seconds"] == result.latency < 1
    assert wire.commands["ping"] == 1


def test_find_counts_matching_documents(wire: MongoWireServer) -> None:
    result = run_once(url=wire.url, database="shop",
                      query={"collection": "orders", "filter": {"status": "paid"}, "limit": 5},
                      expect={"min_documents": 2})
    assert result.ok, result.error
    assert result.values["documents"] == 2
    assert result.values["query_seconds"] > 0
    assert result.latency == pytest.approx(result.values["ping_seconds"]
                                           + result.values["query_seconds"])
    assert wire.commands["find"] == 1


def test_too_few_documents_fails_the_assertion(wire: MongoWireServer) -> None:
    result = run_once(url=wire.url, database="shop",
                      query={"collection": "orders", "filter": {"status": "refunded"}},
                      expect={"min_documents": 1})
    assert not result.ok
    assert result.error_class == ErrorClass.ASSERTION
    assert result.values["documents"] == 0
    assert "0 documents, expected at least 1" in (result.error or "")


def test_slow_server_times_out_within_the_deadline(wire: MongoWireServer) -> None:
    wire.delay = 5.0
    t0 = time.perf_counter()
    result = run_once(url=wire.url, timeout="300ms")
    assert time.perf_counter() - t0 < 2
    assert not result.ok
    assert result.error_class == ErrorClass.TIMEOUT
    assert result.latency < 1


def test_refused_port_is_refused() -> None:
    result = run_once(url=f"mongodb://127.0.0.1:{free_port()}", timeout="500ms")
    assert not result.ok
    assert result.error_class == ErrorClass.REFUSED, result.error


def test_unresolvable_host_is_a_dns_failure() -> None:
    t0 = time.perf_counter()
    result = run_once(url="mongodb://no-such-host.invalid:27017", timeout="500ms")
    assert time.perf_counter() - t0 < 2
    assert not result.ok
    assert result.error_class == ErrorClass.DNS, result.error


def test_reply_cut_off_mid_message_is_a_connection_failure(wire: MongoWireServer) -> None:
    wire.close_mid_reply = True
    result = run_once(url=wire.url)
    assert not result.ok
    assert result.error_class == ErrorClass.CONNECTION, result.error


def test_a_reply_that_is_not_mongodb_is_a_protocol_error(wire: MongoWireServer) -> None:
    # Over a real network the bad reply arrives after pymongo awaits it; with an instant
    # reply pymongo's asyncio reader reports "connection is already closed" instead.
    wire.garbage, wire.delay = True, 0.05
    result = run_once(url=wire.url)
    assert not result.ok
    assert result.error_class == ErrorClass.PROTOCOL, result.error
    assert "larger than server max message size" in (result.error or "")


def test_an_instant_bad_reply_still_fails_with_a_clear_class(wire: MongoWireServer) -> None:
    wire.garbage = True
    result = run_once(url=wire.url)
    assert not result.ok
    assert result.error_class in (ErrorClass.PROTOCOL, ErrorClass.CONNECTION), result.error


def test_the_same_probe_recovers_after_failures(wire: MongoWireServer) -> None:
    async def body(probe: MongoProbe) -> list[ProbeResult]:
        results = []
        for fault in ("delay", "close_mid_reply", "garbage", "fail_auth", None):
            wire.reset()
            if fault is not None:
                setattr(wire, fault, 5.0 if fault == "delay" else True)
            results.append(await probe.run(time.time()))
        return results

    # 1s: after a network error pymongo rediscovers the server, which takes up to 0.5s
    results = with_probe(make_probe(url=wire.url, timeout="1s", database="shop",
                                    query={"collection": "orders"}), body)
    expected: list[set[str | None]] = [
        {ErrorClass.TIMEOUT}, {ErrorClass.CONNECTION},
        {ErrorClass.PROTOCOL, ErrorClass.CONNECTION}, {ErrorClass.AUTH}, {None}]
    assert all(r.error_class in wanted for r, wanted in zip(results, expected, strict=True)), \
        [(r.error_class, r.error) for r in results]
    assert results[-1].ok and results[-1].values["documents"] == 1


def test_credentials_are_redacted_and_kept_out_of_errors(wire: MongoWireServer) -> None:
    url = f"mongodb://alice:s3cr%40t@127.0.0.1:{wire.port}/?authSource=admin"
    wire.fail_auth = True
    probe = make_probe(url=url)
    assert probe.config.display_url() == f"mongodb://***@127.0.0.1:{wire.port}/?authSource=admin"
    assert "s3cr" not in repr(probe.config)
    result: ProbeResult = with_probe(probe, lambda p: p.run(time.time()))
    assert result.error_class == ErrorClass.AUTH
    assert "s3cr" not in (result.error or "") and "alice" not in (result.error or "")


def test_a_refused_connection_with_credentials_does_not_leak_them() -> None:
    result = run_once(url=f"mongodb://alice:hunter22@127.0.0.1:{free_port()}/",
                      timeout="500ms")
    assert result.error_class == ErrorClass.REFUSED
    assert "hunter22" not in (result.error or "")


@pytest.mark.parametrize(("target", "fragment"), [
    ({"url": "http://db:27017"}, "expected mongodb://"),
    ({"url": "mongodb://"}, "invalid MongoDB URL"),
    ({"url": "mongodb+srv://cluster0.example.net:27017"}, "no port"),
    ({"url": "mongodb+srv://cluster0.example.net/?directConnection=true"},
     "directConnection"),
    ({"url": "mongodb://db/?notAnOption=1&w=banana:x"}, "invalid MongoDB URL"),
    ({"url": "mongodb://db", "expect": {"min_documents": 1}}, "needs a `query`"),
    ({"url": "mongodb://db", "query": {"collection": "c", "filter": {"_id": {"$oid": "x"}}}},
     "Extended JSON"),
    ({"url": "mongodb://db", "query": {"collection": "c", "limit": 0}}, "greater than"),
])
def test_invalid_config_is_rejected(target: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        MongoTarget.model_validate({"name": "db", **target})


def test_url_errors_do_not_repeat_the_password() -> None:
    with pytest.raises(ValidationError) as caught:
        MongoTarget.model_validate({"name": "db", "url": "mongodb://bob:hunter22@db/?w=-5"})
    assert "hunter22" not in str(caught.value)
    assert "mongodb://***@db/" in str(caught.value)


def test_valid_urls_and_their_display_form() -> None:
    for url, shown in [
        ("mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"),
        ("mongodb://u:p@a:1,b:2/app?replicaSet=rs0", "mongodb://***@a:1,b:2/app?replicaSet=rs0"),
        ("mongodb+srv://u:p@cluster0.ab1cd.mongodb.net/?retryWrites=true",
         "mongodb+srv://***@cluster0.ab1cd.mongodb.net/?retryWrites=true"),
    ]:
        assert MongoTarget.model_validate({"name": "db", "url": url}).display_url() == shown


@pytest.mark.parametrize(("error", "expected"), [
    (ServerSelectionTimeoutError("h:1: [Errno 111] Connection refused (configured timeouts: "
                                 "x), Timeout: 1s, Topology Description: <...>"),
     ErrorClass.REFUSED),
    (ServerSelectionTimeoutError("nohost:27017: [Errno -2] Name or service not known, "
                                 "Timeout: 1s, Topology Description: <...timed out...>"),
     ErrorClass.DNS),
    (ServerSelectionTimeoutError("h:1: timed out, Timeout: 1s, Topology Description: <...>"),
     ErrorClass.TIMEOUT),
    (OperationFailure("Authentication failed.", code=18), ErrorClass.AUTH),
    (OperationFailure("not authorized on shop", code=13), ErrorClass.AUTH),
    (OperationFailure("unknown operator: $bogus", code=2), ErrorClass.QUERY),
    (ExecutionTimeout("operation exceeded time limit", code=50), ErrorClass.TIMEOUT),
    (ProtocolError("Got opcode 7"), ErrorClass.PROTOCOL),
    (AutoReconnect("h:1: connection closed"), ErrorClass.CONNECTION),
])
def test_driver_errors_map_to_error_classes(error: Exception, expected: str) -> None:
    error_class, message = classify_mongo_error(error)
    assert error_class == expected
    assert "Topology Description" not in message and "configured timeouts" not in message


def test_against_a_real_mongodb() -> None:
    url = os.environ.get("PRIMEWATCH_TEST_MONGODB_URL")
    if not url:
        pytest.skip("set PRIMEWATCH_TEST_MONGODB_URL to test against a real MongoDB")
    collection = f"primewatch_probe_{uuid.uuid4().hex[:12]}"

    async def main() -> ProbeResult:
        admin: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=5000)
        probe = make_probe(url=url, timeout="5s", database="primewatch_test",
                           query={"collection": collection, "filter": {"kind": "probe"},
                                  "limit": 10},
                           expect={"min_documents": 2})
        try:
            await admin["primewatch_test"][collection].insert_many(
                [{"kind": "probe", "n": n} for n in range(3)])
            return await probe.run(time.time())
        finally:
            await probe.aclose()
            await admin["primewatch_test"].drop_collection(collection)
            await admin.close()

    result = asyncio.run(main())
    assert result.ok, result.error
    assert result.values["documents"] == 3
    assert result.values["ping_seconds"] > 0 and result.values["query_seconds"] > 0
