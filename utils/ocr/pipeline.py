"""The OCR pipeline used by the OCR page, the CLI and the benchmarks.

file bytes -> validated document -> one page at a time: (deskew) -> engine ->
boxes mapped back to the original page -> clean-up -> reading order ->
text, Markdown, fields. Whole-document results are cached by (file bytes,
engine, settings), so the same file again is served from ``cache/``.
"""

from __future__ import annotations

import ctypes
import logging
import math
import time
from collections.abc import Callable
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from models.config import AppConfig
from models.ocr.base import Box, OcrEngine, OcrLine
from models.options import Characters
from models.registry import create_ocr_engine, rapidocr_options
from models.templates import FieldValue, TemplateSpec
from utils.cache import MISS, DiskCache, make_key
from utils.documents.document import Document, load_document
from utils.documents.geometry import deskew, rotate_quarter
from utils.documents.limits import DocumentLimits
from utils.documents.page import Page
from utils.documents.uploads import sanitize_filename
from utils.errors import AppError, BadInput, ModelUnavailable
from utils.fields.extract import extract_fields
from utils.ocr.budget import TimeBudget, first_expired
from utils.ocr.cleanup import clean_fragments
from utils.ocr.markdown import to_markdown
from utils.ocr.reading_order import line_blocks, reading_order
from utils.storage import VersionedRecord, utc_now_iso

FieldsPer = Literal["document", "page"]

logger = logging.getLogger(__name__)

# Bump when the pipeline's output changes for the same input, so old cache entries miss.
PIPELINE_VERSION = 6  # 6: a space after a colon; 5: colons, labelled numbers, dates
CACHE_NAMESPACE = "ocr"


class OcrSettings(BaseModel):
    """What the user chose for one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str
    template: str | None = None
    deskew: bool = False
    auto_rotate: bool = False
    vlm_preset: Literal["text", "markdown", "table"] = "text"
    # What one record of template fields is: the whole document (a two-page invoice),
    # or each page (a PDF of several receipts, whose totals must not mix).
    fields_per: FieldsPer = "document"
    # What RapidOCR may write in this run ("ascii", "all"); None: the profile's choice.
    characters: Characters | None = None


class PageResult(BaseModel):
    """One page: ``page`` counts from 1; boxes are in original-page pixels."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(ge=1)
    status: Literal["ok", "blank", "error"]
    text: str = ""
    markdown: str = ""
    lines: list[OcrLine] = Field(default_factory=list)
    fragments: list[OcrLine] = Field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    width: int = 0
    height: int = 0
    processed_scale: float = 1.0
    quarter_turns: int = 0
    skew_degrees: float = 0.0
    embedded_text: str | None = None
    usage: dict | None = Field(None, description="tokens and seconds, for VLM engines")
    fields: dict[str, FieldValue] = Field(
        default_factory=dict, description="this page's own fields (fields_per='page')"
    )


class DocumentResult(VersionedRecord):
    """Everything one file gave: pages, fields, settings, timings (or the error)."""

    SCHEMA_VERSION = 1

    file: str
    sha256: str = ""
    kind: str = ""
    engine: str
    settings: dict = Field(default_factory=dict)
    pages: list[PageResult] = Field(default_factory=list)
    fields_per: FieldsPer = "document"
    fields: dict[str, FieldValue] = Field(
        default_factory=dict, description="the whole document's fields (fields_per='document')"
    )
    field_pages: dict[str, int] = Field(
        default_factory=dict, description="the page each found document field came from"
    )
    error: str | None = None
    seconds: float = 0.0
    from_cache: bool = False
    created_at: str = Field(default_factory=lambda: utc_now_iso(timespec="auto"))

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.pages if p.status == "ok")

    @property
    def markdown(self) -> str:
        return "\n\n---\n\n".join(p.markdown for p in self.pages if p.status == "ok")

    @property
    def ok(self) -> bool:
        return self.error is None and all(p.status != "error" for p in self.pages)


class OcrStage(NamedTuple):
    """Where the reading of one file is, reported *before* each step starts: a long
    first step (a model loading, a dense first page) then shows what it is doing."""

    step: Literal["opening", "loading", "reading", "fields"]
    pages_done: int = 0
    page_count: int = 0

    @property
    def label(self) -> str:
        if self.step == "reading":
            return f"reading page {self.pages_done + 1} of {self.page_count}"
        return _STEP_LABELS[self.step]

    @property
    def share(self) -> float:
        """The part of this file done, 0 to 1."""
        return self.pages_done / self.page_count if self.page_count else 0.0


_STEP_LABELS = {
    "opening": "opening the file",
    "loading": "loading the engine",
    "fields": "finding the template's fields",
}

ProgressCallback = Callable[[OcrStage], None]
#: Hears each page as soon as it is read, so a page can show text before the file ends.
PageCallback = Callable[["PageResult"], None]


