"""VlmOcrEngine: a chat model as an OCR engine, tested against a scripted fake backend."""

from __future__ import annotations

import importlib.util
import threading

import pytest
from PIL import Image

from models.chat.types import GenerationParams, PromptMessage, Usage
from models.config import ModelEntry, RuntimeSettings
from models.ocr.base import OcrEngine, OcrResult
from models.ocr.vlm import (
    CONFIDENCE_NOT_MEASURED,
    PRESETS,
    VlmOcrEngine,
    describe_field,
    parse_json_object,
    preset_prompt,
    strip_code_fence,
)
from models.templates import FieldSpec, TemplateSpec, builtin_templates
from utils.errors import BadInput, GenerationError


class FakeStream:
    """Yields scripted chunks, then raises ``failure`` if one is set (like a real stream)."""

    def __init__(self, chunks: list[str], failure: GenerationError | None) -> None:
        self.chunks = chunks
        self.failure = failure
        self.usage = Usage(model_id="fake", backend="fake")

    def __iter__(self):
        yield from self.chunks
        self.usage.completion_tokens = len(self.chunks)
        self.usage.seconds = 0.5
        if self.failure is not None:
            self.usage.error = self.failure.message
            raise self.failure


class FakeBackend:
    """A ChatBackend with no model: answers with scripted chunks, records what it got."""

    backend = "fake"

    def __init__(self, chunks: list[str], failure: GenerationError | None = None) -> None:
        self.model_id = "fake-vlm"
        self.chunks = chunks
        self.failure = failure
        self.calls: list[tuple[list[PromptMessage], GenerationParams]] = []

    def stream(
        self,
        messages: list[PromptMessage],
        params: GenerationParams,
        stop: threading.Event | None = None,
    ) -> FakeStream:
        self.calls.append((messages, params))
        return FakeStream(self.chunks, self.failure)


def make_entry(**overrides) -> ModelEntry:
    fields = {
        "display_name": "Fake VLM",
        "backend": "transformers",
        "task": "both",
        "source": "fake/fake-vlm",
        "max_new_tokens": 77,
    }
    return ModelEntry(**{**fields, **overrides})


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return Image.new("RGB", (120, 80), "white")


def engine_answering(chunks: list[str], preset: str = "text", **entry_fields) -> VlmOcrEngine:
    return VlmOcrEngine("fake_vlm", FakeBackend(chunks), make_entry(**entry_fields), preset)


def sent_message(engine: VlmOcrEngine) -> PromptMessage:
    messages, _ = engine.backend.calls[-1]
    assert len(messages) == 1
    return messages[0]


# --------------------------------------------------------------------------- ocr


def test_ocr_returns_lines_in_model_order_without_boxes(page):
    engine = engine_answering(["TOTAL 12", ".50\n\n  Thank", " you  \nDate 1/2/2024\n"])
    result = engine.ocr(page)
    assert isinstance(engine, OcrEngine)
    assert result.engine == "vlm:fake_vlm"
    assert [line.text for line in result.lines] == ["TOTAL 12.50", "Thank you", "Date 1/2/2024"]
    assert all(line.box is None for line in result.lines)
    assert all(line.confidence == CONFIDENCE_NOT_MEASURED for line in result.lines)
    assert not result.has_boxes
    assert result.markdown is None
    assert (result.width, result.height) == (120, 80)


def test_ocr_sends_image_and_preset_prompt_greedy_with_entry_limit(page):
    engine = engine_answering(["x"])
    engine.ocr(page)
    messages, params = engine.backend.calls[-1]
    message = messages[0]
    assert message.role == "user"
    assert message.images == [page]
    assert message.text == PRESETS["text"]
    assert params.greedy and params.max_new_tokens == 77


def test_ocr_records_model_preset_and_usage_in_settings(page):
    result = engine_answering(["a", "b"], preset="markdown").ocr(page)
    assert result.settings["model"] == "fake_vlm"
    assert result.settings["preset"] == "markdown"
    assert result.settings["confidence"] == "not measured"
    assert result.settings["usage"]["completion_tokens"] == 2
    assert result.settings["usage"]["seconds"] == 0.5


def test_markdown_preset_keeps_the_models_markdown_without_its_fence(page):
    answer = "```markdown\n# Receipt\n\n| item | price |\n|---|---|\n| tea | 2.00 |\n```"
    result = engine_answering([answer], preset="markdown").ocr(page)
    assert result.markdown == "# Receipt\n\n| item | price |\n|---|---|\n| tea | 2.00 |"
    assert result.lines[0].text == "# Receipt"
    assert len(result.lines) == 4


def test_table_preset_sends_the_table_prompt(page):
    engine = engine_answering(["| a |\n|---|\n| 1 |"], preset="table")
    result = engine.ocr(page)
    assert sent_message(engine).text == PRESETS["table"]
    assert result.markdown == "| a |\n|---|\n| 1 |"


def test_blank_answer_gives_zero_lines(page):
    result = engine_answering(["  \n", "\n\n"]).ocr(page)
    assert result.lines == []
    assert result.text == ""


