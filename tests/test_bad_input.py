"""Bad input on every entry point: the OCR page, a chat attachment, `cli.py ocr`, and a
dataset folder read by the benchmark runner.

One table of files (``CASES``) goes through each entry point once (a module-scoped
fixture per entry point); the parametrized tests then check, case by case, that the
entry point gave a clear message naming the sanitised file (or read the valid ones),
that nothing was written outside the profile's data and cache folders, and that the
same session still serves a good file afterwards.

Some cases cannot reach some entry points at all (a NUL byte cannot be in a file name
on disk or in argv; Linux names stop at 255 bytes): ``NOT_APPLICABLE`` says which and
why, and those cases are tested where they can happen.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from models.config import REPO_ROOT, load_config
from models.ocr.base import OcrResult
from testkit.apptest import shown
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.hostile_profiles import CASES as HOSTILE_PROFILES
from testkit.hostile_profiles import HostileProfile
from testkit.profiles import fake_server_model_yaml, write_test_profile
from testkit.render import encode, render_lines
from tests.test_documents import build_pdf, encrypted_pdf, png_claiming_size
from utils.bench.datasets import load_dataset
from utils.bench.plan import BenchRequest
from utils.bench.runner import run_benchmark
from utils.bench.store import read_items
from utils.cache import DiskCache
from utils.chat.store import ChatStore
from utils.documents.limits import DocumentLimits
from utils.documents.uploads import sanitize_filename
from utils.errors import BadInput
from utils.ocr import pipeline as ocr_pipeline
from utils.ocr.pipeline import OcrSettings, ocr_file

APP = str(REPO_ROOT / "app.py")
BIDI_AND_CONTROL = set("\x00\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One file. ``refused_with``: lower-case words the refusal must contain (empty for a
    valid file, which must be read); ``marker``: digits drawn on a valid image."""

    id: str
    filename: str
    data: bytes
    refused_with: tuple[str, ...] = ()
    marker: str | None = None

    @property
    def valid(self) -> bool:
        return not self.refused_with

    @property
    def shown_name(self) -> str:
        return sanitize_filename(self.filename)


def text_image(marker: str) -> Image.Image:
    return render_lines([f"CODE {marker}"], size=(420, 110), font_size=44)


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def one_bit_tiff(marker: str) -> bytes:
    gray = text_image(marker).convert("L")
    return save(gray.point(lambda v: 255 if v > 128 else 0, mode="1"), "TIFF")


def cmyk_tiff(marker: str) -> bytes:
    return save(text_image(marker).convert("CMYK"), "TIFF")


def animated_gif(marker: str) -> bytes:
    first = text_image(marker)
    later = [Image.new("RGB", first.size, color) for color in ("black", "gray")]
    return save(first, "GIF", save_all=True, append_images=later, duration=100, loop=0)


def truncated_jpeg() -> bytes:
    data = save(Image.effect_noise((300, 200), 64).convert("RGB"), "JPEG")
    return data[: len(data) // 2]  # the header is whole; the pixels stop half-way


def pdf_without_pages() -> bytes:
    return build_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    )


def pdf_with_empty_pages(count: int) -> bytes:
    """A hand-written PDF of ``count`` blank pages (size inherited from the page tree)."""
    kids = b" ".join(b"%d 0 R" % (3 + index) for index in range(count))
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + kids + b"] /Count %d /MediaBox [0 0 200 200] >>" % count,
            *([b"<< /Type /Page /Parent 2 0 R >>"] * count),
        ]
    )


def png_with(marker: str) -> bytes:
    return encode(text_image(marker))


