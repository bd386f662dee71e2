"""Any chat model as an OCR engine: a prompt preset in, ``OcrResult`` / fields out.

``VlmOcrEngine`` wraps a ``ChatBackend`` (transformers in-process or an
OpenAI-compatible server) so the OCR page, the CLI and the benchmarks can use a
VLM exactly like RapidOCR or Tesseract. A VLM reads a page as text without
positions, so every line comes back with ``box=None`` in the model's order,
and the model's own Markdown is kept for the Markdown and table presets.

The prompts are data, not code: ``PRESETS`` holds the defaults and a catalog
entry's ``prompts`` mapping replaces any of them for one model (some models
answer better to their own wording, e.g. dots.ocr's layout prompt).

Confidence: a VLM gives no per-line or per-field confidence (token
probabilities are not exposed by every backend, and are not a calibrated
"is this text right" score anyway). Values are therefore reported with
``CONFIDENCE_NOT_MEASURED`` (1.0), chosen because it is the neutral element of
everything downstream: rule-based fields multiply their own certainty by the
line confidence, and the OCR clean-up drops low-confidence fragments. Results
say so: ``settings["confidence"] == "not measured"`` on every ``OcrResult`` and
the note of every field filled from model JSON.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from PIL import Image

from models.chat.types import ChatBackend, GenerationParams, PromptMessage, Usage
from models.config import ModelEntry
from models.ocr.base import OcrLine, OcrResult
from models.templates import FieldSpec, FieldValue, TemplateSpec
from utils.errors import BadInput, GenerationError

logger = logging.getLogger(__name__)

CONFIDENCE_NOT_MEASURED = 1.0
"""Stands in for a confidence a VLM does not report; see the module docstring."""

FIELD_NOTE = "from model JSON (confidence not measured)"
FIELDS_PLACEHOLDER = "{fields}"

PRESETS: dict[str, str] = {
    "text": (
        "Read all the text in this image. Write it as plain text in reading order, "
        "one printed line per line. Copy it exactly as printed; do not translate, "
        "summarise, explain or add any commentary."
    ),
    "markdown": (
        "Convert this document image to Markdown. Keep the reading order, use headings "
        "and lists where the page has them, and write every table as a Markdown table. "
        "Copy the text exactly as printed; do not add any commentary."
    ),
    "table": (
        "Extract only the tables in this image, each as a Markdown table, in the order they "
        "appear. Copy cell text exactly as printed. Write nothing else; if there is no "
        "table, answer with nothing."
    ),
    "json_template": (
        "Read this document image and fill in the fields below. Answer with one JSON object "
        "with exactly these keys and nothing else. Copy each value exactly as printed on the "
        "page (same spelling, digits and punctuation); use null when a field is not on the "
        "page.\n\nFields:\n" + FIELDS_PLACEHOLDER
    ),
}

# Presets whose answer is Markdown: kept as the result's ``markdown``. GOT-OCR2 also
# gets the prompt text for these, which its backend reads as "use formatted mode".
MARKDOWN_PRESETS = frozenset({"markdown", "table"})
OCR_PRESETS = ("text", "markdown", "table")

# How many of a field's keywords to show the model as example labels.
_LABEL_EXAMPLES = 3
_RAW_ANSWER_PREVIEW = 200


def preset_prompt(entry: ModelEntry, preset: str) -> str:
    """The prompt for ``preset``: the entry's own wording if it has one, else the default."""
    if preset in entry.prompts:
        return entry.prompts[preset]
    if preset in PRESETS:
        return PRESETS[preset]
    known = ", ".join(sorted({*PRESETS, *entry.prompts}))
    raise BadInput(f"no OCR prompt preset '{preset}'", hint=f"use one of: {known}")


def strip_code_fence(text: str) -> str:
    """``text`` without a wrapping ``` fence (its language tag included).

    A fence whose closing line is missing (the answer hit max_new_tokens) is
    still removed at the top; fences inside the text are left alone.
    """
    body = text.strip()
    if not body.startswith("```"):
        return body
    first_newline = body.find("\n")
    if first_newline == -1:
        return ""
    body = body[first_newline + 1 :].rstrip()
    if body.endswith("```"):
        body = body[:-3]
    return body.strip()


