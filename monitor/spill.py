"""The spill file: probe results that no longer fit in the sink's memory buffer during a
storage outage wait on local disk until the database is back.

Format: JSON lines, one result per line, only ever appended, so a crash mid-append can
tear only the last line; `open` cuts a torn tail off and every earlier record stays
readable. Replay progress is kept in `<path>.offset` (replaced atomically after each
stored batch), so a crash during replay writes at most one batch twice. An exclusive
lock on `<path>.lock` stops two processes sharing a working directory from replaying the
same file twice: the second one runs without a spill file and says so.

Records hold results as probed; replay hands them to the same writer as the buffer, so
they are sanitised where rows are built (monitor/storage/sanitize.py), and a record the
database still refuses is quarantined by the sink, which then saves the offset past it:
a poisoned record never blocks the file, nor is it replayed after a restart.

Threading: `append`, `advance` and `clear` run on the event loop; `read` and
`save_offset` run in the sink's worker thread. `read` only looks at bytes below `size`,
which `append` raises after its write has completed, so it never sees a half-written line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.config import StorageSection
from probes.base import ProbeResult

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_NAME = "primewatch-spill.jsonl"
_FIELDS = tuple(f.name for f in fields(ProbeResult))
_CHUNK = 1 << 20  # bytes read at a time when scanning a file left by an earlier run


def default_path(storage_url: str) -> Path:
    """Next to a SQLite file (`<db>-spill.jsonl`, like its `-wal`), else in the working
    directory: the place an operator already looks for primewatch's local state."""
    try:
        url = make_url(storage_url)
    except ArgumentError:
        return Path(DEFAULT_NAME)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not url.database.startswith("file:"):
        return Path(f"{url.database}-spill.jsonl")
    return Path(DEFAULT_NAME)


def open_spill(storage: StorageSection) -> SpillFile | None:
    """The configured spill file, recovered from an earlier run; None when disabled."""
    if storage.spill_max_bytes == 0:
        return None
    path = Path(storage.spill_path) if storage.spill_path else default_path(storage.url)
    spill = SpillFile(path, storage.spill_max_bytes)
    spill.check()
    if spill.problem is None:  # else there is nothing to take over, and trying would raise
        spill.open()
    return spill


def unusable_reason(path: Path) -> str | None:
    """Why results could not be spilled to `path`, found without writing anything (the
    default path is in the working directory, which a check must not litter); None
    when it looks usable. A missing directory is fine when it can be created: the first
    spill creates it."""
    try:
        if path.exists():
            if not path.is_file():
                return f"{path} is not a regular file"
            if not os.access(path, os.W_OK):
                return f"{path} is not writable by this user"
        existing = path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is not a directory"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"directory {existing} is not writable by this user"
    except OSError as exc:  # e.g. a directory on the way that we may not search
        return f"cannot check {path}: {exc.strerror or exc}"
    return None


def encode(result: ProbeResult) -> bytes:
    """One JSON line; `json` escapes newlines inside strings, so a record is one line."""
    record: dict[str, Any] = {"v": FORMAT_VERSION}
    for name in _FIELDS:
        record[name] = getattr(result, name)
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> ProbeResult:
    """Parse one line back; raise ValueError for anything a database write could choke
    on, so one bad record is skipped instead of blocking the replay forever."""
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(record, dict) or record.get("v") != FORMAT_VERSION:
        raise ValueError("not a spill record of this version")
    target, started_at, latency = record.get("target"), record.get("started_at"), \
        record.get("latency")
    if not isinstance(target, str) or not _number(started_at) or not _number(latency) \
            or not isinstance(record.get("ok"), bool):
        raise ValueError("missing or mistyped target, started_at, ok or latency")
    values = {k: v for k, v in record.items() if k in _FIELDS}
    try:
        values["counts"] = {str(k): (float(v[0]), float(v[1]))
                            for k, v in (values.get("counts") or {}).items()}
        values["values"] = {str(k): float(v) for k, v in (values.get("values") or {}).items()}
        values["details"] = {str(k): str(v) for k, v in (values.get("details") or {}).items()}
        return ProbeResult(**values)
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed field: {exc}") from None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class SpillBatch:
    """Records read from the spill file: `lines` consumed, `end` the offset after them.

    `marks` holds, for each result, (end, lines, unreadable) just past its line, so
    the sink can save progress past part of a batch (`head`) when storage fails halfway
    through isolating a refused record, and none of the stored part is written twice."""

    results: list[ProbeResult]
    end: int
    lines: int
    unreadable: int
    marks: tuple[tuple[int, int, int], ...] = ()

    def head(self, count: int) -> SpillBatch | None:
        """The batch cut just after its `count`th result; None for nothing at all."""
        if count >= len(self.results):
            return self
        if count <= 0:
            return None
        end, lines, unreadable = self.marks[count - 1]
        return SpillBatch(self.results[:count], end, lines, unreadable, self.marks[:count])


