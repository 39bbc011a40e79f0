"""The validated configuration model: `config.yaml` parsed once into typed, frozen objects.

Loading (YAML, `${VAR}` interpolation, line numbers in errors) lives in
`monitor.config_loader`; this module only says what a valid config is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, SecretStr, model_validator

from monitor.units import Duration, Percent, parse_duration, parse_size
from probes import REGISTRY
from probes.base import StrictModel, TargetConfig

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]

if TYPE_CHECKING:  # type checkers see the base class; pydantic sees the tagged union
    TargetUnion = TargetConfig
else:
    TargetUnion = Annotated[
        Union[tuple(kind.config_model for kind in REGISTRY.values())],  # noqa: UP007
        Field(discriminator="type"),
    ]


class ServiceSection(StrictModel):
    """What is being monitored; shown in dashboards and alerts."""

    name: str = "primewatch"
    environment: str = "production"


class ApiToken(StrictModel):
    """A bearer token for the API; `write` may ack, resolve and silence."""

    name: Name
    token: SecretStr | None = None
    scope: Literal["read", "write"] = "write"


class ServerSection(StrictModel):
    """Where the web server listens and how links to it are built."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None
    tokens: list[ApiToken] = Field(default_factory=list)


class Retention(StrictModel):
    """How long each resolution of data is kept."""

    raw: Duration = 14 * 86400.0
    minute: Duration = 35 * 86400.0
    hour: Duration = 400 * 86400.0


class StorageSection(StrictModel):
    """The database and the write path's batching and buffering."""

    url: str = "sqlite:///primewatch.db"
    retention: Retention = Field(default_factory=Retention)
    batch_size: int = Field(default=500, ge=1, le=100_000)
    flush_interval: Duration = 1.0
    max_buffer: int = Field(default=100_000, ge=100)


class SloConfig(StrictModel):
    """One service level objective over one target's events."""

    name: Name
    target: Name
    sli: Literal["availability", "latency", "ratio", "threshold"]
    objective: Percent
    window: Duration = 30 * 86400.0
    threshold: float | None = None
    stream: str | None = None
    value: str | None = None
    comparison: Literal["<=", ">="] = "<="
    region: str | None = None
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _parse_threshold(cls, data: Any) -> Any:
        """Latency thresholds are durations (`200ms`); a threshold SLO's may be a plain
        number or a duration or a size (`10GB`), whatever its value measures."""
        if isinstance(data, dict) and isinstance(data.get("threshold"), str):
            raw = data["threshold"]
            for parse in (parse_duration, parse_size):
                try:
                    return {**data, "threshold": float(parse(raw))}
                except ValueError:
                    continue
            raise ValueError(f"invalid threshold {raw!r}: expected a duration (200ms), "
                             "a size (10GB) or a number")
        return data

    @model_validator(mode="after")
    def _fields_match_sli(self) -> SloConfig:
        needs = {"latency": ("threshold",), "ratio": ("stream",),
                 "threshold": ("threshold", "value"), "availability": ()}[self.sli]
        for key in needs:
            if getattr(self, key) is None:
                example = {"threshold": "threshold: 200ms", "stream": "stream: cache",
                           "value": "value: query_seconds"}[key]
                raise ValueError(f"a {self.sli} SLO needs `{key}` (e.g. {example})")
        for key in ("threshold", "stream", "value"):
            if key not in needs and getattr(self, key) is not None:
                raise ValueError(f"`{key}` does not apply to sli: {self.sli}")
        if self.window < 3600:
            raise ValueError("`window` must be at least 1h")
        return self


class EscalationStep(StrictModel):
    """Notify these channels `after` the incident opened (unless acknowledged)."""

    after: Duration = 0.0
    notify: list[Name] = Field(min_length=1)


class EscalationPolicy(StrictModel):
    """Ordered steps, run `repeat` more times while nobody acknowledges."""

    name: Name
    steps: list[EscalationStep] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=100)


class ChannelBase(StrictModel):
    """A notification channel; one with empty credentials is disabled, not fatal."""

    name: Name

    def missing_credentials(self) -> list[str]:
        """Names of the credential fields that are empty (the channel is then disabled)."""
        return []


def _empty(secret: SecretStr | None) -> bool:
    return secret is None or not secret.get_secret_value().strip()


class SlackChannel(ChannelBase):
    """Slack through a bot token (Web API) or an incoming webhook."""

    type: Literal["slack"]
    token: SecretStr | None = None
    webhook_url: SecretStr | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api/"
    signing_secret: SecretStr | None = None

    def missing_credentials(self) -> list[str]:
        if _empty(self.token) and _empty(self.webhook_url):
            return ["token or webhook_url"]
        return []


