"""RapidOCR engine: PP-OCR detection + recognition on onnxruntime, CPU only, offline.

The ``rapidocr`` wheel ships its ONNX weights (PP-OCRv6 small detector and
recogniser, PP-OCR mobile 0/180 line classifier) under ``rapidocr/models``. We
always pass those files as explicit ``model_path`` values: with a model path set,
RapidOCR never resolves a download URL, so creating an engine cannot touch the
network (left to its defaults it would hash the files and, on a mismatch,
download them again).

``rapidocr`` is imported lazily so that importing this module stays cheap.

Rotation: RapidOCR has no whole-page orientation model. Its line classifier
(``use_angle_cls``) decides 0 vs 180 degrees per cropped line, and every crop at
least 1.5x taller than wide is turned 90 degrees before recognition. With the
classifier on, pages turned by 90, 180 or 270 degrees are read line by line
(boxes stay in the turned image's frame, so reading order does not); with it
off, only a page turned clockwise by 90 degrees reads, the others give garbage.
Per line the classifier is unreliable (on upright receipts it flips a few lines
with scores up to 0.98), but a majority vote over a page's lines is a cheap and
sound page orientation: ``RapidOcrEngine.page_quarter_turns``.

Spaces: the recogniser often drops the space between two words ("TAXINVOICE").
``RapidOcrEngine.ocr`` runs RapidOCR's steps one by one so that it keeps each
line crop and the CTC position of each character, and ``models.ocr.spacing`` puts
a space back where the crop shows a blank run as wide as a character cell
(word F1 on the 63 SROIE dev receipts 0.887 -> 0.906).

Characters: the recogniser knows some 18,700 characters; by default
``models.ocr.alphabet`` limits it to ASCII, where its first choice outside ASCII
("Á" for a faded "A") gives way to its likeliest ASCII one. ``characters: all``
(in a profile's ``ocr.rapidocr`` section, or chosen for one run) reads accents
and other scripts.

Colons: the detector often finds no box for a lone ':' between a label and its
value; ``models.ocr.colons`` adds the ones the page shows between two fragments.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image

from models.ocr.base import Box, OcrLine, OcrResult
from models.options import CLS_MODEL_FILE, DET_MODEL_FILE, REC_MODEL_FILE, RapidOcrOptions
from utils.errors import ModelUnavailable

RAPIDOCR_INSTALL_HINT = "pip install rapidocr==3.10.0 onnxruntime"


def bundled_model_dir() -> Path:
    """The folder inside the installed rapidocr package that holds its ONNX weights."""
    try:
        import rapidocr
    except ImportError as exc:
        raise ModelUnavailable("RapidOCR is not installed", hint=RAPIDOCR_INSTALL_HINT) from exc
    return Path(rapidocr.__file__).resolve().parent / "models"


def bundled_model_paths() -> list[Path]:
    """The weight files the engine loads; all must exist, since we never download."""
    model_dir = bundled_model_dir()
    return [model_dir / name for name in (DET_MODEL_FILE, REC_MODEL_FILE, CLS_MODEL_FILE)]


def _check_bundled_models() -> Path:
    missing = [str(path) for path in bundled_model_paths() if not path.is_file()]
    if missing:
        raise ModelUnavailable(
            f"RapidOCR model files are missing: {', '.join(missing)}",
            hint="pip install --force-reinstall rapidocr==3.10.0",
        )
    return bundled_model_dir()


def _load_rapidocr(options: RapidOcrOptions) -> Any:
    """Build RapidOCR and load its ONNX sessions now, so failures surface at creation."""
    model_dir = _check_bundled_models()
    try:
        from rapidocr import EngineType, RapidOCR

        rapid = RapidOCR(params=options.rapidocr_params(model_dir, EngineType.ONNXRUNTIME))
        # RapidOCR 3.10 loads each session on first use; loading here makes the
        # first page as fast as the others and reports a broken install early.
        rapid._load_det_model()
        recogniser = rapid._load_rec_model()
        if options.characters == "ascii":
            from models.ocr.alphabet import ASCII_PRINTABLE, limit_recogniser

            limit_recogniser(recogniser, ASCII_PRINTABLE)
        if options.use_angle_cls:
            rapid._load_cls_model()
    except ImportError as exc:
        raise ModelUnavailable(
            f"RapidOCR cannot be loaded: {exc}", hint=RAPIDOCR_INSTALL_HINT
        ) from exc
    return rapid


def quad_to_box(points: Any, width: int, height: int) -> Box:
    """Axis-aligned box around a detector quadrilateral, clipped to the image."""
    xs = [float(point[0]) for point in points]
    ys = [float(point[1]) for point in points]
    left = min(max(int(min(xs)), 0), width)
    top = min(max(int(min(ys)), 0), height)
    right = min(max(int(round(max(xs))), left), width)
    bottom = min(max(int(round(max(ys))), top), height)
    return (left, top, right, bottom)


class _Output(NamedTuple):
    """The three fields of RapidOCR's output that ``lines_from_output`` reads."""

    boxes: Any
    txts: Any
    scores: Any


def lines_from_output(
    output: Any, width: int, height: int, min_score: float = 0.0
) -> list[OcrLine]:
    """RapidOCR's output as fragments; empty output types carry no ``txts``."""
    boxes = getattr(output, "boxes", None)
    texts = getattr(output, "txts", None)
    scores = getattr(output, "scores", None)
    if boxes is None or texts is None or scores is None:
        return []
    lines = []
    for points, text, score in zip(boxes, texts, scores, strict=False):
        if not text.strip() or score < min_score:
            continue
        confidence = min(max(float(score), 0.0), 1.0)
        lines.append(
            OcrLine(
                text=text.strip(), box=quad_to_box(points, width, height), confidence=confidence
            )
        )
    return lines


