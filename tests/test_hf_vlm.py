"""The transformers backend on tiny random-weight models of each supported family.

The models answer noise; the tests check mechanics: prompts carry the right
image tokens, usage adds up, stop / failure / sharing behave, nothing leaves
the machine (HF_HUB_OFFLINE=1 is set by conftest).
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from models.chat.hf_backend import HFVisionBackend, generation_kwargs
from models.chat.hf_loading import LoadPlan, backend_key, load_backend, model_load_kwargs, plan_load
from models.chat.hf_stream import ChunkCoalescer, counting_streamer_class
from models.chat.types import GenerationParams, PromptMessage
from models.config import ModelEntry, RuntimeSettings
from testkit.tiny_vlms import TinyVlmFolders
from utils.errors import BadInput, GenerationError, ModelUnavailable

pytest.importorskip("transformers")

RUNTIME = RuntimeSettings(max_loaded_models=3)
CHAT_FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3"]
SHORT = GenerationParams(max_new_tokens=12)


@pytest.fixture(scope="session")
def tiny_vlms(tmp_path_factory: pytest.TempPathFactory) -> TinyVlmFolders:
    return TinyVlmFolders(tmp_path_factory.mktemp("tiny_vlms"))


def make_entry(folder: Path, **fields: Any) -> ModelEntry:
    fields.setdefault("task", "both")
    return ModelEntry(
        display_name=folder.name, backend="transformers", source=str(folder), **fields
    )


def backend_for(tiny_vlms: TinyVlmFolders, family: str, **fields: Any) -> HFVisionBackend:
    if family == "got_ocr2":
        fields.setdefault("ocr_style", "got_ocr2")
    return load_backend(family, make_entry(tiny_vlms(family), **fields), RUNTIME)


def page(width: int = 100, height: int = 80, color: tuple[int, int, int] = (200, 20, 20)):
    return Image.new("RGB", (width, height), color)


def run(backend: HFVisionBackend, messages: list[PromptMessage], params=SHORT):
    stream = backend.stream(messages, params)
    chunks = list(stream)
    return chunks, stream.usage


def image_token_count(backend: HFVisionBackend, messages: list[PromptMessage]) -> int:
    input_ids = backend.prepare_inputs(messages)["input_ids"][0].tolist()
    return input_ids.count(backend.processor.image_token_id)


# --- every family ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", [*CHAT_FAMILIES, "got_ocr2"])
def test_each_family_streams_with_consistent_usage(tiny_vlms, family):
    backend = backend_for(tiny_vlms, family)
    image = page()
    # GOT-OCR2 reads an image-only message; chat models get a question with it.
    content = [image] if family == "got_ocr2" else [image, "What is written here?"]

    chunks, usage = run(backend, [PromptMessage("user", content)])

    assert backend.backend == "transformers"
    assert chunks and all(chunks)
    assert usage.error is None and not usage.stopped
    assert len(chunks) <= usage.completion_tokens <= SHORT.max_new_tokens
    assert usage.prompt_tokens > image_token_count(backend, [PromptMessage("user", content)]) > 0
    assert (usage.images, usage.image_pixels) == (1, 100 * 80)
    assert 0 < usage.first_token_seconds <= usage.seconds


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_an_image_adds_prompt_tokens(tiny_vlms, family):
    backend = backend_for(tiny_vlms, family)
    text_only = [PromptMessage("user", ["Describe it."])]
    with_image = [PromptMessage("user", [page(), "Describe it."])]

    _, text_usage = run(backend, text_only, GenerationParams(max_new_tokens=1))
    _, image_usage = run(backend, with_image, GenerationParams(max_new_tokens=1))

    added = image_token_count(backend, with_image)
    assert image_token_count(backend, text_only) == 0 and added > 0
    assert image_usage.prompt_tokens >= text_usage.prompt_tokens + added
    assert (text_usage.images, text_usage.image_pixels) == (0, 0)


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_two_images_in_one_turn(tiny_vlms, family):
    backend = backend_for(tiny_vlms, family)
    first, second = page(100, 80), page(60, 120, (20, 20, 200))
    one_each = [
        image_token_count(backend, [PromptMessage("user", [image, "Compare."])])
        for image in (first, second)
    ]
    both = [PromptMessage("user", [first, second, "Compare."])]

    chunks, usage = run(backend, both)

    assert image_token_count(backend, both) == sum(one_each)
    assert (usage.images, usage.image_pixels) == (2, 100 * 80 + 60 * 120)
    assert chunks and usage.error is None


def test_a_later_turn_still_sees_the_first_image(tiny_vlms):
    backend = backend_for(tiny_vlms, "qwen2_vl")
    first_turn = [PromptMessage("user", [page(), "What is this?"])]
    answer, first_usage = run(backend, first_turn)
    second_turn = [
        *first_turn,
        PromptMessage("assistant", ["".join(answer)]),
        PromptMessage("user", ["And the total?"]),
    ]

    _, second_usage = run(backend, second_turn)

    assert image_token_count(backend, second_turn) == image_token_count(backend, first_turn)
    assert second_usage.prompt_tokens > first_usage.prompt_tokens
    assert second_usage.images == 1


# --- pixel budget ---------------------------------------------------------------------------


def test_max_pixels_shrinks_the_image_tokens_of_qwen(tiny_vlms):
    messages = [PromptMessage("user", [page(400, 300), "Read it."])]
    default = image_token_count(backend_for(tiny_vlms, "qwen2_vl"), messages)
    budget = 28 * 28 * 4  # at most 4 visual tokens (one per 28x28 px)
    capped = backend_for(tiny_vlms, "qwen2_vl", max_pixels=budget)

    assert capped.processor.image_processor.size.longest_edge == budget
    assert 0 < image_token_count(capped, messages) <= 4 < default


def test_pixel_budget_is_ignored_by_families_without_one(tiny_vlms):
    backend = backend_for(tiny_vlms, "idefics3", min_pixels=1000, max_pixels=20_000)
    chunks, usage = run(backend, [PromptMessage("user", [page(), "Read it."])])
    assert chunks and usage.error is None


# --- stop, abandon, failure -----------------------------------------------------------------


def test_stop_event_ends_the_answer_early_and_keeps_the_partial_text(tiny_vlms):
    backend = backend_for(tiny_vlms, "qwen2_vl")
    stop = threading.Event()
    params = GenerationParams(max_new_tokens=400)
    stream = backend.stream([PromptMessage("user", [page(), "Write a long story."])], params, stop)

    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        stop.set()

    assert chunks and "".join(chunks).strip()
    assert stream.usage.stopped is True
    assert 0 < stream.usage.completion_tokens < params.max_new_tokens
    assert stream.usage.error is None


def test_leaving_the_loop_early_stops_generation_and_frees_the_model(tiny_vlms, monkeypatch):
    backend = backend_for(tiny_vlms, "qwen2_vl")
    generated: list[int] = []
    original = backend.model.generate

    def measured_generate(**kwargs):
        output = original(**kwargs)
        generated.append(output.shape[-1] - kwargs["input_ids"].shape[-1])
        return output

    monkeypatch.setattr(backend.model, "generate", measured_generate)
    stream = backend.stream(
        [PromptMessage("user", [page(), "Write a long story."])],
        GenerationParams(max_new_tokens=400),
    )
    for _ in stream:
        break

    # The worker sees the abandon flag at its next token and releases the lock.
    assert backend.generate_lock.acquire(timeout=30)
    backend.generate_lock.release()
    assert generated and generated[0] < 400
    assert stream.usage.stopped is False


def test_a_stop_requested_before_the_start_generates_nothing(tiny_vlms):
    backend = backend_for(tiny_vlms, "qwen2_vl")
    stop = threading.Event()
    stop.set()
    stream = backend.stream([PromptMessage("user", ["Hello"])], SHORT, stop)

    assert list(stream) == []
    assert stream.usage.stopped is True and stream.usage.completion_tokens == 0


class PythonOnlyTokenizer:
    """A tokenizer without a Rust backend: the streamer falls back to re-decoding."""

    def __init__(self, tokenizer: Any) -> None:
        self.decode = tokenizer.decode


@pytest.mark.parametrize("rust", [True, False], ids=["incremental", "fallback"])
def test_the_streamer_counts_every_generated_id_and_decodes_them_all(tiny_vlms, rust):
    import torch

    tokenizer = backend_for(tiny_vlms, "qwen2_vl").processor.tokenizer
    ids = tokenizer.encode("total amount\n<|im_end|>paid 12.50 ", add_special_tokens=False)
    streamer = counting_streamer_class()(
        tokenizer if rust else PythonOnlyTokenizer(tokenizer), chunk_interval=0.0
    )

    streamer.put(torch.tensor([[5, 6, 7]]))  # the prompt: skipped
    for token_id in ids:
        streamer.put(torch.tensor([token_id]))
    streamer.end()
    streamer.end()  # the worker may end it again after generate did

    assert streamer.generated_tokens == len(ids)
    assert "".join(streamer) == tokenizer.decode(ids, skip_special_tokens=True)
    assert streamer.text_queue.empty()  # one stop signal, consumed above


def test_chunks_are_coalesced_but_the_first_goes_out_at_once():
    emitted: list[str] = []
    chunks = ChunkCoalescer(emitted.append, interval=3600)

    for piece in ["a", "b", "", "c"]:
        chunks.add(piece)
    assert emitted == ["a"]
    chunks.flush()
    assert emitted == ["a", "bc"]


def fake_generate(tokenizer: Any, text: str, error: BaseException):
    """A ``generate`` that streams ``text`` token by token, then fails with ``error``."""
    import torch

    token_ids = tokenizer.encode(text, add_special_tokens=False)

    def generate(*, input_ids, streamer, **kwargs):
        streamer.put(input_ids)  # the prompt, as transformers sends it first
        for token_id in token_ids:
            streamer.put(torch.tensor([token_id]))
        raise error

    return generate, len(token_ids)


def test_a_worker_failure_surfaces_after_the_partial_chunks(tiny_vlms, monkeypatch):
    backend = backend_for(tiny_vlms, "qwen2_vl")
    generate, sent = fake_generate(
        backend.processor.tokenizer, "total amount paid\n", RuntimeError("kernel exploded")
    )
    monkeypatch.setattr(backend.model, "generate", generate)
    stream = backend.stream([PromptMessage("user", [page(), "Read it."])], SHORT)

    chunks = []
    with pytest.raises(GenerationError, match="kernel exploded"):
        for chunk in stream:
            chunks.append(chunk)

    assert "".join(chunks) == "total amount paid\n"
    assert stream.usage.completion_tokens == sent
    assert "kernel exploded" in stream.usage.error


def test_out_of_memory_unloads_the_model_and_says_so(tiny_vlms):
    import torch

    from models.runtime.manager import get_manager

    entry = make_entry(tiny_vlms("qwen2_vl"))
    backend = load_backend("oom_victim", entry, RUNTIME)
    key = backend_key("oom_victim", entry)
    generate, _ = fake_generate(
        backend.processor.tokenizer, "partial ", torch.OutOfMemoryError("CUDA out of memory")
    )
    # Set directly (not monkeypatch, which would keep the model alive to restore it).
    backend.model.generate = generate
    weights = weakref.ref(backend.model)
    stream = backend.stream([PromptMessage("user", [page(), "Read it."])], SHORT)

    with pytest.raises(GenerationError) as raised:
        list(stream)

    assert "unloaded" in raised.value.hint
    assert stream.usage.error
    assert key not in {info.key for info in get_manager(RUNTIME).loaded()}
    gc.collect()
    assert weights() is None  # nothing (no traceback frame) keeps the weights in memory
    with pytest.raises(ModelUnavailable, match="unloaded"):
        backend.stream([PromptMessage("user", ["again"])], SHORT)
    assert load_backend("oom_victim", entry, RUNTIME) is not backend  # reloads on demand


# --- sharing and concurrency ----------------------------------------------------------------


def test_the_same_entry_shares_one_backend_and_threads_queue(tiny_vlms, monkeypatch):
    entry = make_entry(tiny_vlms("qwen2_5_vl"))
    backend = load_backend("shared", entry, RUNTIME)
    assert load_backend("shared", entry, RUNTIME) is backend

    spans: list[tuple[float, float]] = []
    original = backend.model.generate

    def timed_generate(**kwargs):
        started = time.perf_counter()
        try:
            return original(**kwargs)
        finally:
            spans.append((started, time.perf_counter()))

    monkeypatch.setattr(backend.model, "generate", timed_generate)
    results: dict[int, Any] = {}

    def answer(index: int) -> None:
        stream = backend.stream([PromptMessage("user", [page(), f"Question {index}"])], SHORT)
        results[index] = ("".join(stream), stream.usage)

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == [0, 1]
    assert all(usage.error is None and usage.completion_tokens > 0 for _, usage in results.values())
    first, second = sorted(spans)
    assert first[1] <= second[0]  # one generate at a time per model


def test_generation_defaults_change_without_a_reload(tiny_vlms):
    folder = tiny_vlms("qwen2_vl")
    backend = load_backend("defaults", make_entry(folder, max_new_tokens=5), RUNTIME)
    again = load_backend("defaults", make_entry(folder, max_new_tokens=3), RUNTIME)

    _, usage = run(again, [PromptMessage("user", ["Hello"])], GenerationParams())

    assert again is backend and backend.entry.max_new_tokens == 3
    assert usage.completion_tokens <= 3


# --- GOT-OCR2 -------------------------------------------------------------------------------


def test_got_ocr2_formatted_mode_and_pages(tiny_vlms):
    backend = backend_for(tiny_vlms, "got_ocr2")
    plain = backend.prepare_inputs([PromptMessage("user", [page()])])
    formatted = backend.prepare_inputs([PromptMessage("user", [page(), "as Markdown"])])
    decode = backend.processor.tokenizer.decode

    assert "OCR with format" in decode(formatted["input_ids"][0])
    assert "OCR with format" not in decode(plain["input_ids"][0])
    # Earlier turns are not part of a GOT-OCR2 prompt; several images are pages.
    history = [
        PromptMessage("user", [page(), page()]),
        PromptMessage("assistant", ["old text"]),
        PromptMessage("user", [page(), page(60, 60)]),
    ]
    chunks, usage = run(backend, history)
    assert image_token_count(backend, history) == 2 * image_token_count(
        backend, [PromptMessage("user", [page()])]
    )
    assert chunks and (usage.images, usage.image_pixels) == (2, 100 * 80 + 60 * 60)


def test_got_ocr2_needs_an_image_in_the_last_message(tiny_vlms):
    backend = backend_for(tiny_vlms, "got_ocr2")
    with pytest.raises(BadInput, match="only reads images"):
        backend.stream([PromptMessage("user", [page()]), PromptMessage("user", ["hi"])], SHORT)


# --- loading --------------------------------------------------------------------------------


def test_a_missing_model_names_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    entry = ModelEntry(
        display_name="Missing", backend="transformers", task="chat", source="acme/not-here-vl"
    )
    with pytest.raises(ModelUnavailable) as raised:
        load_backend("missing", entry, RUNTIME)
    assert "python cli.py models download acme/not-here-vl" in raised.value.hint

    with pytest.raises(ModelUnavailable):
        load_backend("gone", make_entry(tmp_path / "no-such-folder"), RUNTIME)


def test_a_folder_that_is_not_a_checkpoint_is_unavailable(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "no_such_architecture"}')
    with pytest.raises(ModelUnavailable, match="cannot load"):
        load_backend("broken", make_entry(folder), RUNTIME)


def test_remote_code_is_trusted_only_when_the_entry_says_so(tiny_vlms, monkeypatch):
    import transformers

    seen: list[bool] = []
    for auto in (transformers.AutoProcessor, transformers.AutoModelForImageTextToText):
        original = auto.from_pretrained.__func__

        def spy(cls, *args, _original=original, **kwargs):
            seen.append(kwargs["trust_remote_code"])
            return _original(cls, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", classmethod(spy))
    folder = tiny_vlms("qwen3_vl")

    load_backend("remote_default", make_entry(folder), RUNTIME)
    load_backend("remote_on", make_entry(folder, trust_remote_code=True), RUNTIME)

    assert seen == [False, False, True, True]


def test_load_settings_follow_the_entry(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"text_config": {"dtype": "float16"}}')
    entry = make_entry(folder, attn_implementation="sdpa", quantization="4bit")

    plan = plan_load(entry, folder)
    kwargs = model_load_kwargs(entry, plan)

    assert plan == LoadPlan(device_map="cpu", dtype="float32", on_gpu=False)
    assert kwargs["dtype"] is torch.float32 and kwargs["local_files_only"] is True
    assert kwargs["attn_implementation"] == "sdpa" and kwargs["trust_remote_code"] is False
    quant = kwargs["quantization_config"]
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    (folder / "config.json").write_text('{"dtype": "bfloat16"}')
    assert plan_load(make_entry(folder), folder).dtype == "auto"
    assert plan_load(make_entry(folder, dtype="float16"), folder).dtype == "float16"


def test_generation_params_override_only_what_they_set(tmp_path):
    entry = make_entry(tmp_path, max_new_tokens=77, temperature=0.7, top_p=0.9)
    assert generation_kwargs(entry, GenerationParams()) == {
        "max_new_tokens": 77,
        "temperature": 0.7,
        "top_p": 0.9,
        "do_sample": True,
        "top_k": 0,
    }
    assert generation_kwargs(entry, GenerationParams(temperature=0, max_new_tokens=5)) == {
        "max_new_tokens": 5,
        "do_sample": False,
    }


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_bitsandbytes_quantized_loading_streams(tiny_vlms, quantization):
    pytest.importorskip("bitsandbytes")
    # 4-bit CPU kernels need layer widths that are multiples of 64.
    folder = tiny_vlms("qwen2_vl", vision_width=64)
    try:
        backend = load_backend(
            f"q{quantization}", make_entry(folder, quantization=quantization), RUNTIME
        )
    except ModelUnavailable as exc:
        pytest.skip(f"bitsandbytes cannot load {quantization} here: {exc}")
    layer_types = {type(module).__name__ for module in backend.model.modules()}

    chunks, usage = run(backend, [PromptMessage("user", [page(), "Read it."])])

    assert {"Linear4bit", "Linear8bitLt"} & layer_types
    assert usage.error is None and 0 < usage.completion_tokens <= SHORT.max_new_tokens
