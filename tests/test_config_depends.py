"""`depends_on` and `min_regions_failing` on targets: names that must resolve, no cycles,
and errors located like every other config problem (file, line, key path)."""

from __future__ import annotations

from textwrap import dedent

import pytest

from monitor.config_loader import parse_config
from monitor.errors import ConfigError, ConfigProblem


def problems(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        parse_config(dedent(text), "bad.yaml", {})
    return info.value.problems


def test_dependencies_and_regions_load() -> None:
    loaded = parse_config(dedent("""\
        targets:
          - {name: db, type: http, url: 'http://127.0.0.1:9/'}
          - {name: api, type: http, url: 'http://127.0.0.1:9/', depends_on: [db],
             min_regions_failing: 2}
        """), "good.yaml", {})
    api = loaded.settings.targets[1]
    assert api.depends_on == ("db",) and api.min_regions_failing == 2
    assert loaded.settings.targets[0].depends_on == ()
    assert loaded.settings.targets[0].min_regions_failing == 1


def test_an_unknown_dependency_is_named_with_its_line() -> None:
    [problem] = problems("""\
        targets:
          - {name: db, type: http, url: 'http://127.0.0.1:9/'}
          - name: api
            type: http
            url: 'http://127.0.0.1:9/'
            depends_on: [db, cache]
        """)
    assert problem.line == 6 and problem.path == "targets[1].depends_on[1]"
    assert "depends on 'cache', which is not defined (targets: api, db)" in problem.message


def test_a_dependency_cycle_is_refused() -> None:
    found = problems("""\
        targets:
          - {name: a, type: http, url: 'http://127.0.0.1:9/', depends_on: [b]}
          - {name: b, type: http, url: 'http://127.0.0.1:9/', depends_on: [a]}
          - {name: c, type: http, url: 'http://127.0.0.1:9/', depends_on: [c]}
        """)
    messages = sorted(p.message for p in found)
    assert any("'a' depends on itself through a → b → a" in m for m in messages)
    assert any("'c' cannot depend on itself" in m for m in messages)


def test_min_regions_failing_must_be_positive() -> None:
    [problem] = problems("""\
        targets:
          - {name: api, type: http, url: 'http://127.0.0.1:9/', min_regions_failing: 0}
        """)
    assert problem.path == "targets[0].min_regions_failing"
