"""The alert engine: rules applied to each poll and to finished benchmark runs, state
kept on disk, events logged and sent.

``<data_dir>/alerts/state.json`` holds every rule's state (atomic writes, under a
lock: one writer at a time however many processes share the folder) and
``<data_dir>/alerts/events.jsonl`` every fired, resolved and notice event (rotated
past ``EVENTS_MAX_BYTES``). The app shows what is firing from the state file and
the newest events from the log; webhooks get each event once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from models.config import AppConfig
from models.monitoring import SERVER_ALERT_KINDS
from utils.bench.store import RunState, read_manifest, read_state, state_stamps
from utils.errors import BadInput
from utils.monitor.alert_rules import (
    AlertEvent,
    AlertState,
    RuleState,
    apply_server_rule,
)
from utils.monitor.points import ServerPoint
from utils.monitor.webhooks import WebhookSender
from utils.storage import append_jsonl, atomic_write_json, read_json_or_none, read_jsonl
from utils.storage.locks import holding_lock, lock_path_for
from utils.storage.rotation import one_older, rotate_if_over

ALERTS_DIR_NAME = "alerts"
EVENTS_MAX_BYTES = 2 * 2**20
_BENCH_STATUS = {"benchmark_failed": "failed", "benchmark_finished": "complete"}


def alerts_dir(data_dir: Path) -> Path:
    return data_dir / ALERTS_DIR_NAME


class AlertEngine:
    def __init__(
        self,
        config: AppConfig,
        sender: WebhookSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.rules = config.alerts.rules
        self.folder = alerts_dir(config.data_dir)
        self.sender = sender if sender is not None else WebhookSender(config.alerts.webhooks)
        self.clock = clock
        # Run id -> the state-file stamp this process last read; a poll reads only the
        # states that changed since, whatever the number of runs kept.
        self._run_stamps: dict[str, tuple[int, int]] = {}

    def on_points(self, points: list[ServerPoint]) -> list[AlertEvent]:
        """Apply every rule to one poll's points and the benchmark runs; returns the events."""
        if not self.rules:
            return []
        state_file = self.folder / "state.json"
        # Its own lock, not the file's: the atomic write below takes that one.
        with holding_lock(lock_path_for(self.folder / "rules"), state_file):
            stored = read_json_or_none(state_file, AlertState, corrupt_dir=self._corrupt)
            state = stored or AlertState()
            events = self._server_events(points, state)
            events += self._run_events(state, first_time=stored is None)
            atomic_write_json(state_file, state)
        for event in events:
            rotate_if_over(self.events_path, EVENTS_MAX_BYTES, one_older)
            append_jsonl(self.events_path, event)
        self.sender.send(events)
        return events

    @property
    def events_path(self) -> Path:
        return self.folder / "events.jsonl"

    @property
    def _corrupt(self) -> Path:
        return self.config.data_dir / ".corrupt"

    def _server_events(self, points: list[ServerPoint], state: AlertState) -> list[AlertEvent]:
        events = []
        for rule in self.rules:
            if rule.kind not in SERVER_ALERT_KINDS:
                continue
            for point in points:
                if rule.endpoint not in (None, point.endpoint):
                    continue
                key = f"{rule.name}/{point.endpoint}"
                new, event = apply_server_rule(rule, point, state.rules.get(key, RuleState()))
                state.rules[key] = new
                if event is not None:
                    events.append(event)
        return events

    def _run_events(self, state: AlertState, first_time: bool) -> list[AlertEvent]:
        """Each run that ended the way a rule watches for, once. Runs that had ended
        before the rules were first applied are taken as already reported."""
        rules = [rule for rule in self.rules if rule.kind in _BENCH_STATUS]
        if not rules:
            return []
        if first_time:
            self._run_stamps = {}  # read every run, so all that have ended are marked
        ended = self._newly_ended()
        events = []
        for rule in rules:
            # Ids of runs deleted since are forgotten, so the state file does not grow forever.
            reported = set(state.reported_runs.get(rule.name, [])) & self._run_stamps.keys()
            for run_id, run_state in ended.items():
                if run_state.status != _BENCH_STATUS[rule.kind] or run_id in reported:
                    continue
                reported.add(run_id)
                if not first_time:
                    name = self._run_name(run_id)
                    events.append(_run_event(rule.name, rule.kind, name, run_state, self.clock()))
            state.reported_runs[rule.name] = sorted(reported)
        return events

    def _newly_ended(self) -> dict[str, RunState]:
        """The runs whose state changed since the last poll and is now failed or complete."""
        data_dir = self.config.data_dir
        stamps = state_stamps(data_dir)
        changed = sorted(rid for rid, stamp in stamps.items() if self._run_stamps.get(rid) != stamp)
        self._run_stamps = stamps
        states = {run_id: read_state(data_dir, run_id) for run_id in changed}
        return {rid: s for rid, s in states.items() if s.status in _BENCH_STATUS.values()}

    def _run_name(self, run_id: str) -> str:
        try:
            return read_manifest(self.config.data_dir, run_id).name
        except BadInput:
            return run_id  # a run whose manifest is unreadable is still reported


def _run_event(rule: str, kind: str, name: str, run: RunState, at: float) -> AlertEvent:
    ended = "failed" if kind == "benchmark_failed" else "finished"
    detail = f": {run.message}" if run.message else ""
    return AlertEvent(
        at=at,
        rule=rule,
        kind=kind,
        state="notice",
        run_id=run.run_id,
        message=f"{rule}: benchmark run '{name}' {ended}{detail}",
    )


def firing(data_dir: Path) -> dict[str, RuleState]:
    """The rules firing now, by ``rule/endpoint`` (what the app's banner lists)."""
    state = read_json_or_none(alerts_dir(data_dir) / "state.json", AlertState)
    return {key: rule for key, rule in (state.rules if state else {}).items() if rule.firing}


def recent_events(data_dir: Path, limit: int = 50) -> list[AlertEvent]:
    """The newest events, newest first."""
    records = read_jsonl(alerts_dir(data_dir) / "events.jsonl", AlertEvent).records
    return list(reversed(records[-limit:]))
