"""One streamed answer of the transformers backend: worker thread, streamer, stop.

``generate`` runs on a worker thread under the backend's lock; text reaches the
consumer through a ``TextIteratorStreamer`` that counts tokens, decodes
incrementally and coalesces pieces into chunks; a stop event (or the consumer
leaving early) ends generation through a ``StoppingCriteria``.

transformers and torch are imported inside functions only (≈6 s at import).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from PIL import Image

from models.chat.types import PromptMessage, Usage, count_images
from models.config import ModelEntry
from models.runtime.gpu import is_out_of_memory
from utils.errors import AppError, GenerationError

if TYPE_CHECKING:
    from models.chat.hf_backend import HFVisionBackend

logger = logging.getLogger(__name__)

_OOM_HINT = (
    "the model was unloaded to free the memory and reloads with the next message; "
    "send fewer or smaller images (lower max_pixels), lower max_new_tokens, or set "
    "`quantization: 4bit` in the model's profile entry"
)


class HFChatStream:
    """One answer: ``generate`` runs on a worker thread, chunks arrive through a streamer.

    Iterate once. ``usage`` is final when iteration ends; a worker failure is
    raised as ``GenerationError`` after the chunks produced so far. Leaving the
    loop early (``break``, a closed generator) stops the generation too.
    """

    def __init__(
        self,
        backend: HFVisionBackend,
        messages: list[PromptMessage],
        entry: ModelEntry,
        settings: dict[str, Any],
        stop: threading.Event | None,
        images: list[Image.Image],
    ) -> None:
        self._backend = backend
        self._tokenizer = backend.processor.tokenizer
        self._messages = messages
        self._entry = entry
        self._settings = settings
        self._stop = stop or threading.Event()
        self._abandoned = threading.Event()  # the consumer left before the end
        self._error: BaseException | None = None
        self._started = False
        count, pixels = count_images([PromptMessage("user", list(images))])
        self.usage = Usage(
            model_id=backend.model_id, backend=backend.backend, images=count, image_pixels=pixels
        )

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("a chat stream can be iterated only once")
        self._started = True
        return self._chunks()

    def _chunks(self) -> Iterator[str]:
        started = time.perf_counter()
        streamer = counting_streamer_class()(self._tokenizer)
        criteria = event_stop_class()(self._stop, self._abandoned)
        worker = threading.Thread(
            target=self._generate,
            args=(streamer, criteria),
            name=f"generate-{self._backend.model_id}",
            daemon=True,
        )
        worker.start()
        finished = False
        try:
            for chunk in streamer:
                if not chunk:
                    continue
                if self.usage.first_token_seconds is None:
                    self.usage.first_token_seconds = time.perf_counter() - started
                yield chunk
            finished = True
        finally:
            if not finished:
                self._abandoned.set()
            self._finish_usage(streamer, criteria, started)
        worker.join()
        if self._error is not None:
            raise self._generation_error(self._error)

    def _generate(self, streamer: Any, criteria: Any) -> None:
        """Worker thread: runs the answer; a failure is kept for the consumer to raise."""
        out_of_memory = False
        try:
            self._encode_and_generate(streamer, criteria)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            # Formatted here: a log record holding the traceback would hold its frames.
            logger.error(
                "%s: generation failed\n%s",
                self._backend.model_id,
                "".join(traceback.format_exception(exc)).rstrip(),
            )
            out_of_memory = is_out_of_memory(exc)
            # The traceback's frames hold the model, the inputs and the activations:
            # keeping them would keep that memory in use after the unload below.
            self._error = _without_frames(exc)
        finally:
            streamer.end()
        if out_of_memory:
            self._backend.handle_out_of_memory()

    def _encode_and_generate(self, streamer: Any, criteria: Any) -> None:
        """Encode and generate under the model's lock (sessions queue here)."""
        from transformers import StoppingCriteriaList

        with self._backend.generate_lock:
            if criteria.requested():
                criteria.fired = True
                return  # stopped while waiting for another session's answer
            model = self._backend.model
            inputs = self._backend.prepare_inputs(self._messages, self._entry)
            self.usage.prompt_tokens = int(inputs["input_ids"].shape[-1])
            model.generate(
                **inputs,
                **self._settings,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([criteria]),
            )

    def _finish_usage(self, streamer: Any, criteria: Any, started: float) -> None:
        self.usage.seconds = time.perf_counter() - started
        self.usage.completion_tokens = streamer.generated_tokens
        self.usage.stopped = self._stop.is_set() and criteria.fired

    def _generation_error(self, exc: BaseException) -> GenerationError:
        name = self._backend.model_id
        if is_out_of_memory(exc):
            error = GenerationError(f"{name} ran out of memory while answering", hint=_OOM_HINT)
        elif isinstance(exc, GenerationError):
            error = exc
        elif isinstance(exc, AppError):
            error = GenerationError(exc.message, hint=exc.hint)
        else:
            error = GenerationError(
                f"{name} failed while answering: {type(exc).__name__}: {exc}",
                hint="try again; if it keeps failing, check the log and the model's profile entry",
            )
        self.usage.error = error.message
        if error is not exc:
            error.__cause__ = exc
        return error