def respaced_text(text: str, word_info: Any, crop: Any) -> str:
    """``text`` with the word spaces its crop shows put back (see ``models.ocr.spacing``).

    ``word_info`` is the recogniser's per-line ``WordInfo``: the CTC time step of
    every non-space character, and how many time steps span the crop's width.
    """
    import cv2

    from models.ocr.spacing import respace

    columns = [column for word in word_info.word_cols for column in word]
    steps = float(word_info.line_txt_len or 0)
    if not columns or steps <= 0 or crop is None or crop.size == 0:
        return text
    # A character's CTC peak sits in its time step; the step's centre is its x in the crop.
    x_per_step = crop.shape[1] / steps
    char_x = [(column + 0.5) * x_per_step for column in columns]
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return respace(text, char_x, gray)


def quarter_turns_from_votes(vertical: bool, upside_down_votes: int, upright_votes: int) -> int:
    """Counter-clockwise quarter turns that make a page upright, from its lines' votes.

    RapidOCR turns tall crops 90 degrees counter-clockwise before classifying them:
    on a page turned clockwise that makes them upright (fix: one turn back), on a
    page turned counter-clockwise upside down (fix: three turns).
    """
    upside_down = upside_down_votes > upright_votes
    if vertical:
        return 3 if upside_down else 1
    return 2 if upside_down else 0


def _is_tall(points: Any) -> bool:
    """Same test RapidOCR applies before turning a crop: height >= 1.5 x width."""
    width = max(_distance(points[0], points[1]), _distance(points[2], points[3]))
    height = max(_distance(points[0], points[3]), _distance(points[1], points[2]))
    return height >= 1.5 * max(width, 1e-6)


def _distance(a: Any, b: Any) -> float:
    return float(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5)


class RapidOcrEngine:
    """RapidOCR behind the ``OcrEngine`` interface; one instance is safe to share."""

    name = "rapidocr"

    def __init__(self, options: RapidOcrOptions | None = None) -> None:
        self.options = options or RapidOcrOptions()
        self._rapid = _load_rapidocr(self.options)
        # RapidOCR's wrapper rebuilds its detector preprocessing and may update its
        # config on every call, so one page at a time per instance.
        self._lock = threading.Lock()

    def ocr(self, image: Image.Image) -> OcrResult:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        width, height = rgb.size
        with self._lock:
            started = time.perf_counter()
            lines = self._read(rgb)
            seconds = time.perf_counter() - started
        return OcrResult(
            engine=self.name,
            lines=lines,
            seconds=seconds,
            width=width,
            height=height,
            settings=self.options.model_dump(),
        )

    def _read(self, rgb: Image.Image) -> list[OcrLine]:
        """RapidOCR's own steps (resize, detect, crop, classify, recognise), called one by
        one so that the line crops, which ``respace`` needs, stay at hand."""
        import numpy as np
        from rapidocr.main import RapidOCRError
        from rapidocr.utils.process_img import map_boxes_to_original

        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
        image, op_record = self._rapid.preprocess_img(bgr)
        try:
            crops, detection = self._rapid.detect_and_crop(image, op_record)
            if self.options.use_angle_cls:
                crops, _ = self._rapid.cls_and_rotate(crops)
            recognised = self._rapid.recognize_txt(crops)
        except RapidOCRError:  # raised when a step finds no text at all
            return []
        boxes = map_boxes_to_original(detection.boxes, op_record, *bgr.shape[:2])
        texts = list(recognised.txts)
        if self.options.respace:
            texts = [
                respaced_text(text, info, crop)
                for text, info, crop in zip(texts, recognised.word_results, crops, strict=True)
            ]
        lines = lines_from_output(
            _Output(boxes, texts, recognised.scores), rgb.width, rgb.height, self.options.text_score
        )
        if self.options.find_colons:
            from models.ocr.colons import find_colons

            lines += find_colons(np.asarray(rgb.convert("L")), lines)
        return lines

    def page_quarter_turns(self, image: Image.Image) -> int:
        """Counter-clockwise quarter turns (0-3) that make this page upright.

        Detection plus the line classifier, no recognition (about half the cost of
        ``ocr``). Lines vote by the page's dominant line direction; a page with no
        detected text counts as upright.
        """
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        with self._lock:
            crops, tall_flags = self._detect_crops(rgb)
            if not crops:
                return 0
            labels = [label for label, _ in self._rapid._load_cls_model()(crops).cls_res]
        vertical = sum(tall_flags) * 2 > len(tall_flags)
        voting = [label for label, tall in zip(labels, tall_flags, strict=True) if tall == vertical]
        upside_down = sum(1 for label in voting if "180" in label)
        return quarter_turns_from_votes(vertical, upside_down, len(voting) - upside_down)

    def _detect_crops(self, rgb: Image.Image) -> tuple[list[Any], list[bool]]:
        """Line crops as RapidOCR cuts them for recognition, and which lines are tall."""
        import numpy as np
        from rapidocr.main import RapidOCRError

        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
        image, op_record = self._rapid.preprocess_img(bgr)
        try:
            crops, detection = self._rapid.detect_and_crop(image, op_record)
        except RapidOCRError:  # raised when the detector finds no text at all
            return [], []
        return list(crops), [_is_tall(points) for points in detection.boxes]


_ENGINES: dict[str, RapidOcrEngine] = {}
_ENGINES_LOCK = threading.Lock()


def get_rapidocr_engine(options: RapidOcrOptions | None = None) -> RapidOcrEngine:
    """The shared engine for these options, created once (loading takes about a second)."""
    options = options or RapidOcrOptions()
    key = options.model_dump_json()
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = RapidOcrEngine(options)
            _ENGINES[key] = engine
        return engine
