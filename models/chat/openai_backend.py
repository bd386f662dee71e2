"""Chat with a model served over the OpenAI chat-completions API.

Any server speaking ``/v1/chat/completions`` works: vLLM, Ollama, llama.cpp's
llama-server, LM Studio. The canonical ``PromptMessage``s are converted once
per request:

- system and assistant turns, and user turns without images, are plain strings
  (the widest-supported form); a user turn with images is a list of
  ``{"type": "text"}`` and ``{"type": "image_url"}`` parts in the original order;
- every image is re-encoded as a base64 data URL, first scaled down (aspect kept)
  so that width * height <= the entry's ``max_pixels``; JPEG at quality 90 for
  images without an alpha channel (photos and scans: several times smaller than
  PNG), PNG for images with one (JPEG cannot carry it). No ``max_pixels``: sent
  at the size it has.

Requests stream (``stream=True``) and ask for exact token usage in the last chunk
(``stream_options.include_usage``). A server that rejects ``stream_options``
gets the request again without it, and this backend stops sending it; token
counts are then left ``None`` rather than guessed.

Retries are this module's, not the client's (the client is built with
``max_retries=0``): HTTP 429/502/503 and connection failures are retried up to
``endpoint.max_retries`` times with exponential backoff (or the server's
``Retry-After``), only before the answer starts. A timeout is not retried: a
server silent for ``timeout_s`` is busy or stuck, and retrying would multiply the
wait. Nothing is ever retried once text has been streamed; a connection lost
mid-answer raises ``GenerationError`` after the partial answer.

The ``OpenAI`` client is created on first use and shared: it is thread-safe, so
several chats can stream from one backend at once; each stream keeps its own state.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from models.chat.types import GenerationParams, PromptMessage, Usage
from models.config import Endpoint, ModelEntry
from utils.errors import AppError, BadInput, GenerationError, ModelUnavailable

logger = logging.getLogger(__name__)

BACKEND_NAME = "openai"
NO_API_KEY = "not-needed"  # local servers ignore the key, the client insists on one
CONNECT_TIMEOUT_S = 10.0  # a server that exists accepts a connection in far less
RETRYABLE_STATUS = frozenset({429, 502, 503})
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 30.0  # a longer Retry-After is ignored in favour of the backoff
JPEG_QUALITY = 90
# Estimates, used only to explain a context-length refusal: Qwen2-VL-style models
# spend one visual token per 28x28 px; English text averages about 4 chars a token.
PIXELS_PER_IMAGE_TOKEN = 28 * 28
CHARS_PER_TEXT_TOKEN = 4

_CONTEXT_LIMIT = re.compile(r"context (length|size|window)", re.IGNORECASE)
_MODEL_NOT_FOUND = re.compile(r"model\b.*\b(not found|does not exist)", re.IGNORECASE)


class EndpointStatus(BaseModel):
    """What a quick ``GET /v1/models`` says about a server (for the Models page)."""

    model_config = ConfigDict(extra="forbid")

    reachable: bool = Field(description="the server answered (even with an error status)")
    latency_ms: float | None = None
    models: list[str] = Field(default_factory=list)
    error: str | None = None


# -- images and messages ---------------------------------------------------------


@dataclass(frozen=True)
class EncodedImage:
    """An image as sent: a data URL and the size it was encoded at."""

    url: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def fit_pixel_budget(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """The image scaled down, aspect kept, so that width * height <= max_pixels."""
    if not max_pixels or image.width * image.height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (image.width * image.height))
    # Flooring both sides keeps the product under the budget.
    size = (max(1, math.floor(image.width * scale)), max(1, math.floor(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, max_pixels: int | None) -> EncodedImage:
    """A data URL within the pixel budget: JPEG q=90 without alpha, PNG with it."""
    prepared = fit_pixel_budget(_without_palette(image), max_pixels)
    buffer = io.BytesIO()
    if prepared.mode in ("RGBA", "LA"):
        prepared.save(buffer, format="PNG")
        mime = "image/png"
    else:
        if prepared.mode not in ("RGB", "L"):
            prepared = prepared.convert("RGB")
        prepared.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        mime = "image/jpeg"
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return EncodedImage(f"data:{mime};base64,{data}", prepared.width, prepared.height)


def _without_palette(image: Image.Image) -> Image.Image:
    """Palette and 1-bit images in a mode that resizes smoothly (and keeps transparency)."""
    if image.mode in ("P", "PA"):
        has_alpha = image.mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if image.mode == "1":
        return image.convert("L")
    return image


@dataclass
class ServerPrompt:
    """The messages in the wire format, and what they carry (for usage and errors)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    images: list[EncodedImage] = field(default_factory=list)
    text_chars: int = 0

    @property
    def image_pixels(self) -> int:
        return sum(image.pixels for image in self.images)

    @property
    def estimated_image_tokens(self) -> int:
        return sum(math.ceil(image.pixels / PIXELS_PER_IMAGE_TOKEN) for image in self.images)

    @property
    def estimated_text_tokens(self) -> int:
        return math.ceil(self.text_chars / CHARS_PER_TEXT_TOKEN)