class VlmOcrEngine:
    """OCR with a vision-language model (implements ``OcrEngine``).

    ``preset`` is one of the prompt presets (text, markdown, table, or a name the
    entry's ``prompts`` defines). Decoding is greedy with the entry's
    ``max_new_tokens`` unless ``params`` say otherwise.
    """

    def __init__(
        self,
        model_id: str,
        backend: ChatBackend,
        entry: ModelEntry,
        preset: str = "text",
        params: GenerationParams | None = None,
    ) -> None:
        self.model_id = model_id
        self.backend = backend
        self.entry = entry
        self.preset = preset
        self.prompt = preset_prompt(entry, preset)  # fails now on an unknown preset
        self.params = params or GenerationParams(
            max_new_tokens=entry.max_new_tokens, temperature=0.0
        )
        self.name = f"vlm:{model_id}"

    def ocr(self, image: Image.Image) -> OcrResult:
        """Read one page; lines in the model's order with ``box=None``."""
        started = time.perf_counter()
        answer, usage = self._ask(self._ocr_messages(image))
        text = strip_code_fence(answer)
        lines = [
            OcrLine(text=line.strip(), box=None, confidence=CONFIDENCE_NOT_MEASURED)
            for line in text.splitlines()
            if line.strip()
        ]
        return OcrResult(
            engine=self.name,
            lines=lines,
            markdown=text if self.preset in MARKDOWN_PRESETS else None,
            seconds=time.perf_counter() - started,
            width=image.width,
            height=image.height,
            settings=self._settings(usage, self.preset),
        )

    def fill_template(
        self, image: Image.Image, template_name: str, template: TemplateSpec
    ) -> dict[str, FieldValue]:
        """The template's fields as the model reads them, in the template's order.

        Keys the model adds are dropped, keys it leaves out come back as
        ``value=None``. Raises ``GenerationError`` when the answer holds no
        parsable JSON object.
        """
        if self.entry.ocr_style == "got_ocr2":
            raise BadInput(
                f"{self.model_id} reads pages in GOT-OCR2's own mode and cannot fill a template",
                hint="read the fields with rules from its OCR lines, or pick a chat VLM",
            )
        prompt = template_prompt(self.entry, template_name, template)
        answer, _ = self._ask([PromptMessage("user", [_rgb(image), prompt])])
        parsed = parse_json_object(answer, self.model_id)
        extra = sorted(set(parsed) - set(template.fields))
        if extra:
            logger.info("%s: dropped keys not in template %s: %s", self.name, template_name, extra)
        return {name: _field_value(parsed.get(name)) for name in template.fields}

    def _ocr_messages(self, image: Image.Image) -> list[PromptMessage]:
        """GOT-OCR2's processor writes its own prompt: it gets the image alone, plus the
        preset text only when formatted (Markdown) output is wanted."""
        if self.entry.ocr_style == "got_ocr2" and self.preset not in MARKDOWN_PRESETS:
            return [PromptMessage("user", [_rgb(image)])]
        return [PromptMessage("user", [_rgb(image), self.prompt])]

    def _ask(self, messages: list[PromptMessage]) -> tuple[str, Usage]:
        """The whole answer and its usage; a failure mid-answer raises ``GenerationError``."""
        stream = self.backend.stream(messages, self.params)
        answer = "".join(stream)
        return answer, stream.usage

    def _settings(self, usage: Usage, preset: str) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "backend": self.backend.backend,
            "preset": preset,
            "ocr_style": self.entry.ocr_style,
            "max_new_tokens": self.params.max_new_tokens,
            "confidence": "not measured",
            "usage": usage.model_dump(),
        }


def template_prompt(entry: ModelEntry, template_name: str, template: TemplateSpec) -> str:
    """The json_template preset with the template's fields listed, one per line."""
    listing = "\n".join(
        f"- {name}: {describe_field(name, spec)}" for name, spec in template.fields.items()
    )
    about = template.description or template_name
    fields = f"(document type: {about})\n{listing}"
    prompt = preset_prompt(entry, "json_template")
    if FIELDS_PLACEHOLDER in prompt:
        return prompt.replace(FIELDS_PLACEHOLDER, fields)
    return f"{prompt}\n\nFields:\n{fields}"  # an override that forgot the placeholder


_KIND_DESCRIPTIONS = {
    "company": "the business name printed near the top",
    "address": "the postal address, as one line",
    "date": "the date",
    "amount": "the money amount",
    "keyword_value": "the text printed after its label",
    "regex": "the value",
}


def describe_field(name: str, spec: FieldSpec) -> str:
    """One line telling the model what the field is, from its kind and labels."""
    if spec.kind == "mrz":
        wanted = (spec.mrz_field or name).replace("_", " ")
        return f"the {wanted}, from the machine-readable zone or the printed page"
    description = _KIND_DESCRIPTIONS[spec.kind]
    if spec.kind in ("date", "amount", "keyword_value") and spec.keywords:
        labels = ", ".join(f'"{k}"' for k in spec.keywords[:_LABEL_EXAMPLES])
        description += f" labelled e.g. {labels}"
    if spec.pick == "last" and spec.kind != "company":
        description += " (the last one on the page)"
    return description


def parse_json_object(answer: str, model_id: str) -> dict[str, Any]:
    """The first JSON object in ``answer`` (prose and ``` fences around it are ignored)."""
    body = strip_code_fence(answer)
    start = body.find("{")
    if start == -1:
        raise _unparsable(model_id, _why_no_object(body), answer)
    try:
        value, _ = json.JSONDecoder().raw_decode(body, start)
    except json.JSONDecodeError as exc:
        raise _unparsable(model_id, f"syntax error: {exc}", answer) from None
    return value


def _why_no_object(body: str) -> str:
    if not body:
        return "the answer is empty"
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return "no JSON object in the answer"
    return f"expected a JSON object, got {type(value).__name__}"


def _unparsable(model_id: str, reason: str, answer: str) -> GenerationError:
    return GenerationError(
        f"{model_id} returned JSON that could not be parsed: {reason}",
        hint=(
            "try again with a larger max_new_tokens or another model; the raw answer starts: "
            f"{answer[:_RAW_ANSWER_PREVIEW]!r}"
        ),
    )


def _field_value(raw: Any) -> FieldValue:
    value = _as_text(raw)
    if value is None:
        return FieldValue(note="not given by the model")
    return FieldValue(value=value, confidence=CONFIDENCE_NOT_MEASURED, note=FIELD_NOTE)


def _as_text(raw: Any) -> str | None:
    """A JSON value as field text: strings stripped, numbers as written, lists joined."""
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
    elif isinstance(raw, list):
        parts = [_as_text(item) for item in raw]
        text = " ".join(part for part in parts if part)
    else:  # numbers, booleans, nested objects: their JSON spelling
        text = json.dumps(raw, ensure_ascii=False)
    return text or None


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")
