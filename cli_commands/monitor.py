"""``cli.py monitor``: the app's server poller and alert rules, from cron or a sidecar.

It takes the same per-data-folder lock as the app's background poller, so running it
beside the app never doubles the history or the alerts: whichever holds the lock
polls. ``--once`` polls once (cron); without it, it polls every ``monitor.interval_s``
until stopped, reading the profile again before each poll (a server connected in the
app is polled from then on). Like the app's poller it polls the shared profile's
servers only: ``--user`` says who asks, never whose own servers to poll.
"""

from __future__ import annotations

import argparse
import time

from cli_commands.acting import acting_as
from models.config import AppConfig, load_config
from utils.auth import Action
from utils.errors import ConfigError
from utils.monitor.alerts import AlertEngine
from utils.monitor.points import ServerPoint
from utils.monitor.poller import MonitorThread, PointsHook

_WEBHOOK_WAIT_S = 60.0


def run_monitor(args: argparse.Namespace) -> int:
    acting_as(args).check(Action.CHECK_STATUS, "monitor")
    config = load_config(args.config).config  # shared: without anyone's own servers
    engines: list[AlertEngine] = []

    def alert_rules(profile: AppConfig) -> PointsHook:
        engines.append(AlertEngine(profile))
        return engines[-1].on_points

    monitor = MonitorThread(config, hook_for=alert_rules)
    try:
        if args.once:
            return _poll_once(monitor)
        print(f"polling {len(config.endpoints)} server(s) every {config.monitor.interval_s:g} s")
        _poll_until_stopped(monitor, args)
        return 0
    finally:
        if not all(engine.sender.wait_idle(_WEBHOOK_WAIT_S) for engine in engines):
            print("some alert webhooks did not answer in time (see the log)")


def _poll_until_stopped(monitor: MonitorThread, args: argparse.Namespace) -> None:
    try:
        while True:
            started = time.monotonic()
            _follow_profile(monitor, args)
            if monitor.lead():
                _print(monitor.poll())
            time.sleep(max(0.0, monitor.interval_s - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        monitor.release()


def _follow_profile(monitor: MonitorThread, args: argparse.Namespace) -> None:
    """The profile as it is now; one being edited (broken for a moment) keeps the last."""
    try:
        monitor.follow(load_config(args.config).config)
    except ConfigError as exc:
        print(f"profile not reloaded, polling as before: {exc.message}")


def _poll_once(monitor: MonitorThread) -> int:
    if not monitor.lead():
        print("another process (the app?) polls this data folder: nothing to do")
        return 0
    try:
        _print(monitor.poll())
    finally:
        monitor.release()
    return 0


def _print(points: list[ServerPoint]) -> None:
    for point in points:
        state = "up" if point.up else "DOWN"
        numbers = (
            f"running {point.running} waiting {point.waiting} kv {point.kv_cache} "
            f"gen tok/s {point.generation_tps} e2e p95 {point.e2e_p95}"
            if point.up and point.exposes_metrics and not point.error
            else point.error
        )
        print(f"{point.endpoint}: {state} {numbers}".rstrip())
