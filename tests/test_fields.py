"""Templates -> structured fields: schema, receipt / invoice rules, MRZ parsing."""

from __future__ import annotations

from datetime import date

import pytest
import yaml
from pydantic import ValidationError

from models.ocr.base import OcrLine
from models.templates import (
    BUILTIN_TEMPLATES_YAML,
    FieldSpec,
    FieldValue,
    TemplateSpec,
    builtin_templates,
    templates_from_yaml,
)
from utils.errors import ConfigError
from utils.fields.dates import find_date
from utils.fields.extract import extract_fields
from utils.fields.mrz import CHECK_DIGIT_MISMATCH, mrz_check_digit, read_mrz

LINE_HEIGHT = 20
LINE_PITCH = 30


def stacked(*texts: str, confidence: float = 1.0) -> list[OcrLine]:
    """One line per text, top to bottom, left-aligned, like reading-order output."""
    return [
        OcrLine(
            text=text,
            box=(10, i * LINE_PITCH, 10 + 9 * max(len(text), 1), i * LINE_PITCH + LINE_HEIGHT),
            confidence=confidence,
        )
        for i, text in enumerate(texts)
    ]


def fragment(text: str, left: int, top: int, confidence: float = 1.0) -> OcrLine:
    return OcrLine(
        text=text, box=(left, top, left + 9 * len(text), top + LINE_HEIGHT), confidence=confidence
    )


@pytest.fixture(scope="module")
def templates() -> dict[str, TemplateSpec]:
    return builtin_templates()


# ---------------------------------------------------------------------------
# Built-in templates
# ---------------------------------------------------------------------------


def test_builtin_yaml_validates_as_template_specs() -> None:
    raw = yaml.safe_load(BUILTIN_TEMPLATES_YAML)
    assert set(raw) == {"receipt", "invoice", "passport"}
    specs = {name: TemplateSpec.model_validate(body) for name, body in raw.items()}
    assert set(specs["receipt"].fields) == {"company", "date", "address", "total"}
    assert set(specs["invoice"].fields) == {
        "number",
        "date",
        "seller",
        "buyer",
        "subtotal",
        "tax",
        "total",
    }
    assert {spec.mrz_field for spec in specs["passport"].fields.values()} >= {
        "document_number",
        "surname",
        "given_names",
        "nationality",
        "birth_date",
        "sex",
        "expiry_date",
    }


def test_builtin_yaml_keeps_yaml_pitfalls_as_strings(templates) -> None:
    # Unquoted NO would be the boolean False and '#' would start a comment.
    assert "NO" in templates["receipt"].fields["address"].keywords
    assert "INVOICE #" in templates["invoice"].fields["number"].keywords


# ---------------------------------------------------------------------------
# Receipt
# ---------------------------------------------------------------------------

RECEIPT = (
    "YONGFATT ENTERPRISE (JM0517726)",
    "NO 122.124 JALAN DEDAP 13",
    "81100 JOHOR BAHRU",
    "TEL 07-3523888",
    "GST ID: 000849813504",
    "DATE: 25/12/2018 12:31",
    "ELEGANT BAG 1 80.91",
    "SUBTOTAL 80.91",
    "TOTAL GST 0.00",
    "ROUNDING -0.01",
    "TOTAL RM 80.90",
    "CASH 100.00",
    "CHANGE 19.10",
    "GST SUMMARY AMOUNT TAX",
    "TOTAL 76.32 4.58",
)


def test_receipt_fields_from_reading_order_lines(templates) -> None:
    found = extract_fields(templates["receipt"], stacked(*RECEIPT, confidence=0.9))
    assert found["company"].value == "YONGFATT ENTERPRISE"
    assert found["company"].line == 0
    assert found["address"].value == "NO 122.124 JALAN DEDAP 13 81100 JOHOR BAHRU"
    assert found["address"].line == 1
    assert found["date"].value == "25/12/2018"
    assert found["date"].line == 5
    assert found["total"].value == "80.90"
    assert found["total"].line == 10
    for value in found.values():
        assert 0.0 < value.confidence <= 0.9  # never surer than the OCR line


