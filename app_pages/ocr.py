"""OCR of uploaded images and PDFs: text, Markdown, fields, boxes, exports."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from models.registry import Availability, availabilities
from utils.auth.personal import read_personal_settings, save_personal_settings
from utils.documents.document import load_document
from utils.documents.geometry import rotate_quarter
from utils.errors import AppError
from utils.ocr.budget import TimeBudget
from utils.ocr.drawing import draw_boxes
from utils.ocr.exports import document_markdown, document_text, fields_csv, results_json
from utils.ocr.markdown import table_rows
from utils.ocr.pipeline import (
    DocumentResult,
    OcrSettings,
    OcrStage,
    PageResult,
    document_limits,
    ocr_file,
)
from utils.ocr.runs import OcrRun, RunRecorder, list_ocr_runs, load_run, load_upload
from utils.ocr.summary import batch_rows, field_rows

RUN_KEY = "ocr_run_id"
LIVE_TEXT_CHARS = 4000  # of each page while the batch runs; the run shows all of it
UNKEPT_KEY = "ocr_unkept_run"  # a run the data folder refused to store
FIELDS_PER = {
    "document": "one record per document",
    "page": "one record per page",
}

loaded = ui.profile()
config = loaded.config
user = ui.current_user()
personal = read_personal_settings(config.data_dir, user)

st.title("🔎 OCR")


@st.cache_data(ttl=60, show_spinner=False)
def _engine_statuses(profile_sha: str) -> dict[str, Availability]:
    return availabilities(config, "ocr")


def remember_defaults(settings: OcrSettings) -> None:
    # An engine without an alphabet choice keeps the one remembered for RapidOCR.
    characters = settings.characters or personal.ocr_characters
    try:
        save_personal_settings(
            config.data_dir,
            user,
            ocr_engine=settings.engine,
            ocr_template=settings.template,
            ocr_characters=characters,
        )
    except AppError as exc:
        ui.show_error(exc)
    else:
        st.toast("The OCR page will open with these.")


def settings_form() -> tuple[list, OcrSettings | None, str]:
    statuses = _engine_statuses(loaded.sha256)
    usable = [mid for mid, verdict in statuses.items() if verdict.available]
    with st.sidebar:
        st.subheader("OCR settings")
        mine = usable.index(personal.ocr_engine) if personal.ocr_engine in usable else 0
        engine = st.selectbox(
            "Engine",
            usable,
            index=mine,
            format_func=lambda m: statuses[m].display_name,
            disabled=not usable,
        )
        unavailable = [(v.display_name, v.detail) for v in statuses.values() if not v.available]
        if unavailable:
            with st.expander(f"{len(unavailable)} engine(s) unavailable"):
                for name, detail in unavailable:
                    st.caption(f"**{ui.untrusted(name)}**: {ui.untrusted(detail)}")
        templates = [None, *config.templates]
        preferred = personal.ocr_template or config.ocr.template
        default = templates.index(preferred) if preferred in templates else 0
        template = st.selectbox(
            "Template", templates, index=default, format_func=lambda t: t or "none (text only)"
        )
        fields_per = st.radio(
            "Fields per",
            list(FIELDS_PER),
            format_func=FIELDS_PER.get,
            disabled=template is None,
            help="A PDF of several receipts: one record per page, so totals do not mix.",
        )
        fmt = st.radio("Show", ["Text", "Markdown", "JSON"], horizontal=True)
        preset = "markdown" if fmt == "Markdown" else "text"  # what a VLM engine is asked for
        deskew = st.checkbox("Straighten skewed scans", value=config.ocr.deskew)
        auto_rotate = st.checkbox(
            "Turn sideways or upside-down pages", value=config.ocr.auto_rotate
        )
        rapidocr = engine is not None and config.models[engine].backend == "rapidocr"
        all_characters = st.checkbox(
            "Read accents and other scripts",
            value=(personal.ocr_characters or config.ocr.rapidocr.characters) == "all",
            disabled=not rapidocr,
            help="RapidOCR reads English and Malay print by default: where it sees an accent "
            "or a character of another script, it takes the likeliest plain letter instead "
            "(a faded A read as Á is an A). Tick for French, German, Chinese, ... documents.",
        )
        save_defaults = st.button(
            "⭐ Use this engine, template and accents choice by default",
            key="ocr_save_defaults",
            disabled=engine is None,
        )
        limits = config.app.upload
        st.caption(
            f"Files up to {limits.max_file_mb:g} MB, {limits.max_megapixels:g} MP and "
            f"{limits.max_pages} pages; pages are read at most {limits.max_side} px on the "
            f"longest side (PDFs rendered at {limits.pdf_dpi} dpi)."
        )
    # No `type=`: with one, Streamlit checks each name itself and answers a NUL byte in
    # it with its own traceback before this page runs. The loader tells the type from
    # the content and refuses anything else with a message naming the file.
    files = st.file_uploader(
        "Images or PDFs",
        accept_multiple_files=True,
        key="ocr_files",
        max_upload_size=ui.upload_limit_mb(config),
        help="PNG, JPEG, WebP, BMP, GIF, TIFF or PDF (the type is read from the content).",
    )
    if engine is None:
        reasons = " ".join(ui.untrusted(v.detail) for v in statuses.values())
        st.error("No OCR engine is available. " + reasons)
        return files, None, fmt
    settings = OcrSettings(
        engine=engine,
        template=template,
        deskew=deskew,
        auto_rotate=auto_rotate,
        vlm_preset=preset,
        fields_per=fields_per if template else "document",  # no fields: one cache entry
        characters=("all" if all_characters else "ascii") if rapidocr else None,
    )
    if save_defaults:
        remember_defaults(settings)
    return files, settings, fmt


def run_batch(files: list, settings: OcrSettings, slot) -> str | None:
    """OCR every file with per-file status; the run is saved to disk after each file.
    Its progress bar and errors go into ``slot``, a container every run of the page has.
    Returns the run's id, or None when no file was read (no run was saved)."""
    cache = ui.cache(config)
    bar = slot.progress(0.0, text="Starting…")
    live_slot = slot.empty()  # each page's text as soon as it is read; gone at the end
    live = live_slot.container()
    recorder = RunRecorder(config, settings.model_dump(), user=user)
    batch = TimeBudget(config.ocr.batch_time_budget_s, "ocr.batch_time_budget_s")
    for number, upload in enumerate(files, start=1):
        if batch.expired:
            slot.warning(batch.stop_message("The batch", "file", number, len(files)))
            break
        data = upload.getvalue()

        def on_stage(stage: OcrStage, number=number) -> None:
            share = (number - 1 + stage.share) / len(files)
            bar.progress(share, text=f"File {number}/{len(files)} · {stage.label}")

        def on_page(page: PageResult, name=upload.name) -> None:
            show_page_as_read(live, name, page)

        try:
            result = ocr_file(
                data, upload.name, settings, config, cache, on_stage, batch, on_page=on_page
            )
        except AppError as exc:  # the engine itself is unusable: stop the batch
            with slot:
                ui.show_error(exc)
            break
        recorder.add(result, data)
    bar.progress(1.0, text=f"Done: {len(recorder.run.documents)} file(s)")
    live_slot.empty()  # the run below shows every page in full
    if recorder.not_kept is not None:  # shown from this tab's memory instead
        with slot:
            ui.show_error(recorder.not_kept)
            st.warning("The results below are not kept: they are gone once this tab closes.")
        st.session_state[UNKEPT_KEY] = recorder.run
        return recorder.run.run_id
    return recorder.run.run_id if recorder.saved else None


