"""What a new user meets first: options where they type them, every command's --help,
the README's command table, and clear words for a wrong database, bad YAML and
configs that validate but cannot mean what they say."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from monitor.cli import EXIT_OK, EXIT_USAGE, build_parser, command_parsers, main
from monitor.units import format_measure
from tests.conftest import POSTGRES_URL, service_missing

README = Path(__file__).resolve().parent.parent / "README.md"
GOOD = """\
service: {name: first contact}
storage: {url: "sqlite:///DB"}
targets:
  - {name: api, type: http, url: "http://127.0.0.1:9/health", interval: 10s, timeout: 2s}
slos:
  - {name: api-latency, target: api, sli: latency, threshold: 200ms, objective: 95}
"""


def write(tmp_path: Path, text: str, name: str = "my.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("DB", str(tmp_path / "pw.db")), encoding="utf-8")
    return path


def _filled(words: tuple[str, ...], parser: argparse.ArgumentParser) -> list[str]:
    """The command's words plus a stand-in for each required argument."""
    filled = list(words)
    for action in parser._actions:
        if action.dest == "help" or (action.option_strings and not action.required):
            continue
        value = str(next(iter(action.choices))) if action.choices else "1"
        filled += [action.option_strings[0], value] if action.option_strings else [value]
    return filled


def test_every_command_takes_config_and_log_format_after_its_name(tmp_path: Path) -> None:
    parser = build_parser()
    commands = command_parsers(parser)
    assert len(commands) >= 15  # the walk found the nested ones (db upgrade, slo status ...)
    for words, command in commands:
        argv = _filled(words, command)
        after = parser.parse_args([*argv, "--config", "x.yaml", "--log-format", "json"])
        assert (after.config, after.log_format) == ("x.yaml", "json"), words
        before = parser.parse_args(["--config", "y.yaml", "--log-format", "json", *argv])
        assert (before.config, before.log_format) == ("y.yaml", "json"), words
        plain = parser.parse_args(argv)
        assert plain.log_format == "text", words


def test_options_after_the_command_run_it(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, GOOD)
    assert main(["check", "--config", str(good)]) == EXIT_OK
    assert "OK — 1 targets" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", str(good)]) == EXIT_OK
    capsys.readouterr()
    assert main(["slo", "status", "--config", str(good), "--json"]) == EXIT_OK
    assert '"slos"' in capsys.readouterr().out
    run = build_parser().parse_args(["run", "--config", "x.yaml", "--port", "9000"])
    assert (run.config, run.port) == ("x.yaml", 9000)


