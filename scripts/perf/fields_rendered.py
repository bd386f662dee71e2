"""Receipt fields on rendered receipts unlike the development set's, through the real OCR.

    python scripts/perf/fields_rendered.py [--n 40] [--seed 0] [--save DIR]

Draws ``--n`` receipts with ``testkit.receipts.varied_specs`` (Malaysian and
Singaporean names, address shapes of two to four lines, five date formats, a dozen
total labels among SUBTOTAL / CASH / CHANGE / ROUNDING lines), each in one of the
layouts and fonts taken in turn, and reads them with the profile's default OCR
engine through the app's pipeline and the built-in receipt template. Each field is
scored with the benchmark's ``field_correct`` against the SROIE-style labels.

Prints the per-field accuracy and the mean on the rendered receipts, the same on
each receipt's ground-truth lines (the printed rows as perfect OCR lines: the rules
alone, whatever the rendering), per layout and per font, then every failure with
the expected and extracted values. A failure is put down to:

- ``rules``: the ground-truth lines fail too;
- ``ocr misread``: the ground-truth lines pass, and a word of the expected value is
  not in the OCR text (letters and digits compared, spaces and punctuation ignored);
- ``layout``: the ground-truth lines pass and every word was read, so the reading
  order (columns, merged rows) lost the field.

``--save DIR`` writes each receipt image and its OCR lines there, to look at.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from models.config import load_config  # noqa: E402
from testkit.receipts import (  # noqa: E402
    ReceiptSpec,
    font_installed,
    read_receipt,
    render_receipt,
    truth_lines,
    varied_specs,
)
from utils.bench.metrics import field_correct, normalize_field  # noqa: E402
from utils.fields.extract import extract_fields  # noqa: E402

FIELDS = ("company", "date", "address", "total")


def failure_kind(expected: str, truth_right: bool, ocr_lines: list[str]) -> str:
    if not truth_right:
        return "rules"
    # Letters and digits only, so "NO.8," and "DATE:2019-01-23" still hold "8" and the date.
    read = normalize_field(" ".join(ocr_lines))
    words = [normalize_field(word) for word in expected.split()]
    return "ocr misread" if any(word not in read for word in words) else "layout"


def measure(spec: ReceiptSpec, index: int, config, template, save: Path | None) -> dict:
    image = render_receipt(spec, seed=index)
    started = time.perf_counter()
    result = read_receipt(image, config)
    seconds = time.perf_counter() - started
    lines = [line.text for page in result.pages for line in page.lines]
    on_truth = extract_fields(template, truth_lines(spec))
    record = {"spec": spec, "seconds": seconds, "lines": lines, "ocr": {}, "truth": {}, "got": {}}
    for name, expected in spec.fields.items():
        got = result.fields[name].value if name in result.fields else None
        record["got"][name] = got
        record["ocr"][name] = field_correct(name, got, expected)
        record["truth"][name] = field_correct(name, on_truth[name].value, expected)
        record.setdefault("truth_got", {})[name] = on_truth[name].value
    if save is not None:
        image.save(save / f"{index:03d}_{spec.layout}_{spec.font}.png")
        (save / f"{index:03d}.json").write_text(
            json.dumps({"fields": spec.fields, "got": record["got"], "lines": lines}, indent=1)
        )
    return record


def accuracy(records: list[dict], source: str, name: str) -> float:
    return statistics.mean(record[source][name] for record in records)


def print_table(records: list[dict]) -> None:
    print(f"{'':22} " + " ".join(f"{name:>8}" for name in FIELDS) + f" {'mean':>8}")
    for source, title in (("ocr", "rendered + OCR"), ("truth", "ground-truth lines")):
        scores = [accuracy(records, source, name) for name in FIELDS]
        cells = " ".join(f"{score:8.3f}" for score in scores)
        print(f"{title:22} {cells} {statistics.mean(scores):8.3f}")


def print_groups(records: list[dict], key: str) -> None:
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[getattr(record["spec"], key)].append(record)
    print(f"\nby {key} (rendered + OCR, mean of the four fields):")
    for name, members in groups.items():
        mean = statistics.mean(statistics.mean(r["ocr"].values()) for r in members)
        fallback = "" if key != "font" or font_installed(name) else "  (not installed: built-in)"
        print(f"  {name:24} {mean:.3f}  ({len(members)} receipts){fallback}")


def print_failures(records: list[dict]) -> None:
    kinds: dict[str, int] = defaultdict(int)
    print("\nfailures (receipt, layout/font, field: kind; expected | got [| on ground truth]):")
    for index, record in enumerate(records):
        spec = record["spec"]
        for name, expected in spec.fields.items():
            if record["ocr"][name]:
                continue
            kind = failure_kind(expected, record["truth"][name], record["lines"])
            kinds[kind] += 1
            got = record["got"][name]
            truth = "" if record["truth"][name] else f" | {record['truth_got'][name]!r}"
            print(f"  #{index:03d} {spec.layout}/{spec.font} {name}: {kind}")
            print(f"       {expected!r} | {got!r}{truth}")
    print(
        "failures by kind: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="receipts to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="folder for the images and their OCR lines")
    args = parser.parse_args()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    config = load_config().config
    template = config.templates["receipt"]
    specs = varied_specs(args.seed, args.n)
    started = time.perf_counter()
    records = [measure(spec, i, config, template, args.save) for i, spec in enumerate(specs)]
    seconds = time.perf_counter() - started
    print(
        f"{len(records)} rendered receipts, seed {args.seed}, engine {config.ocr.engine}: "
        f"{seconds:.0f} s ({statistics.mean(r['seconds'] for r in records):.2f} s OCR each)\n"
    )
    print_table(records)
    print_groups(records, "layout")
    print_groups(records, "font")
    print_failures(records)


if __name__ == "__main__":
    main()