def document_limits(config: AppConfig) -> DocumentLimits:
    return DocumentLimits(**config.app.upload.model_dump())


def check_settings(settings: OcrSettings, config: AppConfig) -> None:
    """Unknown engine or template: raise before any work, naming what exists."""
    if settings.engine not in config.models:
        known = ", ".join(k for k, m in config.models.items() if m.task != "chat")
        raise ModelUnavailable(
            f"no model '{settings.engine}' in the active profile", hint=f"use one of: {known}"
        )
    if settings.template and settings.template not in config.templates:
        known = ", ".join(config.templates) or "none"
        raise BadInput(f"no template '{settings.template}'", hint=f"use one of: {known}")


def run_settings_record(settings: OcrSettings, config: AppConfig) -> dict:
    """Everything that changes the output, recorded with the result and in the cache key."""
    engine_backend = config.models[settings.engine].backend
    options = getattr(config.ocr, engine_backend, None)
    if engine_backend == "rapidocr":
        options = rapidocr_options(config, settings.characters)
    return {
        # ``characters`` is in the engine's options: the same choice made by the profile
        # or for the run is one cache entry.
        **settings.model_dump(exclude={"characters"}),
        "engine_options": options.model_dump() if options is not None else {},
        "limits": config.app.upload.model_dump(),
        "pipeline_version": PIPELINE_VERSION,
    }


def ocr_file(
    data: bytes,
    filename: str,
    settings: OcrSettings,
    config: AppConfig,
    cache: DiskCache | None = None,
    progress: ProgressCallback | None = None,
    batch: TimeBudget | None = None,
    on_page: PageCallback | None = None,
) -> DocumentResult:
    """OCR one uploaded file. Bad input comes back as a result with ``error`` set;
    a missing engine raises ``ModelUnavailable`` (nothing can run without it).
    ``progress`` hears each stage (``OcrStage``) before it starts, ``on_page`` each page
    once it is read (a cached file's pages at once).

    Reading stops before the next page once the file's time budget
    (``ocr.file_time_budget_s``) or the caller's ``batch`` budget has run out; the
    pages read so far are kept and ``error`` says where it stopped.
    """
    started = time.perf_counter()
    report = progress or (lambda stage: None)
    report(OcrStage("opening"))
    check_settings(settings, config)
    record = run_settings_record(settings, config)
    key = make_key(CACHE_NAMESPACE, data, record)
    cached = cache.get(key, default=MISS) if cache else MISS
    if cached is not MISS:
        result = DocumentResult.model_validate(cached)
        for page in result.pages if on_page else ():
            on_page(page)
        # The cache key is the content: the same bytes may come back under another name.
        return result.model_copy(update={"from_cache": True, "file": sanitize_filename(filename)})
    try:
        document = load_document(data, filename, document_limits(config))
    except BadInput as exc:
        return DocumentResult(
            file=sanitize_filename(filename),
            engine=settings.engine,
            settings=record,
            error=str(exc),
        )
    report(OcrStage("loading", 0, document.page_count))
    engine = create_ocr_engine(
        settings.engine, config, preset=settings.vlm_preset, characters=settings.characters
    )
    # Counted from here: loading a model the first time is not the file's fault.
    budgets = (TimeBudget(config.ocr.file_time_budget_s, "ocr.file_time_budget_s"), batch)
    hooks = (report, on_page or (lambda page: None))
    result = _ocr_document(document, engine, settings, config, record, hooks, budgets)
    result.seconds = time.perf_counter() - started
    if cache and result.ok:
        cache.set(key, result.model_dump(mode="json"))
    return result


def _ocr_document(
    document: Document,
    engine: OcrEngine,
    settings: OcrSettings,
    config: AppConfig,
    record: dict,
    hooks: tuple[ProgressCallback, PageCallback],
    budgets: tuple[TimeBudget | None, ...],
) -> DocumentResult:
    report, on_page = hooks
    result = DocumentResult(
        file=document.name,
        sha256=document.sha256,
        kind=document.kind,
        engine=settings.engine,
        settings=record,
        fields_per=settings.fields_per,
    )
    pages = document.pages()
    for index in range(document.page_count):
        if spent := first_expired(*budgets):
            result.error = spent.stop_message(document.name, "page", index + 1, document.page_count)
            break
        report(OcrStage("reading", index, document.page_count))
        result.pages.append(_next_page_result(pages, index, engine, settings))
        on_page(result.pages[-1])
        if document.page_count > 1:
            _return_freed_memory()
    pages.close()  # after a stop, release the PDF now rather than when collected
    if settings.template:
        report(OcrStage("fields", len(result.pages), document.page_count))
        _extract_template_fields(result, config.templates[settings.template])
    return result


