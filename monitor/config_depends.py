"""Checks of `targets[].depends_on`: every name must be a target, and no chain of
dependencies may lead back to where it started.

Why a cycle is an error and not merely odd: a child's alerts join the incident of the
failing target it depends on; with a cycle, two failing targets would each claim the
other as the one to group under, and neither outage would have a stable incident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Problem = tuple[tuple[Any, ...], str]


def dependency_problems(targets: Sequence[tuple[int, Mapping[str, Any]]],
                        names: set[str]) -> list[Problem]:
    """(path, message) pairs for unknown, self- and circular dependencies.

    `targets` are the raw (index, item) pairs of the `targets` section, `names` the
    target names defined there.
    """
    problems: list[Problem] = []
    edges: dict[str, list[str]] = {}
    for index, target in targets:
        name = target.get("name")
        listed = target.get("depends_on")
        if not isinstance(listed, list):
            continue
        for d_index, parent in enumerate(listed):
            if not isinstance(parent, str):
                continue
            path = ("targets", index, "depends_on", d_index)
            if parent == name:
                problems.append((path, f"target {name!r} cannot depend on itself"))
            elif parent not in names:
                known = ", ".join(sorted(names)) or "none defined"
                problems.append((path, f"target {name!r} depends on {parent!r}, which is "
                                       f"not defined (targets: {known})"))
            elif isinstance(name, str):
                edges.setdefault(name, []).append(parent)
    for index, target in targets:
        name = target.get("name")
        if isinstance(name, str) and _reaches(edges, name, name):
            problems.append((("targets", index, "depends_on"),
                             f"target {name!r} depends on itself through "
                             f"{' → '.join(_cycle(edges, name))}"))
    return problems


def _reaches(edges: Mapping[str, list[str]], start: str, goal: str) -> bool:
    """Whether following depends_on from `start` comes back to `goal`."""
    seen: set[str] = set()
    stack = list(edges.get(start, []))
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(edges.get(node, []))
    return False


def _cycle(edges: Mapping[str, list[str]], start: str) -> list[str]:
    """One dependency path from `start` back to itself, for the message."""
    path = [start]
    node = start
    seen = {start}
    while True:
        following = [p for p in edges.get(node, []) if p == start or _reaches(edges, p, start)]
        if not following:
            return path
        node = following[0]
        path.append(node)
        if node == start or node in seen:
            return path
        seen.add(node)
