"""A webhook receiver on 127.0.0.1 for alert tests: records what it is sent, and can
answer 500 or hang to show that a bad receiver does not stall the app."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "error", "hang"]


class WebhookReceiver:
    def __init__(self, mode: Mode = "ok", hang_s: float = 30.0) -> None:
        self.mode = mode
        self.hang_s = hang_s
        self.received: list[tuple[dict[str, str], Any]] = []
        self.closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((dict(self.headers), json.loads(body or b"null")))
                if receiver.mode == "hang":
                    receiver.closing.wait(receiver.hang_s)
                    return
                status = 500 if receiver.mode == "error" else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def url(self, path: str = "/hooks/T000/SECRET-PART") -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"