def test_total_skips_subtotal_rounding_change_and_tax_summary(templates) -> None:
    found = extract_fields(templates["receipt"], stacked(*RECEIPT))
    assert found["total"].value == "80.90"
    no_final_total = stacked(*(line for line in RECEIPT if line != "TOTAL RM 80.90"))
    assert extract_fields(templates["receipt"], no_final_total)["total"].value is None


def test_total_label_and_amount_as_separate_fragments_on_one_row(templates) -> None:
    lines = [
        fragment("SUB-TOTAL", 10, 100),
        fragment("12.00", 300, 101),
        fragment("TOTAL (RM)", 10, 130),
        fragment("1,234.50", 300, 132),
        fragment("CASH", 10, 160),
        fragment("1,300.00", 300, 160),
    ]
    found = extract_fields(templates["receipt"], lines)["total"]
    assert found.value == "1234.50"
    assert found.line == 2


def test_total_amount_on_the_line_below_its_label(templates) -> None:
    found = extract_fields(templates["receipt"], stacked("GRAND TOTAL", "RM 12.50", "THANK YOU"))
    assert found["total"].value == "12.50"
    assert found["total"].line == 1


def test_total_from_a_merged_row_with_two_labels(templates) -> None:
    lines = stacked("Total with GST @ 6% 41.48", "Rounding 0.02", "Total Saving 0.00 Total 41.50")
    assert extract_fields(templates["receipt"], lines)["total"].value == "41.50"


def test_zero_total_only_when_nothing_else(templates) -> None:
    lines = stacked("TOTAL RM 14.65", "CASH 50.00", "CHANGE 35.35", "Total Savimgs 0.00")
    assert extract_fields(templates["receipt"], lines)["total"].value == "14.65"
    assert extract_fields(templates["receipt"], stacked("TOTAL 0.00"))["total"].value == "0.00"


def test_total_label_read_with_ocr_lookalikes(templates) -> None:
    lines = stacked("T0TAL PAYABIE: 27.10", "E.&.O.E.")
    assert extract_fields(templates["receipt"], lines)["total"].value == "27.10"


@pytest.mark.parametrize(
    ("printed", "amount"),
    [
        ("TOTAL RM 12.50", "12.50"),
        ("NETT TOTAL: $9.20", "9.20"),
        ("TOTAL: RM8.50", "8.50"),
        ("TOTAL 5.00 RM", "5.00"),
        ("GRAND TOTAL USD 1,234.56", "1234.56"),
        ("TOTAL EUR 1.234,56", "1234.56"),
    ],
)
def test_total_amount_formats(templates, printed: str, amount: str) -> None:
    assert extract_fields(templates["receipt"], stacked(printed))["total"].value == amount


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DATE: 25/12/2018", "25/12/2018"),
        ("10 MAR 2018 18:24", "10 MAR 2018"),
        ("14/JUN/2017 08:34:22", "14/JUN/2017"),
        ("2017-12-28 22:17PM", "2017-12-28"),
        ("Date :05-03-201819:02:50", "05-03-2018"),
        ("Date :23/06/1812:46:33 PM", "23/06/18"),
        ("12/28/2017 10:17:32 PM", "12/28/2017"),
        ("05 MAY 18", "05 MAY 18"),
        ("March 10, 2018", "March 10, 2018"),
        ("17.01.18", "17.01.18"),
        ("DATE 18 /04/2017", "18 /04/2017"),  # OCR's stray space next to a separator
        ("2017 -12- 28", "2017 -12- 28"),
        ("32/13/2018", None),
        ("TEL 07-3523888", None),
        ("JALAN 7/118B", None),
        ("TOTAL 12.50", None),
    ],
)
def test_find_date_formats(text: str, expected: str | None) -> None:
    assert find_date(text) == expected


