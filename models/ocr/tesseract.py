"""Tesseract engine through ``pytesseract``, returning one fragment per Tesseract line.

pytesseract runs the ``tesseract`` binary as a subprocess per page and keeps the
binary's path in a module global (``pytesseract.pytesseract.tesseract_cmd``).
Engines with different ``tesseract_cmd`` values therefore set that global and
run under one module lock: Tesseract calls in this process run one at a time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from typing import Any

from PIL import Image

from models.ocr.base import Box, OcrLine, OcrResult
from models.options import TesseractOptions
from utils.errors import GenerationError, ModelUnavailable

TESSERACT_INSTALL_HINT = "sudo apt-get install -y tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus"
PYTESSERACT_INSTALL_HINT = "pip install pytesseract"

# pytesseract's tesseract_cmd is a module global; every call sets it and runs under this lock.
_TESSERACT_LOCK = threading.Lock()


def apt_package_for(language: str) -> str:
    """Debian/Ubuntu package that ships a traineddata file (chi_sim -> tesseract-ocr-chi-sim)."""
    return "tesseract-ocr-" + language.lower().replace("_", "-")


def _import_pytesseract() -> Any:
    try:
        import pytesseract
    except ImportError as exc:
        raise ModelUnavailable(
            "pytesseract is not installed", hint=PYTESSERACT_INSTALL_HINT
        ) from exc
    return pytesseract


def resolve_tesseract_cmd(tesseract_cmd: str | None) -> str:
    """The binary to run: the configured path, else ``tesseract`` found on PATH."""
    if tesseract_cmd:
        if os.path.isfile(tesseract_cmd) and os.access(tesseract_cmd, os.X_OK):
            return tesseract_cmd
        raise ModelUnavailable(
            f"Tesseract binary not found at {tesseract_cmd}", hint=TESSERACT_INSTALL_HINT
        )
    found = shutil.which("tesseract")
    if found is None:
        raise ModelUnavailable("Tesseract is not installed", hint=TESSERACT_INSTALL_HINT)
    return found


def _probe_binary(pytesseract: Any, cmd: str) -> tuple[str, list[str]]:
    """Version and installed languages of the binary at ``cmd``."""
    with _TESSERACT_LOCK:
        pytesseract.pytesseract.tesseract_cmd = cmd
        try:
            version = str(pytesseract.get_tesseract_version())
            languages = list(pytesseract.get_languages())
        # pytesseract raises SystemExit when the binary's --version output is not Tesseract's.
        except (OSError, subprocess.SubprocessError, SystemExit) as exc:
            raise ModelUnavailable(
                f"Tesseract at {cmd} does not run: {exc}", hint=TESSERACT_INSTALL_HINT
            ) from exc
    return version, languages


def _check_languages(requested: list[str], installed: list[str]) -> None:
    for language in requested:
        if language not in installed:
            raise ModelUnavailable(
                f"Tesseract language '{language}' is not installed "
                f"(installed: {', '.join(installed) or 'none'})",
                hint=f"sudo apt-get install -y {apt_package_for(language)}",
            )


def tesseract_status(tesseract_cmd: str | None = None) -> tuple[bool, str]:
    """Whether Tesseract can run here, and a line saying which version/languages or why not."""
    try:
        pytesseract = _import_pytesseract()
        cmd = resolve_tesseract_cmd(tesseract_cmd)
        version, languages = _probe_binary(pytesseract, cmd)
    except ModelUnavailable as exc:
        return False, str(exc)
    return True, f"Tesseract {version} at {cmd}; languages: {', '.join(languages) or 'none'}"


def lines_from_data(data: dict[str, list[Any]], width: int, height: int) -> list[OcrLine]:
    """Group Tesseract's word rows by (block, paragraph, line) into line fragments.

    Rows with confidence -1 are page/block/paragraph/line records, not words.
    A line's confidence is the mean of its words' confidences (0..100 -> 0..1).
    """
    grouped: dict[tuple[int, int, int], list[int]] = {}
    for index, text in enumerate(data["text"]):
        if not str(text).strip() or float(data["conf"][index]) < 0:
            continue
        key = (
            int(data["block_num"][index]),
            int(data["par_num"][index]),
            int(data["line_num"][index]),
        )
        grouped.setdefault(key, []).append(index)
    return [_line_from_words(data, indices, width, height) for indices in grouped.values()]


def _line_from_words(
    data: dict[str, list[Any]], indices: list[int], width: int, height: int
) -> OcrLine:
    text = " ".join(str(data["text"][i]).strip() for i in indices)
    confidence = sum(float(data["conf"][i]) for i in indices) / len(indices) / 100.0
    box: Box = (
        max(min(int(data["left"][i]) for i in indices), 0),
        max(min(int(data["top"][i]) for i in indices), 0),
        min(max(int(data["left"][i]) + int(data["width"][i]) for i in indices), width),
        min(max(int(data["top"][i]) + int(data["height"][i]) for i in indices), height),
    )
    return OcrLine(text=text, box=box, confidence=min(max(confidence, 0.0), 1.0))


class TesseractEngine:
    """Tesseract behind the ``OcrEngine`` interface; checks binary and languages on creation."""

    name = "tesseract"

    def __init__(self, options: TesseractOptions | None = None) -> None:
        self.options = options or TesseractOptions()
        self._pytesseract = _import_pytesseract()
        self._cmd = resolve_tesseract_cmd(self.options.tesseract_cmd)
        self.version, installed = _probe_binary(self._pytesseract, self._cmd)
        _check_languages(self.options.languages, installed)
        # Tesseract's OpenMP threads fight each other on small machines (4-8x slower
        # on 2 cores); the subprocess inherits this process's environment, so setting
        # it here (unless the user chose a value) applies to every page.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")

    def ocr(self, image: Image.Image) -> OcrResult:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        width, height = rgb.size
        data, seconds = self._image_to_data(rgb)
        return OcrResult(
            engine=self.name,
            lines=lines_from_data(data, width, height),
            seconds=seconds,
            width=width,
            height=height,
            settings=self.options.model_dump(),
        )

    def _image_to_data(self, image: Image.Image) -> tuple[dict[str, list[Any]], float]:
        """Tesseract's word table for the page and the seconds it took (lock wait excluded)."""
        pytesseract = self._pytesseract
        with _TESSERACT_LOCK:
            pytesseract.pytesseract.tesseract_cmd = self._cmd
            started = time.perf_counter()
            try:
                data = pytesseract.image_to_data(
                    image,
                    lang=self.options.language_arg(),
                    config=self.options.config_arg(),
                    output_type=pytesseract.Output.DICT,
                    timeout=self.options.timeout_s,
                )
            except pytesseract.TesseractError as exc:
                raise GenerationError(f"Tesseract failed: {exc.message}") from exc
            except RuntimeError as exc:  # pytesseract's timeout is a bare RuntimeError
                raise GenerationError(
                    f"Tesseract did not finish within {self.options.timeout_s:g} s",
                    hint="raise timeout_s in the Tesseract options or use a smaller image",
                ) from exc
            return data, time.perf_counter() - started
