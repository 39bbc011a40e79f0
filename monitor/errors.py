"""The one error hierarchy of primewatch.

    PrimewatchError
    ├── ConfigError          config file unreadable or invalid (carries every problem found)
    ├── StorageError         the database refused or could not be reached
    └── NotFoundError        an API or CLI lookup named something that does not exist

A target being down is data (a failed ProbeResult), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass


class PrimewatchError(Exception):
    """Base class for every error primewatch raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file, located by file, line and key path."""

    file: str
    line: int | None
    path: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(PrimewatchError):
    """The config is invalid; `problems` lists every problem, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StorageError(PrimewatchError):
    """The database could not be reached or refused a write."""


class NotFoundError(PrimewatchError):
    """A lookup named a target, SLO or result that does not exist."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name!r} not found")
