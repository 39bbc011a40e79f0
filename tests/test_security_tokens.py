"""API tokens kept as sha256 digests: the config forms, the comparison over HTTP, and
`primewatch token new|hash` run as a user runs them (a subprocess)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, SecretStr

from monitor.app import create_app
from monitor.auth import match_token
from monitor.clock import FakeClock
from monitor.config import ApiToken, Settings
from monitor.config_loader import parse_config
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.storage.engine import make_engine, upgrade
from tests.conftest import make_settings
from tests.servers import serve_asgi

ROOT = Path(__file__).resolve().parent.parent
PLAIN = "plain-token-0c7f1e"
DIGEST = "sha256:" + hashlib.sha256(PLAIN.encode()).hexdigest()


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(dedent(text), "bad.yaml", {"PW_TOKEN": PLAIN})
    return [str(p) for p in info.value.problems]


# -- config ---------------------------------------------------------------------------


def test_a_token_hash_and_a_plaintext_token_match_the_same_bearer() -> None:
    loaded = parse_config(dedent(f"""\
        server:
          tokens:
            - {{name: ci, token_hash: "{DIGEST.upper().replace('SHA256', 'sha256')}"}}
            - {{name: oncall, token: "${{PW_TOKEN}}", scope: read}}
        """), "good.yaml", {"PW_TOKEN": PLAIN})
    ci, oncall = loaded.settings.server.tokens
    assert ci.token_hash == DIGEST  # normalised to lower case
    assert ci.digest == oncall.digest == hashlib.sha256(PLAIN.encode()).digest()
    assert match_token([ci], PLAIN) is ci
    assert match_token([oncall], PLAIN) is oncall
    assert match_token([ci, oncall], PLAIN + "x") is None
    assert loaded.warnings == []  # from ${ENV}, and a digest is not a secret


def secret_texts(value: Any) -> Iterator[str]:
    """Every string reachable in a settings object, secrets unwrapped."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secret_texts(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from secret_texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from secret_texts(item)
    else:
        yield str(value)


def test_a_plaintext_token_is_not_kept_after_load() -> None:
    settings = Settings.model_validate({"server": {"tokens": [
        {"name": "a", "token": PLAIN}, {"name": "b", "token": SecretStr(PLAIN)}]}})
    everything = list(secret_texts(settings))
    assert not any(PLAIN in text for text in everything)
    assert DIGEST in everything
    assert PLAIN not in repr(settings) and PLAIN not in str(settings.model_dump())


def test_a_literal_plaintext_token_is_still_warned_about() -> None:
    loaded = parse_config(dedent(f"""\
        server:
          tokens:
            - {{name: ci, token: {PLAIN}}}
        """), "good.yaml", {})
    assert [(w.line, w.path) for w in loaded.warnings] == [(3, "server.tokens[0].token")]


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: ci}", "give exactly one of `token`"),
    (f'{{name: ci, token: "${{PW_TOKEN}}", token_hash: "{DIGEST}"}}', ", not both"),
    ('{name: ci, token_hash: "md5:abc"}', '`token_hash` must be "sha256:" and 64 hex'),
    (f'{{name: ci, token_hash: "{DIGEST[:-1]}"}}', '`token_hash` must be "sha256:"'),
])
def test_token_entries_need_exactly_one_valid_form(entry: str, message: str) -> None:
    (problem,) = problems(f"""\
        server:
          tokens:
            - {entry}
        """)
    assert problem.startswith("bad.yaml:3: server.tokens[0]")
    assert message in problem
    assert PLAIN not in problem


def test_an_api_token_validation_error_does_not_echo_the_token() -> None:
    # (the loader reports messages only, never inputs: see test_security_secrets)
    with pytest.raises(ValueError) as info:
        ApiToken.model_validate({"name": "x", "token": PLAIN, "token_hash": DIGEST})
    assert PLAIN not in str(info.value)


# -- over HTTP ------------------------------------------------------------------------


@pytest.fixture
def hashed_app(tmp_path: Path) -> Iterator[str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pw.db'}")
    upgrade(engine)
    read_digest = ApiToken.hash("reader-plain")
    settings = make_settings(
        server={"tokens": [{"name": "ci", "token_hash": DIGEST},
                           {"name": "viewer", "token_hash": read_digest, "scope": "read"}]},
        dashboard={"auth": "token"})
    app = create_app(settings, engine, clock=FakeClock(),
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    with serve_asgi(app) as url:
        yield url
    engine.dispose()


def test_hashed_tokens_authenticate_writes_reads_and_pages(hashed_app: str) -> None:
    silence = {"matchers": [{"name": "slo", "value": "x"}], "duration": "1h"}
    with httpx.Client(base_url=hashed_app) as client:
        writer = {"Authorization": f"Bearer {PLAIN}"}
        reader = {"Authorization": "Bearer reader-plain"}
        assert client.post("/api/v1/silences", json=silence, headers=writer).status_code == 201
        assert client.post("/api/v1/silences", json=silence, headers=reader).status_code == 403
        # The digest itself is not a token: knowing the config is not enough.
        digest_as_token = {"Authorization": f"Bearer {DIGEST}"}
        assert client.post("/api/v1/silences", json=silence,
                           headers=digest_as_token).status_code == 401
        assert client.get("/api/v1/silences", headers=reader).status_code == 200
        assert client.get("/", headers=reader).status_code == 200
        assert client.get("/", params={"token": "reader-plain"}).status_code == 200
        assert client.get("/", headers=digest_as_token).status_code == 401


# -- the CLI --------------------------------------------------------------------------


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)


def test_token_new_prints_a_token_once_and_a_config_entry_with_its_hash() -> None:
    done = cli("token", "new", "1.0", "--scope", "read")
    assert done.returncode == 0, done.stderr
    token = next(line.strip() for line in done.stdout.splitlines()
                 if line.strip().startswith("pw_"))
    assert len(token) > 40
    snippet = done.stdout[done.stdout.index("  - name:"):]
    (entry,) = yaml.safe_load(snippet)
    assert entry == {"name": "1.0", "token_hash": ApiToken.hash(token),
                     "scope": "read"}
    settings = Settings.model_validate({"server": {"tokens": [entry]}})
    assert match_token(settings.server.tokens, token) is settings.server.tokens[0]
    assert done.stdout.count(token) == 1  # shown once, and not inside the snippet
    again = cli("token", "new", "deploy-bot")
    assert token not in again.stdout  # fresh randomness every time


def test_token_hash_reads_the_token_from_stdin() -> None:
    done = cli("token", "hash", stdin=PLAIN + "\n")
    assert (done.returncode, done.stdout) == (0, DIGEST + "\n")
    empty = cli("token", "hash", stdin="")
    assert empty.returncode == 2 and "no token on stdin" in empty.stderr


def test_token_new_refuses_an_invalid_name() -> None:
    done = cli("token", "new", "has spaces")
    assert done.returncode == 2
    assert "invalid token name 'has spaces'" in done.stderr
    assert "pw_" not in done.stdout
