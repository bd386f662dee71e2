"""Receipt field accuracy of utils.fields on a labelled SROIE-style folder.

Each receipt is ``ID.jpg`` (scan), ``ID.csv`` (x1,y1,...,x4,y4,text per row) and
``ID.json`` (company, date, address, total). Two modes:

- ``gt``: the ground-truth CSV rows as OCR lines (confidence 1.0), in file order;
- ``rapidocr``: RapidOCR fragments on the scans, merged into lines (results
  cached as JSON under the system temp folder, so re-runs take seconds).

Usage: ``python benchmarks/tune_fields.py [--data DIR] [--mode gt|rapidocr|both] [--show]``
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models.ocr_base import OcrLine  # noqa: E402
from utils.fields import builtin_templates, extract_fields  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared/data/sroie-dev"
FIELDS = ("company", "date", "address", "total")
OCR_CACHE = Path(tempfile.gettempdir()) / "chatvlmllm_sroie_rapidocr"


def _field_correct() -> Callable[[str, str | None, str], bool]:
    """utils.metrics' field rule when present, else the same rule written here."""
    try:
        from utils.metrics import field_correct

        return field_correct
    except ImportError:
        return _own_field_correct


def _normalise(text: str) -> str:
    return "".join(char for char in text.upper() if char.isalnum())


def _as_number(text: str) -> float | None:
    digits = "".join(char for char in text if char.isdigit() or char in ".-")
    try:
        return float(digits)
    except ValueError:
        return None


def _own_field_correct(name: str, predicted: str | None, truth: str) -> bool:
    if not predicted or not truth:
        return False
    if name == "total":
        number, true_number = _as_number(predicted), _as_number(truth)
        if number is not None and true_number is not None:
            return abs(number - true_number) < 0.005
    return _normalise(predicted) == _normalise(truth)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _box_of(points: list[tuple[float, float]]) -> tuple[int, int, int, int]:
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    return (int(min(xs)), int(min(ys)), int(round(max(xs))), int(round(max(ys))))


def gt_lines(csv_path: Path) -> list[OcrLine]:
    """One OcrLine per CSV row, in file order; text may itself contain commas."""
    lines = []
    text = csv_path.read_text(encoding="utf-8", errors="replace")
    for row in csv.reader(text.splitlines()):
        if len(row) < 9:
            continue
        numbers = [float(value) for value in row[:8]]
        points = list(zip(numbers[0::2], numbers[1::2], strict=True))
        line_text = ",".join(row[8:]).strip()
        if line_text:
            lines.append(OcrLine(text=line_text, box=_box_of(points), confidence=1.0))
    return lines


def _ocr_fragments(image: Path, engine_holder: dict) -> list[dict]:
    """RapidOCR fragments for one image, from the cache when the image is unchanged."""
    digest = hashlib.sha256(image.read_bytes()).hexdigest()[:16]
    cached = OCR_CACHE / f"{image.stem}-{digest}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    if "engine" not in engine_holder:
        from rapidocr import RapidOCR

        engine_holder["engine"] = RapidOCR()
    output = engine_holder["engine"](str(image))
    fragments = []
    if output.txts is not None:
        for quad, text, score in zip(
            output.boxes.tolist(), output.txts, output.scores, strict=True
        ):
            fragments.append({"quad": quad, "text": text, "score": float(score)})
    OCR_CACHE.mkdir(exist_ok=True)
    cached.write_text(json.dumps(fragments))
    return fragments


def merge_into_lines(fragments: list[OcrLine]) -> list[OcrLine]:
    """Simple reading order: fragments whose vertical centres are within half a line
    height join one line (left to right); lines go top to bottom."""
    rows: list[list[OcrLine]] = []
    for fragment in sorted(fragments, key=lambda f: f.center_y):
        row = rows[-1] if rows else None
        if row and abs(fragment.center_y - _mean_center(row)) <= 0.5 * _mean_height(row):
            row.append(fragment)
        else:
            rows.append([fragment])
    return [_join(sorted(row, key=lambda f: f.box[0])) for row in rows]


def _mean_center(row: list[OcrLine]) -> float:
    return sum(f.center_y for f in row) / len(row)


def _mean_height(row: list[OcrLine]) -> float:
    return max(1.0, sum(f.height for f in row) / len(row))


def _join(row: list[OcrLine]) -> OcrLine:
    box = (
        min(f.box[0] for f in row),
        min(f.box[1] for f in row),
        max(f.box[2] for f in row),
        max(f.box[3] for f in row),
    )
    text = " ".join(f.text for f in row)
    return OcrLine(text=text, box=box, confidence=min(f.confidence for f in row))


def _reading_order() -> Callable[[list[OcrLine]], list[OcrLine]]:
    try:
        from utils.layout import reading_order

        return reading_order
    except ImportError:
        return merge_into_lines


def rapidocr_lines(image: Path, engine_holder: dict) -> list[OcrLine]:
    fragments = [
        OcrLine(
            text=fragment["text"].strip(),
            box=_box_of([(float(x), float(y)) for x, y in fragment["quad"]]),
            confidence=min(max(fragment["score"], 0.0), 1.0),
        )
        for fragment in _ocr_fragments(image, engine_holder)
        if fragment["text"].strip()
    ]
    return _reading_order()(fragments)


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


def evaluate(data: Path, mode: str, show: bool) -> dict[str, float]:
    template = builtin_templates()["receipt"]
    correct = _field_correct()
    hits = dict.fromkeys(FIELDS, 0)
    ids = sorted(path.stem for path in data.glob("*.json"))
    engine_holder: dict = {}
    for receipt_id in ids:
        truth = json.loads((data / f"{receipt_id}.json").read_text())
        if mode == "gt":
            lines = gt_lines(data / f"{receipt_id}.csv")
        else:
            lines = rapidocr_lines(data / f"{receipt_id}.jpg", engine_holder)
        found = extract_fields(template, lines)
        for name in FIELDS:
            ok = correct(name, found[name].value, truth.get(name, ""))
            hits[name] += ok
            if show and not ok:
                print(f"  {mode} {receipt_id} {name}: got {found[name].value!r}")
                print(f"  {' ' * len(mode)} {receipt_id} {name}: want {truth.get(name)!r}")
    scores = {name: hits[name] / len(ids) for name in FIELDS}
    scores["mean"] = sum(scores[name] for name in FIELDS) / len(FIELDS)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--mode", choices=("gt", "rapidocr", "both"), default="both")
    parser.add_argument("--show", action="store_true", help="print every wrong field")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data folder at {args.data}", file=sys.stderr)
        return 2
    modes = ("gt", "rapidocr") if args.mode == "both" else (args.mode,)
    for mode in modes:
        scores = evaluate(args.data, mode, args.show)
        cells = "  ".join(f"{name}={value:.3f}" for name, value in scores.items())
        print(f"{mode:9s} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
