"""The OpenAI-compatible backend against a real local HTTP server (tests/helpers).

Everything goes over loopback through the official ``openai`` client, so these
tests exercise the same requests, streams and failures a vLLM or Ollama server
would produce. Timeouts and backoffs are shortened to keep the file fast.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from models.chat.openai_backend import OpenAICompatBackend
from models.chat.openai_client import list_server_models, probe_endpoint
from models.chat.openai_prompt import fit_pixel_budget
from models.chat.types import ChatBackend, ChatStream, GenerationParams, PromptMessage
from models.config import Endpoint, ModelEntry
from testkit.fake_openai_server import (
    Drop,
    Fail,
    FakeOpenAIServer,
    Hang,
    Reply,
    prompt_token_count,
)
from utils.errors import BadInput, GenerationError, ModelUnavailable

PARAMS = GenerationParams(max_new_tokens=64, temperature=0.2, top_p=0.9)
KEY_ENV = "CHATVLM_TEST_SERVER_KEY"


@pytest.fixture
def server():
    with FakeOpenAIServer(models=("fake-vlm", "other-vlm")) as running:
        yield running


def make_backend(
    base_url: str,
    *,
    served_name: str | None = "fake-vlm",
    max_pixels: int | None = None,
    backoff_s: float = 0.01,
    **endpoint: object,
) -> OpenAICompatBackend:
    entry = ModelEntry(
        display_name="Fake VLM",
        backend="openai",
        task="both",
        endpoint="fake",
        served_name=served_name,
        max_pixels=max_pixels,
    )
    settings_ = {"timeout_s": 5.0, "max_retries": 2, **endpoint}
    return OpenAICompatBackend(
        "fake_vlm", entry, Endpoint(base_url=base_url, **settings_), backoff_s=backoff_s
    )


def ask(text: str, *images: Image.Image) -> list[PromptMessage]:
    return [PromptMessage("user", [text, *images])]


def drain(stream: ChatStream) -> tuple[list[str], Exception | None]:
    """The chunks a stream produced, and the error that ended it (if any)."""
    chunks: list[str] = []
    try:
        for chunk in stream:
            chunks.append(chunk)
    except Exception as exc:  # noqa: BLE001 - the tests inspect it
        return chunks, exc
    return chunks, None


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# -- answers ----------------------------------------------------------------------


def test_streams_chunks_in_order_with_exact_usage(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url)
    assert isinstance(backend, ChatBackend)
    server.script(Reply(chunks=("Hel", "lo", ", ", "world")))

    stream = backend.stream(ask("Say hello"), PARAMS)
    chunks, error = drain(stream)

    assert error is None
    assert chunks == ["Hel", "lo", ", ", "world"]
    [request] = server.chat_requests
    body = request.body
    assert body is not None
    assert body["model"] == "fake-vlm"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.2, 0.9)
    usage = stream.usage
    assert usage.completion_tokens == 4
    assert usage.prompt_tokens == prompt_token_count(body, request.images)
    assert usage.backend == "openai" and usage.model_id == "fake_vlm"
    assert usage.first_token_seconds is not None and 0 < usage.first_token_seconds <= usage.seconds
    assert not usage.stopped and usage.error is None


def test_model_name_sent_is_served_name_then_source_then_id() -> None:
    def name(**fields: str | None) -> str:
        entry = ModelEntry(display_name="x", backend="openai", task="chat", endpoint="e", **fields)
        return OpenAICompatBackend(
            "catalog_id", entry, Endpoint(base_url="http://h/v1")
        ).served_name

    assert name(served_name="served", source="org/model") == "served"
    assert name(source="org/model") == "org/model"
    assert name() == "catalog_id"


def test_images_arrive_as_data_urls_within_max_pixels(server: FakeOpenAIServer) -> None:
    budget = 40_000
    photo = Image.new("RGB", (1000, 500), (200, 120, 40))
    transparent = Image.new("RGBA", (300, 300), (0, 0, 255, 128))
    palette = Image.new("RGB", (640, 480), "white").convert("P")
    small_scan = Image.new("L", (150, 100), 255)
    backend = make_backend(server.base_url, max_pixels=budget)

    stream = backend.stream(ask("What is this?", photo, transparent, palette, small_scan), PARAMS)
    chunks, error = drain(stream)

    assert error is None
    [request] = server.chat_requests
    received = request.images
    assert [(image.mime, image.format) for image in received] == [
        ("image/jpeg", "JPEG"),
        ("image/png", "PNG"),
        ("image/jpeg", "JPEG"),
        ("image/jpeg", "JPEG"),
    ]
    for original, got in zip([photo, transparent, palette], received, strict=False):
        assert got.pixels <= budget
        assert got.pixels > 0.95 * budget  # scaled to the budget, not far below it
        assert got.width / got.height == pytest.approx(original.width / original.height, rel=0.02)
    assert (received[3].width, received[3].height) == (150, 100)  # within budget: untouched
    assert received[1].mode == "RGBA"
    sizes = ",".join(f"{image.width}x{image.height}" for image in received)
    assert "".join(chunks) == f"echo: What is this? | images=4 sizes={sizes}"
    assert stream.usage.images == 4
    assert stream.usage.image_pixels == sum(image.pixels for image in received)


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 400),
    height=st.integers(1, 400),
    max_pixels=st.integers(1, 200_000),
)
def test_fit_pixel_budget_keeps_aspect_under_budget(width: int, height: int, max_pixels: int):
    fitted = fit_pixel_budget(Image.new("L", (width, height)), max_pixels)
    if width * height <= max_pixels:
        assert fitted.size == (width, height)
        return
    assert fitted.width >= 1 and fitted.height >= 1
    # A side clamped to 1 px may push a very thin image over; otherwise the budget holds.
    if fitted.width > 1 and fitted.height > 1:
        assert fitted.width * fitted.height <= max_pixels
    assert fitted.width <= width and fitted.height <= height


def test_multi_turn_history_is_sent_whole(server: FakeOpenAIServer) -> None:
    first = Image.new("RGB", (120, 80), "red")
    second = Image.new("RGB", (64, 64), "blue")
    messages = [
        PromptMessage("system", ["You read documents."]),
        PromptMessage("user", ["What colour is this?", first]),
        PromptMessage("assistant", ["Red."]),
        PromptMessage("user", [second, "And this one?"]),
    ]
    backend = make_backend(server.base_url)

    chunks, error = drain(backend.stream(messages, PARAMS))

    assert error is None
    [request] = server.chat_requests
    assert request.body is not None
    sent = request.body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == "You read documents."
    assert sent[2]["content"] == "Red."
    assert [p["type"] for p in sent[1]["content"]] == ["text", "image_url"]
    assert [p["type"] for p in sent[3]["content"]] == ["image_url", "text"]
    assert sent[1]["content"][0]["text"] == "What colour is this?"
    assert [(i.width, i.height) for i in request.images] == [(120, 80), (64, 64)]
    assert "".join(chunks) == "echo: And this one? | images=2 sizes=120x80,64x64"


def test_text_only_user_turn_is_a_plain_string(server: FakeOpenAIServer) -> None:
    drain(make_backend(server.base_url).stream(ask("just text"), PARAMS))
    [request] = server.chat_requests
    assert request.body is not None
    assert request.body["messages"] == [{"role": "user", "content": "just text"}]


def test_image_outside_a_user_turn_is_refused() -> None:
    backend = make_backend("http://127.0.0.1:9/v1")
    messages = [PromptMessage("assistant", ["here", Image.new("RGB", (4, 4))])]
    with pytest.raises(BadInput, match="assistant message carries images"):
        backend.stream(messages, PARAMS)


# -- retries and failures ---------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429, 502])
def test_busy_server_is_retried_then_answers(server: FakeOpenAIServer, status: int) -> None:
    server.script(Fail(status), Fail(status), Reply(chunks=("ok",)))
    stream = make_backend(server.base_url, max_retries=2).stream(ask("hi"), PARAMS)

    chunks, error = drain(stream)

    assert error is None and chunks == ["ok"]
    assert len(server.chat_requests) == 3
    assert stream.usage.error is None


def test_gives_up_after_max_retries_with_a_clear_error(server: FakeOpenAIServer) -> None:
    server.script(*[Fail(503, "model is loading")] * 3, Reply(chunks=("too late",)))
    stream = make_backend(server.base_url, max_retries=2).stream(ask("hi"), PARAMS)

    chunks, error = drain(stream)

    assert chunks == []
    assert isinstance(error, GenerationError)
    assert "busy: HTTP 503 after 3 attempt(s): model is loading" in error.message
    assert "endpoints.fake.max_retries" in (error.hint or "")
    assert len(server.chat_requests) == 3
    assert stream.usage.error == str(error)


def test_backoff_doubles_and_honours_retry_after(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url, max_retries=3, backoff_s=0.1)
    server.script(Fail(503), Fail(503), Reply(chunks=("a",)))
    started = time.monotonic()
    drain(backend.stream(ask("hi"), PARAMS))
    assert time.monotonic() - started >= 0.1 + 0.2

    server.script(Fail(429, retry_after="0.4"), Reply(chunks=("b",)))
    started = time.monotonic()
    chunks, _ = drain(backend.stream(ask("hi"), PARAMS))
    assert chunks == ["b"] and time.monotonic() - started >= 0.4


def test_internal_server_error_is_not_retried(server: FakeOpenAIServer) -> None:
    server.script(Fail(500, "CUDA error: device-side assert"))
    chunks, error = drain(make_backend(server.base_url).stream(ask("hi"), PARAMS))

    assert chunks == []
    assert isinstance(error, GenerationError)
    assert "HTTP 500" in error.message and "CUDA error: device-side assert" in error.message
    assert len(server.chat_requests) == 1


def test_unreachable_server_is_named_quickly() -> None:
    url = closed_port_url()
    stream = make_backend(url, timeout_s=1.0, max_retries=1).stream(ask("hi"), PARAMS)

    started = time.monotonic()
    chunks, error = drain(stream)

    assert time.monotonic() - started < 3
    assert chunks == []
    assert isinstance(error, ModelUnavailable)
    assert error.message.startswith(f"cannot reach {url}: ")
    assert "vllm serve" in (error.hint or "") and "endpoints.fake.base_url" in (error.hint or "")
    assert stream.usage.error == str(error)


def test_hanging_server_times_out_without_retrying(server: FakeOpenAIServer) -> None:
    server.script(Hang(10))
    stream = make_backend(server.base_url, timeout_s=0.5, max_retries=2).stream(ask("hi"), PARAMS)

    started = time.monotonic()
    chunks, error = drain(stream)

    assert time.monotonic() - started < 2.0
    assert isinstance(error, GenerationError)
    assert "did not answer within 0.5 s" in error.message
    assert len(server.chat_requests) == 1


def test_dropped_stream_keeps_the_partial_answer(server: FakeOpenAIServer) -> None:
    server.script(Drop(after_chunks=2))
    stream = make_backend(server.base_url).stream(ask("hi"), PARAMS)

    chunks, error = drain(stream)

    assert chunks == ["echo: ", "hi"]
    assert isinstance(error, GenerationError)
    assert error.message == "the server closed the stream mid-answer"
    assert stream.usage.error is not None and "mid-answer" in stream.usage.error
    assert len(server.chat_requests) == 1  # never retried once text was streamed


def test_unknown_model_lists_what_the_server_offers(server: FakeOpenAIServer) -> None:
    stream = make_backend(server.base_url, served_name="missing-vlm").stream(ask("hi"), PARAMS)

    _, error = drain(stream)

    assert isinstance(error, ModelUnavailable)
    assert "does not serve 'missing-vlm'" in error.message
    assert "it offers: fake-vlm, other-vlm" in error.message
    assert "served_name of models.fake_vlm" in (error.hint or "")


def test_context_length_refusal_counts_image_and_text_tokens(server: FakeOpenAIServer) -> None:
    refusal = (
        "This model's maximum context length is 4096 tokens. However, you requested "
        "9000 tokens (8936 in the messages, 64 in the completion)."
    )
    server.script(Fail(400, refusal))
    page = Image.new("RGB", (560, 560), "white")  # 313,600 px = 400 tokens of 28x28
    stream = make_backend(server.base_url).stream(ask("x" * 400, page), PARAMS)

    _, error = drain(stream)

    assert isinstance(error, GenerationError)
    assert "about 400 image tokens (1 image(s), 313600 px" in error.message
    assert "and 100 text tokens" in error.message
    assert "up to 64 new tokens" in error.message
    assert refusal in error.message
    assert len(server.chat_requests) == 1


def test_refused_api_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(api_key="s3cret") as server:
        monkeypatch.delenv(KEY_ENV, raising=False)
        _, error = drain(
            make_backend(server.base_url, api_key_env=KEY_ENV).stream(ask("hi"), PARAMS)
        )
        assert isinstance(error, ModelUnavailable)
        assert "HTTP 401" in error.message
        assert f"set the environment variable {KEY_ENV}" in (error.hint or "")
        assert "is not set" in (error.hint or "")

        monkeypatch.setenv(KEY_ENV, "s3cret")
        chunks, error = drain(
            make_backend(server.base_url, api_key_env=KEY_ENV).stream(ask("hi"), PARAMS)
        )
        assert error is None and chunks
        assert server.chat_requests[-1].headers["authorization"] == "Bearer s3cret"


# -- stop, usage fallbacks, concurrency -------------------------------------------


def test_stop_event_ends_the_answer_early_and_closes_the_stream(server: FakeOpenAIServer):
    server.script(Reply(chunks=tuple(f"t{i} " for i in range(40)), chunk_delay_s=0.05))
    stop = threading.Event()
    stream = make_backend(server.base_url).stream(ask("long answer"), PARAMS, stop)

    started = time.monotonic()
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 3:
            stop.set()

    assert time.monotonic() - started < 1.0
    assert chunks == ["t0 ", "t1 ", "t2 "]
    assert stream.usage.stopped and stream.usage.error is None
    deadline = time.monotonic() + 3
    while server.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.disconnects == 1  # the connection was closed, the server stopped writing


def test_closing_mid_answer_gives_real_seconds_and_the_tokens_received(
    server: FakeOpenAIServer,
) -> None:
    """What the Chat page's Stop does: the reader closes the stream between chunks."""
    server.script(Reply(chunks=tuple(f"t{i} " for i in range(40)), chunk_delay_s=0.05))
    stream = make_backend(server.base_url).stream(ask("long answer"), PARAMS, threading.Event())
    reading = iter(stream)
    received = [next(reading) for _ in range(4)]

    stream.close()

    assert received == ["t0 ", "t1 ", "t2 ", "t3 "]
    usage = stream.usage
    assert usage.stopped and usage.error is None
    assert usage.seconds >= 0.15  # four chunks 50 ms apart, not 0.0
    assert usage.completion_tokens == 4  # the server's own count never came: the chunks
    assert usage.tokens_per_second is not None
    deadline = time.monotonic() + 3
    while server.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.disconnects == 1