# The hostile-name cases share their bytes: the second and later are cache hits, which
# must still show their own name.
NAMED_PNG = png_with("404")
CASES = [
    Case("zero_bytes", "blank.png", b"", ("empty", "0 bytes")),
    Case("text_named_png", "notes.png", b"just some notes\n", ("not an image or a pdf",)),
    Case("truncated_jpeg", "cut.jpg", truncated_jpeg(), ("truncated",)),
    Case("bomb_30000px", "bomb.png", png_claiming_size(30000, 30000), ("megapixels",)),
    Case("tiff_1bit", "fax.tif", one_bit_tiff("101"), marker="101"),
    Case("tiff_cmyk", "print.tif", cmyk_tiff("202"), marker="202"),
    Case("gif_animated", "anim.gif", animated_gif("303"), marker="303"),
    Case("pdf_encrypted", "secret.pdf", encrypted_pdf(), ("password",)),
    Case("pdf_0_pages", "nothing.pdf", pdf_without_pages(), ("no pages",)),
    Case("pdf_500_pages", "long.pdf", pdf_with_empty_pages(500), ("500 pages", "limit of 200")),
    Case("name_dotdot", "../../etc/passwd.png", NAMED_PNG, marker="404"),
    Case("name_nul", "in\x00voice.png", NAMED_PNG, marker="404"),
    Case("name_300_chars", "L" * 296 + ".png", NAMED_PNG, marker="404"),
    Case("name_rtl", "\u202eevil\u2066gnp\u200f.png", NAMED_PNG, marker="404"),
    Case(
        "hostile_name_bad_bytes",
        "../..\\\u202ebad\u200f.png",
        b"MZ\x90\x00 not a picture",
        ("not an image or a pdf",),
    ),
]
CASE_IDS = [case.id for case in CASES]
BY_ID = {case.id: case for case in CASES}
GOOD = Case("good_after", "after.png", png_with("909"), marker="909")

_NO_NUL_ON_DISK = "a file name on disk cannot hold a NUL byte"
_NO_LONG_NAMES = "Linux file names stop at 255 bytes (tested as a path that cannot be read)"
NOT_APPLICABLE = {
    # The OCR page's uploader and the chat input name no types, so Streamlit passes a NUL
    # in a name on to the page, which reads the file under its sanitised name.
    "ocr_page": {},
    "chat": {},
    "cli": {"name_nul": "argv cannot hold a NUL byte"},
    "dataset": {
        "name_nul": _NO_NUL_ON_DISK,
        "name_300_chars": _NO_LONG_NAMES,
        "name_dotdot": "a folder listing holds no '..' names",
        "hostile_name_bad_bytes": "a file name on disk holds no '/' or NUL",
    },
}


def applicable(entry: str) -> list:
    return [
        pytest.param(case_id, id=case_id)
        if case_id not in NOT_APPLICABLE[entry]
        else pytest.param(
            case_id, id=case_id, marks=pytest.mark.skip(reason=NOT_APPLICABLE[entry][case_id])
        )
        for case_id in CASE_IDS
    ]


@dataclass
class Outcome:
    """What an entry point showed for one file."""

    read: bool  # the file was read (for an image: its text came back)
    name: str  # the file name the entry point showed
    messages: list[str]
    text: str = ""


def check_outcome(case: Case, outcome: Outcome | None) -> None:
    assert outcome is not None, f"{case.id}: the entry point said nothing about the file"
    assert outcome.name == case.shown_name
    assert not set(outcome.name) & BIDI_AND_CONTROL and "/" not in outcome.name
    if case.valid:
        assert outcome.read, (case.id, outcome.messages)
        assert case.marker in outcome.text, (case.id, outcome.text)
        return
    assert not outcome.read
    joined = " ".join(outcome.messages)
    assert case.shown_name in joined, (case.id, joined)
    for word in case.refused_with:
        assert word in joined.lower(), (case.id, word, joined)


# --- file-tree snapshots -----------------------------------------------------------------


def files_under(root: Path, skip: tuple[Path, ...] = ()) -> set[str]:
    if not root.exists():
        return set()
    found = set()
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
        found.update(str(Path(folder, name).relative_to(root)) for name in names)
    return found


@dataclass
class Snapshot:
    """Files outside the profile's data and cache folders: the test's temp folder and the
    repository's own results/ and cache/ (which tests must never touch)."""

    base: Path
    allowed: tuple[Path, ...]

    def take(self) -> dict[str, set[str]]:
        return {
            "tmp": files_under(self.base, self.allowed),
            "repo results": files_under(REPO_ROOT / "results"),
            "repo cache": files_under(REPO_ROOT / "cache"),
        }


