"""The transformers backend: any image-text-to-text model, in-process, streamed.

One class serves every architecture transformers can load with ``AutoProcessor``
plus the Auto class named by the entry (``AutoModelForImageTextToText`` by
default). Model quirks are config fields, not code:

- prompt format: the processor's own chat template; ``ocr_style: got_ocr2``
  instead lets GOT-OCR2's processor write its OCR prompt around the image;
- pixel budget: ``min_pixels`` / ``max_pixels`` go to image processors that
  declare them (the Qwen-VL family) and are ignored by the others;
- precision, placement, quantization, attention kernel: ``dtype``,
  ``device_map``, ``quantization``, ``attn_implementation``.

Loaded backends live in the process-wide ``ModelManager`` (shared by every
browser session, evicted LRU under the memory budget); each holds one lock
around prompt encoding and ``generate``, so concurrent sessions queue instead of
interleaving. The whole conversation, images of earlier turns included, is
re-encoded on every turn: the model sees what the user saw.

dtype "auto" keeps the checkpoint's stored precision, except on the CPU where a
float16 checkpoint is upcast to float32: many CPU kernels are missing or slow
in float16, and a half-precision CPU run can overflow to NaN/inf. bfloat16
checkpoints stay bfloat16 on the CPU (supported there, half the memory).

transformers and torch are imported inside functions only (≈6 s at import).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from models.chat.types import GenerationParams, PromptMessage, Usage, count_images
from models.config import ModelEntry, RuntimeSettings
from models.runtime.gpu import is_out_of_memory
from utils.errors import AppError, BadInput, GenerationError, ModelUnavailable

logger = logging.getLogger(__name__)

BACKEND_NAME = "transformers"
# Entry fields that change what gets loaded; a change means another model in memory.
# The others (generation defaults, ocr_style, prompts, names) apply without reloading.
LOAD_FIELDS = frozenset(
    {
        "source",
        "dtype",
        "device_map",
        "quantization",
        "attn_implementation",
        "auto_class",
        "trust_remote_code",
        "min_pixels",
        "max_pixels",
    }
)
GENERATION_FIELDS = ("max_new_tokens", "temperature", "top_p")
_OOM_HINT = (
    "the model was unloaded to free the memory and reloads with the next message; "
    "send fewer or smaller images (lower max_pixels), lower max_new_tokens, or set "
    "`quantization: 4bit` in the model's profile entry"
)


# --- loading -----------------------------------------------------------------------------


def backend_key(model_id: str, entry: ModelEntry) -> str:
    """The manager key: the catalog id plus a hash of the fields that shape the load."""
    fields = entry.model_dump(mode="json", include=set(LOAD_FIELDS))
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return f"{model_id}@{digest}"


def load_backend(model_id: str, entry: ModelEntry, runtime: RuntimeSettings) -> HFVisionBackend:
    """The shared backend for ``entry``, loading it (no network) if nobody has yet.

    Raises ``ModelUnavailable`` when the model is not on disk (the hint names
    ``python cli.py models download <source>``), cannot be loaded, or cannot fit
    the memory budget; ``GenerationError`` when loading runs out of memory.
    """
    from models.runtime.hub import resolve_model_path
    from models.runtime.manager import estimate_model_bytes, get_manager

    if entry.backend != BACKEND_NAME or not entry.source:
        raise ModelUnavailable(
            f"'{model_id}' is not a transformers model (backend: {entry.backend})",
            hint="use the backend its profile entry names",
        )
    manager = get_manager(runtime)
    key = backend_key(model_id, entry)
    backend = manager.get_loaded(key)  # every chat turn lands here: skip the disk look-ups
    if backend is not None:
        backend.entry = entry
        return backend
    path = resolve_model_path(entry.source)
    plan = plan_load(entry, path)
    backend = manager.get_or_load(
        key,
        lambda: load_hf_backend(model_id, entry, path, plan, lambda: manager.handle_oom(key)),
        estimate_bytes=estimate_model_bytes(path, plan.dtype, entry.quantization),
        device=plan.device_map,
        label=entry.display_name,
    )
    # Same load fields, so the same weights: newer generation defaults apply at once.
    backend.entry = entry
    return backend


@dataclass(frozen=True)
class LoadPlan:
    """How a model is loaded on this machine, resolved from its entry."""

    device_map: str
    dtype: str  # "auto" or a torch dtype name
    on_gpu: bool


def plan_load(entry: ModelEntry, path: Path) -> LoadPlan:
    """Placement and precision for ``entry`` here: CPU-only machines get ``device_map="cpu"``
    (so bitsandbytes runs its CPU kernels) and float16 checkpoints upcast to float32."""
    import torch

    on_gpu = torch.cuda.is_available() and entry.device_map != "cpu"
    device_map = entry.device_map if on_gpu else "cpu"
    dtype = entry.dtype
    if dtype == "auto" and not on_gpu and stored_dtype(path) == "float16":
        dtype = "float32"
    return LoadPlan(device_map=device_map, dtype=dtype, on_gpu=on_gpu)


def stored_dtype(path: Path) -> str | None:
    """The precision config.json says the weights were saved in, if it says."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for section in (config, config.get("text_config") or {}):
        for key in ("dtype", "torch_dtype"):
            value = section.get(key)
            if isinstance(value, str):
                return value.removeprefix("torch.")
    return None