def _without_frames(exc: BaseException) -> BaseException:
    """``exc`` and the exceptions chained to it, with their tracebacks dropped."""
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return exc


# A chat window cannot show more than a few dozen updates a second; handing the
# consumer one chunk per token costs a thread wake-up (and a GIL hand-over) each.
CHUNK_INTERVAL_S = 0.02


@functools.cache
def counting_streamer_class() -> type:
    """The answer's streamer: a ``TextIteratorStreamer`` that skips the prompt and special
    tokens, and on top

    - counts the generated token ids exactly (``generated_tokens``);
    - decodes incrementally with the Rust tokenizer's ``DecodeStream`` where there is
      one (constant work per token; the base class re-decodes the line so far);
    - queues at most one chunk per ``CHUNK_INTERVAL_S`` (the first at once), so a fast
      model does not wake the consumer for every token;
    - tolerates a second ``end()`` (the worker always ends it, even after a failure).
    """
    from transformers import TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):
        def __init__(self, tokenizer: Any, chunk_interval: float = CHUNK_INTERVAL_S) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self.generated_tokens = 0
            self._chunks = ChunkCoalescer(self.text_queue.put, chunk_interval)
            self._ended = False
            self._rust_tokenizer = getattr(tokenizer, "backend_tokenizer", None)
            self._decoder = _incremental_decoder() if self._rust_tokenizer else None

        def put(self, value: Any) -> None:
            if self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False  # the prompt comes first: skip it
                return
            self.generated_tokens += int(value.numel())
            if self._decoder is None:
                super().put(value)  # decodes, then calls on_finalized_text
                return
            for token_id in value.reshape(-1).tolist():
                piece = self._decoder.step(self._rust_tokenizer, token_id)
                if piece:
                    self.on_finalized_text(piece)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            self._chunks.add(text)
            if stream_end:
                self._chunks.flush()
                self.text_queue.put(self.stop_signal)

        def end(self) -> None:
            if self._ended:
                return
            self._ended = True
            if self._decoder is None:
                super().end()  # flushes the base class's decode cache
            else:
                self.on_finalized_text("", stream_end=True)

    return CountingStreamer


class ChunkCoalescer:
    """Joins text pieces into chunks emitted at most every ``interval`` seconds; the first
    piece goes out at once, so the time to first chunk is not delayed."""

    def __init__(self, emit: Callable[[str], Any], interval: float) -> None:
        self._emit = emit
        self._interval = interval
        self._pending: list[str] = []
        self._last_emit = float("-inf")

    def add(self, text: str) -> None:
        if text:
            self._pending.append(text)
        if self._pending and time.perf_counter() - self._last_emit >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._emit("".join(self._pending))
            self._pending.clear()
            self._last_emit = time.perf_counter()


def _incremental_decoder() -> Any:
    """tokenizers' ``DecodeStream`` (skipping special tokens), or None if too old."""
    try:
        from tokenizers.decoders import DecodeStream
    except ImportError:
        return None
    return DecodeStream(skip_special_tokens=True)


@functools.cache
def event_stop_class() -> type:
    """A ``StoppingCriteria`` that ends generation once any of its events is set."""
    import torch
    from transformers import StoppingCriteria

    class EventStop(StoppingCriteria):
        def __init__(self, *events: threading.Event) -> None:
            self.events = events
            self.fired = False
            self._not_done: Any = None  # reused every step: generate only reads it

        def requested(self) -> bool:
            return any(event.is_set() for event in self.events)

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            batch, device = input_ids.shape[0], input_ids.device
            if self.requested():
                self.fired = True
                return torch.ones(batch, dtype=torch.bool, device=device)
            if self._not_done is None or self._not_done.shape[0] != batch:
                self._not_done = torch.zeros(batch, dtype=torch.bool, device=device)
            return self._not_done

    return EventStop
