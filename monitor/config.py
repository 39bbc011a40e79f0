"""The validated configuration model: `config.yaml` parsed once into typed, frozen objects.

Loading (YAML, `${VAR}` interpolation, line numbers in errors) lives in
`monitor.config_loader`; this module only says what a valid config is.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from monitor.config_depends import dependency_problems
from monitor.config_slo import Maintenance, Phase, SloConfig, TriggerRule, _check_timezone
from monitor.units import ByteSize, Duration
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


def token_digest(plaintext: str) -> bytes:
    """sha256 of an API token: the one form tokens are kept in and compared as, so the
    config's `token_hash` and the bearer check cannot drift apart."""
    return hashlib.sha256(plaintext.encode()).digest()


class TokenDigest(SecretStr):
    """A plaintext API token after load: only its `sha256:<hex>` digest is kept."""


class ApiToken(StrictModel):
    """A bearer token for the API: `write` may ack, resolve and silence; `read` only reads.

    Give `token` (plaintext, normally `${ENV_VAR}`) or `token_hash` (`sha256:<64 hex>`,
    from `primewatch token new`), not both. A plaintext token is hashed as it loads and
    only the digest is kept, so no repr, dump or memory of the settings holds it. `token`
    stays a SecretStr (of the digest) so the loader still warns about a literal one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: Name
    token: SecretStr | None = None
    token_hash: str | None = Field(default=None, repr=False)
    scope: Literal["read", "write"] = "write"

    @staticmethod
    def hash(plaintext: str) -> str:
        """`sha256:<hex>` of a token, the form `token_hash` takes."""
        return "sha256:" + token_digest(plaintext).hex()

    @field_validator("token_hash")
    @classmethod
    def _hash_form(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"sha256:[0-9a-fA-F]{64}", value.strip()):
            raise ValueError("`token_hash` must be \"sha256:\" and 64 hex digits, as "
                             "`primewatch token new` or `primewatch token hash` print it")
        return value.strip().lower() if value is not None else None

    @model_validator(mode="before")
    @classmethod
    def _hash_plaintext(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = [key for key in ("token", "token_hash") if data.get(key) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `token` (e.g. \"${PRIMEWATCH_TOKEN}\") "
                             "or `token_hash` (\"sha256:<hex>\", from `primewatch token "
                             "new`)" + (", not both" if given else ""))
        plaintext = data.get("token")
        if isinstance(plaintext, SecretStr) and not isinstance(plaintext, TokenDigest):
            plaintext = plaintext.get_secret_value()
        if isinstance(plaintext, str):  # an empty one (unset ${VAR:-}) matches nothing
            digest = cls.hash(plaintext) if plaintext.strip() else ""
            return {**data, "token": TokenDigest(digest)}
        return data

    @property
    def digest(self) -> bytes | None:
        """The sha256 digest presented tokens are compared with; None: matches nothing."""
        text = self.token_hash or (self.token.get_secret_value() if self.token else "")
        return bytes.fromhex(text.removeprefix("sha256:")) if text else None


class RateLimit(StrictModel):
    """Requests per second per client address on /api/* (a token bucket); 0 disables."""

    requests_per_second: float = Field(default=20.0, ge=0)
    burst: int = Field(default=100, ge=1)
    """Requests a client may make at once before the per-second rate applies."""


class FailedAuthLimit(StrictModel):
    """After `max_failures` wrong credentials from one address within `window`, that
    address gets 429 on anything needing authentication until `window` has passed."""

    max_failures: int = Field(default=10, ge=0)
    """0 disables the limit."""
    window: Duration = Field(default=60.0, gt=0)


def _ip_or_network(value: str) -> str:
    """An IP or CIDR (`10.0.0.0/8`), checked as it loads: a typo would trust nobody."""
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network (CIDR)") from None
    return value.strip()


class AlertmanagerLimits(StrictModel):
    """How much one post to Alertmanager's webhook (`POST /api/v1/alertmanager`) may
    carry; beyond either limit the post gets a 413 naming it."""

    max_body_bytes: ByteSize = Field(default=16 * 1024**2, ge=1024)
    """Largest body accepted there, instead of `server.max_body_bytes`: a group of
    10,000 alerts is about 6-16 MiB."""
    max_alerts: int = Field(default=10_000, ge=1, le=1_000_000)
    """Alerts per post; set Alertmanager's `max_alerts` to this or less (it then sends
    the rest as `truncatedAlerts`, which is logged)."""


class ServerSection(StrictModel):
    """Where the web server listens, how links to it are built, and who may call it."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None
    tokens: list[ApiToken] = Field(default_factory=list)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    failed_auth: FailedAuthLimit = Field(default_factory=FailedAuthLimit)
    max_body_bytes: ByteSize = Field(default=1024 * 1024, ge=1024)
    """Largest request body accepted (413 beyond); `1MiB`, `512KiB` or bytes."""
    alertmanager: AlertmanagerLimits = Field(default_factory=AlertmanagerLimits)
    trusted_proxies: list[Annotated[str, AfterValidator(_ip_or_network)]] = Field(
        default_factory=list)
    """Peers (IPs or CIDRs) whose X-Forwarded-For names the client; none by default, so
    the peer's own address keys rate limits, lockouts and the audit log."""


class Retention(StrictModel):
    """How long each resolution of data is kept."""

    raw: Duration = 14 * 86400.0
    minute: Duration = 35 * 86400.0
    hour: Duration = 400 * 86400.0
    audit: Duration = 400 * 86400.0
    """The write audit (`audit_log`): who changed what, kept for reviews."""


class StorageSection(StrictModel):
    """The database and the write path's batching and buffering."""

    url: str = Field(default="sqlite:///primewatch.db", repr=False)  # may hold a password
    retention: Retention = Field(default_factory=Retention)
    batch_size: int = Field(default=500, ge=1, le=100_000)
    flush_interval: Duration = 1.0
    max_buffer: int = Field(default=100_000, ge=100)
    spill_path: str | None = None
    """Where results past `max_buffer` wait during an outage (default: `<db>-spill.jsonl`
    next to a SQLite file, else `primewatch-spill.jsonl` in the working directory)."""
    spill_max_bytes: ByteSize = Field(default=256 * 1024**2, ge=0)
    """Cap of the spill file; only past it are results dropped. 0: never spill."""


class EscalationStep(StrictModel):
    """Notify these channels `after` the incident opened (unless acknowledged)."""

    after: Duration = 0.0
    notify: list[Name] = Field(min_length=1)


class EscalationPolicy(StrictModel):
    """Ordered steps, run `repeat` more times while nobody acknowledges (PagerDuty's
    escalation policy). Incidents are routed to the first policy whose `match` labels
    and `severities` fit; one named "default" (else the first) takes the rest."""

    name: Name
    steps: list[EscalationStep] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=100)
    repeat_after: Duration = Field(default=900.0, gt=0)
    """Pause after the last step before the policy starts again."""
    ack_timeout: Duration | None = 1800.0
    """An acknowledged incident not resolved this long re-escalates (None: never)."""
    match: dict[str, str] = Field(default_factory=dict)
    severities: list[Literal["page", "ticket"]] = Field(
        default_factory=lambda: ["page", "ticket"])  # type: ignore[arg-type]
    resolve: Literal["auto", "manual"] = "auto"
    """auto: resolve when the rule clears; manual: only by hand (API, Slack, CLI)."""

    @model_validator(mode="after")
    def _steps_in_order(self) -> EscalationPolicy:
        afters = [step.after for step in self.steps]
        if afters != sorted(afters):
            raise ValueError("steps must be in order of `after`")
        return self


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

    @model_validator(mode="after")
    def _bot_needs_a_channel(self) -> SlackChannel:
        if not _empty(self.token) and not self.channel:
            raise ValueError("`channel` is required with a bot `token` (e.g. \"#oncall\")")
        return self


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
    url: str | None = Field(default=None, repr=False)  # its path or query is often the key
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
    postmortem_template: str | None = None
    """A Jinja2 Markdown file replacing alerts/templates/postmortem.md.j2."""
    timezone: str = "UTC"
    """Time zone of times in post-mortems and messages."""
    notification_retry_budget: Duration = 900.0
    """A message still undelivered this long after it was queued (or given up on)
    pages through the other channels: the alerting path itself is broken."""

    # checked at load, not when the first post-mortem is rendered mid-incident
    _timezone_known = field_validator("timezone")(_check_timezone)


class StatusComponent(StrictModel):
    """One line of the public status page: a public name over SLOs and/or targets."""

    name: str = Field(min_length=1, max_length=100)
    slos: list[Name] = Field(default_factory=list)
    targets: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _measures_something(self) -> StatusComponent:
        if not self.slos and not self.targets:
            raise ValueError("a status component needs `slos` or `targets`: without them "
                             "its state would never be known")
        return self


class StatusPage(StrictModel):
    """`/status` and `/badges/*`: public even when the dashboard needs a login, and
    showing only the components listed here under their public names."""

    enabled: bool = True
    title: str = "Service status"
    components: list[StatusComponent] = Field(default_factory=list)


class BasicUser(StrictModel):
    username: str = Field(min_length=1)
    password: SecretStr


class DashboardSection(StrictModel):
    """Who may read the dashboard pages. Writes (ack, resolve, silence) always need a
    write token (server.tokens)."""

    auth: Literal["none", "basic", "token"] = "none"
    """none: public; basic: HTTP basic with `users`; token: any server.tokens bearer
    token (or `?token=` once, kept in a cookie)."""
    users: list[BasicUser] = Field(default_factory=list)
    refresh: Duration = 30.0
    """Seconds between automatic refreshes of the pages."""
    status_page: StatusPage = Field(default_factory=StatusPage)

    @field_validator("refresh")
    @classmethod
    def _refresh_in_range(cls, value: float) -> float:
        # below 5 s the pages reload faster than the data changes; past ~24.8 days the
        # browser's setTimeout overflows and reloads at once, in a loop
        if not 5.0 <= value <= 86400.0:
            raise ValueError("`refresh` must be between 5s and 1d (e.g. 30s)")
        return value

    @model_validator(mode="after")
    def _basic_needs_users(self) -> DashboardSection:
        if self.auth == "basic" and not any(u.password.get_secret_value()
                                            for u in self.users):
            raise ValueError("auth: basic needs at least one user with a password")
        return self


class ClusterSection(StrictModel):
    """Several `primewatch run` instances sharing one PostgreSQL: all probe; the one
    holding the advisory lock (the leader) evaluates alert rules and notifies."""

    instance: str | None = Field(default=None, min_length=1, max_length=120)
    """This instance's name in `/api/v1/cluster`; default `<hostname>:<server.port>`."""
    heartbeat_interval: Duration = 5.0
    """Seconds between heartbeats and leadership attempts: a dead leader's successor
    takes over within about two of these (plus PostgreSQL noticing the lost session)."""

    @field_validator("heartbeat_interval")
    @classmethod
    def _heartbeat_in_range(cls, value: float) -> float:
        if not 0.2 <= value <= 60.0:
            raise ValueError("`heartbeat_interval` must be between 0.2s and 60s (e.g. 5s)")
        return value


class Settings(StrictModel):
    """The whole validated config."""

    service: ServiceSection = Field(default_factory=ServiceSection)
    server: ServerSection = Field(default_factory=ServerSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    region: Name = "local"
    targets: list[TargetUnion] = Field(default_factory=list)
    slos: list[SloConfig] = Field(default_factory=list)
    alerting: AlertingSection = Field(default_factory=AlertingSection)
    maintenance: list[Maintenance] = Field(default_factory=list)
    phases: list[Phase] = Field(default_factory=list)
    triggers: list[TriggerRule] = Field(default_factory=list)
    dashboard: DashboardSection = Field(default_factory=DashboardSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)

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
    unique(("phases",), root.get("phases"), "phase")
    unique(("triggers",), root.get("triggers"), "trigger")
    channel_names = unique(("alerting", "channels"), alerting.get("channels"), "channel")
    unique(("alerting", "policies"), alerting.get("policies"), "policy")
    dashboard = root.get("dashboard")
    status_page = dashboard.get("status_page") if isinstance(dashboard, dict) else None
    components = status_page.get("components") if isinstance(status_page, dict) else None
    components_path = ("dashboard", "status_page", "components")
    unique(components_path, components, "status component")
    problems += dependency_problems(items(root.get("targets")), target_names)
    for index, slo in items(root.get("slos")):
        target = slo.get("target")
        if isinstance(target, str) and target not in target_names:
            known = ", ".join(sorted(target_names)) or "none defined"
            problems.append((("slos", index, "target"),
                             f"SLO {slo.get('name')!r} names target {target!r}, which is not "
                             f"defined (targets: {known})"))
    slo_names = {slo.get("name") for _, slo in items(root.get("slos"))}
    phase_names = {phase.get("name") for _, phase in items(root.get("phases"))}
    for p_index, phase in items(root.get("phases")):
        listed = phase.get("slos")
        for s_index, name in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(name, str) and name not in slo_names:
                problems.append((("phases", p_index, "slos", s_index),
                                 f"phase {phase.get('name')!r} lists SLO {name!r}, which is "
                                 "not defined"))
    for t_index, trigger in items(root.get("triggers")):
        target, trigger_phase = trigger.get("target"), trigger.get("phase")
        if isinstance(target, str) and target not in target_names:
            problems.append((("triggers", t_index, "target"),
                             f"trigger {trigger.get('name')!r} names target {target!r}, "
                             "which is not defined"))
        if isinstance(trigger_phase, str) and trigger_phase not in phase_names:
            problems.append((("triggers", t_index, "phase"),
                             f"trigger {trigger.get('name')!r} names phase {trigger_phase!r}, "
                             "which is not defined"))
    for m_index, window in items(root.get("maintenance")):
        for key, defined in (("targets", target_names), ("slos", slo_names)):
            listed = window.get(key)
            for n_index, name in enumerate(listed if isinstance(listed, list) else []):
                if isinstance(name, str) and name not in defined:
                    problems.append((("maintenance", m_index, key, n_index),
                                     f"maintenance window {window.get('name')!r} names "
                                     f"{key[:-1]} {name!r}, which is not defined"))
    for c_index, component in items(components):
        for key, defined in (("slos", slo_names), ("targets", target_names)):
            listed = component.get(key)
            for n_index, name in enumerate(listed if isinstance(listed, list) else []):
                if isinstance(name, str) and name not in defined:
                    what = "SLO" if key == "slos" else "target"
                    problems.append(((*components_path, c_index, key, n_index),
                                     f"status component {component.get('name')!r} lists "
                                     f"{what} {name!r}, which is not defined"))
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