def build_server_prompt(messages: list[PromptMessage], max_pixels: int | None) -> ServerPrompt:
    """The whole conversation, earlier images included, in chat-completions form."""
    prompt = ServerPrompt()
    for message in messages:
        prompt.text_chars += len(message.text)
        if not message.images:
            prompt.messages.append({"role": message.role, "content": message.text})
            continue
        if message.role != "user":
            raise BadInput(
                f"a {message.role} message carries images; only user messages may",
                hint="attach images to the user's turn",
            )
        prompt.messages.append(
            {"role": "user", "content": _content_parts(message, max_pixels, prompt)}
        )
    return prompt


def _content_parts(
    message: PromptMessage, max_pixels: int | None, prompt: ServerPrompt
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
            continue
        encoded = encode_image(part, max_pixels)
        prompt.images.append(encoded)
        parts.append({"type": "image_url", "image_url": {"url": encoded.url}})
    return parts


# -- the backend -------------------------------------------------------------------


class OpenAICompatBackend:
    """A model on an OpenAI-compatible server; implements ``ChatBackend``."""

    backend = BACKEND_NAME

    def __init__(
        self,
        model_id: str,
        entry: ModelEntry,
        endpoint: Endpoint,
        *,
        backoff_s: float = INITIAL_BACKOFF_S,
    ) -> None:
        self.model_id = model_id
        self.entry = entry
        self.endpoint = endpoint
        self.served_name = entry.served_name or entry.source or model_id
        self.endpoint_key = f"endpoints.{entry.endpoint}" if entry.endpoint else "the endpoint"
        self.backoff_s = backoff_s
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        # Cleared once the server rejects stream_options; a benign race between threads.
        self._send_stream_options = True

    def stream(
        self,
        messages: list[PromptMessage],
        params: GenerationParams,
        stop: threading.Event | None = None,
    ) -> ServerChatStream:
        """Encode the conversation now; the request starts when the stream is iterated."""
        prompt = build_server_prompt(messages, self.entry.max_pixels)
        return ServerChatStream(self, prompt, params, stop)

    def client(self) -> openai.OpenAI:
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.endpoint)
            return self._client

    def open_stream(
        self, prompt: ServerPrompt, params: GenerationParams, stop: threading.Event | None
    ) -> openai.Stream | None:
        """The server's stream, after bounded retries; ``None`` if stopped meanwhile."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._create(prompt, params)
            except openai.APIError as exc:
                if attempt > self.endpoint.max_retries or not is_retryable(exc):
                    raise self._explain(exc, prompt, params, attempt) from exc
                delay = retry_delay(attempt, exc, self.backoff_s)
                logger.warning(
                    "%s: %s; retry %d of %d in %.2f s",
                    self.endpoint.base_url,
                    _short_reason(exc),
                    attempt,
                    self.endpoint.max_retries,
                    delay,
                )
                if _wait_or_stopped(stop, delay):
                    return None

    def _create(self, prompt: ServerPrompt, params: GenerationParams) -> openai.Stream:
        request = self._request(prompt, params)
        try:
            return self.client().chat.completions.create(**request)
        except openai.BadRequestError as exc:
            if "stream_options" not in request or "stream_options" not in server_message(exc):
                raise
        logger.info(
            "%s rejects stream_options; token usage will be unknown", self.endpoint.base_url
        )
        self._send_stream_options = False
        request.pop("stream_options")
        return self.client().chat.completions.create(**request)

    def _request(self, prompt: ServerPrompt, params: GenerationParams) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.served_name,
            "messages": prompt.messages,
            "stream": True,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if self._send_stream_options:
            request["stream_options"] = {"include_usage": True}
        return request

    def _explain(
        self, exc: openai.APIError, prompt: ServerPrompt, params: GenerationParams, attempts: int
    ) -> AppError:
        """The error a user can act on, for a request that got no answer."""
        if not isinstance(exc, openai.APIStatusError):
            return request_error(self.endpoint, self.endpoint_key, exc)
        status, message = exc.status_code, server_message(exc)
        if status == 404 or _MODEL_NOT_FOUND.search(message):
            return self._unknown_model_error(message)
        if status == 400 and _CONTEXT_LIMIT.search(message):
            return self._context_error(message, prompt, params)
        if status in RETRYABLE_STATUS:
            return GenerationError(
                f"{self.endpoint.base_url} is busy: HTTP {status} after {attempts} "
                f"attempt(s): {message}",
                hint="the server is overloaded or still loading the model; try again "
                f"shortly, or raise {self.endpoint_key}.max_retries",
            )
        return request_error(self.endpoint, self.endpoint_key, exc)

    def _unknown_model_error(self, message: str) -> ModelUnavailable:
        try:
            offered = list_server_models(self.endpoint)
        except AppError as exc:
            return ModelUnavailable(
                f"{self.endpoint.base_url} does not serve '{self.served_name}' ({message}), "
                f"and listing its models failed too: {exc.message}",
                hint=f"check that {self.endpoint_key}.base_url is right (usually ending in /v1)",
            )
        return ModelUnavailable(
            f"{self.endpoint.base_url} does not serve '{self.served_name}' ({message}); "
            f"it offers: {', '.join(offered) or 'no models'}",
            hint=f"set served_name of models.{self.model_id} to one of those, "
            "or start the server with this model",
        )

    def _context_error(
        self, message: str, prompt: ServerPrompt, params: GenerationParams
    ) -> GenerationError:
        return GenerationError(
            f"the conversation does not fit the model's context: about "
            f"{prompt.estimated_image_tokens} image tokens ({len(prompt.images)} image(s), "
            f"{prompt.image_pixels} px, ~1 token per {PIXELS_PER_IMAGE_TOKEN} px) and "
            f"{prompt.estimated_text_tokens} text tokens (~{CHARS_PER_TEXT_TOKEN} chars "
            f"per token) were sent, plus up to {params.max_new_tokens} new tokens; "
            f"the server said: {message}",
            hint="start a new chat, send fewer or smaller images (a lower max_pixels "
            f"for models.{self.model_id}), or lower max_new_tokens",
        )

    def explain_mid_answer(self, exc: openai.APIError) -> GenerationError:
        """The error for a stream that broke after the answer started."""
        if isinstance(exc, openai.APITimeoutError):
            return GenerationError(
                f"{self.endpoint.base_url} sent nothing for {self.endpoint.timeout_s:g} s "
                "mid-answer",
                hint=f"the partial answer is kept; the server may be overloaded — check its "
                f"log or raise {self.endpoint_key}.timeout_s",
            )
        if isinstance(exc, openai.APIConnectionError):
            return GenerationError(
                "the server closed the stream mid-answer",
                hint="the partial answer is kept; the server may have crashed or restarted "
                "— check its log and ask again",
            )
        return GenerationError(
            f"the server reported an error mid-answer: {server_message(exc)}",
            hint="the partial answer is kept; check the server log",
        )


class ServerChatStream:
    """One answer: iterate for text chunks; ``usage`` is final once iteration ends.

    Single use. The request is sent on the first ``next()``; a stop event set
    while waiting for a retry or between chunks ends it early (``usage.stopped``).
    """

    def __init__(
        self,
        backend: OpenAICompatBackend,
        prompt: ServerPrompt,
        params: GenerationParams,
        stop: threading.Event | None,
    ) -> None:
        self.usage = Usage(
            model_id=backend.model_id,
            backend=BACKEND_NAME,
            images=len(prompt.images),
            image_pixels=prompt.image_pixels,
        )
        self._backend = backend
        self._prompt = prompt
        self._params = params
        self._stop = stop
        self._chunks = self._generate()

    def __iter__(self) -> Iterator[str]:
        return self._chunks

    def _generate(self) -> Iterator[str]:
        started = time.monotonic()
        try:
            response = self._backend.open_stream(self._prompt, self._params, self._stop)
            if response is None:
                self.usage.stopped = True
                return
            yield from self._read(response, started)
        except AppError as exc:
            self.usage.error = str(exc)
            raise
        finally:
            self.usage.seconds = time.monotonic() - started

    def _read(self, response: openai.Stream, started: float) -> Iterator[str]:
        finished = False
        try:
            for chunk in self._until_stopped(response):
                if chunk.usage is not None:
                    self.usage.prompt_tokens = chunk.usage.prompt_tokens
                    self.usage.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    finished = finished or choice.finish_reason is not None
                    if choice.delta is not None and choice.delta.content:
                        if self.usage.first_token_seconds is None:
                            self.usage.first_token_seconds = time.monotonic() - started
                        yield choice.delta.content
        except openai.APIError as exc:
            raise self._backend.explain_mid_answer(exc) from exc
        finally:
            # Closing releases the connection (and tells the server to stop) when we
            # leave early: stop event, error, or the consumer dropping the stream.
            response.close()
        if not finished and not self.usage.stopped:
            logger.warning("%s ended the stream without a finish_reason", self._backend.model_id)

    def _until_stopped(self, response: openai.Stream) -> Iterator[Any]:
        """The server's chunks until the stop event is set (checked before each read)."""
        chunks = iter(response)
        while True:
            if self._stop is not None and self._stop.is_set():
                self.usage.stopped = True
                return
            chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk


# -- server-level helpers -----------------------------------------------------------


def make_client(endpoint: Endpoint, timeout_s: float | None = None) -> openai.OpenAI:
    """A client for the endpoint with retries off (this module retries itself)."""
    total = timeout_s if timeout_s is not None else endpoint.timeout_s
    return openai.OpenAI(
        base_url=endpoint.base_url,
        api_key=_api_key(endpoint),
        timeout=openai.Timeout(total, connect=min(total, CONNECT_TIMEOUT_S)),
        max_retries=0,
    )


def _api_key(endpoint: Endpoint) -> str:
    return (os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None) or NO_API_KEY


def list_server_models(endpoint: Endpoint, timeout_s: float | None = None) -> list[str]:
    """The model names the server offers (``GET /v1/models``), sorted."""
    with make_client(endpoint, timeout_s) as client:
        return _fetch_model_names(client, endpoint)


def _fetch_model_names(client: openai.OpenAI, endpoint: Endpoint) -> list[str]:
    try:
        page = client.models.list()
    except openai.APIError as exc:
        raise request_error(endpoint, "the endpoint", exc) from exc
    return sorted(model.id for model in page.data)


def probe_endpoint(endpoint: Endpoint, timeout_s: float = 3.0) -> EndpointStatus:
    """Whether the server answers, how fast, and which models it serves. Never raises."""
    with make_client(endpoint, timeout_s) as client:
        started = time.monotonic()
        try:
            models = _fetch_model_names(client, endpoint)
        except AppError as exc:
            answered = isinstance(exc.__cause__, openai.APIStatusError)
            latency = (time.monotonic() - started) * 1000 if answered else None
            return EndpointStatus(reachable=answered, latency_ms=latency, error=str(exc))
        latency = (time.monotonic() - started) * 1000
    return EndpointStatus(reachable=True, latency_ms=latency, models=models)