def test_fenced_text_answer_loses_only_the_fence(page):
    result = engine_answering(["```\nline one\n```\n"]).ocr(page)
    assert [line.text for line in result.lines] == ["line one"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("```json\n{}\n```", "{}"),
        ("```\nA\nB", "A\nB"),  # closing fence cut off by max_new_tokens
        ("no fence", "no fence"),
        ("text\n```\ncode\n```", "text\n```\ncode\n```"),  # inner fence stays
        ("```", ""),
    ],
)
def test_strip_code_fence(answer, expected):
    assert strip_code_fence(answer) == expected


def test_entry_prompts_override_the_default_preset(page):
    entry_prompts = {"text": "OCR this page, layout preserved."}
    engine = engine_answering(["x"], prompts=entry_prompts)
    engine.ocr(page)
    assert sent_message(engine).text == "OCR this page, layout preserved."
    assert preset_prompt(make_entry(prompts=entry_prompts), "markdown") == PRESETS["markdown"]


def test_unknown_preset_is_refused_when_the_engine_is_made():
    with pytest.raises(BadInput, match="no OCR prompt preset 'poem'"):
        engine_answering([], preset="poem")
    custom = make_entry(prompts={"layout": "Give the layout."})
    assert preset_prompt(custom, "layout") == "Give the layout."


def test_got_ocr2_gets_the_image_without_a_chat_prompt(page):
    engine = engine_answering(["plain text"], ocr_style="got_ocr2")
    engine.ocr(page)
    assert sent_message(engine).content == [page]


def test_got_ocr2_markdown_preset_passes_the_text_for_formatted_mode(page):
    engine = engine_answering(["\\section{A}"], preset="markdown", ocr_style="got_ocr2")
    engine.ocr(page)
    assert sent_message(engine).content == [page, PRESETS["markdown"]]


def test_non_rgb_image_is_converted_before_sending():
    engine = engine_answering(["x"])
    result = engine.ocr(Image.new("L", (30, 20), 255))
    sent = sent_message(engine).images[0]
    assert sent.mode == "RGB" and sent.size == (30, 20)
    assert (result.width, result.height) == (30, 20)


def test_generation_error_mid_stream_propagates(page):
    failure = GenerationError("CUDA out of memory", hint="use a smaller model")
    backend = FakeBackend(["partial te"], failure=failure)
    engine = VlmOcrEngine("fake_vlm", backend, make_entry())
    with pytest.raises(GenerationError, match="CUDA out of memory"):
        engine.ocr(page)


def test_explicit_params_win_over_the_entry_defaults(page):
    params = GenerationParams(max_new_tokens=5, temperature=0.7)
    engine = VlmOcrEngine("fake_vlm", FakeBackend(["x"]), make_entry(), params=params)
    engine.ocr(page)
    assert engine.backend.calls[-1][1] == params


# --------------------------------------------------------------------------- templates

TEMPLATE = TemplateSpec(
    description="Shop receipt.",
    fields={
        "company": FieldSpec(kind="company"),
        "date": FieldSpec(kind="date", keywords=["DATE"]),
        "total": FieldSpec(kind="amount", keywords=["TOTAL", "GRAND TOTAL"], pick="last"),
    },
)


def fill(answer: str, template: TemplateSpec = TEMPLATE):
    engine = engine_answering([answer])
    return engine, engine.fill_template(Image.new("RGB", (50, 50)), "receipt", template)


def test_fill_template_prompt_lists_every_field_with_a_description():
    engine, _ = fill('{"company": "A", "date": "B", "total": "C"}')
    prompt = sent_message(engine).text
    assert prompt.startswith(PRESETS["json_template"].split("{fields}")[0])
    assert "{fields}" not in prompt
    assert "Shop receipt." in prompt
    assert '- total: the money amount labelled e.g. "TOTAL", "GRAND TOTAL"' in prompt
    assert "(the last one on the page)" in prompt
    for name in TEMPLATE.fields:
        assert f"- {name}: " in prompt
    assert len(sent_message(engine).images) == 1


def test_fill_template_parses_good_json():
    _, fields = fill('{"company": "KEDAI ABC", "date": "01/02/2024", "total": "RM 12.50"}')
    assert list(fields) == ["company", "date", "total"]
    assert fields["company"].value == "KEDAI ABC"
    assert fields["total"].value == "RM 12.50"
    assert fields["total"].confidence == CONFIDENCE_NOT_MEASURED
    assert fields["total"].note.startswith("from model JSON")
    assert fields["total"].line is None


@pytest.mark.parametrize(
    "answer",
    [
        '```json\n{"company": "X", "date": null, "total": "9"}\n```',
        'Here is the JSON you asked for:\n```json\n{"company": "X", "total": "9"}\n```\nDone.',
        'Sure! {"company": "X", "total": "9", "date": ""} Hope this helps.',
    ],
)
def test_fill_template_finds_the_object_inside_fences_and_prose(answer):
    _, fields = fill(answer)
    assert fields["company"].value == "X"
    assert fields["total"].value == "9"
    assert fields["date"].value is None and fields["date"].confidence == 0.0


