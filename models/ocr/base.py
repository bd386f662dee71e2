"""Typed OCR results and the interface every OCR engine implements.

Classical engines (RapidOCR, Tesseract) and VLM adapters all return an
``OcrResult``; everything downstream (reading order, fields, exports,
benchmarks) only ever sees this type.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

Box = tuple[int, int, int, int]
"""Axis-aligned box in pixels of the original page: (left, top, right, bottom)."""


class OcrLine(BaseModel):
    """One visual line of text (or one engine fragment before reading order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    box: Box | None = Field(description="None for engines that read text without positions (VLMs)")
    confidence: float = Field(ge=0.0, le=1.0)

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1] if self.box else 0

    @property
    def center_y(self) -> float:
        return (self.box[1] + self.box[3]) / 2 if self.box else 0.0


class OcrResult(BaseModel):
    """What one engine found on one page image."""

    model_config = ConfigDict(extra="forbid")

    engine: str
    lines: list[OcrLine] = Field(default_factory=list)
    seconds: float = 0.0
    width: int = 0
    height: int = 0
    settings: dict = Field(default_factory=dict)
    markdown: str | None = Field(
        None, description="the engine's own Markdown, for engines that write it (VLMs)"
    )

    @property
    def has_boxes(self) -> bool:
        return all(line.box is not None for line in self.lines)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@runtime_checkable
class OcrEngine(Protocol):
    """An OCR engine: ``ocr(image)`` on an RGB PIL image returns an ``OcrResult``.

    A missing package or binary raises ``ModelUnavailable`` (with the install
    hint) when the engine is created, never a crash later.
    """

    name: str

    def ocr(self, image: Image.Image) -> OcrResult: ...
