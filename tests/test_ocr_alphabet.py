"""The recogniser limited to an alphabet: its likeliest allowed character wins."""

from __future__ import annotations

import numpy as np
import pytest

from models.config import load_config
from models.ocr.alphabet import (
    ASCII_PRINTABLE,
    AlphabetDecoder,
    allowed_mask,
    best_allowed,
    limit_recogniser,
)
from models.ocr.rapid import get_rapidocr_engine
from models.options import RapidOcrOptions
from testkit.render import accented_page, encode
from utils.ocr.pipeline import OcrSettings, ocr_file, run_settings_record

CHARACTERS = ["blank", "A", "Á", "B", "米", " "]


def steps(*rows: list[float]) -> np.ndarray:
    """One line's CTC probabilities, one row per time step."""
    return np.array([rows], dtype=np.float32)


def test_the_blank_and_the_space_stay_allowed_whatever_the_alphabet():
    assert allowed_mask(CHARACTERS, frozenset("B")).tolist() == [
        True, False, False, True, False, True,
    ]  # fmt: skip


def test_a_disallowed_first_choice_gives_way_to_the_likeliest_allowed_one():
    allowed = allowed_mask(CHARACTERS, ASCII_PRINTABLE)
    preds = steps(
        [0.1, 0.3, 0.5, 0.05, 0.05, 0.0],  # "Á" first, "A" second
        [0.1, 0.0, 0.0, 0.2, 0.7, 0.0],  # "米" first, "B" the best allowed
        [0.9, 0.05, 0.05, 0.0, 0.0, 0.0],  # blank first: kept
        [0.0, 0.6, 0.4, 0.0, 0.0, 0.0],  # allowed first: kept
    )
    indices, probabilities = best_allowed(preds, allowed)
    assert indices.tolist() == [[1, 3, 0, 1]]
    assert probabilities[0].tolist() == pytest.approx([0.3, 0.2, 0.9, 0.6])


class RecordingDecoder:
    """Stands in for RapidOCR's CTCLabelDecode: records what ``decode`` receives."""

    character = CHARACTERS

    def decode(self, indices, probabilities, return_word_box, wh_ratios, max_ratio, **kw):
        self.received = (indices.tolist(), return_word_box, wh_ratios, max_ratio, kw)
        return [("text", 0.9)], []


def test_the_decoder_passes_the_limited_choice_to_the_original_decode():
    original = RecordingDecoder()
    decoder = AlphabetDecoder(original, ASCII_PRINTABLE)
    decoder(steps([0.0, 0.4, 0.6, 0.0, 0.0, 0.0]), True, wh_ratio_list=[3.0], max_wh_ratio=4.0)
    assert original.received == ([[1]], True, [3.0], 4.0, {"remove_duplicate": True})


def test_limiting_twice_does_not_stack_decoders():
    class Recogniser:
        postprocess_op = RecordingDecoder()

    recogniser = Recogniser()
    original = recogniser.postprocess_op
    limit_recogniser(recogniser, ASCII_PRINTABLE)
    limit_recogniser(recogniser, frozenset("AB"))
    assert recogniser.postprocess_op._decoder is original


def test_the_real_recogniser_reads_the_accent_only_when_all_characters_are_allowed():
    page = accented_page()
    everything = [
        line.text for line in get_rapidocr_engine(RapidOcrOptions(characters="all")).ocr(page).lines
    ]
    assert "SETIA ÁLAM 40170" in everything and "CAFÉ 4.50" in everything
    ascii_only = [line.text for line in get_rapidocr_engine(RapidOcrOptions()).ocr(page).lines]
    assert ascii_only == ["SETIA ALAM 40170", "CAFE 4.50"]


def test_a_run_may_read_every_script_and_is_cached_apart_from_the_default():
    config = load_config().config
    png = encode(accented_page())
    default = OcrSettings(engine="rapidocr")
    everything = OcrSettings(engine="rapidocr", characters="all")
    assert "SETIA ALAM" in ocr_file(png, "page.png", default, config).pages[0].text
    assert "SETIA ÁLAM" in ocr_file(png, "page.png", everything, config).pages[0].text
    assert run_settings_record(default, config) != run_settings_record(everything, config)
    # The profile's own choice and the same choice made for a run are one cache entry.
    ascii_run = OcrSettings(engine="rapidocr", characters="ascii")
    assert run_settings_record(ascii_run, config) == run_settings_record(default, config)
