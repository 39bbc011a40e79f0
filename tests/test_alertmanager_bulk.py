"""Alertmanager posts judged alert by alert, large posts, their limits, and retries.

Alertmanager never retries a 4xx and retries a 5xx with the same body, so one bad alert
must cost only itself (a 200 listing it), a storage outage must be a 503, and the
retry must not open or notify anything twice. Real app and uvicorn on loopback, a real
SQLite database (PostgreSQL too where the poison matters there); the database refusing
an alert is a real SQLite trigger, the outage a real missing table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select, text

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.metrics import Metrics
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import NotificationRow
from tests.servers import serve_asgi
from tests.test_alertmanager import AUTH, T0, URL, Api, am_alert, settings, webhook


@contextmanager
def serving(engine: Engine, **server: Any) -> Iterator[Api]:
    clock = FakeClock(T0 + 120)
    app = create_app(settings(**server), engine, clock=clock,
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=300) as client:
        yield Api(client, app.state.runtime, clock)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'primewatch.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def api(sqlite: Engine) -> Iterator[Api]:
    with serving(sqlite) as served:
        yield served


def many(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [am_alert(fingerprint=f"fp-{i:05d}", instance=f"10.0.{i // 250}.{i % 250}:80")
            for i in range(start, start + count)]


def notification_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(NotificationRow))
                   .scalar_one())


# -- one alert at a time --------------------------------------------------------------


def test_one_poisoned_alert_among_valid_ones_costs_only_itself(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    nul, surrogate, invalid = (am_alert(fingerprint=name) for name in
                               ("nul", "surrogate", "invalid"))
    nul["annotations"]["summary"] = "API down\x00 and out"
    surrogate["labels"]["instance"] = "10.0.0.9\ud800"
    invalid["startsAt"] = "yesterday"
    alerts = [*many(2), nul, *many(1, start=2), invalid, surrogate, *many(2, start=3)]
    # json.dumps escapes the lone surrogate (`\ud800`); httpx's `json=` cannot send it
    content = json.dumps(webhook(*alerts)).encode()
    with caplog.at_level(logging.WARNING, "monitor.api_alertmanager"):
        response = api.client.post(URL, content=content, headers={
            **AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (7, 1)
    [refused] = answer["rejections"]
    assert refused["index"] == 4
    assert refused["reason"].startswith("startsAt: Input should be a valid datetime")
    assert len(answer["incidents"]) == 7 == api.incident_count()
    assert notification_count(api.engine) == 7  # every valid alert paged
    titles = {api.incident(i)["title"] for i in answer["incidents"]}
    assert "API down\ufffd and out" in titles  # NUL is not storable on PostgreSQL
    assert any("1 alerts refused; the first, alert 4: startsAt" in r.getMessage()
               for r in caplog.records)


def test_a_nul_byte_does_not_fail_the_post_on_either_database(engine: Engine) -> None:
    """On PostgreSQL the NUL used to fail the whole post with a 503, retried forever."""
    nul = am_alert(fingerprint="nul")
    nul["annotations"] = {"summary": "a\x00b", "description": "c\x00d"}
    nul["labels"]["instance"] = "10.0.0.1\x00"
    with serving(engine) as api:
        response = api.send(webhook(*many(1), nul, *many(1, start=1)))
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 3
        assert api.incident_count() == 3


def test_an_alert_the_database_refuses_costs_only_itself(sqlite: Engine) -> None:
    """What validation cannot know: the database refuses one alert's incident (a real
    trigger here). Its chunk of 500 is stored again alert by alert."""
    with sqlite.begin() as connection:
        connection.execute(text(
            "CREATE TRIGGER refuse BEFORE INSERT ON incidents "
            "WHEN NEW.key = 'external:fp-00007' BEGIN SELECT RAISE(ABORT, 'no'); END"))
    with serving(sqlite) as api:
        response = api.send(webhook(*many(700)))
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["accepted"], answer["rejected"]) == (699, 1)
        assert answer["rejections"] == [{
            "index": 7, "reason": "refused by the database (IntegrityError)"}]
        assert api.incident_count() == 699
        assert notification_count(sqlite) == 699


# -- large posts ----------------------------------------------------------------------


def test_ten_thousand_alerts_are_stored_and_sending_them_again_repeats_nothing(
        api: Api) -> None:
    body = webhook(*many(10_000))
    first = api.send(body)
    assert first.status_code == 200, first.text[:500]
    answer = first.json()
    assert (answer["accepted"], answer["rejected"]) == (10_000, 0)
    assert len(answer["incidents"]) == 10_000 == api.incident_count()
    assert notification_count(api.engine) == 10_000
    api.clock.advance(300)  # Alertmanager's repeat_interval, or its HA peer
    again = api.send(body)
    assert again.status_code == 200
    assert again.json()["incidents"] == answer["incidents"]
    assert api.incident_count() == 10_000
    assert notification_count(api.engine) == 10_000


def test_an_ha_pair_posting_the_same_group_at_once_opens_each_incident_once(
        api: Api) -> None:
    """Both Alertmanagers of a pair send every notification. Whichever commits second
    finds the incidents opened (the database refuses the duplicate) and updates them."""
    body = webhook(*many(1200))
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: api.send(body), range(2)))
    assert [a.status_code for a in answers] == [200, 200], answers[0].text[:300]
    assert [a.json()["accepted"] for a in answers] == [1200, 1200]
    assert api.incident_count() == 1200
    assert notification_count(api.engine) == 1200


def test_more_alerts_than_the_limit_is_a_413_naming_the_setting(sqlite: Engine) -> None:
    with serving(sqlite, alertmanager={"max_alerts": 10}) as api:
        assert api.send(webhook(*many(10))).json()["accepted"] == 10
        response = api.send(webhook(*many(11, start=100)))
        assert response.status_code == 413
        assert response.json()["error"]["message"] == (
            "too many alerts: 11 in one post, the limit is 10 "
            "(server.alertmanager.max_alerts); set Alertmanager's max_alerts to it or less")
        assert api.incident_count() == 10


def test_this_route_has_its_own_body_limit(sqlite: Engine) -> None:
    """Larger than the general one, and named in its 413, declared or streamed."""
    with serving(sqlite, max_body_bytes=2048, alertmanager={"max_body_bytes": 64 * 1024}
                 ) as api:
        fits = api.send(webhook(*many(20)))  # ~12 KB: over server.max_body_bytes
        assert fits.status_code == 200 and fits.json()["accepted"] == 20
        other = api.client.post("/api/v1/silences", headers=AUTH, json={
            "matchers": [{"name": "x", "value": "y" * 3000}], "duration": "1h"})
        assert other.status_code == 413
        assert "(server.max_body_bytes)" in other.json()["error"]["message"]
        large = httpx.Request("POST", URL, json=webhook(*many(200, start=100))).content
        expected = ("request body too large: the limit is 65536 bytes "
                    "(server.alertmanager.max_body_bytes)")
        declared = api.client.post(URL, content=large, headers={
            **AUTH, "Content-Type": "application/json"})
        streamed = api.client.post(URL, content=iter([large[:40_000], large[40_000:]]),
                                   headers={**AUTH, "Content-Type": "application/json"})
        for response in (declared, streamed):
            assert response.status_code == 413
            assert response.json()["error"]["message"] == expected
        assert api.incident_count() == 20


# -- storage down ---------------------------------------------------------------------


def test_storage_down_is_a_503_and_the_retry_repeats_nothing(sqlite: Engine) -> None:
    """A 503 is what Alertmanager retries. Alerts stored before the outage are updated
    by the retry, not opened or notified again."""
    alerts = many(6)
    with serving(sqlite) as api:
        assert api.send(webhook(*alerts[:3])).json()["accepted"] == 3  # before it failed
        with sqlite.begin() as connection:
            connection.execute(text("ALTER TABLE incident_members RENAME TO away"))
        down = api.send(webhook(*alerts))
        assert down.status_code == 503, down.text
        error = down.json()["error"]
        assert error["message"].startswith("storage unavailable; try again shortly")
        assert (error["accepted"], error["rejected"]) == (0, 0)
        with sqlite.begin() as connection:
            connection.execute(text("ALTER TABLE away RENAME TO incident_members"))
        retried = api.send(webhook(*alerts))
        assert retried.status_code == 200
        assert retried.json()["accepted"] == 6
        assert api.incident_count() == 6
        assert notification_count(sqlite) == 6