def test_date_prefers_the_labelled_line_and_skips_expiry(templates) -> None:
    lines = stacked(
        "CARD EXPIRY : 31/05/18",
        "2017-12-28 22:17PM",
        "BILL NO : C1-0170778",
        "DATE : 12/28/2017 10:17:32 PM",
    )
    found = extract_fields(templates["receipt"], lines)["date"]
    assert (found.value, found.line) == ("12/28/2017", 3)
    unlabelled = extract_fields(templates["receipt"], lines[:3])["date"]
    assert (unlabelled.value, unlabelled.line) == ("2017-12-28", 1)
    assert unlabelled.confidence < found.confidence


def test_date_value_on_the_row_right_of_its_label(templates) -> None:
    lines = [fragment("DATE", 10, 50), fragment(":", 120, 52), fragment("19-04-2018", 140, 51)]
    assert extract_fields(templates["receipt"], lines)["date"].value == "19-04-2018"


def test_company_joins_a_name_split_over_two_lines(templates) -> None:
    lines = stacked(
        "3-1708032",
        "POPULAR BOOK",
        "CO. (M) SDN BHD",
        "(CO. NO. 113825-W)",
        "NO 8, JALAN 7/118B, DESA TUN RAZAK",
        "56000 KUALA LUMPUR, MALAYSIA",
        "TEL : 03-80709188",
    )
    found = extract_fields(templates["receipt"], lines)
    assert found["company"].value == "POPULAR BOOK CO. (M) SDN BHD"
    assert found["company"].line == 1
    assert found["address"].value == (
        "NO 8, JALAN 7/118B, DESA TUN RAZAK 56000 KUALA LUMPUR, MALAYSIA"
    )


def test_company_drops_registration_numbers(templates) -> None:
    lines = stacked("DION REALTIES SDN BHD (CO. NO:20154-T)", "27, JALAN SULTAN ISMAIL")
    assert extract_fields(templates["receipt"], lines)["company"].value == "DION REALTIES SDN BHD"


def test_company_marker_inside_glued_words_counts(templates) -> None:
    lines = stacked(
        "SANYUSTATIONERYSHOP", "NO. 31G, JALAN SETIA", "OWNED BY :", "SANYU SUPPLY SDN BHD"
    )
    assert extract_fields(templates["receipt"], lines)["company"].value == "SANYUSTATIONERYSHOP"


def test_company_without_marker_is_a_low_confidence_guess(templates) -> None:
    lines = stacked("TAX INVOICE", "DOMINO'S BURGERS", "GST REF NO : 001694261248")
    found = extract_fields(templates["receipt"], lines)["company"]
    assert found.value == "DOMINO'S BURGERS"
    assert found.confidence < 0.5


def test_address_skips_stamps_above_the_company_and_stops_at_phone(templates) -> None:
    lines = stacked(
        "A03030",
        "UNIHAKKA INTERNATIONAL SDN BHD",
        "10 Mar 2018 18:24",
        "(867388-U)",
        "12, Jalan Tampoi 7/4,Kawasan Perindustrian",
        "Tampoi,81200 Johor Bahru,Johor",
        "TAX INVOICE",
    )
    found = extract_fields(templates["receipt"], lines)
    assert found["address"].value == (
        "12, Jalan Tampoi 7/4,Kawasan Perindustrian Tampoi,81200 Johor Bahru,Johor"
    )
    assert found["date"].value == "10 Mar 2018"


def test_address_takes_a_state_line_after_the_postcode_but_not_a_branch_name(templates) -> None:
    lines = stacked(
        "LIAN HING STATIONERY SDN BHD",
        "TAMAN SERDANG RAYA,",
        "43300 SERI KEMBANGAN, SELANGOR",
        "DARUL EHSAN",
        "IOI MALL",
        "GST ID : 002139201536",
    )
    found = extract_fields(templates["receipt"], lines)["address"]
    assert found.value == "TAMAN SERDANG RAYA, 43300 SERI KEMBANGAN, SELANGOR DARUL EHSAN"


