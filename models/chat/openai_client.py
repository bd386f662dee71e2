"""Talking to an OpenAI-compatible server outside a chat: clients, model lists, probes."""

from __future__ import annotations

import os
import time

import openai
from pydantic import BaseModel, ConfigDict, Field

from models.chat.openai_errors import request_error
from models.config import Endpoint
from utils.errors import AppError

NO_API_KEY = "not-needed"  # local servers ignore the key, the client insists on one
CONNECT_TIMEOUT_S = 10.0  # a server that exists accepts a connection in far less


class EndpointStatus(BaseModel):
    """What a quick ``GET /v1/models`` says about a server (for the Models page)."""

    model_config = ConfigDict(extra="forbid")

    reachable: bool = Field(description="the server answered (even with an error status)")
    latency_ms: float | None = None
    models: list[str] = Field(default_factory=list)
    error: str | None = None


def make_client(endpoint: Endpoint, timeout_s: float | None = None) -> openai.OpenAI:
    """A client for the endpoint with retries off (the backend retries itself)."""
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
