"""Receipt fields on receipts the rules were not tuned on: k-fold next to the all-in figure.

    python scripts/perf/fields_kfold.py [--data DIR] [--folds 5] [--seed 0] [--ocr]
                                        [--keep-found]

Like scripts/perf/tune_fields.py (the receipt template on each receipt's ground-truth
lines, so rules are measured apart from OCR errors), but split: for every fold the
template's keyword lists are tuned on the other folds and scored on this one.
``--ocr`` reads every receipt with the app's default OCR engine and pipeline first
(as ``cli.py ocr`` does; about 3 s a receipt) and tunes and scores on those lines:
what a receipt never seen before gets, OCR errors included.

Tuning, the procedure every fold repeats: each keyword of each field (labels and
exclusions) is taken out in turn; the training receipts it decides are counted
(right with it and wrong without = helps; the other way round = hurts), each against
the template as tuned so far (backward elimination). A keyword is kept when it helps
at least ``--min-support`` training receipts more than it hurts, or decides none (a
generic label kept for documents to come); one that only helps a single receipt is
dropped. The tuned template then reads the held-out fold.

``--keep-found`` judges a keyword by how many training receipts it is *found* on
instead: one that decides receipts is dropped when it hurts more than it helps, or when
it is found on fewer than ``--min-support`` of them (evidence from a single receipt).
Address words such as JLN, TAMAN and LOT are found on a dozen receipts each but decide
only one each, because the postcode or another word already places the rest; the
default criterion drops them, this one keeps them. The two bracket the estimate.

Prints per fold: keywords dropped, training and held-out accuracy (mean of company,
date, address, total), the shipped template on the same held-out fold, then the
mean and the fold-to-fold spread, and the all-in figure of the shipped template.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from models.config import load_config  # noqa: E402
from models.ocr.base import OcrEngine, OcrLine  # noqa: E402
from models.ocr.rapid import get_rapidocr_engine  # noqa: E402
from models.templates import TemplateSpec  # noqa: E402
from utils.bench.datasets import LabelledItem, load_dataset  # noqa: E402
from utils.bench.metrics import field_correct  # noqa: E402
from utils.documents.document import load_document  # noqa: E402
from utils.documents.limits import DocumentLimits  # noqa: E402
from utils.fields.extract import extract_fields  # noqa: E402
from utils.fields.text_match import has_any  # noqa: E402
from utils.ocr.pipeline import ocr_page  # noqa: E402
from utils.ocr.reading_order import line_blocks  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared/data/sroie-dev"
FIELDS = ("company", "date", "address", "total")
LISTS = ("keywords", "exclude_keywords", "region_keywords")


class Reading(NamedTuple):
    """A receipt's lines as the rules get them, and its labelled fields."""

    item_id: str
    lines: list[OcrLine]
    blocks: list[list[OcrLine]] | None
    fields: dict[str, str]


def correct(template: TemplateSpec, reading: Reading) -> dict[str, bool]:
    found = extract_fields(template, reading.lines, reading.blocks)
    return {n: field_correct(n, found[n].value, reading.fields.get(n, "")) for n in FIELDS}


def truth_reading(item: LabelledItem) -> Reading:
    return Reading(item.item_id, item.lines, None, item.fields)


def ocr_reading(item: LabelledItem, engine: OcrEngine) -> Reading:
    """The receipt read by ``engine`` through the app's page pipeline."""
    document = load_document(item.image.read_bytes(), item.image.name, DocumentLimits())
    pages = [ocr_page(page, engine) for page in document.pages()]
    lines = [line for page in pages for line in page.lines]
    blocks = [blocks for page in pages for blocks in line_blocks(page.fragments)]
    return Reading(item.item_id, lines, blocks, item.fields)


def accuracy(template: TemplateSpec, items: list[Reading]) -> float:
    return statistics.mean(statistics.mean(correct(template, i).values()) for i in items)


def without(template: TemplateSpec, field: str, kind: str, word: str) -> TemplateSpec:
    spec = template.fields[field]
    kept = [w for w in getattr(spec, kind) if w != word]
    fields = {**template.fields, field: spec.model_copy(update={kind: kept})}
    return template.model_copy(update={"fields": fields})


def tune(template: TemplateSpec, train: list[Reading], min_support: int, keep_found: bool):
    """The template with the keywords the training receipts do not justify taken out.

    Backward elimination: each keyword is judged against the template as tuned so far,
    so two keywords that cover for each other are never both dropped because each
    looked redundant while the other was still there.
    """
    tuned, dropped = template, []
    base = {i.item_id: correct(tuned, i) for i in train}
    for field in FIELDS:
        for kind in LISTS:
            for word in getattr(template.fields[field], kind):
                trial = without(tuned, field, kind, word)
                after = {i.item_id: correct(trial, i) for i in train}
                helps = sum(base[k][field] and not after[k][field] for k in base)
                hurts = sum(after[k][field] and not base[k][field] for k in base)
                if not (helps or hurts):
                    continue
                if keep_found:
                    found = sum(any(has_any(line.text, [word]) for line in i.lines) for i in train)
                    drop = helps < hurts or found < min_support
                else:
                    drop = helps - hurts < min_support
                if drop:
                    tuned, base = trial, after
                    dropped.append(f"{field}.{kind}:{word}({helps}/{hurts})")
    return tuned, dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-support", type=int, default=2)
    parser.add_argument("--ocr", action="store_true", help="tune and score on OCR lines")
    parser.add_argument(
        "--keep-found", action="store_true", help="keep keywords found on several receipts"
    )
    args = parser.parse_args()
    config = load_config(REPO_ROOT / "config.yaml").config
    template = config.templates["receipt"]
    labelled = [i for i in load_dataset(args.data, "sroie").scorable_items if i.lines and i.fields]
    if args.ocr:
        engine = get_rapidocr_engine(config.ocr.rapidocr)
        items = [ocr_reading(item, engine) for item in labelled]
    else:
        items = [truth_reading(item) for item in labelled]
    print(f"{len(items)} receipts, {'OCR' if args.ocr else 'ground-truth'} lines")
    random.Random(args.seed).shuffle(items)
    folds = [items[k :: args.folds] for k in range(args.folds)]
    held_out, shipped_held_out = [], []
    for k, test in enumerate(folds):
        train = [i for j, fold in enumerate(folds) if j != k for i in fold]
        tuned, dropped = tune(template, train, args.min_support, args.keep_found)
        held_out.append(accuracy(tuned, test))
        shipped_held_out.append(accuracy(template, test))
        print(
            f"fold {k + 1}: {len(test)} held out, {len(dropped)} keyword(s) dropped; "
            f"train {accuracy(tuned, train):.3f}  held-out {held_out[-1]:.3f}  "
            f"(shipped template on it {shipped_held_out[-1]:.3f})"
        )
        if dropped:
            print("        dropped: " + ", ".join(dropped))
    print(
        f"k-fold held-out: mean {statistics.mean(held_out):.3f}, folds "
        f"{min(held_out):.3f}..{max(held_out):.3f} (sd {statistics.stdev(held_out):.3f})"
    )
    print(f"shipped template, same folds: mean {statistics.mean(shipped_held_out):.3f}")
    print(f"all-in (shipped template on all {len(items)}): {accuracy(template, items):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
