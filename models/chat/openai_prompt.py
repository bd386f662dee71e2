"""The conversation in chat-completions form: messages, and images as data URLs.

The canonical ``PromptMessage``s are converted once per request:

- system and assistant turns, and user turns without images, are plain strings
  (the widest-supported form); a user turn with images is a list of
  ``{"type": "text"}`` and ``{"type": "image_url"}`` parts in the original order;
- every image is re-encoded as a base64 data URL, first scaled down (aspect kept)
  so that width * height <= the entry's ``max_pixels``; JPEG at quality 90 for
  images without an alpha channel (photos and scans: several times smaller than
  PNG), PNG for images with one (JPEG cannot carry it). No ``max_pixels``: sent
  at the size it has.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from models.chat.types import PromptMessage
from utils.errors import BadInput

JPEG_QUALITY = 90
# Estimates, used only to explain a context-length refusal: Qwen2-VL-style models
# spend one visual token per 28x28 px; English text averages about 4 chars a token.
PIXELS_PER_IMAGE_TOKEN = 28 * 28
CHARS_PER_TEXT_TOKEN = 4


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