def new_files(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {where: after[where] - before[where] for where in before if after[where] - before[where]}


@pytest.fixture(scope="module")
def module_profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("bad_input")
    profile = write_test_profile(base)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHATVLM_CONFIG", str(profile))
        yield profile


def snapshot_for(profile: Path) -> Snapshot:
    base = profile.parent
    return Snapshot(base, (base / "results", base / "cache"))


# --- the OCR page ------------------------------------------------------------------------


def run_button(at: AppTest):
    return next(button for button in at.button if button.label == "Run OCR")


def ocr_page_outcomes_of(at: AppTest) -> dict[str, Outcome]:
    outcomes = {}
    for expander in at.expander:
        icon_and_name = shown(expander.label).rsplit(" — ", 1)[0]
        icon, name = icon_and_name.split(" ", 1)
        outcomes[name] = Outcome(
            read=icon == "✅",
            name=name,
            messages=[shown(error.value) for error in expander.error],
            text="\n".join(text.value for text in expander.text),
        )
    return outcomes


def upload_and_run(at: AppTest, cases: list[Case]) -> dict[str, Outcome]:
    at.file_uploader[0].set_value([(c.filename, c.data, "application/octet-stream") for c in cases])
    at.run()
    run_button(at).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return ocr_page_outcomes_of(at)


@pytest.fixture(scope="module")
def ocr_page(module_profile: Path):
    """All applicable cases in one batch, then a good file in the same session."""
    snapshot = snapshot_for(module_profile)
    before = snapshot.take()
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/ocr.py").run()
    cases = [c for c in CASES if c.id not in NOT_APPLICABLE["ocr_page"]]
    outcomes = upload_and_run(at, cases)
    after_good = upload_and_run(at, [GOOD])
    return outcomes, after_good, new_files(before, snapshot.take()), module_profile


@pytest.mark.slow  # one batch through RapidOCR, shared by the module (~12 s)
@pytest.mark.parametrize("case_id", applicable("ocr_page"))
def test_ocr_page(case_id: str, ocr_page) -> None:
    outcomes, _, _, _ = ocr_page
    case = BY_ID[case_id]
    check_outcome(case, outcomes.get(case.shown_name))


@pytest.mark.slow  # one batch through RapidOCR, shared by the module (~12 s)
def test_ocr_page_writes_only_data_folders_and_keeps_serving(ocr_page) -> None:
    _, after_good, written, profile = ocr_page
    check_outcome(GOOD, after_good.get(GOOD.shown_name))
    assert written == {}
    uploads = profile.parent / "results" / "uploads"
    # Uploads are kept by content hash only: no user-chosen name reached the disk.
    assert all(len(path.name) == 64 for path in uploads.iterdir() if path.is_file())


def test_ocr_page_survives_a_nul_in_a_file_name(module_profile: Path) -> None:
    case = BY_ID["name_nul"]
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/ocr.py").run()
    at.file_uploader[0].set_value([(case.filename, case.data, "image/png")]).run()
    # No Streamlit traceback: the page reads the file under its sanitised name.
    assert not at.exception, [str(e.value) for e in at.exception]
    outcomes = upload_and_run(at, [case])
    check_outcome(case, outcomes.get(case.shown_name))
    outcomes = upload_and_run(at, [GOOD])
    check_outcome(GOOD, outcomes.get(GOOD.shown_name))


# --- chat attachments --------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_page(tmp_path_factory: pytest.TempPathFactory):
    """Each applicable case attached to its own question, in one session, then a good one.

    The model is an OpenAI-compatible fake server that answers by describing what it
    received, so a valid image is seen to reach the model with its decoded size.
    """
    base = tmp_path_factory.mktemp("bad_input_chat")
    with FakeOpenAIServer(models=("fake-vlm",)) as server, pytest.MonkeyPatch.context() as patch:
        profile = write_test_profile(base, fake_server_model_yaml(server.base_url))
        patch.setenv("CHATVLM_CONFIG", str(profile))
        snapshot = snapshot_for(profile)
        before = snapshot.take()
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        next(s for s in at.sidebar.selectbox if s.label == "Model").set_value("fake_vlm").run()
        cases = [chat_case(c) for c in CASES if c.id not in NOT_APPLICABLE["chat"]]
        outcomes = {case.id: ask_with(at, case, base) for case in cases}
        good = ask_with(at, GOOD, base)
        requests = len(server.chat_requests)
        written = new_files(before, snapshot.take())
    return outcomes, good, written, requests, sum(c.valid for c in cases) + 1


def chat_case(case: Case) -> Case:
    """The chat input only takes image extensions (Streamlit refuses a ``.pdf`` before the
    page runs), so PDF bytes arrive the way they could: renamed to ``.png``."""
    if not case.filename.endswith(".pdf"):
        return case
    return Case(case.id, case.filename + ".png", case.data, case.refused_with, case.marker)


def ask_with(at: AppTest, case: Case, base: Path) -> Outcome:
    turns = len(at.chat_message)
    at.chat_input[0].upload(case.filename, case.data, "image/png")
    at.chat_input[0].set_value(f"What is in {case.id}?").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(error.value) for error in at.main.error]
    if len(at.chat_message) == turns:  # nothing was sent
        return Outcome(read=False, name=case.shown_name, messages=errors)
    (saved,) = (base / "results" / "chats").glob("*.json")
    messages = json.loads(saved.read_text(encoding="utf-8"))["messages"]
    image = messages[-2]["images"][0]
    answer = at.chat_message[-1].markdown[0].value
    # The fake model does not read the picture; it answers with the size of every image
    # it decoded, so the new image reached it whole when its size comes last.
    sent = answer.rsplit("sizes=", 1)[-1].strip().split(",")
    reached = sent[-1] == f"{image['width']}x{image['height']}" and len(sent) == sum(
        len(message["images"]) for message in messages
    )
    return Outcome(
        read=not errors,
        name=image["name"],
        messages=errors,
        text=case.marker if reached else answer,
    )