def test_fill_template_missing_keys_are_none_and_extra_keys_dropped():
    _, fields = fill('{"company": "X", "cashier": "Ali", "tip": 3}')
    assert set(fields) == {"company", "date", "total"}
    assert fields["date"].value is None
    assert fields["total"].value is None


def test_fill_template_coerces_values_to_text():
    _, fields = fill('{"company": ["KEDAI", "ABC"], "date": 20240102, "total": 12.5}')
    assert fields["company"].value == "KEDAI ABC"
    assert fields["date"].value == "20240102"
    assert fields["total"].value == "12.5"
    assert all(isinstance(f.value, str) for f in fields.values())


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("I cannot read this receipt.", "no JSON object"),
        ('{"company": "X", "total": }', "syntax error"),
        ('{"company": "X", "total": "9"', "syntax error"),  # cut off by max_new_tokens
        ('["X", "9"]', "expected a JSON object, got list"),
        ("", "the answer is empty"),
    ],
)
def test_fill_template_broken_json_raises_with_the_raw_start(answer, reason):
    with pytest.raises(GenerationError) as caught:
        fill(answer)
    error = caught.value
    assert error.message.startswith("fake_vlm returned JSON that could not be parsed")
    assert reason in error.message
    assert "larger max_new_tokens" in error.hint
    assert repr(answer[:200]) in error.hint


def test_raw_answer_in_the_hint_is_cut_to_200_characters():
    answer = "x" * 500
    with pytest.raises(GenerationError) as caught:
        parse_json_object(answer, "m")
    assert repr("x" * 200) in caught.value.hint
    assert "x" * 201 not in caught.value.hint


def test_fill_template_uses_the_entrys_json_prompt_override():
    override = "Return JSON for: {fields}"
    engine = engine_answering(['{"company": "X"}'], prompts={"json_template": override})
    engine.fill_template(Image.new("RGB", (50, 50)), "receipt", TEMPLATE)
    prompt = sent_message(engine).text
    assert prompt.startswith("Return JSON for: (document type: Shop receipt.)")


def test_fill_template_refused_for_got_ocr2():
    engine = engine_answering(["{}"], ocr_style="got_ocr2")
    with pytest.raises(BadInput, match="cannot fill a template"):
        engine.fill_template(Image.new("RGB", (50, 50)), "receipt", TEMPLATE)
    assert engine.backend.calls == []


def test_every_builtin_field_gets_a_description():
    for template in builtin_templates().values():
        for name, spec in template.fields.items():
            description = describe_field(name, spec)
            assert description and "\n" not in description
    passport = builtin_templates()["passport"].fields
    assert "birth date" in describe_field("birth_date", passport["birth_date"])


# --------------------------------------------------------------------------- tiny real models


@pytest.fixture(scope="module")
def tiny_vlms(tmp_path_factory: pytest.TempPathFactory):
    """Tiny random-weight checkpoints from the shared helper (skipped while it is missing)."""
    if importlib.util.find_spec("testkit.tiny_vlms") is None:
        pytest.skip("testkit/tiny_vlms.py is not there yet")
    pytest.importorskip("transformers")
    from testkit.tiny_vlms import TinyVlmFolders

    return TinyVlmFolders(tmp_path_factory.mktemp("tiny_vlms"))


def ocr_with_tiny_model(tiny_vlms, family: str, preset: str, **fields) -> OcrResult:
    from models.chat.hf_loading import backend_key, load_backend
    from models.runtime.manager import get_manager

    entry = make_entry(
        source=str(tiny_vlms(family)), device_map="cpu", dtype="float32", max_new_tokens=8, **fields
    )
    runtime = RuntimeSettings()
    backend = load_backend(f"tiny_{family}", entry, runtime)
    try:
        engine = VlmOcrEngine(f"tiny_{family}", backend, entry, preset)
        return engine.ocr(Image.new("RGB", (64, 48), "white"))
    finally:
        get_manager(runtime).unload(backend_key(f"tiny_{family}", entry))


def assert_mechanics(result: OcrResult, engine_name: str) -> None:
    """Random weights write random text: only the shape of the result is checked."""
    assert isinstance(result, OcrResult)
    assert result.engine == engine_name
    assert all(line.box is None and line.text.strip() for line in result.lines)
    assert result.settings["usage"]["completion_tokens"] >= 1
    assert result.settings["usage"]["error"] is None


@pytest.mark.slow
def test_tiny_qwen2_vl_reads_a_page_through_the_transformers_backend(tiny_vlms):
    result = ocr_with_tiny_model(tiny_vlms, "qwen2_vl", "text", max_pixels=3136)
    assert_mechanics(result, "vlm:tiny_qwen2_vl")
    assert result.markdown is None


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["text", "markdown"])
def test_tiny_got_ocr2_reads_a_page_in_plain_and_formatted_mode(tiny_vlms, preset):
    result = ocr_with_tiny_model(tiny_vlms, "got_ocr2", preset, ocr_style="got_ocr2", task="ocr")
    assert_mechanics(result, "vlm:tiny_got_ocr2")
    assert (result.markdown is not None) == (preset == "markdown")