def show_page_as_read(live, file_name: str, page: PageResult) -> None:
    """One page's text while the batch goes on (plain text: nothing in it is Markdown)."""
    with live:
        st.caption(f"📄 {ui.untrusted(file_name)} · page {page.page} · {page.status}")
        if page.text:
            st.text(page.text[:LIVE_TEXT_CHARS])


def show_run(run: OcrRun, fmt: str) -> None:
    docs = run.documents
    ok = sum(d.ok for d in docs)
    st.subheader(f"Run {run.run_id}")
    engine = ui.untrusted(run.settings.get("engine"))
    st.caption(f"{ok} of {len(docs)} file(s) read · engine {engine}")
    downloads(run)
    if len(docs) > 1:  # the batch at a glance; each file's detail below
        ui.table(batch_rows(docs))
    for index, doc in enumerate(docs):
        show_document(doc, fmt, key=f"{run.run_id}-{index}", expanded=index == 0)


def downloads(run: OcrRun) -> None:
    docs = run.documents
    cols = st.columns(4)
    # A file stopped by its time budget has an error and the pages read before it.
    text = "".join(f"==> {d.file} <==\n{document_text(d)}" for d in docs if d.pages)
    cols[0].download_button("TXT", text, f"ocr-{run.run_id}.txt", "text/plain")
    markdown = "\n".join(document_markdown(d) for d in docs if d.pages)
    cols[1].download_button("Markdown", markdown, f"ocr-{run.run_id}.md", "text/markdown")
    cols[2].download_button(
        "JSON", results_json(docs), f"ocr-{run.run_id}.json", "application/json"
    )
    cols[3].download_button("Fields CSV", fields_csv(docs), f"ocr-{run.run_id}.csv", "text/csv")