@pytest.mark.parametrize("case_id", applicable("chat"))
def test_chat_attachment(case_id: str, chat_page) -> None:
    outcomes, _, _, _, _ = chat_page
    case = chat_case(BY_ID[case_id])
    check_outcome(case, outcomes.get(case.id))
    if not case.valid:
        assert any("was not sent" in m for m in outcomes[case.id].messages)


def test_chat_writes_only_data_folders_and_keeps_serving(chat_page) -> None:
    _, good, written, requests, expected_requests = chat_page
    check_outcome(GOOD, good)
    assert written == {}
    assert requests == expected_requests  # a refused attachment never reached the model


# --- `python cli.py ocr` -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_ocr(tmp_path_factory: pytest.TempPathFactory):
    """Every applicable case as a file on disk, read by one `cli.py ocr` process."""
    base = tmp_path_factory.mktemp("bad_input_cli")
    profile = write_test_profile(base)
    inputs = base / "inputs"
    (inputs / "sub").mkdir(parents=True)
    arguments = []
    for case in [c for c in CASES if c.id not in NOT_APPLICABLE["cli"]] + [GOOD]:
        arguments.append(str(cli_path(case, inputs)))
    snapshot = snapshot_for(profile)
    before = snapshot.take()
    env = {"PATH": "/usr/bin:/bin", "CHATVLM_CONFIG": str(profile), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "cli.py", "ocr", "--format", "json", *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc, results, new_files(before, snapshot.take())


def cli_path(case: Case, inputs: Path) -> Path:
    """Where the case's file lives; hostile names become the paths a shell user could type."""
    if case.id == "name_300_chars":
        return inputs / case.filename  # too long to exist: the CLI must say it cannot read it
    if case.id in ("name_dotdot", "hostile_name_bad_bytes"):
        name = case.shown_name
        (inputs / name).write_bytes(case.data)
        return inputs / "sub" / ".." / name  # a path through '..'
    (inputs / case.filename).write_bytes(case.data)
    return inputs / case.filename


def cli_outcome(result: dict) -> Outcome:
    page_errors = [page["error"] for page in result["pages"] if page.get("error")]
    return Outcome(
        read=result["error"] is None and not page_errors,
        name=result["file"],
        messages=[m for m in [result["error"], *page_errors] if m],
        text="\n".join(page["text"] for page in result["pages"]),
    )


@pytest.mark.slow  # one batch through RapidOCR, shared by the module (~12 s)
@pytest.mark.parametrize("case_id", applicable("cli"))
def test_cli_ocr(case_id: str, cli_ocr) -> None:
    _, results, _ = cli_ocr
    case = BY_ID[case_id]
    by_name = {result["file"]: cli_outcome(result) for result in results}
    if case.id == "name_300_chars":
        outcome = by_name[case.shown_name]
        assert not outcome.read and "cannot read" in outcome.messages[0]
        assert "File name too long" in outcome.messages[0]
        return
    check_outcome(case, by_name.get(case.shown_name))


@pytest.mark.slow  # one batch through RapidOCR, shared by the module (~12 s)
def test_cli_ocr_reads_every_file_and_writes_only_data_folders(cli_ocr) -> None:
    proc, results, written = cli_ocr
    applicable_cases = [c for c in CASES if c.id not in NOT_APPLICABLE["cli"]]
    assert len(results) == len(applicable_cases) + 1, proc.stderr[-2000:]
    check_outcome(GOOD, cli_outcome(results[-1]))  # the files after the bad ones still work
    assert proc.returncode == 1  # some files failed
    assert "Traceback" not in proc.stderr
    assert written == {}


# --- a dataset folder, read by the benchmark runner --------------------------------------


DATASET_REFUSALS = {
    # The folder scan checks each image's structure without decoding it.
    "zero_bytes": ("unreadable image",),
    "text_named_png": ("unreadable image",),
    "bomb_30000px": ("too large",),
    # The header is fine: the page fails when the engine decodes it.
    "truncated_jpeg": ("truncated",),
    # Benchmarks read images only: a PDF is named as ignored.
    "pdf_encrypted": ("images only",),
    "pdf_0_pages": ("images only",),
    "pdf_500_pages": ("images only",),
}


@pytest.fixture(scope="module")
def dataset_run(tmp_path_factory: pytest.TempPathFactory):
    """A pairs folder holding every applicable case with a truth file, run with RapidOCR."""
    base = tmp_path_factory.mktemp("bad_input_dataset")
    profile = write_test_profile(base)
    folder = base / "set"
    folder.mkdir()
    for case in [c for c in CASES if c.id not in NOT_APPLICABLE["dataset"]] + [GOOD]:
        (folder / case.filename).write_bytes(case.data)
        truth = f"CODE {case.marker}" if case.marker else "UNKNOWN"
        (folder / case.filename).with_suffix(".txt").write_text(truth, encoding="utf-8")
    snapshot = snapshot_for(profile)
    before = snapshot.take()
    dataset = load_dataset(folder)
    outcome = run_benchmark(
        load_config(profile), BenchRequest(dataset=str(folder), engines=["rapidocr"])
    )
    records = read_items(base / "results", outcome.run_id).records
    return dataset, records, outcome, new_files(before, snapshot.take())


def dataset_outcome(case: Case, dataset, records) -> Outcome | None:
    stem = Path(case.filename).stem
    for problem in dataset.problems:
        if problem.startswith(case.filename + ":"):
            return Outcome(read=False, name=case.filename, messages=[problem])
    record = next((r for r in records if r.item_id == _item_id(stem)), None)
    if record is None:
        return None
    item = next(i for i in dataset.items if i.item_id == record.item_id)
    return Outcome(
        read=record.status == "ok",
        name=sanitize_filename(item.image.name),
        messages=[record.message or ""],
        text=record.prediction,
    )


def _item_id(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)


@pytest.mark.slow  # one batch through RapidOCR, shared by the module (~12 s)
@pytest.mark.parametrize("case_id", applicable("dataset"))
def test_dataset_folder_through_the_runner(case_id: str, dataset_run) -> None:
    dataset, records, _, _ = dataset_run
    case = BY_ID[case_id]
    refusal = DATASET_REFUSALS.get(case.id, ())
    expected = Case(case.id, case.filename, case.data, refusal, case.marker)
    check_outcome(expected, dataset_outcome(case, dataset, records))


@pytest.mark.slow  # one batch through RapidOCR, shared by the module (~12 s)
def test_dataset_run_completes_and_writes_only_data_folders(dataset_run) -> None:
    dataset, records, outcome, written = dataset_run
    assert outcome.status == "complete" and outcome.summary.complete
    assert len(records) == len(dataset.items)
    check_outcome(GOOD, dataset_outcome(GOOD, dataset, records))
    assert written == {}


# --- property tests: only BadInput escapes -----------------------------------------------

MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"%PDF-1.4\n", b"GIF89a", b"II*\x00", b"BM"]
FUZZ_LIMITS = DocumentLimits(max_megapixels=2, max_pages=20, max_side=500, pdf_dpi=72)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> ChatStore:
    return ChatStore(tmp_path_factory.mktemp("fuzz_chats"), FUZZ_LIMITS)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MAGICS), st.binary(max_size=512), st.text(max_size=300))
