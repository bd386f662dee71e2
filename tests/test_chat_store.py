"""Tests for utils/chat: conversations on disk, their images, export and import, and
writers sharing a conversation."""

from __future__ import annotations

import base64
import io
import json
import multiprocessing
import re
import struct
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image

from models.chat.types import GenerationParams, Usage
from utils.chat.conversation import (
    DEFAULT_TITLE,
    TITLE_MAX_CHARS,
    Conversation,
    StoredMessage,
    is_conversation_id,
    last_user_index,
    replace_last_question,
    truncate_for_regenerate,
)
from utils.chat.locks import conversation_lock_path
from utils.chat.prompt import to_prompt
from utils.chat.store import ChatStore
from utils.chat.transfer import (
    EXPORT_FORMAT,
    export_json,
    export_markdown,
    import_json,
    imported_title,
)
from utils.documents.limits import DocumentLimits
from utils.errors import BadInput, StorageError
from utils.storage import lock_path_for

PARAMS = GenerationParams(max_new_tokens=256, temperature=0.2, top_p=0.9)


# --------------------------------------------------------------------------- helpers


def png_bytes(color: tuple[int, ...] = (200, 30, 30), size: tuple[int, int] = (32, 24)) -> bytes:
    mode = "RGBA" if len(color) == 4 else "RGB"
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def rotated_jpeg_bytes() -> bytes:
    """A 40x20 JPEG whose EXIF says: turn 90° clockwise to view (orientation 6)."""
    image = Image.new("RGB", (40, 20), (10, 120, 240))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def bomb_png_bytes(width: int, height: int) -> bytes:
    """A small PNG whose header (with a valid CRC) claims ``width`` x ``height`` pixels."""
    data = bytearray(png_bytes(size=(8, 8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def pdf_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), "white").save(buffer, format="PDF")
    return buffer.getvalue()


def two_page_tiff_bytes() -> bytes:
    buffer = io.BytesIO()
    first, second = Image.new("RGB", (20, 20), "red"), Image.new("RGB", (20, 20), "blue")
    first.save(buffer, format="TIFF", save_all=True, append_images=[second])
    return buffer.getvalue()


def user(text: str, images: list | None = None) -> StoredMessage:
    return StoredMessage(role="user", text=text, images=images or [])


def answer(text: str, **extra: object) -> StoredMessage:
    usage = Usage(model_id="tiny", backend="transformers", completion_tokens=7, seconds=0.5)
    return StoredMessage(role="assistant", text=text, usage=usage, **extra)


def make_store(root: Path, **options: object) -> ChatStore:
    return ChatStore(root / "data" / "chats", DocumentLimits(), **options)


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    # No grace period, so a sweep removes unreferenced images at once.
    return make_store(tmp_path, image_sweep_grace_s=0)


@pytest.fixture
def conversation_with_images(store: ChatStore) -> Conversation:
    red = store.images.add(png_bytes(), "red square.png")
    again = store.images.add(png_bytes(), "same-bytes-other-name.png")
    conversation = store.new("tiny-qwen", PARAMS, system_prompt="You read receipts.")
    conversation.messages += [
        user("What is the total on this receipt?\nSecond line.", [red]),
        answer("The total is 12.50 EUR."),
        user("And in this one?", [again]),
        answer("It is the same receipt."),
    ]
    store.save(conversation)
    return conversation


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


# --------------------------------------------------------------------------- save / load


def test_new_conversation_is_written_only_on_save(store: ChatStore) -> None:
    conversation = store.new("m", PARAMS)
    assert is_conversation_id(conversation.id)
    assert conversation.title == DEFAULT_TITLE
    assert store.load(conversation.id) is None
    assert store.list() == []
    store.save(conversation)
    assert store.load(conversation.id) == conversation


def test_round_trip_stores_each_image_once_and_no_base64_in_json(
    store: ChatStore, conversation_with_images: Conversation
) -> None:
    loaded = store.load(conversation_with_images.id)
    assert loaded == conversation_with_images
    first, second = loaded.messages[0].images[0], loaded.messages[2].images[0]
    assert first.sha256 == second.sha256
    assert (first.name, second.name) == ("red square.png", "same-bytes-other-name.png")
    assert (first.ext, first.width, first.height) == ("png", 32, 24)
    image_files = [path for path in files_under(store.images.folder) if path.suffix != ".lock"]
    assert [path.name for path in image_files] == [f"{first.sha256}.png"]
    assert image_files[0].read_bytes() == png_bytes()

    text = (store.root / f"{loaded.id}.json").read_text(encoding="utf-8")
    assert base64.b64encode(png_bytes()).decode()[:24] not in text
    assert not re.search(r"[A-Za-z0-9+/=]{200,}", text)


def test_save_takes_the_title_from_the_first_question_and_updates_the_time(
    store: ChatStore, conversation_with_images: Conversation
) -> None:
    assert conversation_with_images.title == "What is the total on this receipt? Second line."
    before = conversation_with_images.updated_at
    conversation_with_images.messages.append(user("A new question that must not become the title"))
    store.save(conversation_with_images)
    assert conversation_with_images.updated_at > before
    assert store.load(conversation_with_images.id).title.startswith("What is the total")


def test_long_first_question_gives_a_short_title(store: ChatStore) -> None:
    conversation = store.new("m", PARAMS)
    conversation.messages.append(user("word " * 100))
    store.save(conversation)
    assert len(conversation.title) <= 60
    assert conversation.title.endswith("…")


def test_list_is_newest_first_and_sees_later_saves(store: ChatStore) -> None:
    first, second = store.new("a", PARAMS), store.new("b", PARAMS)
    first.messages += [user("first"), answer("ok")]
    store.save(first)
    second.messages.append(user("second"))
    store.save(second)
    listed = store.list()
    assert [summary.id for summary in listed] == [second.id, first.id]
    assert [summary.turns for summary in listed] == [1, 1]
    assert listed[1].title == "first" and listed[1].model_id == "a"

    first.messages.append(user("again"))
    store.save(first)
    listed = store.list()
    assert [summary.id for summary in listed] == [first.id, second.id]
    assert listed[0].turns == 2


def test_rename(store: ChatStore, conversation_with_images: Conversation) -> None:
    store.rename(conversation_with_images.id, "  Receipts\n\u202eMarch\t ")
    assert store.load(conversation_with_images.id).title == "Receipts March"
    assert store.list()[0].title == "Receipts March"
    with pytest.raises(BadInput, match="empty"):
        store.rename(conversation_with_images.id, " \u200f\n")
    with pytest.raises(StorageError, match="does not exist"):
        store.rename(store.new("m", PARAMS).id, "Title")


def test_two_tabs_saving_at_once_always_leave_a_whole_file(store: ChatStore) -> None:
    conversation = store.new("m", PARAMS)
    store.save(conversation)
    tab_copies = [conversation.model_copy(deep=True) for _ in range(2)]
    for number, copy in enumerate(tab_copies):
        copy.messages.append(user(f"tab {number} " + "x" * 20_000))
    failures: list[BaseException] = []

    def save_repeatedly(copy: Conversation) -> None:
        try:
            for _ in range(15):
                store.save(copy)
        except BaseException as exc:  # reported below; a thread's exception is lost otherwise
            failures.append(exc)

    writers = [threading.Thread(target=save_repeatedly, args=(copy,)) for copy in tab_copies]
    for writer in writers:
        writer.start()
    loads = 0
    while any(writer.is_alive() for writer in writers) or not loads:
        assert store.load(conversation.id) is not None
        loads += 1
    for writer in writers:
        writer.join()
    assert not failures
    final = store.load(conversation.id)
    assert final.messages[0].text in {copy.messages[0].text for copy in tab_copies}
    assert not list((store.root.parent / ".corrupt").glob("*"))


PROCESSES, TURNS = 4, 10


def _take_turns(root: Path, conversation_id: str, writer: int, start) -> None:
    """One `cli.py chat --conversation ID` after another: a question, then its answer."""
    store = ChatStore(root, DocumentLimits())
    conversation = store.load(conversation_id)  # read once, like a command or a tab
    start.wait(timeout=30)
    for turn in range(TURNS):
        store.append_messages(conversation, [user(f"w{writer} q{turn}")])
        store.append_messages(conversation, [answer(f"w{writer} a{turn}")])


def test_four_processes_taking_turns_at_once_lose_no_turn(store: ChatStore) -> None:
    conversation = store.new("m", PARAMS)
    conversation.messages.append(user("opening"))
    store.save(conversation)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(PROCESSES)
    writers = [
        context.Process(target=_take_turns, args=(store.root, conversation.id, n, start))
        for n in range(PROCESSES)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0] * PROCESSES

    texts = [message.text for message in store.load(conversation.id).messages]
    expected = {f"w{n} {kind}{t}" for n in range(PROCESSES) for t in range(TURNS) for kind in "qa"}
    assert texts[0] == "opening"
    assert sorted(texts[1:]) == sorted(expected)  # every turn on disk exactly once
    for n in range(PROCESSES):  # and each writer's turns in the order it took them
        own = [text for text in texts if text.startswith(f"w{n} ")]
        assert own == [f"w{n} {kind}{t}" for t in range(TURNS) for kind in "qa"]
    assert store.list()[0].turns == 1 + PROCESSES * TURNS


def test_a_turn_keeps_a_rename_made_elsewhere_and_the_callers_settings(store: ChatStore) -> None:
    conversation = store.new("m", PARAMS)
    conversation.messages.append(user("first question"))
    store.save(conversation)
    store.rename(conversation.id, "Renamed in another tab")
    conversation.model_id = "other-model"  # chosen in this tab's sidebar
    store.append_messages(conversation, [answer("ok")])
    saved = store.load(conversation.id)
    assert (saved.title, saved.model_id) == ("Renamed in another tab", "other-model")
    assert saved == conversation


def test_a_turn_reads_the_file_again_only_when_another_writer_changed_it(
    store: ChatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import utils.chat.store as store_module

    reads: list[Path] = []
    real_read = store_module.read_json_or_none
    monkeypatch.setattr(
        store_module,
        "read_json_or_none",
        lambda path, *rest: reads.append(path) or real_read(path, *rest),
    )
    conversation = store.new("m", PARAMS)
    store.append_messages(conversation, [user("q1")])  # not on disk yet: one look
    store.append_messages(conversation, [answer("a1")])  # the file this store wrote
    assert len(reads) == 1

    other_process = ChatStore(store.root, DocumentLimits())
    other_copy = other_process.load(conversation.id)
    other_process.append_messages(other_copy, [user("q2 from elsewhere")])
    reads.clear()
    store.append_messages(conversation, [answer("a2")])
    assert len(reads) == 1  # changed by someone else: read again, their turn kept
    texts = [m.text for m in store.load(conversation.id).messages]
    assert texts == ["q1", "a1", "q2 from elsewhere", "a2"]

    conversation.messages[0].text = "changed in memory only"  # never saved
    store.append_messages(conversation, [user("q3")])
    assert store.load(conversation.id).messages[0].text == "q1"


def test_appending_to_a_conversation_not_on_disk_writes_it_whole(store: ChatStore) -> None:
    conversation = store.new("m", PARAMS)
    store.append_messages(conversation, [user("Hello there")])
    saved = store.load(conversation.id)
    assert [m.text for m in saved.messages] == ["Hello there"]
    assert saved.title == "Hello there" and saved == conversation


# --------------------------------------------------------------------------- delete / sweep


def test_delete_sweeps_images_no_conversation_uses(store: ChatStore) -> None:
    shared = store.images.add(png_bytes((1, 2, 3)), "shared.png")
    only_a = store.images.add(png_bytes((4, 5, 6)), "only-a.png")
    chat_a, chat_b = store.new("m", PARAMS), store.new("m", PARAMS)
    chat_a.messages.append(user("a", [shared, only_a]))
    chat_b.messages.append(user("b", [shared]))
    store.save(chat_a)
    store.save(chat_b)

    assert store.delete(chat_a.id) is True
    assert store.load(chat_a.id) is None
    assert (store.images.folder / shared.file_name).exists()
    assert not (store.images.folder / only_a.file_name).exists()
    assert [summary.id for summary in store.list()] == [chat_b.id]

    assert store.delete(chat_b.id) is True
    assert not (store.images.folder / shared.file_name).exists()
    assert store.delete(chat_b.id) is False
    assert files_under(store.root) == []  # no lock files left behind either


def test_sweep_keeps_a_fresh_image_another_tab_has_not_saved_yet(tmp_path: Path) -> None:
    store = make_store(tmp_path)  # default grace period
    pending = store.images.add(png_bytes(), "attached in another tab.png")
    conversation = store.new("m", PARAMS)
    store.save(conversation)
    store.delete(conversation.id)
    assert (store.images.folder / pending.file_name).exists()


# --------------------------------------------------------------------------- corrupt files


def test_corrupt_conversation_is_moved_aside_and_skipped(
    store: ChatStore, conversation_with_images: Conversation
) -> None:
    broken = store.new("m", PARAMS)
    store.save(broken)
    path = store.root / f"{broken.id}.json"
    path.write_text('{"schema_version": 1, "id": "truncated', encoding="utf-8")

    assert [summary.id for summary in store.list()] == [conversation_with_images.id]
    assert not path.exists()
    moved = list((store.root.parent / ".corrupt").glob(f"{broken.id}.*.json"))
    assert len(moved) == 1
    assert store.load(broken.id) is None
    assert store.load(conversation_with_images.id) is not None


def test_load_takes_the_id_from_the_file_name(store: ChatStore) -> None:
    original = store.new("m", PARAMS)
    store.save(original)
    copy_id = store.new("m", PARAMS).id
    (store.root / f"{copy_id}.json").write_bytes((store.root / f"{original.id}.json").read_bytes())
    assert store.load(copy_id).id == copy_id


# --------------------------------------------------------------------------- hostile names

HOSTILE_IDS = [
    "../x",
    "../../etc/passwd",
    "20250101T000000-0123456789ab/../../x",
    "20250101T000000-0123456789ab\x00",
    "x" * 300,
    "\u202e20250101T000000-0123456789ab",
    "20250101T000000-0123456789AB",
    "",
]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
def test_hostile_ids_never_reach_a_path(store: ChatStore, tmp_path: Path, bad_id: str) -> None:
    assert not is_conversation_id(bad_id)
    conversation = store.new("m", PARAMS)
    conversation.id = bad_id  # assignment skips validation, as a careless caller's would
    for action in (
        lambda: store.load(bad_id),
        lambda: store.delete(bad_id),
        lambda: store.rename(bad_id, "t"),
        lambda: store.save(conversation),
    ):
        with pytest.raises(BadInput, match="not a conversation id"):
            action()
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    "filename",
    ["../x.png", "a\x00b.png", "x" * 300 + ".png", "\u202egnp.exe", "/etc/passwd", "..", ""],
)
def test_hostile_file_names_are_display_only(
    store: ChatStore, tmp_path: Path, filename: str
) -> None:
    image = store.images.add(png_bytes(), filename)
    assert not {"/", "\\", "\x00", "\u202e"} & set(image.name)
    assert 0 < len(image.name) <= 120 and not image.name.startswith(".")
    conversation = store.new("m", PARAMS)
    conversation.messages.append(user("look", [image]))
    store.save(conversation)
    expected = {
        store.root / f"{conversation.id}.json",
        lock_path_for(store.root / f"{conversation.id}.json"),
        store.images.folder / image.file_name,
        lock_path_for(store.images.folder / image.file_name),
        conversation_lock_path(store.root, conversation.id),
    }
    assert set(files_under(tmp_path)) == expected
    assert store.load(conversation.id).messages[0].images[0].name == image.name


# --------------------------------------------------------------------------- add_image


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (pdf_bytes(), "scan.pdf", "OCR page for PDFs"),
        (b"just some text, not a picture\n" * 10, "notes.png", "not an image"),
        (bomb_png_bytes(9_000, 9_000), "bomb.png", "megapixels"),  # over our 60 MP
        (bomb_png_bytes(30_000, 30_000), "bigger-bomb.png", "megapixels"),  # Pillow's guard
        (png_bytes()[:60], "cut.png", "truncated"),
        (two_page_tiff_bytes(), "scan.tiff", "2 pages"),
        (b"", "empty.png", "empty"),
    ],
    ids=["pdf", "text-as-png", "bomb-60mp", "bomb-pillow", "truncated", "tiff-2-pages", "empty"],
)
def test_add_image_refuses_what_is_not_one_safe_image(
    store: ChatStore, data: bytes, filename: str, message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        store.images.add(data, filename)
    assert files_under(store.root.parent) == []


def test_add_image_records_the_upright_size_and_format(store: ChatStore) -> None:
    image = store.images.add(rotated_jpeg_bytes(), "phone.JPG")
    assert (image.ext, image.width, image.height) == ("jpg", 20, 40)
    fresh = ChatStore(store.root, DocumentLimits())  # nothing decoded in memory yet
    loaded = fresh.images.load(image)
    assert (loaded.mode, loaded.size) == ("RGB", (20, 40))


def test_load_image_gives_rgb_copies(store: ChatStore) -> None:
    image = store.images.add(png_bytes((0, 0, 0, 0)), "transparent.png")
    first = store.images.load(image)
    assert first.mode == "RGB" and first.getpixel((0, 0)) == (255, 255, 255)
    first.paste((1, 2, 3), (0, 0, 32, 24))  # a backend scribbling on its copy
    assert store.images.load(image).getpixel((0, 0)) == (255, 255, 255)


def test_load_image_of_a_removed_file_says_so(store: ChatStore) -> None:
    image = store.images.add(png_bytes(), "gone.png")
    (store.images.folder / image.file_name).unlink()
    fresh = ChatStore(store.root, DocumentLimits())
    with pytest.raises(StorageError, match="gone.png.*missing"):
        fresh.images.load(image)


# --------------------------------------------------------------------------- to_prompt


def test_to_prompt_carries_the_system_prompt_and_earlier_images(
    store: ChatStore, conversation_with_images: Conversation
) -> None:
    prompt = to_prompt(conversation_with_images, store.images)
    assert [message.role for message in prompt] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert prompt[0].content == ["You read receipts."]
    assert len(prompt[1].images) == 1 and isinstance(prompt[1].content[0], Image.Image)
    assert prompt[1].images[0].size == (32, 24)
    assert prompt[1].text == "What is the total on this receipt?\nSecond line."
    assert prompt[2].content == ["The total is 12.50 EUR."]
    assert len(prompt[3].images) == 1

    upto_first_answer = to_prompt(conversation_with_images, store.images, upto=2)
    assert [message.role for message in upto_first_answer] == ["system", "user", "assistant"]


def test_to_prompt_keeps_partial_answers_and_skips_empty_ones(store: ChatStore) -> None:
    conversation = store.new("m", PARAMS)
    conversation.messages += [
        user("one"),
        answer("half an ans", interrupted=True),
        user("two"),
        answer("", error="out of memory"),
        user("three"),
    ]
    prompt = to_prompt(conversation, store.images)
    assert [(message.role, message.content) for message in prompt] == [
        ("user", ["one"]),
        ("assistant", ["half an ans"]),
        ("user", ["two", "three"]),  # merged: strict templates want alternating roles
    ]


# --------------------------------------------------------------------------- export / import


def test_export_import_round_trip_restores_images(
    store: ChatStore, conversation_with_images: Conversation, tmp_path: Path
) -> None:
    exported = export_json(conversation_with_images, store.images)
    assert json.loads(exported)["format"] == EXPORT_FORMAT
    other = make_store(tmp_path / "elsewhere")

    imported = import_json(other, exported, "export.json")

    assert imported.id != conversation_with_images.id
    assert other.load(imported.id) == imported
    ignore = {"id", "updated_at"}
    assert imported.model_dump(exclude=ignore) == conversation_with_images.model_dump(
        exclude=ignore
    )
    restored = imported.messages[2].images[0]
    assert (other.images.folder / restored.file_name).read_bytes() == png_bytes()
    assert other.images.load(restored).tobytes() == store.images.load(restored).tobytes()


def _exported(store: ChatStore, conversation: Conversation) -> dict:
    return json.loads(export_json(conversation, store.images))


def _tamper_image(document: dict) -> dict:
    entry = next(iter(document["images"].values()))
    entry["data"] = base64.b64encode(png_bytes((9, 9, 9))).decode()
    return document


def _drop_images(document: dict) -> dict:
    document["images"] = {}
    return document


def _not_an_image_with_matching_hash(document: dict) -> dict:
    import hashlib

    fake = b"plain text pretending to be a picture"
    sha = hashlib.sha256(fake).hexdigest()
    document["images"] = {sha: {"ext": "png", "data": base64.b64encode(fake).decode()}}
    for message in document["conversation"]["messages"]:
        for image in message["images"]:
            image["sha256"] = sha
    return document


def _without(key: str):
    def edit(document: dict) -> dict:
        del document[key]
        return document

    return edit


def _set(path: tuple, value: object):
    def edit(document: dict) -> dict:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return document

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(("format",), "something-else"), "not a conversation export"),
        (_set(("format_version",), 99), "format version 99"),
        (_set(("conversation", "schema_version"), 7), "schema version 7"),
        (_set(("conversation", "messages", 0, "role"), "system"), "messages.0.role"),
        (_set(("conversation", "messages", 0, "images", 0, "ext"), "png/../../x"), "ext"),
        (_set(("conversation", "unexpected"), 1), "unexpected"),
        (_set(("conversation",), []), "no conversation"),
        (_without("conversation"), "no conversation"),
        (_set(("images",), None), "no image section"),
        (_tamper_image, "does not match its checksum"),
        (_drop_images, "lacks the image"),
        (_not_an_image_with_matching_hash, "not an image"),
    ],
)
def test_import_refuses_tampered_exports(
    store: ChatStore, conversation_with_images: Conversation, tmp_path: Path, edit, message: str
) -> None:
    document = edit(_exported(store, conversation_with_images))
    other = make_store(tmp_path / "elsewhere")
    with pytest.raises(BadInput, match=message):
        import_json(other, json.dumps(document).encode(), "export.json")
    assert other.list() == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG not json at all", "not a JSON file"),
        (b"[1, 2, 3]", "not a conversation export"),
        (b"[" * 100_000, "not a JSON file"),
        ('{"format": "caf\u00e9"}'.encode("latin-1"), "not a JSON file"),
    ],
)
def test_import_refuses_garbage(store: ChatStore, data: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        import_json(store, data, "garbage.json")


def test_import_refuses_oversized_files(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(BadInput, match="over the import limit"):
        import_json(store, b" " * 2_000, "big.json", max_mb=0.001)


def test_import_sanitises_names_and_ignores_claimed_sizes(
    store: ChatStore, conversation_with_images: Conversation, tmp_path: Path
) -> None:
    document = _exported(store, conversation_with_images)
    claimed = document["conversation"]["messages"][0]["images"][0]
    claimed.update(name="../../\u202eevil\x00.png", width=99_999, height=1)
    document["conversation"]["title"] = "Imported\n\u202etitle"
    other = make_store(tmp_path / "elsewhere")
    imported = import_json(other, json.dumps(document).encode())
    image = imported.messages[0].images[0]
    assert (image.name, image.width, image.height) == ("evil.png", 32, 24)
    assert imported.title == "Imported title"


def test_reimporting_an_export_marks_the_copy_instead_of_a_second_identical_title(
    store: ChatStore, conversation_with_images: Conversation
) -> None:
    original = conversation_with_images.title
    exported = export_json(conversation_with_images, store.images)

    copies = [import_json(store, exported) for _ in range(3)]

    titles = [copy.title for copy in copies]
    assert titles == [
        f"{original} (imported)",
        f"{original} (imported 2)",
        f"{original} (imported 3)",
    ]
    assert sorted(s.title for s in store.list()) == sorted([original, *titles])
    reimported = import_json(store, export_json(copies[0], store.images))
    assert reimported.title == f"{original} (imported 4)"  # marks are not stacked


def test_an_imported_title_at_the_length_limit_keeps_its_mark(store: ChatStore) -> None:
    long_title = "x" * TITLE_MAX_CHARS
    assert imported_title(long_title, {long_title}).endswith("… (imported)")
    assert len(imported_title(long_title, {long_title})) == TITLE_MAX_CHARS
    assert imported_title("free", {"other"}) == "free"


# --------------------------------------------------------------------------- markdown


def test_markdown_export_has_every_turn(store: ChatStore) -> None:
    conversation = store.new("tiny-qwen", PARAMS, system_prompt="Be brief.")
    image = store.images.add(png_bytes(), "receipt.png")
    conversation.messages += [
        user("Total?", [image]),
        answer("12.50 <b>EUR</b>"),
        user("Again?"),
        answer("Half", interrupted=True),
        user("Once more"),
        answer("", error="server went away"),
    ]
    store.save(conversation)
    text = export_markdown(conversation)
    assert text.startswith("# Total?\n")
    assert "tiny-qwen" in text and "Be brief." in text
    assert text.count("## You") == 3 and text.count("## Assistant") == 3
    assert "[image: receipt.png, 32×24]" in text
    assert "12.50 <b>EUR</b>" in text  # as-is: a download, never rendered
    assert "stopped" in text and "server went away" in text
    assert text.index("Total?\n") < text.index("12.50") < text.index("Again?")


# --------------------------------------------------------------------------- turn helpers


def _turns() -> Conversation:
    return Conversation(
        id="20250101T000000-0123456789ab",
        title="t",
        model_id="m",
        params=PARAMS,
        messages=[user("q1"), answer("a1"), user("q2", []), answer("a2")],
        created_at="2025-01-01T00:00:00+00:00",
        updated_at="2025-01-01T00:00:00+00:00",
    )


def test_last_user_index() -> None:
    conversation = _turns()
    assert last_user_index(conversation) == 2
    assert last_user_index(conversation.model_copy(update={"messages": []})) is None


def test_truncate_for_regenerate_drops_only_the_last_answer() -> None:
    conversation = _turns()
    regenerated = truncate_for_regenerate(conversation)
    assert [message.text for message in regenerated.messages] == ["q1", "a1", "q2"]
    assert len(conversation.messages) == 4  # the original is untouched
    # A failed turn stored without an answer: nothing to drop, the question stays.
    assert truncate_for_regenerate(regenerated).messages == regenerated.messages


def test_replace_last_question(store: ChatStore) -> None:
    image = store.images.add(png_bytes(), "p.png")
    conversation = _turns()
    conversation.messages[2].images = [image]
    edited = replace_last_question(conversation, "q2, rephrased")
    assert [message.text for message in edited.messages] == ["q1", "a1", "q2, rephrased"]
    assert edited.messages[-1].images == [image]
    assert conversation.messages[2].text == "q2"


def test_helpers_refuse_a_conversation_without_questions() -> None:
    empty = _turns().model_copy(update={"messages": []})
    with pytest.raises(BadInput, match="no question"):
        truncate_for_regenerate(empty)
    with pytest.raises(BadInput, match="no question"):
        replace_last_question(empty, "x")


def test_helper_results_share_no_messages_with_the_original() -> None:
    conversation = _turns()
    for result in (truncate_for_regenerate(conversation), replace_last_question(conversation, "x")):
        result.messages[0].text = "changed"
    assert conversation.messages[0].text == "q1"
