"""What an OpenAI-compatible server's failures mean to a user, and which are retried.

Retries are the backend's, not the client's (clients are built with
``max_retries=0``): HTTP 429/502/503 and connection failures are retried with
exponential backoff (or the server's ``Retry-After``), only before the answer
starts. A timeout is not retried: a server silent for ``timeout_s`` is busy or
stuck, and retrying would multiply the wait. Every error says what to do next.
"""

from __future__ import annotations

import os
import re

import openai

from models.chat.openai_prompt import CHARS_PER_TEXT_TOKEN, PIXELS_PER_IMAGE_TOKEN, ServerPrompt
from models.config import Endpoint
from utils.errors import AppError, GenerationError, ModelUnavailable

RETRYABLE_STATUS = frozenset({429, 502, 503})
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 30.0  # a longer Retry-After is ignored in favour of the backoff

CONTEXT_LIMIT = re.compile(r"context (length|size|window)", re.IGNORECASE)
MODEL_NOT_FOUND = re.compile(r"model\b.*\b(not found|does not exist)", re.IGNORECASE)


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


def short_reason(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__


def busy_error(
    endpoint: Endpoint, endpoint_key: str, status: int, attempts: int, message: str
) -> GenerationError:
    """A retryable status that outlasted the retries."""
    return GenerationError(
        f"{endpoint.base_url} is busy: HTTP {status} after {attempts} attempt(s): {message}",
        hint="the server is overloaded or still loading the model; try again "
        f"shortly, or raise {endpoint_key}.max_retries",
    )


def context_error(
    model_id: str, message: str, prompt: ServerPrompt, max_new_tokens: int
) -> GenerationError:
    """A context-length refusal, with estimates of what the conversation spent."""
    return GenerationError(
        f"the conversation does not fit the model's context: about "
        f"{prompt.estimated_image_tokens} image tokens ({len(prompt.images)} image(s), "
        f"{prompt.image_pixels} px, ~1 token per {PIXELS_PER_IMAGE_TOKEN} px) and "
        f"{prompt.estimated_text_tokens} text tokens (~{CHARS_PER_TEXT_TOKEN} chars "
        f"per token) were sent, plus up to {max_new_tokens} new tokens; "
        f"the server said: {message}",
        hint="start a new chat, send fewer or smaller images (a lower max_pixels "
        f"for models.{model_id}), or lower max_new_tokens",
    )


def mid_answer_error(
    endpoint: Endpoint, endpoint_key: str, exc: openai.APIError
) -> GenerationError:
    """The error for a stream that broke after the answer started."""
    if isinstance(exc, openai.APITimeoutError):
        return GenerationError(
            f"{endpoint.base_url} sent nothing for {endpoint.timeout_s:g} s mid-answer",
            hint=f"the partial answer is kept; the server may be overloaded — check its "
            f"log or raise {endpoint_key}.timeout_s",
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