def test_chat_add_image_only_raises_bad_input(fuzz_store: ChatStore, magic, tail, name) -> None:
    try:
        stored = fuzz_store.images.add(magic + tail, name)
    except BadInput as error:
        assert sanitize_filename(name) in str(error)
        return
    assert stored.name == sanitize_filename(name)
    assert (fuzz_store.images.folder / stored.file_name).is_file()


@pytest.fixture(scope="module")
def fuzz_config(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("fuzz_ocr")
    upload = "\n".join(f"    {key}: {value}" for key, value in FUZZ_LIMITS.model_dump().items())
    return load_config(write_test_profile(base, f"  upload:\n{upload}\n")).config


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MAGICS), st.binary(max_size=512), st.text(max_size=300))
def test_ocr_file_returns_errors_instead_of_raising(fuzz_config, magic, tail, name) -> None:
    result = ocr_file(magic + tail, name, OcrSettings(engine="rapidocr"), fuzz_config)
    assert result.file == sanitize_filename(name)
    if result.error is not None:
        assert sanitize_filename(name) in result.error
    else:
        assert result.pages and all(p.status in ("ok", "blank", "error") for p in result.pages)


# --- OCR input that costs memory or time (issue 14) --------------------------------------


# `cli.py ocr` that reports its peak RSS last on stderr. Read from /proc in the process
# itself: a child's rusage also counts the parent's memory it shared before exec.
CLI_OCR_WITH_PEAK = """
import runpy, sys
sys.argv = ["cli.py", "ocr", "--format", "json", *sys.argv[1:]]
try:
    runpy.run_path("cli.py", run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        peak_kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print("peak_kb", peak_kb, file=sys.stderr)
"""


