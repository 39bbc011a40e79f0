"""A MongoDB wire-protocol test double on 127.0.0.1: enough for pymongo, not a database.

It answers the handshake (legacy OP_QUERY and OP_MSG `hello`/`isMaster`), `ping`, `find`
over in-memory collections with equality filters, and `{ok: 1}` for housekeeping commands
such as `endSessions`. Unknown commands fail with code 59 like a real server. Tests can
make the commands in `affects` misbehave (slow, unauthorised, truncated, garbage) while the
handshake and monitoring stay healthy, so the failure shows where a real one would: on
the probe's own command.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import bson
from bson.errors import BSONError
from bson.int64 import Int64

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
_HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
_CHECKSUM_PRESENT, _MORE_TO_COME = 1 << 0, 1 << 1
_HANDSHAKE = {"hello", "ismaster"}
# `garbage` sends what a web server answers when a MongoDB URL points at it: fixed bytes
# rather than random ones, so the client's failure is the same on every run
NOT_MONGODB = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
               b"Content-Length: 11\r\n\r\nBad Request")
_HOUSEKEEPING = {"endsessions", "killcursors", "buildinfo", "getlasterror", "saslcontinue"}


class MongoWireServer:
    """A threaded TCP server speaking the MongoDB wire protocol; one thread per connection.

    `collections` maps "db.collection" to its documents. `commands` counts every command
    received (lower-cased names). Behaviours apply only to commands named in `affects`.
    """

    def __init__(self, collections: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.collections: dict[str, list[dict[str, Any]]] = dict(collections or {})
        self.commands: Counter[str] = Counter()
        self.affects: set[str] = {"ping", "find"}
        self.delay = 0.0
        self.fail_auth = False
        self.close_mid_reply = False
        self.garbage = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._connection_ids = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"mongodb://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept_forever, daemon=True)

    def start(self) -> MongoWireServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, drop every connection, and wait for every thread to finish."""
        self._stopping.set()
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for conn in self._connections:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for worker in self._workers:
            worker.join(timeout=5)

    def reset(self) -> None:
        """Back to well-behaved, so a test can check the client recovers."""
        self.delay, self.fail_auth, self.close_mid_reply, self.garbage = 0.0, False, False, False

    def _accept_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.add(conn)
                self._connection_ids += 1
                connection_id = self._connection_ids
            worker = threading.Thread(target=self._serve, args=(conn, connection_id),
                                      daemon=True)
            self._workers.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket, connection_id: int) -> None:
        try:
            while not self._stopping.is_set():
                header = _recv_exact(conn, _HEADER.size)
                if header is None:
                    return
                length, request_id, _, op_code = _HEADER.unpack(header)
                payload = _recv_exact(conn, length - _HEADER.size)
                if payload is None:
                    return
                if not self._answer(conn, request_id, op_code, payload, connection_id):
                    return
        except (OSError, ValueError, struct.error, BSONError):
            return  # a client that sends nonsense just loses its connection
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def _answer(self, conn: socket.socket, request_id: int, op_code: int, payload: bytes,
                connection_id: int) -> bool:
        """Reply to one message; False when the connection should close."""
        if op_code == OP_QUERY:
            command = _parse_op_query(payload)
        elif op_code == OP_MSG:
            flags, command = _parse_op_msg(payload)
            if flags & _MORE_TO_COME:  # unacknowledged: the client expects no reply
                self._count(command)
                return True
        else:
            return False
        name = self._count(command)
        if name in self.affects:
            if self.delay and self._stopping.wait(self.delay):
                return False
            if self.garbage:
                conn.sendall(NOT_MONGODB)
                return False
            if self.close_mid_reply:
                reply = _op_msg(request_id, {"ok": 1.0, "pad": "x" * 200})
                conn.sendall(reply[: len(reply) // 2])
                return False
        reply_doc = self._reply(name, command, connection_id)
        if op_code == OP_QUERY:
            conn.sendall(_op_reply(request_id, reply_doc))
        else:
            conn.sendall(_op_msg(request_id, reply_doc))
        return True

    def _count(self, command: dict[str, Any]) -> str:
        name = next(iter(command), "").lower()
        with self._lock:
            self.commands[name] += 1
        return name

    def _reply(self, name: str, command: dict[str, Any], connection_id: int) -> dict[str, Any]:
        if name in _HANDSHAKE:
            return {"helloOk": True, "ismaster": True, "isWritablePrimary": True,
                    "maxWireVersion": 21, "minWireVersion": 0,
                    "maxBsonObjectSize": 16 * 1024 * 1024,
                    "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000,
                    "localTime": datetime.now(UTC), "logicalSessionTimeoutMinutes": 30,
                    "connectionId": connection_id, "ok": 1.0}
        if name in ("saslstart", "authenticate"):
            if self.fail_auth:
                return {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18,
                        "codeName": "AuthenticationFailed"}
            return {"ok": 0.0, "errmsg": "this test double cannot authenticate",
                    "code": 2, "codeName": "BadValue"}
        if self.fail_auth and name in self.affects:
            return {"ok": 0.0, "errmsg": f"command {name} requires authentication",
                    "code": 13, "codeName": "Unauthorized"}
        if name == "ping" or name in _HOUSEKEEPING:
            return {"ok": 1.0}
        if name == "find":
            return self._find(command)
        return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59,
                "codeName": "CommandNotFound"}

    def _find(self, command: dict[str, Any]) -> dict[str, Any]:
        ns = f"{command.get('$db', 'test')}.{command['find']}"
        wanted: dict[str, Any] = command.get("filter") or {}
        limit = int(command.get("limit") or 0)
        with self._lock:
            documents = [doc for doc in self.collections.get(ns, [])
                         if all(doc.get(key) == value for key, value in wanted.items())]
        if limit:
            documents = documents[:limit]
        return {"cursor": {"id": Int64(0), "ns": ns, "firstBatch": documents}, "ok": 1.0}


@contextmanager
def mongo_wire_server(
    collections: dict[str, list[dict[str, Any]]] | None = None,
) -> Iterator[MongoWireServer]:
    """A started MongoWireServer, stopped on exit."""
    server = MongoWireServer(collections).start()
    try:
        yield server
    finally:
        server.stop()


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size > 0:
        chunk = conn.recv(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_cstring(data: bytes, offset: int) -> tuple[str, int]:
    end = data.index(b"\x00", offset)
    return data[offset:end].decode(), end + 1


def _parse_op_query(payload: bytes) -> dict[str, Any]:
    # flags, fullCollectionName, numberToSkip, numberToReturn, query document
    _, offset = _read_cstring(payload, 4)
    offset += 8
    (size,) = struct.unpack_from("<i", payload, offset)
    return bson.decode(payload[offset:offset + size])


def _parse_op_msg(payload: bytes) -> tuple[int, dict[str, Any]]:
    """The body (kind 0) with any document sequences (kind 1) folded in as lists."""
    (flags,) = struct.unpack_from("<I", payload, 0)
    end = len(payload) - (4 if flags & _CHECKSUM_PRESENT else 0)
    offset, body, sequences = 4, {}, {}
    while offset < end:
        kind = payload[offset]
        offset += 1
        (size,) = struct.unpack_from("<i", payload, offset)
        if kind == 0:
            body = bson.decode(payload[offset:offset + size])
        else:
            identifier, doc_offset = _read_cstring(payload, offset + 4)
            sequences[identifier] = list(bson.decode_all(payload[doc_offset:offset + size]))
        offset += size
    return flags, {**body, **sequences}


def _op_reply(response_to: int, document: dict[str, Any]) -> bytes:
    # responseFlags, cursorID, startingFrom, numberReturned, documents
    body = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(document)
    return _HEADER.pack(_HEADER.size + len(body), 0, response_to, OP_REPLY) + body


def _op_msg(response_to: int, document: dict[str, Any]) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(document)
    return _HEADER.pack(_HEADER.size + len(body), 0, response_to, OP_MSG) + body
