"""Labelled dataset folders: SROIE and pairs layouts, content hash, malformed items."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from utils.bench.datasets import (
    MAX_LABEL_BYTES,
    Dataset,
    detect_format,
    load_dataset,
    read_sroie_lines,
)
from utils.errors import BadInput


def image_bytes(color: int = 128, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (12, 8), color).save(buffer, format=format)
    return buffer.getvalue()


def png(color: int = 128) -> bytes:
    return image_bytes(color)


def write(folder: Path, files: dict[str, bytes | str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    return folder


def by_id(dataset: Dataset) -> dict:
    return {item.item_id: item for item in dataset.items}


SROIE_CSV = (
    "10,20,110,20,110,40,10,40,SUNRISE BAKERY SDN BHD\r\n"
    "12,50,200,50,200,70,12,70,NO 12, JALAN SS 15/4,\r\n"
    "\r\n"
    "15,80,90,80,90,99,15,99,TOTAL 25.95\r\n"
)
SROIE_FIELDS = {"company": "SUNRISE BAKERY SDN BHD", "total": "25.95"}


@pytest.fixture
def sroie_folder(tmp_path: Path) -> Path:
    return write(
        tmp_path / "sroie",
        {
            "001.jpg": png(),
            "001.csv": SROIE_CSV,
            "001.json": json.dumps(SROIE_FIELDS),
            "002.jpg": png(90),
            "002.csv": "1,2,3,2,3,4,1,4,ONLY LINE\n",
        },
    )


@pytest.fixture
def pairs_folder(tmp_path: Path) -> Path:
    return write(
        tmp_path / "pairs",
        {
            "both.png": png(),
            "both.txt": "INVOICE NO: A-1\r\nTOTAL 12.50\n\n",
            "both.json": json.dumps({"number": "A-1", "total": 12.5, "paid": True, "note": None}),
            "text_only.png": png(10),
            "text_only.txt": "HELLO WORLD",
            "fields_only.webp": image_bytes(200, "WEBP"),
            "fields_only.json": json.dumps({"total": "3.00"}),
        },
    )


# ---------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------


def test_sroie_items_have_lines_text_fields_and_boxes(sroie_folder: Path) -> None:
    dataset = load_dataset(sroie_folder, "sroie")

    assert dataset.format == "sroie"
    assert dataset.name == "sroie"
    assert [item.item_id for item in dataset.items] == ["001", "002"]
    first, second = dataset.items
    assert first.text == "SUNRISE BAKERY SDN BHD\nNO 12, JALAN SS 15/4,\nTOTAL 25.95"
    assert [line.box for line in first.lines] == [
        (10, 20, 110, 40),
        (12, 50, 200, 70),
        (15, 80, 90, 99),
    ]
    assert first.fields == SROIE_FIELDS
    assert first.problem is None
    assert first.template == "receipt"
    assert first.image == sroie_folder.resolve() / "001.jpg"
    # A CSV without a JSON is still usable for text metrics.
    assert second.text == "ONLY LINE"
    assert second.fields is None
    assert second.problem is None
    assert dataset.problems == []


def test_pairs_items_read_text_and_flat_fields(pairs_folder: Path) -> None:
    dataset = load_dataset(pairs_folder, "pairs")

    items = by_id(dataset)
    assert dataset.format == "pairs"
    assert list(items) == ["both", "fields_only", "text_only"]
    assert items["both"].text == "INVOICE NO: A-1\nTOTAL 12.50"
    # Numbers and booleans become text; a null means "no ground truth for this field".
    assert items["both"].fields == {"number": "A-1", "total": "12.5", "paid": "true"}
    assert items["both"].lines is None
    assert items["text_only"].text == "HELLO WORLD"
    assert items["text_only"].fields is None
    assert items["fields_only"].text is None
    assert items["fields_only"].fields == {"total": "3.00"}
    assert all(item.problem is None for item in dataset.items)


def test_auto_detects_sroie_by_a_csv_beside_an_image(sroie_folder: Path, pairs_folder: Path):
    assert load_dataset(sroie_folder).format == "sroie"
    assert load_dataset(pairs_folder).format == "pairs"
    assert detect_format(sroie_folder) == "sroie"
    # A CSV that belongs to no image does not make the folder SROIE.
    write(pairs_folder, {"stray.csv": "1,1,2,1,2,2,1,2,X\n"})
    assert detect_format(pairs_folder) == "pairs"


def test_forcing_pairs_on_a_sroie_folder_ignores_the_csv(sroie_folder: Path) -> None:
    items = by_id(load_dataset(sroie_folder, "pairs"))

    assert items["001"].fields == SROIE_FIELDS
    assert items["001"].text is None
    assert items["002"].problem == "no ground truth (002.txt / 002.json)"


def test_unknown_format_is_bad_input(sroie_folder: Path) -> None:
    with pytest.raises(BadInput, match="unknown dataset format"):
        load_dataset(sroie_folder, "coco")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Content hash
# ---------------------------------------------------------------------------


def test_content_hash_is_stable_for_identical_content(sroie_folder: Path, tmp_path: Path):
    copy = shutil.copytree(sroie_folder, tmp_path / "elsewhere" / "copy")

    assert load_dataset(copy).content_hash == load_dataset(sroie_folder).content_hash
    # Files the items do not use (hidden files, notes) do not count.
    write(copy, {".DS_Store": "x", "README.md": "notes"})
    assert load_dataset(copy).content_hash == load_dataset(sroie_folder).content_hash


def test_content_hash_changes_with_one_byte_or_a_rename(sroie_folder: Path) -> None:
    before = load_dataset(sroie_folder).content_hash
    path = sroie_folder / "001.json"
    data = bytearray(path.read_bytes())
    data[-2] ^= 1
    path.write_bytes(bytes(data))
    edited = load_dataset(sroie_folder).content_hash
    (sroie_folder / "002.jpg").rename(sroie_folder / "003.jpg")
    (sroie_folder / "002.csv").rename(sroie_folder / "003.csv")

    assert edited != before
    assert load_dataset(sroie_folder).content_hash not in (before, edited)


# ---------------------------------------------------------------------------
# Malformed items: each gets a problem, the others still load
# ---------------------------------------------------------------------------


def test_malformed_sroie_items_get_problems(sroie_folder: Path) -> None:
    write(
        sroie_folder,
        {
            "010.jpg": png(),
            "010.csv": "1,2,3,2,3,4,1,4,FINE\n1,2,3,X,3,4,1,4,BAD COORDINATE\n",
            "011.jpg": png(),
            "011.csv": "1,2,3,4,SHORT ROW\n",
            "012.jpg": b"\xff\xd8 this is not a jpeg",
            "012.csv": "1,2,3,2,3,4,1,4,TEXT\n",
            "013.jpg": png(),
            "013.csv": "1,2,3,2,3,4,1,4,TEXT\n",
            "013.json": "{not json",
            "014.jpg": png(),
            "015.csv": "1,2,3,2,3,4,1,4,NO IMAGE\n",
            "016.csv": b"1,2,3,2,3,4,1,4,\xe9t\xe9\n",
            "016.jpg": png(),
        },
    )

    dataset = load_dataset(sroie_folder)
    items = by_id(dataset)

    assert dataset.format == "sroie"
    assert items["010"].problem.startswith("bad CSV: line 2 of 010.csv")
    assert items["011"].problem.startswith("bad CSV: line 1 of 011.csv")
    assert items["012"].problem.startswith("unreadable image")
    assert items["012"].text == "TEXT"  # the ground truth is still shown
    assert items["013"].problem.startswith("bad JSON: 013.json does not parse")
    assert items["014"].problem == "no ground truth (014.csv / 014.json)"
    assert "not UTF-8" in items["016"].problem
    assert dataset.problems == ["015.csv: ground truth without an image"]
    assert [item.item_id for item in dataset.scorable_items] == ["001", "002"]


def test_malformed_pairs_items_get_problems(pairs_folder: Path) -> None:
    write(
        pairs_folder,
        {
            "nested.png": png(),
            "nested.json": json.dumps({"total": "1.00", "items": [{"name": "tea"}]}),
            "list.png": png(),
            "list.json": "[1, 2]",
            "truncated.png": png()[:40],
            "truncated.txt": "SOME TEXT",
            "orphan.txt": "no image for me",
            "orphan.json": "{}",
        },
    )

    dataset = load_dataset(pairs_folder)
    items = by_id(dataset)

    assert "field 'items' is a nested list" in items["nested"].problem
    assert "holds a list, not an object" in items["list"].problem
    assert items["truncated"].problem.startswith("unreadable image")
    assert dataset.problems == [
        "orphan.json: ground truth without an image",
        "orphan.txt: ground truth without an image",
    ]
    assert {item.item_id for item in dataset.scorable_items} == {"both", "fields_only", "text_only"}


def test_read_sroie_lines_raises_bad_input_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, {"x.csv": "1,2,3,2,3,4,1,4,OK\n\nnot,a,row\n"}) / "x.csv"

    with pytest.raises(BadInput, match=r"bad CSV: line 3 of x\.csv"):
        read_sroie_lines(path)


def test_sroie_text_keeps_commas_and_quotes_verbatim(tmp_path: Path) -> None:
    path = write(tmp_path, {"q.csv": '1,2,3,2,3,4,1,4,AEON "PRODUCT(S)", 9"HT\n'}) / "q.csv"

    assert [line.text for line in read_sroie_lines(path)] == ['AEON "PRODUCT(S)", 9"HT']


# ---------------------------------------------------------------------------
# Folder-level errors, ids, hidden files and links
# ---------------------------------------------------------------------------


def test_missing_empty_or_imageless_folder_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(BadInput, match="holds no images"):
        load_dataset(write(tmp_path / "empty", {}))
    with pytest.raises(BadInput, match="holds no images"):
        load_dataset(write(tmp_path / "text_only", {"a.txt": "A", ".b.png": png()}))
    with pytest.raises(BadInput, match="is not a folder"):
        load_dataset(tmp_path / "text_only" / "a.txt")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder_is_bad_input(tmp_path: Path) -> None:
    folder = write(tmp_path / "locked", {"a.png": png()})
    folder.chmod(0)
    try:
        with pytest.raises(BadInput, match="cannot read dataset folder"):
            load_dataset(folder)
    finally:
        folder.chmod(0o755)


def test_item_ids_are_safe_and_unique(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "ids",
        {
            "scan 1 (copy).png": png(),
            "scan 1 (copy).txt": "A",
            "page.png": png(),
            "page.jpg": png(),
            "page.txt": "B",
            "ünï.png": png(),
            "ünï.txt": "C",
        },
    )

    items = load_dataset(folder).items

    # Stems that clash ("page") fall back to the file name.
    assert [item.item_id for item in items] == ["_n_", "page.jpg", "page.png", "scan_1__copy_"]
    assert {item.text for item in items if item.item_id.startswith("page")} == {"B"}


def test_hidden_files_and_subfolders_are_ignored(pairs_folder: Path) -> None:
    write(pairs_folder, {".hidden.png": png(), ".hidden.txt": "X"})
    write(pairs_folder / "sub", {"inner.png": png(), "inner.txt": "Y"})

    dataset = load_dataset(pairs_folder)

    assert {item.item_id for item in dataset.items} == {"both", "fields_only", "text_only"}
    assert dataset.problems == []


def test_links_out_of_the_root_are_ignored_links_inside_are_kept(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"secret.png": png(), "secret.txt": "SECRET"})
    folder = write(tmp_path / "set", {"a.png": png(), "a.txt": "A", "b.png": png()})
    (folder / "escape.png").symlink_to(outside / "secret.png")
    (folder / "escape.txt").symlink_to(outside / "secret.txt")
    (folder / "b.txt").symlink_to(outside / "secret.txt")
    (folder / "alias.png").symlink_to(folder / "a.png")
    (folder / "alias.txt").symlink_to("a.txt")

    dataset = load_dataset(folder)
    items = by_id(dataset)

    assert set(items) == {"a", "alias", "b"}
    assert items["alias"].text == "A"
    assert items["b"].problem == "no ground truth (b.txt / b.json)"
    assert sorted(dataset.problems) == [
        "b.txt: link to outside the folder, ignored",
        "escape.png: link to outside the folder, ignored",
        "escape.txt: link to outside the folder, ignored",
    ]
    assert "SECRET" not in repr(dataset)


def test_root_given_through_a_link_resolves(sroie_folder: Path, tmp_path: Path) -> None:
    link = tmp_path / "link_to_set"
    link.symlink_to(sroie_folder, target_is_directory=True)

    dataset = load_dataset(link)

    assert dataset.root == sroie_folder.resolve()
    assert [item.problem for item in dataset.items] == [None, None]


# ---------------------------------------------------------------------------
# Label size
# ---------------------------------------------------------------------------


def test_a_label_over_the_limit_is_an_item_problem_and_still_hashed(pairs_folder: Path) -> None:
    huge = "WORD " * (MAX_LABEL_BYTES // 5 + 1)
    write(pairs_folder, {"huge.png": png(), "huge.txt": huge, "edge.png": png()})
    write(pairs_folder, {"edge.txt": "X" * MAX_LABEL_BYTES, "big.png": png()})
    write(pairs_folder, {"big.json": json.dumps({"total": "1" * MAX_LABEL_BYTES})})

    dataset = load_dataset(pairs_folder)
    items = by_id(dataset)

    assert items["huge"].problem == "label over 1024 KB: huge.txt"
    assert items["huge"].text is None
    assert items["big"].problem == "label over 1024 KB: big.json"
    assert items["edge"].problem is None and len(items["edge"].text) == MAX_LABEL_BYTES
    assert {item.item_id for item in dataset.scorable_items} == {
        "both",
        "edge",
        "fields_only",
        "text_only",
    }
    (pairs_folder / "huge.txt").write_text(huge + "MORE", encoding="utf-8")
    assert load_dataset(pairs_folder).content_hash != dataset.content_hash
