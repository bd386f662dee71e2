"""The built-in sample set: deterministic files, loadable, fields findable, readable by RapidOCR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from models.config import REPO_ROOT
from models.templates import builtin_templates
from utils.bench import sample_set
from utils.bench.datasets import builtin_dataset, load_dataset
from utils.bench.metrics import field_correct, word_f1
from utils.bench.sample_set import (
    STAMP_NAME,
    generator_fingerprint,
    render_sample,
    sample_documents,
    sample_files,
    sample_set_is_current,
    write_sample_set,
)
from utils.errors import ConfigError
from utils.fields.extract import extract_fields

ITEM_COUNT = 12
RECEIPT_FIELDS = {"company", "date", "address", "total"}
INVOICE_FIELDS = {"number", "date", "seller", "buyer", "subtotal", "tax", "total"}


@pytest.fixture(scope="session")
def sample_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sample_set")
    assert write_sample_set(folder) == ITEM_COUNT
    return folder


@pytest.fixture(scope="session")
def rendered():
    return [render_sample(doc) for doc in sample_documents()]


def written_files(folder: Path) -> list[Path]:
    """The files of the set folder; the storage layer's hidden ``.locks/`` folder is not one."""
    return [path for path in sorted(folder.iterdir()) if path.is_file()]


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in written_files(folder)}


def test_rendering_again_gives_identical_bytes(sample_folder: Path) -> None:
    written = file_bytes(sample_folder)
    written.pop(STAMP_NAME)

    assert sample_files() == written  # drawn afresh, not the cached copy that was written


def test_another_process_writes_identical_bytes_and_hash(sample_folder: Path, tmp_path: Path):
    again = tmp_path / "again"
    script = (
        "import sys, pathlib; from utils.bench.sample_set import write_sample_set; "
        "write_sample_set(pathlib.Path(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    command = [sys.executable, "-c", script, str(again)]
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, timeout=120)

    assert file_bytes(again) == file_bytes(sample_folder)
    assert load_dataset(again).content_hash == load_dataset(sample_folder).content_hash


def test_every_item_has_png_txt_json_and_a_stamp(sample_folder: Path) -> None:
    names = {path.name for path in written_files(sample_folder)}
    ids = [doc.item_id for doc in sample_documents()]

    assert len(ids) == len(set(ids)) == ITEM_COUNT
    assert names == {f"{i}{suffix}" for i in ids for suffix in (".png", ".txt", ".json")} | {
        STAMP_NAME
    }
    for item_id in ids:
        with Image.open(sample_folder / f"{item_id}.png") as image:
            assert 500 <= image.width <= 900
            # No metadata chunks (timestamps would break byte equality across runs).
            assert not image.info.keys() & {"timestamp", "date:create", "Software"}


def test_kinds_fields_and_degradations(rendered) -> None:
    receipts = [r for r in rendered if r.document.template == "receipt"]
    invoices = [r for r in rendered if r.document.template == "invoice"]
    looks = [r.document.look for r in rendered]

    assert len(receipts) >= 5 and len(invoices) >= 4
    assert all(set(r.document.fields) == RECEIPT_FIELDS for r in receipts)
    assert all(set(r.document.fields) == INVOICE_FIELDS for r in invoices)
    assert sum(1 <= abs(look.rotate_degrees) <= 3 for look in looks) >= 3
    assert sum(look.noise > 0 or look.blur > 0 for look in looks) >= 3
    assert sum(look.paper - look.ink < 150 for look in looks) == 1
    # Rotation grows the canvas; the others keep the declared width.
    for r in rendered:
        assert (r.image.width != r.document.look.width) == bool(r.document.look.rotate_degrees)


def test_fields_are_printed_and_found_by_the_templates_on_true_lines(rendered) -> None:
    templates = builtin_templates()
    for sample in rendered:
        doc = sample.document
        found = extract_fields(templates[doc.template], sample.lines)
        for name, truth in doc.fields.items():
            assert truth in sample.text.replace("\n", " "), (doc.item_id, name)
            assert field_correct(name, found[name].value, truth), (doc.item_id, name, found[name])


