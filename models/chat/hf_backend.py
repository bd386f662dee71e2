"""The transformers backend: any image-text-to-text model, in-process, streamed.

One class serves every architecture transformers can load with ``AutoProcessor``
plus the Auto class named by the entry (loading: ``models.chat.hf_loading``).
The prompt format is the processor's own chat template; ``ocr_style: got_ocr2``
instead lets GOT-OCR2's processor write its OCR prompt around the image.

Each loaded backend holds one lock around prompt encoding and ``generate``, so
concurrent sessions queue instead of interleaving (``models.chat.hf_stream``).
The whole conversation, images of earlier turns included, is re-encoded on
every turn: the model sees what the user saw.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PIL import Image

from models.chat.hf_stream import HFChatStream
from models.chat.types import GenerationParams, PromptMessage
from models.config import ModelEntry
from utils.errors import BadInput, ModelUnavailable

BACKEND_NAME = "transformers"
GENERATION_FIELDS = ("max_new_tokens", "temperature", "top_p")


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