def test_stop_during_a_retry_wait_ends_quietly(server: FakeOpenAIServer) -> None:
    server.script(Fail(503))
    stop = threading.Event()
    stream = make_backend(server.base_url, backoff_s=5.0).stream(ask("hi"), PARAMS, stop)
    threading.Timer(0.1, stop.set).start()

    started = time.monotonic()
    chunks, error = drain(stream)

    assert time.monotonic() - started < 2.0
    assert chunks == [] and error is None
    assert stream.usage.stopped
    assert len(server.chat_requests) == 1


def test_server_rejecting_stream_options_still_answers() -> None:
    with FakeOpenAIServer(reject_stream_options=True) as server:
        backend = make_backend(server.base_url)
        first = backend.stream(ask("hi"), PARAMS)
        chunks, error = drain(first)
        assert error is None and chunks
        assert first.usage.prompt_tokens is None and first.usage.completion_tokens is None
        bodies = [r.body or {} for r in server.chat_requests]
        assert ["stream_options" in b for b in bodies] == [True, False]

        drain(backend.stream(ask("again"), PARAMS))
        assert len(server.chat_requests) == 3  # remembered: no second rejected request


def test_missing_usage_leaves_token_counts_unknown(server: FakeOpenAIServer) -> None:
    server.script(Reply(chunks=("a", "b"), send_usage=False))
    stream = make_backend(server.base_url).stream(ask("hi"), PARAMS)
    chunks, error = drain(stream)
    assert error is None and chunks == ["a", "b"]
    assert stream.usage.prompt_tokens is None and stream.usage.completion_tokens is None