@pytest.mark.parametrize(
    ("lines", "address"),
    [
        pytest.param(
            ["GOLDEN BAKERY S/B", "68,", "LORONG KENARI 3", "10200 GEORGE TOWN", "TEL: 04-2261234"],
            "68, LORONG KENARI 3 10200 GEORGE TOWN",
            id="house number alone above the street",
        ),
        pytest.param(
            ["THE BEAN CAFE PTE LTD", "70 ANG MO KIO AVENUE 3", "SINGAPORE 753996", "GST REG NO"],
            "70 ANG MO KIO AVENUE 3 SINGAPORE 753996",
            id="street with a keyword above a Singapore postcode",
        ),
        pytest.param(
            ["KOPI HOUSE PTE LTD", "9 TAMPINES CENTRAL 1 #03-11", "SINGAPORE 529541", "TEL 6789"],
            "9 TAMPINES CENTRAL 1 #03-11 SINGAPORE 529541",
            id="numbered street without a keyword above the postcode",
        ),
        pytest.param(
            ["MEGA HARDWARE SDN BHD", "LOT 1234, BATU 5", "JALAN KLANG LAMA", "INV NO: 88821",
             "58000 KUALA LUMPUR"],
            "LOT 1234, BATU 5 JALAN KLANG LAMA",
            id="an invoice number line ends it",
        ),
        pytest.param(
            ["SEN HENG SDN BHD", "NO 8, JALAN 7/118B,", "56000 KUALA LUMPUR, MALAYSIA",
             "AMPANG POINT CENTRE"],
            "NO 8, JALAN 7/118B, 56000 KUALA LUMPUR, MALAYSIA",
            id="after the postcode a region, not a building",
        ),
        pytest.param(
            ["RESTORAN HASSAN", "NO.2-1-1 JALAN SETIA PRIMA Q", "U 13/Q SETIA ALAM 40170",
             "SHAH ALAM", "SELANGOR", "TAX INVOICE"],
            "NO.2-1-1 JALAN SETIA PRIMA Q U 13/Q SETIA ALAM 40170 SHAH ALAM SELANGOR",
            id="the city below a line that ends with the postcode",
        ),
        pytest.param(
            ["MAJU HARDWARE", "LOT 12, JALAN BESAR", "KAMPUNG DEDAP 47100", "CASHIER: SITI"],
            "LOT 12, JALAN BESAR KAMPUNG DEDAP 47100",
            id="below the postcode a label is no city",
        ),
        pytest.param(
            ["MAJU HARDWARE", "NO 3, JALAN BESAR", "47100 PUCHONG", "PUCHONG JAYA BRANCH"],
            "NO 3, JALAN BESAR 47100 PUCHONG",
            id="a city already beside the postcode: no second one",
        ),
        pytest.param(
            ["NASI KANDAR SDN BHD", "(123456-A)", "TAMAN MELATI", "53100 KUALA LUMPUR"],
            "TAMAN MELATI 53100 KUALA LUMPUR",
            id="a registration number above is not a house number",
        ),
        pytest.param(
            ["PIZZA HUT", "ROC NO : 001694261248", "30, JLN KEBUDAYAAN 7,",
             "81300 SKUDAI, JOHOR"],
            "30, JLN KEBUDAYAAN 7, 81300 SKUDAI, JOHOR",
            id="a labelled number above is not its first line",
        ),
        pytest.param(
            ["KEDAI RUNCIT ABC", "NO 8, JALAN BESAR,", "HP NO : 012 - 665 1783",
             "56000 KUALA LUMPUR"],
            "NO 8, JALAN BESAR,",
            id="a labelled number ends it",
        ),
    ],
)  # fmt: skip
def test_address_first_and_last_lines(templates, lines: list[str], address: str) -> None:
    found = extract_fields(templates["receipt"], stacked(*lines))["address"]
    assert found.value == address


