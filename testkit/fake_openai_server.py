"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol.

Used by tests/test_openai_compat.py in place of vLLM / Ollama / llama.cpp. It
streams Server-Sent Events over chunked HTTP/1.1 like those servers do, so a
dropped connection looks to the client exactly as it would in production.

By default every chat request gets an answer that describes the request (the last
user text, how many images arrived and their decoded sizes), so a test can check
what the client really sent. ``script()`` queues other behaviours, one per chat
request: ``Reply`` (fixed chunks, slow chunks, no usage), ``Fail`` (an HTTP error
status), ``Hang`` (no answer for a while) and ``Drop`` (close the connection after
some chunks); ``default=`` sets what every request gets once the script is
empty (e.g. the same fixed ``Reply`` forever). Every request is recorded, with
the images it carried decoded.

    with FakeOpenAIServer(models=("fake-vlm",)) as server:
        server.script(Fail(503), Reply(chunks=("a", "b")))
        ... point a client at server.base_url ...
        assert len(server.chat_requests) == 2
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from testkit.fake_vllm_metrics import FakeVllmMetrics

# One visual token per 28x28 px, as Qwen2-VL counts them; only used for the usage numbers.
PIXELS_PER_IMAGE_TOKEN = 28 * 28


@dataclass(frozen=True)
class Reply:
    """A streamed answer. ``chunks=None``: describe the request (see ``describe_request``)."""

    chunks: tuple[str, ...] | None = None
    chunk_delay_s: float = 0.0
    send_usage: bool = True


@dataclass(frozen=True)
class Fail:
    """An HTTP error with an OpenAI-style JSON error body."""

    status: int
    message: str = "simulated failure"
    retry_after: str | None = None


@dataclass(frozen=True)
class Hang:
    """Accept the request and send nothing for ``seconds``, then a normal answer."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Stream ``after_chunks`` chunks of the normal answer, then close the connection."""

    after_chunks: int


Behaviour = Reply | Fail | Hang | Drop


@dataclass(frozen=True)
class ReceivedImage:
    """An image the server decoded from a data URL."""

    mime: str
    format: str
    width: int
    height: int
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class RecordedRequest:
    """One HTTP request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any] | None = None
    images: list[ReceivedImage] = field(default_factory=list)


class FakeOpenAIServer:
    """``with FakeOpenAIServer() as server:`` starts it on a free port, stops it after."""

    def __init__(
        self,
        models: tuple[str, ...] = ("fake-vlm",),
        api_key: str | None = None,
        reject_stream_options: bool = False,
        default: Behaviour | None = None,
        metrics: FakeVllmMetrics | None = None,
    ) -> None:
        self.models = models
        # vLLM's /metrics page (None: the server has none, like Ollama: 404).
        self.metrics = metrics
        # What a chat request gets once the script is empty (None: describe the request).
        self.default = default or Reply()
        self.api_key = api_key
        self.reject_stream_options = reject_stream_options
        self.requests: list[RecordedRequest] = []
        # Connections the client closed while the server was still streaming.
        self.disconnects = 0
        self.closing = threading.Event()
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> FakeOpenAIServer:
        httpd = _Httpd(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not running"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and records -------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next chat requests; an empty queue means ``default``."""
        with self._lock:
            self._script.extend(behaviours)

    def next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def note_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]