class PagerDutyChannel(ChannelBase):
    """PagerDuty Events API v2."""

    type: Literal["pagerduty"]
    routing_key: SecretStr | None = None
    events_url: str = "https://events.pagerduty.com/v2/enqueue"

    def missing_credentials(self) -> list[str]:
        return ["routing_key"] if _empty(self.routing_key) else []


class WebhookChannel(ChannelBase):
    """A JSON POST signed with HMAC-SHA256."""

    type: Literal["webhook"]
    url: str | None = None
    secret: SecretStr | None = None

    def missing_credentials(self) -> list[str]:
        return ["url"] if not self.url else []


class EmailChannel(ChannelBase):
    """Mail through an SMTP relay."""

    type: Literal["email"]
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    sender: str = "primewatch@localhost"
    to: list[str] = Field(default_factory=list)
    username: str | None = None
    password: SecretStr | None = None

    def missing_credentials(self) -> list[str]:
        missing = [] if self.smtp_host else ["smtp_host"]
        return missing + ([] if self.to else ["to"])


CHANNEL_TYPES: dict[str, type[ChannelBase]] = {
    "slack": SlackChannel,
    "pagerduty": PagerDutyChannel,
    "webhook": WebhookChannel,
    "email": EmailChannel,
}

if TYPE_CHECKING:
    ChannelUnion = ChannelBase
else:
    ChannelUnion = Annotated[
        Union[tuple(CHANNEL_TYPES.values())],  # noqa: UP007
        Field(discriminator="type"),
    ]


class AlertingSection(StrictModel):
    """How often SLOs are evaluated, and who hears about it."""

    evaluate_every: Duration = 30.0
    burn_rate_rules: Literal["default"] = "default"
    policies: list[EscalationPolicy] = Field(default_factory=list)
    channels: list[ChannelUnion] = Field(default_factory=list)


class Settings(StrictModel):
    """The whole validated config."""

    service: ServiceSection = Field(default_factory=ServiceSection)
    server: ServerSection = Field(default_factory=ServerSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    region: Name = "local"
    targets: list[TargetUnion] = Field(default_factory=list)
    slos: list[SloConfig] = Field(default_factory=list)
    alerting: AlertingSection = Field(default_factory=AlertingSection)

    def target(self, name: str) -> TargetConfig | None:
        return next((t for t in self.targets if t.name == name), None)

    def slo(self, name: str) -> SloConfig | None:
        return next((s for s in self.slos if s.name == name), None)

    def slos_for(self, target: str) -> list[SloConfig]:
        return [s for s in self.slos if s.target == target]


def cross_reference_problems(data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Checks that span sections: unique names and references that must resolve.

    Runs on the raw (interpolated) data so that these problems are reported together
    with field errors, not only once every field is valid. Returns (path, message) pairs;
    the loader attaches file and line.
    """
    problems: list[tuple[tuple[Any, ...], str]] = []
    root = data if isinstance(data, dict) else {}
    alerting_section = root.get("alerting")
    alerting: dict[str, Any] = alerting_section if isinstance(alerting_section, dict) else {}

    def items(section: Any) -> list[tuple[int, dict[str, Any]]]:
        if not isinstance(section, list):
            return []
        return [(i, item) for i, item in enumerate(section) if isinstance(item, dict)]

    def unique(path: tuple[Any, ...], section: Any, what: str) -> set[str]:
        seen: set[str] = set()
        for index, item in items(section):
            name = item.get("name")
            if not isinstance(name, str):
                continue
            if name in seen:
                problems.append(((*path, index, "name"), f"duplicate {what} name {name!r}"))
            seen.add(name)
        return seen

    target_names = unique(("targets",), root.get("targets"), "target")
    unique(("slos",), root.get("slos"), "SLO")
    channel_names = unique(("alerting", "channels"), alerting.get("channels"), "channel")
    unique(("alerting", "policies"), alerting.get("policies"), "policy")
    for index, slo in items(root.get("slos")):
        target = slo.get("target")
        if isinstance(target, str) and target not in target_names:
            known = ", ".join(sorted(target_names)) or "none defined"
            problems.append((("slos", index, "target"),
                             f"SLO {slo.get('name')!r} names target {target!r}, which is not "
                             f"defined (targets: {known})"))
    for p_index, policy in items(alerting.get("policies")):
        for s_index, step in items(policy.get("steps")):
            notify = step.get("notify")
            for n_index, channel in enumerate(notify if isinstance(notify, list) else []):
                if isinstance(channel, str) and channel not in channel_names:
                    problems.append((("alerting", "policies", p_index, "steps", s_index,
                                      "notify", n_index),
                                     f"policy {policy.get('name')!r} notifies channel "
                                     f"{channel!r}, which is not defined"))
    return problems