def test_address_skips_a_block_printed_beside_it(templates) -> None:
    """An invoice's number and date on the right, read between the address lines."""
    rows = [
        ("MEGA HARDWARE SDN BHD", 40),
        ("LOT 1234, BATU 5", 40),
        ("INV NO: 88821", 620),
        ("JALAN KLANG LAMA", 40),
        ("DATE: 23/01/2019", 620),
        ("TAMAN DESA", 40),
        ("CASHIER: SITI", 620),
        ("TABLE 5", 620),
        ("58000 KUALA LUMPUR", 40),
        ("WILAYAH PERSEKUTUAN", 40),
        ("TEL: 03-7981 1234", 300),
    ]
    lines = [
        OcrLine(text=text, box=(x, 30 * i, x + 12 * len(text), 30 * i + 20), confidence=1.0)
        for i, (text, x) in enumerate(rows)
    ]
    found = extract_fields(templates["receipt"], lines)
    assert found["address"].value == (
        "LOT 1234, BATU 5 JALAN KLANG LAMA TAMAN DESA 58000 KUALA LUMPUR WILAYAH PERSEKUTUAN"
    )


def test_nothing_to_find_gives_none_with_zero_confidence(templates) -> None:
    for template in templates.values():
        for value in extract_fields(template, []).values():
            assert value == FieldValue(value=None, confidence=0.0, line=None)
    found = extract_fields(templates["receipt"], stacked("12345", "67.00"))
    assert all(value.value is None and value.confidence == 0.0 for value in found.values())


# ---------------------------------------------------------------------------
# Invoice
# ---------------------------------------------------------------------------


def test_invoice_fields(templates) -> None:
    lines = stacked(
        "ACME TRADING SDN BHD",
        "TAX INVOICE",
        "INVOICE NO: INV-2024/0042",
        "INVOICE DATE: 03/04/2024",
        "DUE DATE: 03/05/2024",
        "BILL TO:",
        "GLOBEX CORPORATION",
        "WIDGET 10 x 100.00 1,000.00",
        "SUBTOTAL 1,000.00",
        "SST 6% 60.00",
        "TOTAL DUE RM 1,060.00",
        "PAID 1,060.00",
    )
    found = extract_fields(templates["invoice"], lines)
    assert {name: value.value for name, value in found.items()} == {
        "number": "INV-2024/0042",
        "date": "03/04/2024",
        "seller": "ACME TRADING SDN BHD",
        "buyer": "GLOBEX CORPORATION",
        "subtotal": "1000.00",
        "tax": "60.00",
        "total": "1060.00",
    }
    assert found["buyer"].line == 6  # the value's line, below its label


def test_invoice_number_needs_a_digit(templates) -> None:
    lines = stacked("INVOICE NO: PENDING", "THANK YOU")
    assert extract_fields(templates["invoice"], lines)["number"].value is None


# ---------------------------------------------------------------------------
# Passport MRZ
# ---------------------------------------------------------------------------

TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
)
SPECIMEN = {
    "surname": "ERIKSSON",
    "given_names": "ANNA MARIA",
    "nationality": "UTO",
    "birth_date": "1974-08-12",
    "sex": "F",
    "expiry_date": "2012-04-15",
    "issuing_country": "UTO",
}


def test_check_digit_weights() -> None:
    assert mrz_check_digit("L898902C3") == 6
    assert mrz_check_digit("740812") == 2
    assert mrz_check_digit("<<<<<<") == 0
    assert mrz_check_digit("ZE184226B<<<<<") == 1


def test_td3_specimen_parses_fully(templates) -> None:
    lines = stacked("PASSPORT", "UTOPIA", *TD3, confidence=0.95)
    found = extract_fields(templates["passport"], lines)
    values = {name: value.value for name, value in found.items()}
    assert values == {**SPECIMEN, "document_number": "L898902C3"}
    assert all(value.note is None for value in found.values())
    assert found["document_number"].line == 3
    assert found["surname"].line == 2
    assert found["birth_date"].confidence == pytest.approx(0.95 * 0.95)


