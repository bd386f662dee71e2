"""Receipt field accuracy of the template rules alone, on ground-truth text lines.

    python scripts/perf/tune_fields.py [--data DIR] [--show]

Feeds each receipt's labelled lines (ID.csv, in file order, confidence 1.0) to
the receipt template, so rule quality is measured apart from OCR errors. The
whole pipeline on real OCR output is measured by scripts/perf/ocr_sroie.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from models.config import load_config  # noqa: E402
from utils.bench.datasets import load_dataset  # noqa: E402
from utils.bench.metrics import field_correct  # noqa: E402
from utils.fields.extract import extract_fields  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared/data/sroie-dev"
FIELDS = ("company", "date", "address", "total")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--show", action="store_true", help="print every wrong field")
    args = parser.parse_args()
    template = load_config(REPO_ROOT / "config.yaml").config.templates["receipt"]
    items = [i for i in load_dataset(args.data, "sroie").scorable_items if i.lines and i.fields]
    hits: dict[str, list[bool]] = {name: [] for name in FIELDS}
    for item in items:
        found = extract_fields(template, item.lines)
        for name in FIELDS:
            ok = field_correct(name, found[name].value, item.fields.get(name, ""))
            hits[name].append(ok)
            if args.show and not ok:
                print(
                    f"{item.item_id} {name}: got {found[name].value!r}, "
                    f"want {item.fields.get(name)!r}"
                )
    scores = {name: statistics.mean(values) for name, values in hits.items()}
    cells = "  ".join(f"{name} {value:.3f}" for name, value in scores.items())
    mean = statistics.mean(scores.values())
    print(f"{len(items)} receipts, ground-truth lines: {cells}  mean {mean:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
