"""Chat with a model served over the OpenAI chat-completions API.

Any server speaking ``/v1/chat/completions`` works: vLLM, Ollama, llama.cpp's
llama-server, LM Studio. The conversation is converted once per request
(``models.chat.openai_prompt``: plain strings, image parts as data URLs within
the entry's ``max_pixels``).

Requests stream (``stream=True``) and ask for exact token usage in the last chunk
(``stream_options.include_usage``). A server that rejects ``stream_options``
gets the request again without it, and this backend stops sending it; token
counts are then left ``None`` rather than guessed. An answer stopped before that
last chunk counts its completion tokens from the content chunks received.

Retries are this module's, not the client's: busy servers and failed
connections are retried up to ``endpoint.max_retries`` times, only before the
answer starts (policy and error wording: ``models.chat.openai_errors``).
Nothing is ever retried once text has been streamed; a connection lost
mid-answer raises ``GenerationError`` after the partial answer.

The ``OpenAI`` client is created on first use and shared: it is thread-safe, so
several chats can stream from one backend at once; each stream keeps its own state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai

from models.chat.openai_client import list_server_models, make_client
from models.chat.openai_errors import (
    CONTEXT_LIMIT,
    INITIAL_BACKOFF_S,
    MODEL_NOT_FOUND,
    RETRYABLE_STATUS,
    busy_error,
    context_error,
    is_retryable,
    mid_answer_error,
    request_error,
    retry_delay,
    server_message,
    short_reason,
)
from models.chat.openai_prompt import ServerPrompt, build_server_prompt
from models.chat.types import GenerationParams, PromptMessage, Usage
from models.config import Endpoint, ModelEntry
from utils.errors import AppError, GenerationError, ModelUnavailable

logger = logging.getLogger(__name__)

BACKEND_NAME = "openai"


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
                    short_reason(exc),
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
        if status == 404 or MODEL_NOT_FOUND.search(message):
            return self._unknown_model_error(message)
        if status == 400 and CONTEXT_LIMIT.search(message):
            return context_error(self.model_id, message, prompt, params.max_new_tokens)
        if status in RETRYABLE_STATUS:
            return busy_error(self.endpoint, self.endpoint_key, status, attempts, message)
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

    def explain_mid_answer(self, exc: openai.APIError) -> GenerationError:
        """The error for a stream that broke after the answer started."""
        return mid_answer_error(self.endpoint, self.endpoint_key, exc)


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

    def close(self) -> None:
        """Stop reading (the consumer left mid-answer): the connection is closed and
        ``usage`` is final now, with the time so far and the tokens received."""
        self._chunks.close()

    def _generate(self) -> Iterator[str]:
        started = time.monotonic()
        try:
            response = self._backend.open_stream(self._prompt, self._params, self._stop)
            if response is None:
                self.usage.stopped = True
                return
            yield from self._read(response, started)
        except GeneratorExit:
            self.usage.stopped = True  # closed before the end: the reader stopped it
            raise
        except AppError as exc:
            self.usage.error = str(exc)
            raise
        finally:
            self.usage.seconds = time.monotonic() - started

    def _read(self, response: openai.Stream, started: float) -> Iterator[str]:
        finished = False
        received = 0  # content chunks: servers stream one token per chunk
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
                        received += 1
                        yield choice.delta.content
        except openai.APIError as exc:
            raise self._backend.explain_mid_answer(exc) from exc
        finally:
            # Closing releases the connection (and tells the server to stop) when we
            # leave early: stop event, error, or the consumer dropping the stream.
            response.close()
            if self.usage.completion_tokens is None and not finished and received:
                # Left before the server's usage chunk (it comes last): count what came.
                self.usage.completion_tokens = received
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


def _wait_or_stopped(stop: threading.Event | None, seconds: float) -> bool:
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)