def show_document(doc: DocumentResult, fmt: str, key: str, expanded: bool) -> None:
    icon = "❌" if doc.error and not doc.pages else ("⚠️" if not doc.ok else "✅")
    cached = " · from cache" if doc.from_cache else ""
    name = ui.untrusted(doc.file)
    label = f"{icon} {name} — {len(doc.pages)} page(s), {doc.seconds:.2f} s{cached}"
    with st.expander(label, expanded=expanded):
        if doc.error:
            st.error(ui.untrusted(doc.error))
        if not doc.pages:  # refused before any page was read
            return
        if fields := field_rows(doc):
            ui.table(fields)
        for page in doc.pages:
            show_page(doc, page, fmt, key)


def show_page(doc: DocumentResult, page: PageResult, fmt: str, key: str) -> None:
    st.markdown(f"**Page {page.page}** · {page.status} · {page.seconds:.2f} s")
    if page.status == "error":
        st.error(ui.untrusted(page.error or "this page failed"))
        return
    if page.status == "blank":
        st.info("No text found on this page.")
        return
    if fmt == "Text":
        st.text(page.text)
    elif fmt == "Markdown":
        st.code(page.markdown, language="markdown")
        for table in table_rows(page.fragments):
            ui.table(pd.DataFrame(table[1:], columns=_header(table[0])))
    else:
        st.json(page.model_dump(mode="json", exclude={"fragments"}), expanded=False)
    if page.embedded_text:
        with st.popover("Embedded PDF text"):
            st.text(page.embedded_text)
    if st.toggle("Show boxes", key=f"boxes-{key}-{page.page}"):
        show_boxes(doc, page)


def _header(cells: list[str]) -> list[str]:
    """Unique column names for a DataFrame (OCR'd headers repeat and may be empty)."""
    seen: dict[str, int] = {}
    names = []
    for cell in cells:
        name = cell or "column"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return names


def show_boxes(doc: DocumentResult, page: PageResult) -> None:
    data = load_upload(config, doc.sha256) if doc.sha256 else None
    if data is None:
        st.warning("The original file is no longer stored, so boxes cannot be drawn.")
        return
    try:
        document = load_document(data, doc.file, document_limits(config))
        image = next(p for p in document.pages() if p.index == page.page - 1)
    except (AppError, StopIteration):
        st.warning("The page image could not be rendered again.")
        return
    upright = rotate_quarter(image.image, page.quarter_turns)
    st.image(draw_boxes(upright, page.lines, scale=image.scale), width="stretch")


def previous_runs() -> None:
    runs = list_ocr_runs(config, user=user)
    if not runs:
        return
    with st.sidebar:
        st.subheader("Previous runs")
        # To the second, and the id's own suffix: two runs started in the same minute
        # (two tabs, two app processes) stay apart.
        labels = {
            r.run_id: f"{r.created_at[:19]} · {r.files} file(s) · {r.engine} · {r.run_id[-6:]}"
            for r in runs
        }
        chosen = st.selectbox("Reopen", list(labels), format_func=labels.get, index=None)
        if chosen and st.button("Open run"):
            st.session_state[RUN_KEY] = chosen


files, settings, fmt = settings_form()
run_clicked = st.button("Run OCR", type="primary", disabled=not files or settings is None)
# Present (empty) on every run, so the results below keep their place between runs:
# shifted by a progress bar that is gone after the next click, an opened file's
# expander would snap shut.
progress_slot = st.container()
if run_clicked:
    st.session_state[RUN_KEY] = run_batch(files, settings, progress_slot)
previous_runs()
if run_id := st.session_state.get(RUN_KEY):
    unkept = st.session_state.get(UNKEPT_KEY)
    stored_only = unkept is None or unkept.run_id != run_id
    run = load_run(config, run_id, user=user) if stored_only else unkept
    if run is None:
        st.warning("That run could not be read (it was moved aside as corrupt or deleted).")
    else:
        show_run(run, fmt)
elif not files:
    st.info("Upload images or PDFs, then press **Run OCR**. RapidOCR works offline on the CPU.")
