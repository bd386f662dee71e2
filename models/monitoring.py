"""The profile's `monitor:` and `alerts:` sections: how the model servers are watched
and when someone is told."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from models.strict import Identifier, Strict


class MonitorSettings(Strict):
    """How the app watches the model servers of ``endpoints``."""

    enabled: bool = True
    interval_s: float = Field(5, ge=1, le=3600, description="seconds between two polls")
    timeout_s: float = Field(2, gt=0, le=60, description="per /metrics request")
    window_s: float = Field(
        300, ge=10, le=86_400, description="latency percentiles cover this many seconds"
    )
    history_mb: float = Field(
        4, gt=0, le=1024, description="per server and file; one older file is kept beside it"
    )


AlertKind = Literal[
    "endpoint_down", "latency_p95", "kv_cache", "waiting", "benchmark_failed", "benchmark_finished"
]
SERVER_ALERT_KINDS = {"endpoint_down", "latency_p95", "kv_cache", "waiting"}


class AlertRule(Strict):
    """One alert. Server rules fire after ``for_checks`` polls in a row past ``threshold``
    and resolve after as many polls back under ``resolve_below`` (default 90 % of the
    threshold), so a value that flaps around the line does not flood anyone."""

    name: Identifier
    kind: AlertKind
    endpoint: Identifier | None = Field(None, description="a key of `endpoints`; none = all")
    threshold: float | None = Field(
        None,
        ge=0,
        description="latency_p95: seconds (end-to-end); kv_cache: fraction 0-1; waiting: requests",
    )
    resolve_below: float | None = Field(None, ge=0)
    for_checks: int = Field(3, ge=1, le=1000, description="polls in a row to fire or resolve")

    @model_validator(mode="after")
    def _threshold_where_needed(self) -> AlertRule:
        measured = self.kind in {"latency_p95", "kv_cache", "waiting"}
        if measured and self.threshold is None:
            raise ValueError(f"a {self.kind} rule needs `threshold`")
        if self.kind not in SERVER_ALERT_KINDS and self.endpoint:
            raise ValueError(f"a {self.kind} rule is about benchmark runs: drop `endpoint`")
        return self

    @property
    def resolve_level(self) -> float:
        if self.resolve_below is not None:
            return self.resolve_below
        return 0.9 * (self.threshold or 0.0)


class Webhook(Strict):
    """Where alerts are POSTed: ``json`` (the event as JSON) or ``slack`` (``{"text": ...}``,
    which Slack, Mattermost and Rocket.Chat incoming webhooks take)."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    format: Literal["json", "slack"] = "json"
    timeout_s: float = Field(5, gt=0, le=60)
    retries: int = Field(2, ge=0, le=10)
    token_env: str | None = Field(
        None, description="env var holding a bearer token (never the token itself)"
    )


class AlertSettings(Strict):
    rules: list[AlertRule] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
