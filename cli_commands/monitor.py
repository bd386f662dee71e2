"""``cli.py monitor``: the app's server poller and alert rules, from cron or a sidecar.

It takes the same per-data-folder lock as the app's background poller, so running it
beside the app never doubles the history or the alerts: whichever holds the lock
polls. ``--once`` polls once (cron); without it, it polls every ``monitor.interval_s``
until stopped.
"""

from __future__ import annotations

import argparse
import time

from cli_commands.acting import acting_as
from utils.auth import Action
from utils.monitor.alerts import AlertEngine
from utils.monitor.points import ServerPoint
from utils.monitor.poller import MonitorThread

_WEBHOOK_WAIT_S = 60.0


def run_monitor(args: argparse.Namespace) -> int:
    acting = acting_as(args)
    acting.check(Action.CHECK_STATUS, "monitor")
    config = acting.config
    engine = AlertEngine(config)
    monitor = MonitorThread(config, on_points=engine.on_points)
    if args.once:
        return _poll_once(monitor, engine)
    print(f"polling {len(config.endpoints)} server(s) every {config.monitor.interval_s:g} s")
    try:
        while True:
            started = time.monotonic()
            if monitor.lead():
                _print(monitor.poll())
            time.sleep(max(0.0, config.monitor.interval_s - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0
    finally:
        monitor.release()
        engine.sender.wait_idle(_WEBHOOK_WAIT_S)


def _poll_once(monitor: MonitorThread, engine: AlertEngine) -> int:
    if not monitor.lead():
        print("another process (the app?) polls this data folder: nothing to do")
        return 0
    try:
        _print(monitor.poll())
    finally:
        monitor.release()
    if not engine.sender.wait_idle(_WEBHOOK_WAIT_S):
        print("some alert webhooks did not answer in time (see the log)")
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