def load_hf_backend(
    model_id: str,
    entry: ModelEntry,
    path: Path,
    plan: LoadPlan,
    on_out_of_memory: Callable[[], None] | None = None,
) -> HFVisionBackend:
    """Processor + model from ``path`` (local files only), wrapped as a backend."""
    processor = _load_processor(path, entry)
    apply_pixel_budget(processor, entry.min_pixels, entry.max_pixels)
    model = _load_model(path, entry, plan)
    return HFVisionBackend(model_id, entry, model, processor, on_out_of_memory)


def _load_processor(path: Path, entry: ModelEntry) -> Any:
    from transformers import AutoProcessor

    with _load_errors(entry, "processor"):
        return AutoProcessor.from_pretrained(
            path, local_files_only=True, trust_remote_code=entry.trust_remote_code
        )


def _load_model(path: Path, entry: ModelEntry, plan: LoadPlan) -> Any:
    import transformers

    auto_class = getattr(transformers, entry.auto_class)
    with _load_errors(entry, "model"):
        model = auto_class.from_pretrained(path, **model_load_kwargs(entry, plan))
    return model.eval()


def model_load_kwargs(entry: ModelEntry, plan: LoadPlan) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for ``entry`` under ``plan``."""
    import torch

    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "trust_remote_code": entry.trust_remote_code,
        "device_map": plan.device_map,
        "dtype": plan.dtype if plan.dtype == "auto" else getattr(torch, plan.dtype),
    }
    if entry.attn_implementation:
        kwargs["attn_implementation"] = entry.attn_implementation
    if entry.quantization != "none":
        kwargs["quantization_config"] = quantization_config(entry.quantization, plan)
    return kwargs


def quantization_config(quantization: str, plan: LoadPlan) -> Any:
    """bitsandbytes settings: 8-bit LLM.int8, or 4-bit NF4 with double quantization."""
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=_compute_dtype(plan),
    )


def _compute_dtype(plan: LoadPlan) -> Any:
    """The dtype 4-bit weights are dequantized to for matmuls."""
    import torch

    if plan.dtype != "auto":
        return getattr(torch, plan.dtype)
    if not plan.on_gpu:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def _load_errors(entry: ModelEntry, what: str) -> Iterator[None]:
    """Loader failures as ``ModelUnavailable`` saying what to do. Out-of-memory passes
    through: the manager turns it into ``GenerationError`` and frees memory."""
    try:
        yield
    except ImportError as exc:
        raise ModelUnavailable(
            f"cannot load the {what} of {entry.source}: {exc}",
            hint="install the package it names (e.g. pip install bitsandbytes / flash-attn)",
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(
            f"cannot load the {what} of {entry.source}: {exc}",
            hint=f"check that it is a complete transformers checkpoint "
            f"(`python cli.py models download {entry.source}`); a newer transformers, "
            "another `auto_class`, or `trust_remote_code: true` may be needed",
        ) from exc


def apply_pixel_budget(processor: Any, min_pixels: int | None, max_pixels: int | None) -> bool:
    """Set the image processor's pixel range if it has one (Qwen-VL style); else ignore.

    Such processors resize every image so its area lies in ``[min, max]`` pixels and
    keep the range in ``size`` as shortest_edge / longest_edge. Returns whether set.
    """
    if min_pixels is None and max_pixels is None:
        return False
    image_processor = getattr(processor, "image_processor", None)
    declared = getattr(getattr(image_processor, "valid_kwargs", None), "__annotations__", {})
    if not {"min_pixels", "max_pixels"} <= set(declared):
        logger.info(
            "%s has no pixel budget: min_pixels/max_pixels ignored",
            type(image_processor).__name__,
        )
        return False
    size = image_processor.size
    image_processor.size = replace(
        size,
        shortest_edge=min_pixels or size.shortest_edge,
        longest_edge=max_pixels or size.longest_edge,
    )
    return True


# --- the backend -------------------------------------------------------------------------


class HFVisionBackend:
    """A loaded image-text-to-text model that streams chat answers (``ChatBackend``)."""

    backend = BACKEND_NAME

    def __init__(
        self,
        model_id: str,
        entry: ModelEntry,
        model: Any,
        processor: Any,
        on_out_of_memory: Callable[[], None] | None = None,
    ) -> None:
        self.model_id = model_id
        self.entry = entry
        self._model = model
        self._processor = processor
        self._on_out_of_memory = on_out_of_memory
        # One answer at a time per loaded model: generate() is not re-entrant, and
        # the fast tokenizer must not be used from two threads at once.
        self.generate_lock = threading.Lock()

    @property
    def model(self) -> Any:
        return self._require("model")

    @property
    def processor(self) -> Any:
        return self._require("processor")

    def close(self) -> None:
        """Drop the weights (the manager calls this on unload); an answer in flight ends
        normally, holding its own reference until then."""
        self._model = None
        self._processor = None

    def stream(
        self,
        messages: list[PromptMessage],
        params: GenerationParams,
        stop: threading.Event | None = None,
    ) -> HFChatStream:
        """Start an answer: iterate the result for text chunks, then read ``.usage``."""
        entry = self.entry
        self._require("model")  # unloaded (evicted, out of memory) -> ModelUnavailable now
        images = _input_images(messages, entry)
        return HFChatStream(self, messages, entry, generation_kwargs(entry, params), stop, images)

    def prepare_inputs(self, messages: list[PromptMessage], entry: ModelEntry | None = None) -> Any:
        """The tokenized prompt with pixel values, on the model's device (a ``BatchFeature``)."""
        entry = entry or self.entry
        processor, model = self.processor, self.model
        if entry.ocr_style == "got_ocr2":
            inputs = got_ocr2_inputs(processor, messages)
        else:
            inputs = processor.apply_chat_template(
                chat_conversation(messages),
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
        # Only floating tensors (pixel values) are cast; token ids keep their dtype.
        return inputs.to(model.device, dtype=model.dtype)

    def handle_out_of_memory(self) -> None:
        if self._on_out_of_memory is not None:
            self._on_out_of_memory()

    def _require(self, part: str) -> Any:
        value = self._model if part == "model" else self._processor
        if value is None:
            raise ModelUnavailable(
                f"{self.model_id} was unloaded to make room for another model",
                hint="send the message again: it is reloaded on demand",
            )
        return value


def generation_kwargs(entry: ModelEntry, params: GenerationParams) -> dict[str, Any]:
    """``generate`` settings: fields set on ``params`` override the entry's defaults.

    Temperature 0 means greedy decoding. Sampling uses temperature and top_p only:
    a ``top_k`` in the checkpoint's generation_config is switched off (``top_k=0``),
    because some ship ``top_k: 1`` (Qwen2-VL), which would silently make every
    sampled answer greedy.
    """
    chosen = {
        name: getattr(params if name in params.model_fields_set else entry, name)
        for name in GENERATION_FIELDS
    }
    if chosen["temperature"] == 0:
        return {"max_new_tokens": chosen["max_new_tokens"], "do_sample": False}
    return {**chosen, "do_sample": True, "top_k": 0}


def chat_conversation(messages: list[PromptMessage]) -> list[dict[str, Any]]:
    """Canonical messages in the processor's chat format (images as PIL, in order)."""
    return [
        {"role": message.role, "content": [_content_item(part) for part in message.content]}
        for message in messages
    ]


def _content_item(part: str | Image.Image) -> dict[str, Any]:
    if isinstance(part, Image.Image):
        return {"type": "image", "image": _rgb(part)}
    return {"type": "text", "text": part}


def got_ocr2_inputs(processor: Any, messages: list[PromptMessage]) -> Any:
    """GOT-OCR2 writes its own prompt: the last user message's image(s) are the pages;
    any text beside them asks for formatted (Markdown/LaTeX) output."""
    last = _last_user_message(messages)
    pages = [_rgb(image) for image in last.images]
    formatted = bool(last.text.strip())
    if len(pages) == 1:
        return processor(pages[0], return_tensors="pt", format=formatted)
    return processor(pages, return_tensors="pt", format=formatted, multi_page=True)


def _last_user_message(messages: list[PromptMessage]) -> PromptMessage:
    for message in reversed(messages):
        if message.role == "user":
            return message
    raise BadInput("the conversation has no user message", hint="send a message first")


def _input_images(messages: list[PromptMessage], entry: ModelEntry) -> list[Image.Image]:
    """The images the model will see; checks the conversation can be encoded at all."""
    last = _last_user_message(messages)
    if entry.ocr_style != "got_ocr2":
        return [image for message in messages for image in message.images]
    if not last.images:
        raise BadInput(
            f"{entry.display_name} only reads images (GOT-OCR2 mode): the last message has none",
            hint="attach a page image to the message",
        )
    return last.images


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


# --- streaming ---------------------------------------------------------------------------


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
            model_id=backend.model_id, backend=BACKEND_NAME, images=count, image_pixels=pixels
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
