"""A raw OCR engine run the way a user would run it by hand: the baseline.

    python scripts/perf/raw_engine.py rapidocr|tesseract FILE...

Prints one JSON line per file: {"file", "text"} where text is the engine's
output in the order it returned it (RapidOCR: its boxes joined by newlines;
Tesseract: ``image_to_string`` with ``--psm 4``).
"""

from __future__ import annotations

import json
import os
import sys


def main(engine: str, files: list[str]) -> int:
    if engine == "rapidocr":
        from rapidocr import RapidOCR

        ocr = RapidOCR()

        def read(path: str) -> str:
            return "\n".join(ocr(path).txts or ())
    else:
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        import pytesseract
        from PIL import Image

        def read(path: str) -> str:
            with Image.open(path) as image:
                return pytesseract.image_to_string(image, config="--psm 4")

    for path in files:
        print(json.dumps({"file": os.path.basename(path), "text": read(path)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