def run_cli_ocr_measuring_memory(profile: Path, paths: list[str]) -> tuple[list, int]:
    """`cli.py ocr --format json PATHS`: its results and its peak RSS in MB."""
    env = {"PATH": "/usr/bin:/bin", "CHATVLM_CONFIG": str(profile), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CLI_OCR_WITH_PEAK, *paths],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    peak_kb = int(proc.stderr.split("peak_kb")[-1])
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()], peak_kb // 1024


def test_cli_ocr_checks_the_size_before_reading_a_file(tmp_path: Path) -> None:
    profile = write_test_profile(tmp_path)
    limit = load_config(profile).config.app.upload.max_file_mb
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:
        handle.truncate(3 * 1024**3)  # sparse: 3 GB that take no disk space
    results, peak_mb = run_cli_ocr_measuring_memory(profile, [str(huge), "/dev/zero"])
    errors = {result["file"]: result["error"] for result in results}
    assert f"huge.png is 3072.0 MB, over the limit of {limit:g} MB" in errors["huge.png"]
    assert f"zero is over the limit of {limit:g} MB" in errors["zero"]
    # Before the fix: 6.3 GB for the sparse file, a MemoryError for /dev/zero.
    assert peak_mb < 400, peak_mb


@pytest.mark.parametrize("magic", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\x00"])
def test_ocr_unreadable_image_error_names_the_file_not_a_buffer(fuzz_config, magic) -> None:
    name = "../scans/\u202ebad\x00scan.png"
    result = ocr_file(
        magic + b" no picture here", name, OcrSettings(engine="rapidocr"), fuzz_config
    )
    assert result.error and result.error.startswith(sanitize_filename(name))
    assert "BytesIO" not in result.error and " at 0x" not in result.error


class SlowBlankEngine:
    """An engine that finds nothing on a page, taking ``seconds`` to do so."""

    name = "slow_blank"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def ocr(self, image: Image.Image) -> OcrResult:
        time.sleep(self.seconds)
        return OcrResult(engine=self.name, width=image.width, height=image.height)


def test_ocr_of_a_long_blank_pdf_stops_at_its_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_test_profile(tmp_path, "ocr:\n  file_time_budget_s: 0.5\n")).config
    monkeypatch.setattr(ocr_pipeline, "create_ocr_engine", lambda *_, **__: SlowBlankEngine(0.2))
    cache = DiskCache(config.cache_dir, max_mb=16)
    data, settings = pdf_with_empty_pages(20), OcrSettings(engine="rapidocr")

    result = ocr_file(data, "blank.pdf", settings, config, cache)

    stop = re.fullmatch(
        r"blank\.pdf stopped after \d+ s at page (\d+) of 20: over the time budget of 0\.5 s "
        r"\(ocr\.file_time_budget_s in the profile\); the (\d+ pages|page) read before it "
        r"(are|is) kept\.",
        result.error or "",
    )
    assert stop, result.error
    assert 1 <= len(result.pages) < 20 and int(stop.group(1)) == len(result.pages) + 1
    assert all(page.status == "blank" for page in result.pages)  # the pages read are kept
    assert not ocr_file(data, "blank.pdf", settings, config, cache).from_cache  # partial


