"""The chat interface every VLM backend implements, and the types it speaks.

A backend receives ``PromptMessage``s — the canonical conversation with images
already loaded as PIL images — and returns a ``ChatStream``: iterate it for
text chunks as they are generated; once it is exhausted (or stopped, or it
failed) ``usage`` says what was sent and produced. Each runtime converts the
canonical messages once, in its own module (transformers: the processor's chat
template; OpenAI-compatible: ``image_url`` data URLs).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


@dataclass
class PromptMessage:
    """One turn as a model sees it: text and images, in order."""

    role: Role
    content: list[str | Image.Image] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(part for part in self.content if isinstance(part, str))

    @property
    def images(self) -> list[Image.Image]:
        return [part for part in self.content if isinstance(part, Image.Image)]


class GenerationParams(BaseModel):
    """Sampling settings; ``temperature == 0`` means greedy decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(512, ge=1, le=32_768)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Usage(BaseModel):
    """What one answer cost; shown under the answer and stored with it."""

    model_config = ConfigDict(extra="forbid")

    model_id: str
    backend: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    images: int = 0
    image_pixels: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    stopped: bool = False
    error: str | None = None

    @property
    def tokens_per_second(self) -> float | None:
        if not self.completion_tokens or self.seconds <= 0:
            return None
        return self.completion_tokens / self.seconds


@runtime_checkable
class ChatStream(Protocol):
    """Text chunks as they are generated; ``usage`` is final once iteration ends.

    A failure mid-answer raises ``GenerationError`` from the iterator after the
    chunks produced so far; ``usage.error`` then says what went wrong.
    """

    usage: Usage

    def __iter__(self) -> Iterator[str]: ...


@runtime_checkable
class ChatBackend(Protocol):
    """A loaded model (in-process) or a server endpoint that can answer a chat."""

    model_id: str
    backend: str

    def stream(
        self,
        messages: list[PromptMessage],
        params: GenerationParams,
        stop: threading.Event | None = None,
    ) -> ChatStream: ...


def count_images(messages: list[PromptMessage]) -> tuple[int, int]:
    """How many images the messages carry and their total pixels."""
    images = [image for message in messages for image in message.images]
    return len(images), sum(image.width * image.height for image in images)