class SpillFile:
    """An append-only file of results, replayed from `offset` and removed once done."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        """Bytes in the file, every line complete."""
        self.offset = 0
        """Bytes already written back to storage."""
        self.pending = 0
        """Records not yet written back."""
        self._offset_path = path.with_name(path.name + ".offset")
        self._lock: IO[bytes] | None = None
        self._busy = False  # another process holds the lock: never touch the file
        self._failing = False  # the last append failed (logged once until one succeeds)
        self.problem: str | None = None
        """Why results cannot be spilled (shown by /readyz), or None while they can."""

    @property
    def usable(self) -> bool:
        return not self._busy

    def open(self) -> None:
        """Take over a file left by an earlier run: cut a torn last line, resume at the
        saved offset, count what is left. Without a file there is nothing to do."""
        if not self.path.exists():
            with contextlib.suppress(FileNotFoundError):
                self._offset_path.unlink()  # stale: its file was replayed and removed
            return
        if not self._take_lock():
            return
        with self.path.open("r+b") as file:
            size = file.seek(0, os.SEEK_END)
            complete = _last_line_end(file, size)
            if complete < size:
                log.warning("spill file %s: cut %d bytes of a record torn by a crash",
                            self.path, size - complete)
                file.truncate(complete)
            self.size = complete
            self.offset = self._saved_offset(file)
            self.pending = _count_lines(file, self.offset, self.size)
        if self.pending == 0:
            self.clear()
        else:
            log.warning("spill file %s holds %d results not yet stored; they will be "
                        "written once storage answers", self.path, self.pending)

    def check(self) -> None:
        """At start: warn now, not during the database outage the file exists for, when
        results could not be spilled here. The instance stays ready (see /readyz)."""
        reason = unusable_reason(self.path)
        if reason is None:
            return
        self.problem = reason
        log.warning("storage.spill_path: cannot spill to %s (%s); results past "
                    "storage.max_buffer would be lost in a database outage. Set "
                    "storage.spill_path to a file in a writable directory, or "
                    "storage.spill_max_bytes to 0 to never spill", self.path, reason)

    def append(self, results: Sequence[ProbeResult]) -> int:
        """Append as many results (oldest first) as the size cap allows; return how many.
        Never raises: a disk error is logged once and counts as a full file."""
        if not results or not self._take_lock():
            return 0
        lines: list[bytes] = []
        size = self.size
        for result in results:
            line = encode(result)
            if size + len(line) > self.max_bytes:
                break
            lines.append(line)
            size += len(line)
        if not lines:
            return 0
        try:
            with self.path.open("ab") as file:
                file.write(b"".join(lines))
        except OSError as exc:
            # Keep the file made of whole lines: cut whatever part of this write landed.
            with contextlib.suppress(OSError):
                os.truncate(self.path, self.size)
            if not self._failing:
                log.error("cannot append to spill file %s: %s", self.path, exc)
                self._failing = True
            self.problem = f"cannot append to {self.path}: {exc.strerror or exc}"
            return 0
        self._failing = False
        self.problem = None
        self.size = size
        self.pending += len(lines)
        return len(lines)

    def read(self, max_count: int) -> SpillBatch:
        """Up to `max_count` records after `offset` (worker thread; see module doc)."""
        end = self.size
        position = self.offset
        results: list[ProbeResult] = []
        marks: list[tuple[int, int, int]] = []
        lines = unreadable = 0
        with self.path.open("rb") as file:
            file.seek(position)
            while position < end and lines < max_count:
                line = file.readline()
                if not line.endswith(b"\n"):  # changed behind our back: do not guess
                    raise OSError(f"spill file ends at byte {position}, expected {end}")
                position += len(line)
                lines += 1
                try:
                    results.append(decode(line))
                except ValueError as exc:
                    unreadable += 1
                    log.warning("spill file %s: skipped an unreadable record at byte %d "
                                "(%s)", self.path, position - len(line), exc)
                else:
                    marks.append((position, lines, unreadable))
        return SpillBatch(results, position, lines, unreadable, tuple(marks))

    def save_offset(self, end: int) -> None:
        """Record that everything before `end` is stored (worker thread, after the
        write committed). Atomic: a crash leaves the old offset or the new one."""
        temporary = self._offset_path.with_name(self._offset_path.name + ".tmp")
        try:
            temporary.write_text(str(end))
            os.replace(temporary, self._offset_path)
        except OSError as exc:
            # Never fail the batch for this: it is stored, and retrying it would write
            # it twice. Only a crash before the file is done would replay it again.
            log.warning("cannot save the spill offset in %s: %s", self._offset_path, exc)

    def advance(self, batch: SpillBatch) -> None:
        """Take a stored batch off the backlog; remove the file once all of it is stored."""
        self.offset = batch.end
        self.pending = max(0, self.pending - batch.lines)
        if self.offset >= self.size:
            self.clear()

    def clear(self) -> None:
        """Remove the file, then its offset: a crash in between leaves only a stale
        offset, which `open` discards, never a file that would be replayed twice."""
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._offset_path.unlink()
        except OSError as exc:
            log.error("cannot remove the replayed spill file %s: %s", self.path, exc)
            return
        self.size = self.offset = self.pending = 0

    def discard(self, reason: str) -> None:
        """Give up on an unreadable file: keep it aside as `<path>.broken` for a human,
        and start afresh."""
        broken = self.path.with_name(self.path.name + ".broken")
        log.error("spill file %s unreadable (%s): %d results lost; moved to %s",
                  self.path, reason, self.pending, broken)
        with contextlib.suppress(OSError):
            os.replace(self.path, broken)
        self.clear()
        self.size = self.offset = self.pending = 0

    def close(self) -> None:
        """Release the lock (a process that exits releases it anyway)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _take_lock(self) -> bool:
        if self._lock is not None:
            return True
        if self._busy:
            return False
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = lock_path.open("ab")
        except OSError as exc:
            if not self._failing:
                log.error("cannot create spill lock %s: %s", lock_path, exc)
                self._failing = True
            self.problem = f"cannot create {lock_path}: {exc.strerror or exc}"
            return False
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            self._busy = True
            self.problem = "in use by another process (give each its own storage.spill_path)"
            log.error("spill file %s is in use by another process: this one will not "
                      "spill (give each process its own storage.spill_path)", self.path)
            return False
        self._lock = lock
        return True

    def _saved_offset(self, file: IO[bytes]) -> int:
        try:
            offset = int(self._offset_path.read_text().strip())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError):
            offset = -1
        at_line_start = offset == 0 or (0 < offset <= self.size and _byte_at(file, offset - 1)
                                        == b"\n")
        if not at_line_start:
            # Replaying from the start may write some results twice; guessing could lose some.
            log.warning("spill file %s: offset file unusable; replaying from the start",
                        self.path)
            return 0
        return offset


def _byte_at(file: IO[bytes], position: int) -> bytes:
    file.seek(position)
    return file.read(1)


def _last_line_end(file: IO[bytes], size: int) -> int:
    """The offset just after the file's last newline (0 if it has none)."""
    position = size
    while position > 0:
        start = max(0, position - _CHUNK)
        file.seek(start)
        chunk = file.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def _count_lines(file: IO[bytes], start: int, end: int) -> int:
    file.seek(start)
    count = 0
    remaining = end - start
    while remaining > 0:
        chunk = file.read(min(_CHUNK, remaining))
        if not chunk:
            break
        count += chunk.count(b"\n")
        remaining -= len(chunk)
    return count