def test_ocr_page_stops_a_batch_at_its_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = write_test_profile(tmp_path, "ocr:\n  batch_time_budget_s: 0.3\n")
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    # The page script runs in this process, so it reads pages with this engine.
    monkeypatch.setattr(ocr_pipeline, "create_ocr_engine", lambda *_, **__: SlowBlankEngine(0.5))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/ocr.py").run()
    files = [Case("one", "one.png", png_with("1")), Case("two", "two.png", png_with("2"))]
    outcomes = upload_and_run(at, files)

    assert "one.png" in outcomes and "two.png" not in outcomes  # two.png never started
    warnings = [shown(warning.value) for warning in at.warning]
    assert any("The batch stopped after" in w and "at file 2 of 2" in w for w in warnings)
    assert any("ocr.batch_time_budget_s" in w for w in warnings)
    (saved,) = (tmp_path / "results" / "ocr").glob("*.json")
    assert [doc["file"] for doc in json.loads(saved.read_text(encoding="utf-8"))["documents"]] == [
        "one.png"
    ]


# --- hostile profiles at start-up (issue 14) ---------------------------------------------
# The same files go through load_config and `cli.py config check` in tests/test_config.py.


@pytest.mark.parametrize("case", HOSTILE_PROFILES, ids=[case.id for case in HOSTILE_PROFILES])
def test_app_start_shows_a_hostile_profile_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: HostileProfile
) -> None:
    monkeypatch.setenv("CHATVLM_CONFIG", str(case.write(tmp_path)))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("could not be loaded" in e.value for e in at.error)
    shown = "\n".join(block.value for block in at.code)
    assert all(fragment in shown for fragment in case.expected), shown