def request_error(endpoint: Endpoint, endpoint_key: str, exc: openai.APIError) -> AppError:
    """Timeouts, unreachable servers, refused keys and other statuses, explained."""
    base_url = endpoint.base_url
    if isinstance(exc, openai.APITimeoutError):
        return GenerationError(
            f"{base_url} did not answer within {endpoint.timeout_s:g} s",
            hint="the server may be busy or still loading the model; check its log, "
            f"or raise {endpoint_key}.timeout_s",
        )
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailable(
            f"cannot reach {base_url}: {_connection_cause(exc)}",
            hint="start the server (e.g. `vllm serve MODEL` / `ollama serve`) "
            f"or fix {endpoint_key}.base_url",
        )
    if isinstance(exc, openai.APIStatusError) and exc.status_code in (401, 403):
        return ModelUnavailable(
            f"{base_url} refused the API key (HTTP {exc.status_code}): {server_message(exc)}",
            hint=_auth_hint(endpoint, endpoint_key),
        )
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else "error"
    return GenerationError(
        f"{base_url} answered HTTP {status}: {server_message(exc)}",
        hint="check the server's log",
    )


def _auth_hint(endpoint: Endpoint, endpoint_key: str) -> str:
    env = endpoint.api_key_env
    if not env:
        return (
            "the server wants an API key: put it in an environment variable and name "
            f"that variable in {endpoint_key}.api_key_env"
        )
    state = "is set but the server refused it" if os.environ.get(env) else "is not set"
    return f"set the environment variable {env} to the server's API key ({env} {state})"


def _connection_cause(exc: openai.APIError) -> str:
    cause = exc.__cause__
    if cause is None:
        return exc.message
    return str(cause) or type(cause).__name__


def server_message(exc: openai.APIError) -> str:
    """The server's own error message (the ``message`` of an OpenAI error body)."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body, str) and body:
        return body[:500]
    return exc.message


def is_retryable(exc: openai.APIError) -> bool:
    """Busy servers and failed connections, not timeouts or request errors."""
    if isinstance(exc, openai.APITimeoutError):
        return False
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code in RETRYABLE_STATUS


def retry_delay(attempt: int, exc: openai.APIError, backoff_s: float) -> float:
    """The server's Retry-After when sensible, else backoff_s doubled per attempt."""
    if isinstance(exc, openai.APIStatusError):
        retry_after = _seconds(exc.response.headers.get("retry-after"))
        if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER_S:
            return retry_after
    return min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from model servers, the backoff is fine


def _wait_or_stopped(stop: threading.Event | None, seconds: float) -> bool:
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)


def _short_reason(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__