def _extract_template_fields(result: DocumentResult, template: TemplateSpec) -> None:
    """Per page: each page's fields from its own lines. Per document: the fields from
    all lines in page order, each noted with the page its first line is on."""
    if result.fields_per == "page":
        for page in result.pages:
            page.fields = extract_fields(template, page.lines, line_blocks(page.fragments))
        return
    lines = [line for page in result.pages for line in page.lines]
    blocks = [blocks for page in result.pages for blocks in line_blocks(page.fragments)]
    line_pages = [page.page for page in result.pages for _ in page.lines]
    result.fields = extract_fields(template, lines, blocks)
    result.field_pages = {
        name: line_pages[found.line]
        for name, found in result.fields.items()
        if found.value is not None and found.line is not None
    }


def _return_freed_memory() -> None:
    """Give the heap that one page's images and tensors used back to the system.

    Pages of different sizes fragment glibc's heap, so a long PDF's peak memory
    creeps up page after page; trimming after each page keeps it near the peak of
    the largest page (about 6% lower on ten receipts). No-op where there is no glibc.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _load_libc()


def _next_page_result(pages, index: int, engine: OcrEngine, settings: OcrSettings) -> PageResult:
    """Decode and read one page; a failure becomes that page's ``error`` status."""
    try:
        page = next(pages)
        return ocr_page(page, engine, settings)
    except StopIteration:
        return PageResult(page=index + 1, status="error", error="page could not be read")
    except AppError as exc:
        return PageResult(page=index + 1, status="error", error=str(exc))
    except Exception as exc:  # an engine crash on one page must not lose the others
        logger.exception("OCR failed on page %d", index + 1)
        return PageResult(page=index + 1, status="error", error=f"OCR failed: {exc}")


def ocr_page(page: Page, engine: OcrEngine, settings: OcrSettings | None = None) -> PageResult:
    """OCR one page; boxes in the returned result are in pixels of the upright page."""
    settings = settings or OcrSettings(engine=engine.name)
    turns = _quarter_turns(page.image, engine) if settings.auto_rotate else 0
    upright = rotate_quarter(page.image, turns) if turns else page.image
    image, angle = deskew(upright) if settings.deskew else (upright, 0.0)
    raw = engine.ocr(image)
    if raw.has_boxes:
        fragments = clean_fragments(
            [_to_original(f, page.scale, angle, image.size, upright.size) for f in raw.lines]
        )
        lines, markdown = reading_order(fragments), to_markdown(fragments)
    else:  # a VLM's text: already in reading order, no positions, its own Markdown
        fragments = lines = clean_fragments(raw.lines)
        markdown = raw.markdown or "\n".join(line.text for line in lines)
    width, height = (round(side / page.scale) for side in upright.size)
    return PageResult(
        page=page.index + 1,
        status="ok" if lines else "blank",
        text="\n".join(line.text for line in lines),
        markdown=markdown,
        lines=lines,
        fragments=fragments,
        seconds=raw.seconds,
        width=width,
        height=height,
        processed_scale=page.scale,
        quarter_turns=turns,
        skew_degrees=angle,
        embedded_text=page.embedded_text,
        usage=raw.settings.get("usage"),
    )


def _quarter_turns(image, engine: OcrEngine) -> int:
    """Counter-clockwise quarter turns that make the page upright, by RapidOCR's line
    classifier (the engine's own when it is RapidOCR, else the default one)."""
    finder = getattr(engine, "page_quarter_turns", None)
    if finder is None:
        from models.ocr.rapid import get_rapidocr_engine

        finder = get_rapidocr_engine().page_quarter_turns
    return finder(image)


def _to_original(
    line: OcrLine,
    scale: float,
    angle: float,
    size: tuple[int, int],
    before_deskew: tuple[int, int],
) -> OcrLine:
    box = _unrotate(line.box, angle, size, before_deskew) if angle else line.box
    original: Box = tuple(round(v / scale) for v in box)  # type: ignore[assignment]
    return line.model_copy(update={"box": original})


def _unrotate(box: Box, degrees: float, size: tuple[int, int], target: tuple[int, int]) -> Box:
    """The axis-aligned box, on the page before deskew, of a box found after it.

    ``deskew`` turned the page by ``-degrees`` about its centre (PIL's ``rotate``
    with ``expand``: ``size`` is the larger result, ``target`` the page before), so
    turning the corners by ``+degrees`` about the centres undoes it.
    """
    cx, cy = size[0] / 2, size[1] / 2
    tx, ty = target[0] / 2, target[1] / 2
    rad = math.radians(degrees)
    cos, sin = math.cos(rad), math.sin(rad)
    xs, ys = [], []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])):
        dx, dy = x - cx, y - cy
        # Image y points down: a counter-clockwise turn on screen is this matrix.
        xs.append(tx + dx * cos + dy * sin)
        ys.append(ty - dx * sin + dy * cos)
    return (
        max(0, round(min(xs))),
        max(0, round(min(ys))),
        min(target[0], round(max(xs))),
        min(target[1], round(max(ys))),
    )
