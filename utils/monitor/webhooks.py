"""Alert events to webhooks, off the polling thread.

Events wait in a bounded queue for one delivery thread, so a receiver that hangs or
answers 500 costs its own timeouts and retries, never a poll or a page. A webhook
URL can hold a token (Slack's do, in the path), so logs name only its scheme and
host; a bearer token comes from an environment variable named in the profile.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from models.monitoring import Webhook
from utils.monitor.alert_rules import AlertEvent

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
_BACKOFF_S = 1.0


def payload(event: AlertEvent, hook: Webhook) -> bytes:
    if hook.format == "slack":
        icon = {"fired": "🚨", "resolved": "✅", "notice": "📣"}[event.state]
        body: dict = {"text": f"{icon} ChatVLMLLM {event.message}"}
    else:
        body = event.model_dump(mode="json", exclude={"schema_version"})
    return json.dumps(body).encode("utf-8")


def where(url: str) -> str:
    """What a log may say about a webhook: scheme and host, no path, query or credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def deliver(event: AlertEvent, hook: Webhook, sleep=time.sleep) -> bool:
    """POST ``event`` to ``hook`` with its timeout and retries; whether it was taken (2xx)."""
    headers = {"Content-Type": "application/json", "User-Agent": "ChatVLMLLM-alerts"}
    token = os.environ.get(hook.token_env or "", "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = payload(event, hook)
    for attempt in range(hook.retries + 1):
        request = urllib.request.Request(hook.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout_s) as response:  # noqa: S310
                if 200 <= response.status < 300:
                    return True
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = type(getattr(exc, "reason", exc)).__name__
        logger.warning(
            "alert webhook %s: %s (try %d of %d)", where(hook.url), problem, attempt + 1,
            hook.retries + 1,
        )  # fmt: skip
        if attempt < hook.retries:
            sleep(_BACKOFF_S * 2**attempt)
    return False


class WebhookSender:
    """One delivery thread per process; ``send`` never blocks (a full queue drops and logs)."""

    def __init__(self, hooks: list[Webhook]) -> None:
        self.hooks = hooks
        self.pending: queue.Queue[AlertEvent] = queue.Queue(maxsize=QUEUE_SIZE)
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="alert-webhooks", daemon=True)
        if hooks:
            self._thread.start()

    def send(self, events: list[AlertEvent]) -> None:
        if not self.hooks:
            return
        for event in events:
            try:
                self.pending.put_nowait(event)
            except queue.Full:
                logger.error("alert webhook queue full: event '%s' not sent", event.rule)

    def wait_idle(self, timeout_s: float) -> bool:
        """Whether every queued event was handled within ``timeout_s`` (CLI, tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pending.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        while True:
            event = self.pending.get()
            try:
                for hook in self.hooks:
                    if deliver(event, hook):
                        self.delivered += 1
                    else:
                        self.failed += 1
            except Exception:  # noqa: BLE001 - the sender must outlive a bad event
                logger.exception("alert webhook delivery failed")
            finally:
                self.pending.task_done()