def test_a_broken_config_names_file_line_and_key(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    broken = write(tmp_path, GOOD.replace("objective: 95", "objective: 950"), "broken.yaml")
    assert main(["check", "--config", str(broken)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(broken))}:6: slos\[0\]\.objective: ", err), err


def _readme_commands() -> set[tuple[str, ...]]:
    """Command words in the README's command table: `primewatch db backup PATH` → db backup;
    `export a|b|c` names one command with a choice, like the parser does."""
    found: set[tuple[str, ...]] = set()
    for row in README.read_text(encoding="utf-8").splitlines():
        if not row.startswith("| `primewatch "):
            continue
        cell = re.split(r"(?<!\\)\|", row)[1]
        for usage in re.findall(r"`primewatch ([^`]+)`", cell):
            words = []
            for word in usage.split():
                if not re.fullmatch(r"[a-z][a-z-]*", word):
                    break
                words.append(word)
            found.add(tuple(words))
    return found


def test_the_readme_lists_every_command_and_each_has_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = {words for words, _ in command_parsers(parser)}
    listed = _readme_commands()
    # A README row may name a command with its first positional choice (export X).
    listed_commands = {words for words in listed if words in commands} | {
        words[:-1] for words in listed if words not in commands and words[:-1] in commands}
    assert commands - listed_commands == set(), "commands missing from the README table"
    assert listed_commands - commands == set(), "README rows naming no command"
    for words in sorted(commands):
        with pytest.raises(SystemExit) as exited:
            main([*words, "--help"])
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: primewatch {' '.join(words)}"), words
        assert "--config FILE" in out


def test_a_missing_postgres_database_is_one_sentence(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import sqlalchemy
    url = sqlalchemy.make_url(POSTGRES_URL)
    probe = sqlalchemy.create_engine(url)
    try:
        probe.connect().close()
    except Exception:
        service_missing("PostgreSQL is not reachable")
    finally:
        probe.dispose()
    missing = url.set(database="primewatch_no_such_db")
    config = write(tmp_path, GOOD.replace("sqlite:///DB", missing.render_as_string(False)))
    for command in (["db", "upgrade"], ["run", "--no-migrate"]):
        assert main([*command, "--config", str(config)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "database primewatch_no_such_db does not exist on 127.0.0.1:5432" in err
        assert "createdb" in err and "Traceback" not in err


def test_an_unreachable_postgres_server_is_one_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, GOOD.replace("sqlite:///DB",
                                          "postgresql://pw@127.0.0.1:9/primewatch"))
    assert main(["db", "upgrade", "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot reach PostgreSQL on 127.0.0.1:9" in err and "Traceback" not in err


@pytest.mark.parametrize(("text", "line", "column", "hint"), [
    ("service:\n  name: x\n targets: []\n", 3, 2, "indentation"),
    ("service:\n\tname: x\n", 2, 1, "spaces only"),
    ("targets:\n  - name: a\n    url: http://x\n   interval: 5s\n", 4, 4, "indentation"),
])
def test_invalid_yaml_shows_line_column_the_line_and_a_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int,
        column: int, hint: str) -> None:
    path = write(tmp_path, text)
    assert main(["check", "--config", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{path}:{line}:{column}: invalid YAML" in err
    offending = text.splitlines()[line - 1].expandtabs(1)
    assert f"\n    {offending}\n    {' ' * (column - 1)}^\n" in err
    assert "hint:" in err and hint in err


MEANING = [
    # 200 is seconds: above the 2 s timeout, so the SLO would be availability in disguise.
    ("  - {name: s, target: api, sli: latency, threshold: 200, objective: 95}",
     "slos[1].threshold", "did you mean 200ms?"),
    ("  - {name: s, target: cache, sli: ratio, stream: hits, objective: 70}",
     "slos[1].stream", "produces no count stream 'hits'; it produces: cache"),
    ("  - {name: s, target: db, sli: threshold, value: query_ms, threshold: 50ms, "
     "objective: 99}", "slos[1].value",
     "produces no value 'query_ms'; it produces: query_seconds, query_value"),
]


@pytest.mark.parametrize(("slo", "path", "message"), MEANING)
def test_check_refuses_a_valid_config_that_cannot_mean_what_it_says(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], slo: str, path: str,
        message: str) -> None:
    text = GOOD.replace("targets:\n", """targets:
  - {name: cache, type: redis, url: "redis://127.0.0.1:6379/0", enabled: false}
  - {name: db, type: sql, url: "sqlite:///DB", query: "SELECT 1", enabled: false}
""") + slo + "\n"
    config = write(tmp_path, text)
    assert main(["check", "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f": {path}: " in err and message in err, err


def test_a_timeout_longer_than_the_interval_is_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, GOOD.replace("interval: 10s, timeout: 2s",
                                          "interval: 5s, timeout: 20s"))
    assert main(["check", "--config", str(config)]) == EXIT_OK
    err = capsys.readouterr().err
    assert "warning:" in err and "targets[0].timeout: timeout 20s is longer than interval 5s" \
        in err


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("database_size_bytes", 2.54e5, "254 kB"),
    ("database_size_bytes", 8e9, "8 GB"),
    ("used_memory_bytes", 1.04999e6, "1.05 MB"),
    ("latency", 0.0123, "12.3 ms"),
    ("page_load_seconds", 2.5, "2.5 s"),
    ("error", 0.001, "0.1 %"),
    ("active_users", 254000, "254,000"),
    ("cold_start", 2, "2"),
])
def test_numbers_are_printed_in_their_units(name: str, value: float, shown: str) -> None:
    assert format_measure(name, value) == shown
