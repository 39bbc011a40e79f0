"""A silence about to end on an open incident reminds the people who hear of it.

Why: "Silence 1h" is pressed at 3 am to get back to debugging; an hour later the
escalation resumes and pages whoever is next, often the same person, who had
forgotten the silence existed. A reminder 15 minutes before the end, in the
incident's own thread and timeline and naming the silence's author, leaves time to
extend it or to resolve the incident instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine

from alerts.silences import Silence
from alerts.store import Incident, add_event, open_incidents, timeline

REMIND_BEFORE = 15 * 60.0
EVENT = "silence_expiring"

Notify = Callable[[Connection, Incident, str, str, float, str], list[str]]
"""(connection, incident, event, key suffix, now, note) → the channels queued."""


def ending_silence(silences: Sequence[Silence], incident: Incident, now: float
                   ) -> Silence | None:
    """The silence that keeps the incident quiet and ends within REMIND_BEFORE; None
    when none does, or when another matching silence outlasts it."""
    matching = [s for s in silences if s.active(now) and s.matches(incident.labels)]
    if not matching:
        return None
    last = max(matching, key=lambda s: s.ends_at)
    return last if last.ends_at - now <= REMIND_BEFORE else None


def remind_expiring(engine: Engine, silences: Sequence[Silence], now: float,
                    notify: Notify) -> list[int]:
    """Remind, once per incident and silence; the ids of the incidents reminded."""
    reminded: list[int] = []
    if not any(s.active(now) and s.ends_at - now <= REMIND_BEFORE for s in silences):
        return reminded  # the usual tick: nothing ends soon, nothing to read
    with engine.connect() as connection:
        candidates = [(i, s) for i in open_incidents(connection)
                      if (s := ending_silence(silences, i, now)) is not None]
    for incident, silence in candidates:
        already = any(e.kind == EVENT and e.data.get("silence") == silence.id
                      for e in timeline(engine, incident.id))
        if already:
            continue
        minutes = max(1, round((silence.ends_at - now) / 60))
        note = (f"Reminder for {silence.created_by}: silence {silence.id} ends in "
                f"{minutes} min; escalation resumes then unless it is extended or the "
                f"incident is resolved")
        with engine.begin() as connection:
            channels = notify(connection, incident, "update",
                              f"silence:{silence.id}:ending", now, note)
            add_event(connection, incident.id, now, EVENT,
                      note + (f" (told {', '.join(channels)})" if channels else ""),
                      {"silence": silence.id, "by": silence.created_by,
                       "ends_at": silence.ends_at, "channels": channels})
        reminded.append(incident.id)
    return reminded
