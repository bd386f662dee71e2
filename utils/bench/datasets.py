"""Labelled document sets for benchmarks: SROIE folders, image + text/JSON pairs, the sample set.

Layouts (one flat folder; hidden files and sub-folders are ignored):

- **sroie**: ``ID.jpg`` + ``ID.csv`` (one text line per row: eight corner
  coordinates, then the text, which may itself contain commas) + ``ID.json``
  (the key fields).
- **pairs**: an image + ``ID.txt`` (the page text) and/or ``ID.json`` (a flat
  object of fields).
- **builtin**: the synthetic receipts and invoices of ``utils/bench/sample_set.py``,
  written in the pairs layout.

Loading never stops at one bad item: an item whose image or ground truth cannot
be used is kept with ``problem`` saying why, so a benchmark can report it. A
ground-truth file over ``MAX_LABEL_BYTES`` is such a problem: edit distances cost
time in proportion to the product of the two texts' lengths (a 3 MB label took
minutes for one item, 300 MB gigabytes of memory), and no page holds that much text.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from PIL import Image

from models.ocr.base import OcrLine
from utils.bench.sample_set import sample_set_is_current, sample_templates, write_sample_set
from utils.errors import BadInput

__all__ = [
    "IMAGE_SUFFIXES",
    "Dataset",
    "LabelledItem",
    "builtin_dataset",
    "detect_format",
    "load_dataset",
    "read_fields_json",
    "read_sroie_lines",
    "write_sample_set",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
# Files a user may expect to be read that are not: said so, instead of skipped silently.
UNREAD_DOCUMENT_SUFFIXES = (".pdf",)
DatasetFormat = Literal["sroie", "pairs", "builtin"]
TRUTH_SUFFIXES: dict[str, tuple[str, ...]] = {
    "sroie": (".csv", ".json"),
    "pairs": (".txt", ".json"),
}
BUILTIN_NAME = "builtin"
#: Largest ground-truth file read (.txt / .csv / .json); a page's text is a few KB.
MAX_LABEL_BYTES = 1024 * 1024
#: Bytes hashed per step while a file over the limit is hashed without being kept.
_HASH_CHUNK = 1024 * 1024

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class LabelledItem:
    """One document with its ground truth; ``problem`` set when it cannot be scored."""

    item_id: str  # unique within the dataset, only [A-Za-z0-9_.-], from the file stem
    image: Path
    text: str | None  # ground-truth lines joined by "\n"; None when not labelled
    lines: list[OcrLine] | None  # ground-truth lines with boxes (SROIE csv)
    fields: dict[str, str] | None
    problem: str | None = None
    template: str | None = None  # the field template the fields follow, when known


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path
    format: DatasetFormat
    items: list[LabelledItem]  # sorted by item_id
    content_hash: str  # sha256 over (relative path, sha256) of every file the items use
    problems: list[str] = field(default_factory=list)  # folder-level: orphan files, symlinks

    @property
    def scorable_items(self) -> list[LabelledItem]:
        return [item for item in self.items if item.problem is None]


# ---------------------------------------------------------------------------
# Ground-truth file readers (each raises BadInput naming the file and the fault)
# ---------------------------------------------------------------------------


def _decode(data: bytes, path: Path, kind: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"bad {kind}: {path.name} is not UTF-8 text (byte {exc.start})",
            hint="Save the file as UTF-8.",
        ) from None


def read_sroie_lines(path: Path, data: bytes | None = None) -> list[OcrLine]:
    """The rows of a SROIE ``ID.csv`` as OcrLines (confidence 1.0), in file order.

    Rows are split by hand, not with ``csv``: the text after the eighth comma is
    taken verbatim (SROIE does not quote it). Blank rows and rows with no text
    are skipped; any other row that is not eight numbers and a text is an error.
    """
    text = _decode(path.read_bytes() if data is None else data, path, "CSV")
    lines = []
    for number, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        parts = row.split(",", 8)
        try:
            coords = [float(value) for value in parts[:8]]
        except ValueError:
            coords = []
        if len(parts) < 9 or len(coords) < 8:
            raise BadInput(
                f"bad CSV: line {number} of {path.name} is not 8 coordinates and a text: "
                f"{row[:60]!r}",
                hint="Each row must be x1,y1,x2,y2,x3,y3,x4,y4,text.",
            )
        line_text = parts[8].strip()
        if line_text:
            xs, ys = coords[0::2], coords[1::2]
            box = (int(min(xs)), int(min(ys)), round(max(xs)), round(max(ys)))
            lines.append(OcrLine(text=line_text, box=box, confidence=1.0))
    return lines


def _field_value(name: str, value: object, path: Path) -> str | None:
    """A JSON scalar as the field's text; null means "no ground truth for this field"."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise BadInput(
        f"bad JSON: {path.name} field {name!r} is a nested {type(value).__name__}",
        hint='Fields must be a flat object of strings, e.g. {"total": "12.50"}.',
    )