def test_builtin_dataset_loads_as_builtin_with_templates(sample_folder: Path) -> None:
    dataset = builtin_dataset(sample_folder)

    assert dataset.format == "builtin"
    assert dataset.name == "builtin"
    assert dataset.problems == []
    assert len(dataset.scorable_items) == ITEM_COUNT
    for item in dataset.items:
        assert item.template in ("receipt", "invoice")
        assert item.text == (sample_folder / f"{item.item_id}.txt").read_text().rstrip("\n")
        assert item.fields == json.loads((sample_folder / f"{item.item_id}.json").read_text())


def test_builtin_dataset_writes_an_absent_set(tmp_path: Path) -> None:
    dataset = builtin_dataset(tmp_path / "new" / "sample")

    assert len(dataset.items) == ITEM_COUNT
    assert sample_set_is_current(tmp_path / "new" / "sample")


def test_builtin_dataset_rewrites_a_stale_set(sample_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "stale"
    write_sample_set(folder)
    expected = load_dataset(sample_folder).content_hash
    (folder / "receipt-01.json").write_text('{"total": "0.00"}')
    assert not sample_set_is_current(folder)
    assert builtin_dataset(folder).content_hash == expected

    # An older generator: files only it wrote go, the user's own files stay.
    stamp = json.loads((folder / STAMP_NAME).read_text())
    stamp["generator"] = "older"
    stamp["files"]["receipt-99.png"] = "0" * 64
    (folder / STAMP_NAME).write_text(json.dumps(stamp))
    (folder / "receipt-99.png").write_bytes(b"old")
    (folder / "mine.txt").write_text("keep me")
    assert not sample_set_is_current(folder)

    builtin_dataset(folder)

    assert not (folder / "receipt-99.png").exists()
    assert (folder / "mine.txt").read_text() == "keep me"
    assert sample_set_is_current(folder)


def test_a_changed_data_file_changes_the_fingerprint(
    sample_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = sample_set.DOCUMENTS_PATH.read_text(encoding="utf-8")
    edited = tmp_path / "sample_documents.json"
    edited.write_text(original.replace("SUNRISE BAKERY", "SUNSET BAKERY"), encoding="utf-8")
    before = generator_fingerprint()

    monkeypatch.setattr(sample_set, "DOCUMENTS_PATH", edited)

    assert generator_fingerprint() != before
    assert not sample_set_is_current(sample_folder)  # so the folder would be written again


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda docs: docs[0].update(look={"widht": 600}), "widht"),
        (lambda docs: docs[0]["meta"].append({"left": "A", "pair": ["B", "C"]}), "exactly one"),
        (lambda docs: docs[1].update(item_id=docs[0]["item_id"]), "unique"),
        (lambda docs: docs[2].update(template="letter"), "template"),
    ],
)
def test_a_bad_data_file_is_a_config_error_naming_it(
    change, complaint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads(sample_set.DOCUMENTS_PATH.read_text(encoding="utf-8"))
    change(data["documents"])
    broken = tmp_path / "sample_documents.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setattr(sample_set, "DOCUMENTS_PATH", broken)

    with pytest.raises(ConfigError, match=complaint) as raised:
        sample_set._read_data_file()
    assert str(broken) in str(raised.value)


@pytest.mark.slow
def test_rapidocr_reads_the_sample_items(sample_folder: Path) -> None:
    from models.config import load_config
    from utils.ocr.pipeline import OcrSettings, ocr_file

    config = load_config().config
    items = {item.item_id: item for item in builtin_dataset(sample_folder).items}
    total_right = []
    for item_id in ("receipt-01", "receipt-06", "invoice-01"):
        item = items[item_id]
        settings = OcrSettings(engine="rapidocr", template=item.template)
        result = ocr_file(item.image.read_bytes(), item.image.name, settings, config)
        assert result.error is None
        assert word_f1(result.text, item.text) >= 0.8, (item_id, result.text)
        if item.template == "receipt":
            total_right.append(
                field_correct("total", result.fields["total"].value, item.fields["total"])
            )
    assert any(total_right)