def test_td3_wrong_check_digit_flags_that_field(templates) -> None:
    bad_birth_check = TD3[1][:19] + "3" + TD3[1][20:]
    found = extract_fields(templates["passport"], stacked(TD3[0], bad_birth_check))
    assert found["birth_date"].value == "1974-08-12"  # still reported as read ...
    assert found["birth_date"].note == CHECK_DIGIT_MISMATCH  # ... but flagged
    assert found["birth_date"].confidence <= 0.2
    # The composite digit covers the birth date too, so the other checked fields
    # are doubted, less strongly.
    assert "composite" in (found["document_number"].note or "")
    assert 0.2 < found["document_number"].confidence < 0.95


def test_td3_with_ocr_spaces_fillers_and_lookalike_digits(templates) -> None:
    lines = stacked(
        "P<UTO ERIKSSON<<ANNA<MARIA«««« <<<<<<<<<<<<<<",
        "L898902C3 6UTO 74O8I22F 12O4I59 ZE184226B<<<<< 1O",
    )
    found = extract_fields(templates["passport"], lines)
    assert {name: value.value for name, value in found.items()} == {
        **SPECIMEN,
        "document_number": "L898902C3",
    }
    assert all(value.note is None for value in found.values())


def test_td3_short_names_line_is_padded(templates) -> None:
    lines = stacked("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<", TD3[1])
    assert extract_fields(templates["passport"], lines)["given_names"].value == "ANNA MARIA"


def test_td1_id_card_parses(templates) -> None:
    found = extract_fields(templates["passport"], stacked(*TD1))
    values = {name: value.value for name, value in found.items()}
    assert values == {**SPECIMEN, "document_number": "D23145890"}
    assert all(value.note is None for value in found.values())


def test_birth_century_follows_today() -> None:
    young = TD3[1][:13] + "100101" + str(mrz_check_digit("100101")) + TD3[1][20:]
    found = read_mrz(stacked(TD3[0], young), today=date(2025, 6, 1))
    assert found is not None
    assert found["birth_date"].value == "2010-01-01"
    found_1900s = read_mrz(stacked(TD3[0], young), today=date(2005, 6, 1))
    assert found_1900s is not None
    assert found_1900s["birth_date"].value == "1910-01-01"


def test_no_mrz_gives_none(templates) -> None:
    lines = stacked("PASSPORT", "NAME: ANNA MARIA ERIKSSON", "P<UTO SHORT LINE")
    assert read_mrz(lines) is None
    found = extract_fields(templates["passport"], lines)
    assert all(value.value is None and value.confidence == 0.0 for value in found.values())


# ---------------------------------------------------------------------------
# User templates and validation
# ---------------------------------------------------------------------------

USER_TEMPLATES = r"""
parcel:
  description: Shipping label
  fields:
    tracking: {kind: regex, pattern: 'TRACKING\s*(?:NO|#)?\s*:?\s*([A-Z0-9]{10,})'}
    recipient: {kind: keyword_value, keywords: [SHIP TO, RECIPIENT]}
    weight: {kind: regex, keywords: [WEIGHT], pattern: '(\d+(?:\.\d+)?)\s*KG'}
    reference: {kind: keyword_value, keywords: [REF], pattern: '([0-9]{4,})'}
"""


def test_user_template_from_yaml_extracts() -> None:
    parcel = templates_from_yaml(USER_TEMPLATES)["parcel"]
    lines = stacked(
        "EXPRESS PARCEL",
        "Tracking #: 1Z999AA10123456784",
        "Ship to: Jane Doe  Phone: 555",
        "Weight 2.5 kg",
        "REF: none",
    )
    found = extract_fields(parcel, lines)
    assert found["tracking"].value == "1Z999AA10123456784"
    assert found["recipient"].value == "Jane Doe"
    assert found["recipient"].line == 2
    assert found["weight"].value == "2.5"
    assert found["reference"] == FieldValue()


