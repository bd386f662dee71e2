"""Alert rules applied to what the monitor sees: fired and resolved, once each.

A server rule keeps two streaks per endpoint: polls in a row past the threshold and
polls in a row back under the resolve level. It fires when the first reaches
``for_checks`` and resolves when the second does; a value between the two levels
breaks both streaks and changes nothing. That band is what keeps a latency that
hovers around the line from firing and resolving on every poll.
Benchmark rules report each run that ended failed (or complete) once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from models.monitoring import AlertRule
from utils.monitor.points import ServerPoint
from utils.storage import VersionedRecord

EventState = Literal["fired", "resolved", "notice"]


class RuleState(BaseModel):
    firing: bool = False
    breach_streak: int = 0
    clear_streak: int = 0
    since: float | None = None
    value: float | None = None


class AlertState(VersionedRecord):
    """Every rule's state per endpoint (``rule/endpoint``), and the runs already reported."""

    rules: dict[str, RuleState] = Field(default_factory=dict)
    reported_runs: dict[str, list[str]] = Field(default_factory=dict)  # rule -> run ids


class AlertEvent(VersionedRecord):
    at: float
    rule: str
    kind: str
    state: EventState
    endpoint: str | None = None
    run_id: str | None = None
    value: float | None = None
    message: str


def apply_server_rule(
    rule: AlertRule, point: ServerPoint, state: RuleState
) -> tuple[RuleState, AlertEvent | None]:
    """The rule's new state for one poll of ``point.endpoint``, and the event, if any."""
    value, breach, clear = _reading(rule, point)
    streaks = state.model_copy(
        update={
            "breach_streak": state.breach_streak + 1 if breach else 0,
            "clear_streak": state.clear_streak + 1 if clear else 0,
            "value": value,
        }
    )
    if not state.firing and streaks.breach_streak >= rule.for_checks:
        fired = streaks.model_copy(update={"firing": True, "since": point.at, "clear_streak": 0})
        return fired, _event(rule, point, "fired", value)
    if state.firing and streaks.clear_streak >= rule.for_checks:
        resolved = streaks.model_copy(update={"firing": False, "since": None, "breach_streak": 0})
        return resolved, _event(rule, point, "resolved", value)
    return streaks, None


def _reading(rule: AlertRule, point: ServerPoint) -> tuple[float | None, bool, bool]:
    """(value, past the threshold, back under the resolve level) for this poll."""
    if rule.kind == "endpoint_down":
        return None, not point.up, point.up
    value = {"latency_p95": point.e2e_p95, "kv_cache": point.kv_cache, "waiting": point.waiting}[
        rule.kind
    ]
    if not point.up or value is None:  # no reading: no evidence either way
        return None, False, False
    threshold = rule.threshold or 0.0
    return value, value > threshold, value < rule.resolve_level


def _event(rule: AlertRule, point: ServerPoint, state: EventState, value: float | None):
    return AlertEvent(
        at=point.at,
        rule=rule.name,
        kind=rule.kind,
        state=state,
        endpoint=point.endpoint,
        value=value,
        message=describe(rule, point.endpoint, state, value, point.error),
    )


def describe(
    rule: AlertRule, endpoint: str, state: EventState, value: float | None, error: str = ""
) -> str:
    what = {
        "endpoint_down": f"server '{endpoint}' is down" + (f" ({error})" if error else ""),
        "latency_p95": f"server '{endpoint}' p95 latency {_num(value)} s > {rule.threshold} s",
        "kv_cache": f"server '{endpoint}' KV cache {_pct(value)} > {_pct(rule.threshold)}",
        "waiting": f"server '{endpoint}' has {_num(value)} requests waiting > {rule.threshold}",
    }[rule.kind]
    if state == "resolved":
        return f"resolved: {rule.name}: " + what.split(" > ")[0].replace(" is down", " is up")
    return f"{rule.name}: {what}"


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{100 * value:.0f} %"