class _Httpd(ThreadingHTTPServer):
    # Handler threads may sit on an idle keep-alive connection; never wait for them.
    block_on_close = False
    daemon_threads = True
    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away (reset, broken pipe) is normal here; report the rest."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as real servers do
    timeout = 10  # an idle keep-alive connection ends its thread after this
    server: _Httpd

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request log lines."""

    @property
    def fake(self) -> FakeOpenAIServer:
        return self.server.fake

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.fake.record(RecordedRequest("GET", self.path, self._headers()))
        if self.path == "/metrics" and self.fake.metrics is not None:
            self._send_text(200, self.fake.metrics.render())  # vLLM serves it without a key
            return
        if not self._authorized():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._send_error(404, f"no route {self.path}", "NotFoundError")
            return
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.fake.models
        ]
        self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        body = self._read_json()
        recorded = RecordedRequest("POST", self.path, self._headers(), body)
        self.fake.record(recorded)
        if not self._authorized():
            return
        if self.path.rstrip("/") != "/v1/chat/completions" or body is None:
            self._send_error(404, f"no route {self.path}", "NotFoundError")
            return
        if body.get("model") not in self.fake.models:
            self._send_error(
                404, f"The model `{body.get('model')}` does not exist.", "NotFoundError"
            )
            return
        if self.fake.reject_stream_options and "stream_options" in body:
            self._send_error(400, "stream_options is not supported", "BadRequestError")
            return
        try:
            recorded.images.extend(decode_images(body))
        except ValueError as exc:
            self._send_error(400, f"invalid image: {exc}", "BadRequestError")
            return
        self._behave(self.fake.next_behaviour(), body, recorded.images)

    # -- behaviours ------------------------------------------------------------

    def _behave(self, behaviour: Behaviour, body: dict[str, Any], images: list) -> None:
        if isinstance(behaviour, Fail):
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            self._send_error(behaviour.status, behaviour.message, "ServerError", headers)
            return
        if isinstance(behaviour, Hang) and self.fake.closing.wait(behaviour.seconds):
            return
        chunks = describe_request(body, images)
        if isinstance(behaviour, Reply) and behaviour.chunks is not None:
            chunks = list(behaviour.chunks)
        delay = behaviour.chunk_delay_s if isinstance(behaviour, Reply) else 0.0
        drop_after = behaviour.after_chunks if isinstance(behaviour, Drop) else None
        send_usage = not isinstance(behaviour, Reply) or behaviour.send_usage
        started = time.monotonic()
        try:
            self._stream(body, chunks, images, delay, drop_after, send_usage)
            if self.fake.metrics is not None:
                took = time.monotonic() - started
                first = min(took, delay) if chunks else took
                tokens = prompt_token_count(body, images)
                self.fake.metrics.observe_request(tokens, len(chunks), first, took)
        except (BrokenPipeError, ConnectionResetError):
            self.fake.note_disconnect()
            self.close_connection = True

    def _stream(
        self,
        body: dict[str, Any],
        chunks: list[str],
        images: list[ReceivedImage],
        delay: float,
        drop_after: int | None,
        send_usage: bool,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body["model"]
        for index, text in enumerate(chunks):
            if drop_after is not None and index == drop_after:
                # Leave without the terminating chunk: the client sees a cut body.
                self.close_connection = True
                return
            if index and delay and self.fake.closing.wait(delay):
                return
            self._send_event(_chunk(model, {"content": text}, None))
        self._send_event(_chunk(model, {}, "stop"))
        if send_usage and (body.get("stream_options") or {}).get("include_usage"):
            self._send_event(_usage_chunk(model, body, images, len(chunks)))
        self._send_raw_chunk(b"data: [DONE]\n\n")
        self._send_raw_chunk(b"")

    # -- wire helpers ----------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _authorized(self) -> bool:
        if self.fake.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.fake.api_key}":
            return True
        self._send_error(401, "Invalid API key", "AuthenticationError")
        return False

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            data = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self, status: int, message: str, kind: str, headers: dict | None = None
    ) -> None:
        error = {"message": message, "type": kind, "param": None, "code": status}
        self._send_json(status, {"error": error}, headers)

    def _send_event(self, payload: dict[str, Any]) -> None:
        self._send_raw_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _send_raw_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [choice],
    }


def _usage_chunk(
    model: str, body: dict[str, Any], images: list[ReceivedImage], completion_tokens: int
) -> dict[str, Any]:
    prompt_tokens = prompt_token_count(body, images)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def prompt_token_count(body: dict[str, Any], images: list[ReceivedImage]) -> int:
    """The usage the fake reports: 4 characters per text token, 28x28 px per image token."""
    chars = sum(len(text) for text in _texts(body))
    return chars // 4 + sum(image.pixels // PIXELS_PER_IMAGE_TOKEN for image in images)


def describe_request(body: dict[str, Any], images: list[ReceivedImage]) -> list[str]:
    """The default answer, in chunks: the last user text, then the images received."""
    texts = [_message_text(m) for m in body.get("messages", []) if m.get("role") == "user"]
    sizes = ",".join(f"{image.width}x{image.height}" for image in images) or "-"
    return ["echo: ", texts[-1] if texts else "", " | ", f"images={len(images)}", f" sizes={sizes}"]


def decode_images(body: dict[str, Any]) -> list[ReceivedImage]:
    """Every image_url part of every message, decoded; ValueError if one is not a
    decodable base64 data URL."""
    received = []
    for message in body.get("messages", []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "image_url":
                received.append(_decode_data_url(part["image_url"]["url"]))
    return received


def _decode_data_url(url: str) -> ReceivedImage:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise ValueError(f"not a base64 data URL: {url[:40]!r}")
    mime = header[len("data:") : -len(";base64")]
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return ReceivedImage(mime, image.format or "", image.width, image.height, image.mode)
    except (binascii.Error, OSError) as exc:
        raise ValueError(f"cannot decode the {mime} image: {exc}") from exc


def _texts(body: dict[str, Any]) -> list[str]:
    return [_message_text(message) for message in body.get("messages", [])]


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