def test_bad_regex_names_the_field() -> None:
    bad = "t:\n  fields:\n    order_id: {kind: regex, pattern: 'ORDER ([0-9]+'}\n"
    with pytest.raises(ConfigError) as error:
        templates_from_yaml(bad, source="config.yaml")
    message = str(error.value)
    assert "config.yaml" in message
    assert "fields.order_id.pattern" in message
    assert "not a valid regular expression" in message
    with pytest.raises(ValidationError, match="order_id"):
        TemplateSpec.model_validate(yaml.safe_load(bad)["t"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "regex", "pattern": "(A)(B)"}, "exactly one capture group"),
        ({"kind": "regex"}, "needs a 'pattern'"),
        ({"kind": "amount"}, "needs at least one entry in 'keywords'"),
        ({"kind": "mrz"}, "needs 'mrz_field'"),
        ({"kind": "date", "mrz_field": "sex"}, "only applies to kind 'mrz'"),
        ({"kind": "date", "colour": "red"}, "Extra inputs are not permitted"),
        ({"kind": "mrz", "mrz_field": "height"}, "document_number"),
        ({"kind": "date", "keywords": [" "]}, "must not be empty"),
    ],
)
def test_field_spec_rejects(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FieldSpec.model_validate(spec)


def test_after_field_must_name_an_earlier_field() -> None:
    with pytest.raises(ValidationError, match="after_field 'company'"):
        TemplateSpec.model_validate(
            {
                "fields": {
                    "address": {"kind": "address", "after_field": "company"},
                    "company": {"kind": "company"},
                }
            }
        )


def test_templates_yaml_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        templates_from_yaml("- just\n- a list\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        templates_from_yaml("a: [unclosed\n")


def test_fields_from_text_without_positions() -> None:
    """A VLM's plain lines: a label's value on the next line is still found."""
    template = builtin_templates()["receipt"]
    texts = [
        "ACME TRADING SDN BHD",
        "12 JALAN BESAR, 50000 KUALA LUMPUR",
        "DATE",
        "01/02/2019",
        "TOTAL",
        "RM 7.50",
    ]
    lines = [OcrLine(text=t, box=None, confidence=1.0) for t in texts]
    found = extract_fields(template, lines)
    assert found["total"].value == "7.50"
    assert found["date"].value == "01/02/2019"
    assert found["company"].value == "ACME TRADING SDN BHD"


# Receipts unlike the development set's: other label words (Malay, "AMOUNT DUE"), dates
# written other ways, a company with its registration number on the next line, a
# Singapore address with a unit number, "TOTAL: RM15.50" glued together.
VARIED_RECEIPTS = {
    "malay restaurant": (
        ["RESTORAN SRI MURNI", "LOT 5, JALAN BESAR", "KAMPUNG BARU", "50300 KUALA LUMPUR",
         "TEL: 03-2691 1234", "TARIKH: 02/11/2018 13:45", "NASI LEMAK 2 x 4.50 9.00",
         "TEH TARIK 2.20", "JUMLAH 11.20", "TUNAI 20.00", "BAKI 8.80"],
        {"company": "RESTORAN SRI MURNI", "date": "02/11/2018", "total": "11.20",
         "address": "LOT 5, JALAN BESAR KAMPUNG BARU 50300 KUALA LUMPUR"},
    ),
    "registration number under the name": (
        ["KEDAI RUNCIT AH HOCK", "(001234567-X)", "NO. 8 JALAN PASAR 2", "TAMAN MELAWATI",
         "53100 KUALA LUMPUR", "INVOICE NO: 88821", "15-06-2019", "RICE 5KG 22.90",
         "SUGAR 2.85", "GRAND TOTAL RM 25.75", "CASH RM 30.00", "CHANGE RM 4.25"],
        {"company": "KEDAI RUNCIT AH HOCK", "date": "15-06-2019", "total": "25.75",
         "address": "NO. 8 JALAN PASAR 2 TAMAN MELAWATI 53100 KUALA LUMPUR"},
    ),
    "singapore cafe": (
        ["THE BEAN CAFE PTE LTD", "1 RAFFLES PLACE #02-10", "SINGAPORE 048616",
         "GST REG NO: M2-1234567-8", "DATE 07 MAR 2019", "LATTE 5.80", "CROISSANT 4.20",
         "SUBTOTAL 10.00", "SERVICE CHARGE 1.00", "GST 7% 0.77", "TOTAL 11.77"],
        {"company": "THE BEAN CAFE PTE LTD", "date": "07 MAR 2019", "total": "11.77",
         "address": "1 RAFFLES PLACE #02-10 SINGAPORE 048616"},
    ),
    "amount due, card payment": (
        ["MEGA HARDWARE SDN BHD", "LOT 1234, BATU 5", "JALAN KLANG LAMA", "58000 KUALA LUMPUR",
         "DATE : 2019/01/23", "PAINT 1L 35.00", "BRUSH 6.50", "AMOUNT DUE 41.50", "VISA 41.50"],
        {"company": "MEGA HARDWARE SDN BHD", "date": "2019/01/23", "total": "41.50",
         "address": "LOT 1234, BATU 5 JALAN KLANG LAMA 58000 KUALA LUMPUR"},
    ),
    "label and amount glued": (
        ["PASARAYA SEGAR SDN. BHD.", "NO 3, JLN PERDANA 1/2", "BANDAR BARU BANGI",
         "43650 SELANGOR", "INV: 0099", "TIME 18:02 DATE 30.04.2018", "MILK 6.99", "EGGS 8.50",
         "ROUNDING 0.01", "TOTAL: RM15.50"],
        {"company": "PASARAYA SEGAR SDN. BHD.", "date": "30.04.2018", "total": "15.50",
         "address": "NO 3, JLN PERDANA 1/2 BANDAR BARU BANGI 43650 SELANGOR"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(VARIED_RECEIPTS))
def test_receipt_fields_on_layouts_the_rules_were_not_tuned_on(templates, name: str) -> None:
    lines, expected = VARIED_RECEIPTS[name]
    found = extract_fields(templates["receipt"], stacked(*lines))
    assert {field: found[field].value for field in expected} == expected


def test_address_takes_only_its_own_block_of_a_shared_row(templates) -> None:
    """Reading order joined "12, JALAN INDAH" and "DATE: 07/03/2019" printed on one row;
    the blocks keep them apart."""

    def line(text: str, x: int, row: int) -> OcrLine:
        return OcrLine(
            text=text, box=(x, 30 * row, x + 12 * len(text), 30 * row + 20), confidence=1
        )

    rows = [
        [line("SYARIKAT MAWAR", 40, 0)],
        [line("12, JALAN INDAH", 40, 1), line("DATE: 07/03/2019", 620, 1)],
        [line("70200 SEREMBAN", 40, 2), line("CASH BILL", 620, 2)],
        [line("TEL: 06-761 2345", 40, 3)],
    ]
    lines = [OcrLine(text=" ".join(b.text for b in row), box=(40, 30 * i, 900, 30 * i + 20),
                     confidence=1) for i, row in enumerate(rows)]  # fmt: skip
    assert (
        extract_fields(templates["receipt"], lines)["address"].value
        != "12, JALAN INDAH 70200 SEREMBAN"
    )
    found = extract_fields(templates["receipt"], lines, rows)
    assert found["address"].value == "12, JALAN INDAH 70200 SEREMBAN"
    assert found["date"].value == "07/03/2019"


def test_company_does_not_run_into_a_title_printed_beside_it(templates) -> None:
    lines = [
        OcrLine(text="DELIMA STATIONERY & BOOKS", box=(40, 0, 420, 24), confidence=1.0),
        OcrLine(text="CASH BILL", box=(640, 30, 760, 50), confidence=1.0),
        OcrLine(text="NO 8, JALAN INDAH", box=(40, 60, 250, 80), confidence=1.0),
    ]
    assert extract_fields(templates["receipt"], lines)["company"].value == (
        "DELIMA STATIONERY & BOOKS"
    )