def test_concurrent_streams_from_one_backend(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url)
    start = threading.Barrier(6)

    def answer(index: int) -> str:
        stream = backend.stream(ask(f"question {index}"), PARAMS)
        start.wait(timeout=5)
        return "".join(stream)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(answer, range(6)))

    assert answers == [f"echo: question {i} | images=0 sizes=-" for i in range(6)]
    assert len(server.chat_requests) == 6


# -- server discovery ---------------------------------------------------------------


def test_list_server_models(server: FakeOpenAIServer) -> None:
    endpoint = Endpoint(base_url=server.base_url, timeout_s=2)
    assert list_server_models(endpoint) == ["fake-vlm", "other-vlm"]
    assert server.requests[-1].path == "/v1/models"


def test_list_server_models_of_an_unreachable_server_raises() -> None:
    url = closed_port_url()
    with pytest.raises(ModelUnavailable, match=f"cannot reach {url}"):
        list_server_models(Endpoint(base_url=url, timeout_s=1))


def test_probe_reachable_endpoint(server: FakeOpenAIServer) -> None:
    status = probe_endpoint(Endpoint(base_url=server.base_url))
    assert status.reachable and status.error is None
    assert status.models == ["fake-vlm", "other-vlm"]
    assert status.latency_ms is not None and 0 < status.latency_ms < 3000


def test_probe_unreachable_endpoint() -> None:
    url = closed_port_url()
    started = time.monotonic()
    status = probe_endpoint(Endpoint(base_url=url), timeout_s=1.0)
    assert time.monotonic() - started < 2
    assert not status.reachable and status.latency_ms is None and status.models == []
    assert status.error is not None and f"cannot reach {url}" in status.error


def test_probe_endpoint_that_refuses_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FakeOpenAIServer(api_key="s3cret") as server:
        status = probe_endpoint(Endpoint(base_url=server.base_url, api_key_env=KEY_ENV))
    assert status.reachable and status.models == []
    assert status.error is not None and "HTTP 401" in status.error and KEY_ENV in status.error