def read_fields_json(path: Path, data: bytes | None = None) -> dict[str, str]:
    """A flat JSON object of fields; numbers and booleans become text, nulls are dropped."""
    text = _decode(path.read_bytes() if data is None else data, path, "JSON")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise BadInput(
            f"bad JSON: {path.name} does not parse: {exc}", hint="Fix the JSON syntax."
        ) from None
    if not isinstance(raw, dict):
        raise BadInput(
            f"bad JSON: {path.name} holds a {type(raw).__name__}, not an object of fields",
            hint='Write the fields as {"name": "value", ...}.',
        )
    fields = {str(name): _field_value(str(name), value, path) for name, value in raw.items()}
    return {name: value for name, value in fields.items() if value is not None}


def _read_text(path: Path, data: bytes) -> str:
    """The page text with line ends normalised and trailing blank lines dropped."""
    return "\n".join(_decode(data, path, "text").splitlines()).rstrip("\n")


def _image_problem(data: bytes, name: str) -> str | None:
    """Why Pillow cannot read this image's header and structure, or None when it can.

    ``verify`` checks the file's structure (PNG chunk CRCs, ...) without decoding
    pixels, so the whole set is checked cheaply. Malformed files make Pillow raise
    many exception types (OSError, SyntaxError, struct.error, ...): any of them
    means the same thing here.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Image.DecompressionBombError as exc:
        return f"image too large: {name}: {exc}"
    except Exception as exc:  # noqa: BLE001 - see docstring
        # Pillow's "cannot identify image file <_io.BytesIO object at 0x...>" names our
        # buffer, not the user's file.
        reason = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
        return f"unreadable image: {name}: {reason or type(exc).__name__}"
    return None


# ---------------------------------------------------------------------------
# Folder scanning
# ---------------------------------------------------------------------------


@dataclass
class _Folder:
    """The usable files of a dataset folder, indexed by stem, plus what was skipped."""

    root: Path
    images: list[Path]
    truth: dict[str, dict[str, Path]]  # stem -> lower-cased suffix -> file
    problems: list[str]


def _checked_root(path: Path) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        raise BadInput(f"dataset folder {root} does not exist", hint="Check the path.")
    if not root.is_dir():
        raise BadInput(f"{root} is not a folder", hint="Give the folder that holds the images.")
    return root.resolve()


def _inside(root: Path, entry: Path) -> bool:
    """Whether ``entry`` (possibly a symlink) really lives under ``root``."""
    return entry.resolve().is_relative_to(root)


def _scan(root: Path) -> _Folder:
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise BadInput(
            f"cannot read dataset folder {root}: {exc}", hint="Check its permissions."
        ) from None
    folder = _Folder(root, [], {}, [])
    for entry in entries:
        # Hidden files, sub-folders, broken links: not part of the set.
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.is_symlink() and not _inside(root, entry):
            folder.problems.append(f"{entry.name}: link to outside the folder, ignored")
            continue
        suffix = entry.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            folder.images.append(entry)
        elif suffix in UNREAD_DOCUMENT_SUFFIXES:
            folder.problems.append(
                f"{entry.name}: benchmarks read images only ({', '.join(IMAGE_SUFFIXES)}); ignored"
            )
        else:
            folder.truth.setdefault(entry.stem, {}).setdefault(suffix, entry)
    if not folder.images:
        raise BadInput(
            f"dataset folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})",
            hint="Put ID.png / ID.jpg with ID.txt or ID.json (SROIE: ID.csv) beside each.",
        )
    return folder


def detect_format(folder: Path) -> Literal["sroie", "pairs"]:
    """sroie when any image has a ``.csv`` with the same stem beside it, else pairs."""
    return _detect(_scan(_checked_root(folder)))


def _detect(folder: _Folder) -> Literal["sroie", "pairs"]:
    has_csv = any(".csv" in folder.truth.get(image.stem, {}) for image in folder.images)
    return "sroie" if has_csv else "pairs"


def _item_ids(images: list[Path]) -> dict[Path, str]:
    """Safe, unique ids: the stem; the file name when stems clash; then a counter."""
    base = {image: _UNSAFE_ID_CHARS.sub("_", image.stem) for image in images}
    clashing = {name for name, count in Counter(base.values()).items() if count > 1}
    ids: dict[Path, str] = {}
    taken: set[str] = set()
    for image in images:
        candidate = base[image]
        if candidate in clashing:
            candidate = _UNSAFE_ID_CHARS.sub("_", image.name)
        unique, n = candidate, 2
        while unique in taken:
            unique, n = f"{candidate}-{n}", n + 1
        taken.add(unique)
        ids[image] = unique
    return ids


# ---------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------


@dataclass
class _Reading:
    """What reading one item produced, before it becomes a LabelledItem."""

    text: str | None = None
    lines: list[OcrLine] | None = None
    fields: dict[str, str] | None = None
    problems: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


def _load_bytes(
    path: Path, root: Path, reading: _Reading, max_bytes: int | None = None
) -> bytes | None:
    """The file's bytes, recorded for the content hash; None (and a problem) when
    unreadable or, with ``max_bytes``, larger than that. A file over the limit is still
    hashed, a chunk at a time, so the content hash covers every file an item uses."""
    try:
        with path.open("rb") as file:
            data = file.read() if max_bytes is None else file.read(max_bytes + 1)
            digest = hashlib.sha256(data)
            too_large = max_bytes is not None and len(data) > max_bytes
            while too_large and (chunk := file.read(_HASH_CHUNK)):
                digest.update(chunk)
    except OSError as exc:
        reading.problems.append(f"cannot read {path.name}: {exc.strerror or exc}")
        return None
    reading.digests[path.relative_to(root).as_posix()] = digest.hexdigest()
    if too_large:
        reading.problems.append(f"label over {max_bytes // 1024} KB: {path.name}")
        return None
    return data


def _read_truth(path: Path, suffix: str, data: bytes, reading: _Reading) -> None:
    try:
        if suffix == ".csv":
            reading.lines = read_sroie_lines(path, data)
            reading.text = "\n".join(line.text for line in reading.lines)
        elif suffix == ".json":
            reading.fields = read_fields_json(path, data)
        else:
            reading.text = _read_text(path, data)
    except BadInput as exc:
        reading.problems.append(exc.message)


def _read_item(
    image: Path, item_id: str, folder: _Folder, fmt: str
) -> tuple[LabelledItem, dict[str, str]]:
    """The item and the sha256 of every file it used (relative path -> digest)."""
    reading = _Reading()
    data = _load_bytes(image, folder.root, reading)
    image_problem = _image_problem(data, image.name) if data is not None else None
    reading.problems.extend([image_problem] if image_problem else [])
    truth = folder.truth.get(image.stem, {})
    suffixes = TRUTH_SUFFIXES[fmt]
    found = [suffix for suffix in suffixes if suffix in truth]
    if not found:
        names = " / ".join(f"{image.stem}{suffix}" for suffix in suffixes)
        reading.problems.append(f"no ground truth ({names})")
    for suffix in found:
        truth_data = _load_bytes(truth[suffix], folder.root, reading, MAX_LABEL_BYTES)
        if truth_data is not None:
            _read_truth(truth[suffix], suffix, truth_data, reading)
    return LabelledItem(
        item_id=item_id,
        image=image,
        text=reading.text,
        lines=reading.lines,
        fields=reading.fields,
        problem="; ".join(reading.problems) or None,
        template="receipt" if fmt == "sroie" else None,
    ), reading.digests


def _orphans(folder: _Folder, fmt: str) -> list[str]:
    """Ground-truth files of this format with no image of the same stem."""
    stems = {image.stem for image in folder.images}
    return [
        f"{path.name}: ground truth without an image"
        for stem, by_suffix in sorted(folder.truth.items())
        if stem not in stems
        for suffix, path in sorted(by_suffix.items())
        if suffix in TRUTH_SUFFIXES[fmt]
    ]


def content_hash(digests: Iterable[tuple[str, str]]) -> str:
    """sha256 over sorted (relative path, file sha256) pairs: renames and edits both count."""
    total = hashlib.sha256()
    for relative, digest in sorted(set(digests)):
        total.update(f"{relative}\0{digest}\n".encode())
    return total.hexdigest()


def _load(
    root: Path, fmt: Literal["auto", "sroie", "pairs"], label: DatasetFormat | None
) -> Dataset:
    folder = _scan(_checked_root(root))
    chosen = _detect(folder) if fmt == "auto" else fmt
    ids = _item_ids(folder.images)
    items, digests = [], []
    for image in folder.images:
        item, item_digests = _read_item(image, ids[image], folder, chosen)
        items.append(item)
        digests.extend(item_digests.items())
    return Dataset(
        name=BUILTIN_NAME if label == "builtin" else folder.root.name,
        root=folder.root,
        format=label or chosen,
        items=sorted(items, key=lambda item: item.item_id),
        content_hash=content_hash(digests),
        problems=folder.problems + _orphans(folder, chosen),
    )


def load_dataset(path: Path, format: Literal["auto", "sroie", "pairs"] = "auto") -> Dataset:
    """Every image in the folder ``path`` with its ground truth; BadInput when there is no set."""
    if format not in ("auto", "sroie", "pairs"):
        raise BadInput(f"unknown dataset format {format!r}", hint="Use auto, sroie or pairs.")
    return _load(path, format, None)


def builtin_dataset(root: Path) -> Dataset:
    """The built-in sample set in ``root``, (re)written first when absent or stale."""
    if not sample_set_is_current(root):
        write_sample_set(root)
    dataset = _load(root, "pairs", "builtin")
    templates = sample_templates()
    items = [replace(item, template=templates.get(item.item_id)) for item in dataset.items]
    return replace(dataset, items=items)
