"""Tests for utils.bench.metrics: edit distance, text metrics, field matching, bootstrap."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.bench.metrics import (
    METRICS,
    aggregate,
    bootstrap_ci,
    cer,
    field_accuracy,
    field_accuracy_score,
    field_correct,
    get_metric,
    levenshtein,
    line_cer,
    normalize_field,
    normalize_for_cer,
    parse_amount,
    wer,
    word_f1,
)
from utils.errors import BadInput


def naive_levenshtein(a, b) -> int:
    """Textbook O(len(a) * len(b)) DP, the reference the fast version must agree with."""
    previous = list(range(len(b) + 1))
    for i, item_a in enumerate(a, start=1):
        current = [i]
        for j, item_b in enumerate(b, start=1):
            substitution = previous[j - 1] + (item_a != item_b)
            current.append(min(previous[j] + 1, current[j - 1] + 1, substitution))
        previous = current
    return previous[-1]


def reference_error_rate(prediction: list, truth: list) -> float:
    """The CER / WER definition spelled out: DP edit distance over the truth length."""
    if not truth:
        return 0.0 if not prediction else 1.0
    return naive_levenshtein(truth, prediction) / len(truth)


def reference_chars(text: str) -> list[str]:
    return list(" ".join(text.split()).upper())


def reference_words(text: str) -> list[str]:
    return text.upper().split()


WORDS = st.sampled_from(["total", "TOTAL", "rm", "12.50", "12.80", "cash", "Thanks", "é", "a"])
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\t", " \n "])


@st.composite
def word_texts(draw: st.DrawFn) -> str:
    """Texts made of a few words (repeats likely, so edits align) and mixed whitespace."""
    words = draw(st.lists(WORDS, max_size=25))
    gaps = draw(st.lists(SEPARATORS, min_size=len(words) + 1, max_size=len(words) + 1))
    return gaps[0] + "".join(word + gap for word, gap in zip(words, gaps[1:], strict=True))


# --- levenshtein -------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("KITTEN", "SITTING", 3),
        ("", "", 0),
        ("", "ABC", 3),
        ("ABC", "", 3),
        ("SAME", "SAME", 0),
        ("FLAW", "LAWN", 2),
        ("A" * 70, "B" * 70, 70),  # crosses the 64-bit word boundary
    ],
)
def test_levenshtein_known_values(a: str, b: str, expected: int) -> None:
    assert levenshtein(a, b) == expected
    assert levenshtein(b, a) == expected


def test_levenshtein_on_word_lists() -> None:
    assert levenshtein(["TOTAL", "12.50"], ["TOTAL", "RM", "12.50"]) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab c", max_size=90), st.text(alphabet="ab c", max_size=90))
def test_levenshtein_matches_naive_dp_small_alphabet(a: str, b: str) -> None:
    assert levenshtein(a, b) == naive_levenshtein(a, b)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_levenshtein_matches_naive_dp_any_unicode(a: str, b: str) -> None:
    assert levenshtein(a, b) == naive_levenshtein(a, b)


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, max_size=30), st.lists(WORDS, max_size=30))
def test_levenshtein_matches_naive_dp_on_word_lists(a: list[str], b: list[str]) -> None:
    assert levenshtein(a, b) == naive_levenshtein(a, b)


# --- CER / WER -----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aB c\n\t.1", max_size=120), st.text(alphabet="aB c\n\t.1", max_size=120))
def test_cer_matches_reference_on_random_strings(prediction: str, truth: str) -> None:
    expected = reference_error_rate(reference_chars(prediction), reference_chars(truth))
    assert cer(prediction, truth) == expected


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_cer_matches_reference_on_any_unicode(prediction: str, truth: str) -> None:
    expected = reference_error_rate(reference_chars(prediction), reference_chars(truth))
    assert cer(prediction, truth) == expected


@settings(max_examples=300, deadline=None)
@given(word_texts(), word_texts())
def test_wer_matches_reference_on_random_word_lists(prediction: str, truth: str) -> None:
    expected = reference_error_rate(reference_words(prediction), reference_words(truth))
    assert wer(prediction, truth) == expected


def test_normalize_for_cer_collapses_whitespace_and_uppercases() -> None:
    assert normalize_for_cer("  total\n\n 12.50\tRM ") == "TOTAL 12.50 RM"


def test_cer_kitten_sitting_is_three_over_six() -> None:
    assert cer("sitting", "kitten") == pytest.approx(3 / 6)


def test_cer_ignores_case_and_line_breaks() -> None:
    assert cer("total  12.50", "TOTAL\n12.50") == 0.0


def test_cer_divides_by_ground_truth_length_and_may_exceed_one() -> None:
    assert cer("ABCDEF", "AB") == pytest.approx(4 / 2)


def test_cer_empty_ground_truth() -> None:
    assert cer("", "   ") == 0.0
    assert cer("x", "") == 1.0


def test_wer_counts_word_edits_over_truth_words() -> None:
    # one substitution (12.50 -> 12.80) and one deletion (RM) over 4 truth words
    assert wer("total 12.80", "TOTAL RM 12.50\nTHANKS") == pytest.approx(3 / 4)
    assert wer("TOTAL RM 12.50", "total rm\n12.50") == 0.0


def test_wer_empty_ground_truth() -> None:
    assert wer("", "") == 0.0
    assert wer("word", "") == 1.0


# --- word F1 -----------------------------------------------------------------


def test_word_f1_uses_multiset_intersection() -> None:
    # pred {A:2, B:1}, truth {A:1, B:1, C:1}: common = 2, P = 2/3, R = 2/3
    assert word_f1("a a b", "A B C") == pytest.approx(2 / 3)


def test_word_f1_duplicates_in_truth_need_duplicates_in_prediction() -> None:
    # pred {X:1}, truth {X:3}: P = 1, R = 1/3, F1 = 0.5
    assert word_f1("x", "X X X") == pytest.approx(0.5)


def test_word_f1_empty_cases() -> None:
    assert word_f1("", "  ") == 1.0
    assert word_f1("", "A") == 0.0
    assert word_f1("A", "") == 0.0
    assert word_f1("A", "B") == 0.0


# --- fields ------------------------------------------------------------------


def test_normalize_field_keeps_letters_and_digits_of_any_script() -> None:
    assert normalize_field("No. 12-A, Jalan Ôté") == "NO12AJALANÔTÉ"
    assert normalize_field("ＡＢＣ１") == "ABC1"  # full-width forms fold to ASCII


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("RM 9.00", 9.0),
        ("9", 9.0),
        ("1,234.50", 1234.5),
        ("12,50", 12.5),
        ("1.234,50", 1234.5),
        ("1,234", 1234.0),
        ("1,234,567", 1234567.0),
        ("$80.90.", 80.9),
        ("-5.00", -5.0),
        ("TOTAL", None),
        ("2 x 4.50", None),
    ],
)
def test_parse_amount(text: str, amount: float | None) -> None:
    assert parse_amount(text) == amount


def test_field_correct_numeric_ignores_currency_and_format() -> None:
    assert field_correct("total", "RM 9.00", "9")
    assert field_correct("total", "1,234.50", "1234.5")
    assert field_correct("tax", "0,54", "0.54")
    assert field_correct("TOTAL", "9.004", "9.00")  # names are case-insensitive


def test_field_correct_numeric_outside_tolerance() -> None:
    assert not field_correct("total", "9.01", "9.00")
    assert not field_correct("subtotal", "90.00", "9.00")


def test_field_correct_numeric_falls_back_to_text_when_unparsable() -> None:
    assert field_correct("total", "N/A", "n a")
    assert not field_correct("total", "N/A", "9.00")


def test_field_correct_text_fields_compare_normalised() -> None:
    assert field_correct("company", "Yongfatt  Enterprise.", "YONGFATT ENTERPRISE")
    assert field_correct("date", "25/12/2018", "25-12-2018")
    assert not field_correct("date", "25/12/2018", "26/12/2018")


def test_field_correct_missing_prediction_is_wrong() -> None:
    assert not field_correct("company", None, "X")
    assert not field_correct("company", "   ", "X")
    assert not field_correct("total", "", "0")


def test_field_correct_custom_numeric_fields() -> None:
    # "amount" is not numeric by default, so "9" != "9.00" as strings
    assert not field_correct("amount", "9", "9.00")
    assert field_correct("amount", "9", "9.00", numeric_fields={"amount"})


def test_field_accuracy_reports_every_truth_field() -> None:
    truths = {"company": "ABC SDN BHD", "total": "80.90", "date": "25/12/2018"}
    predictions = {"company": "abc sdn. bhd.", "total": "RM80.9", "extra": "ignored"}
    assert field_accuracy(predictions, truths) == {"company": True, "total": True, "date": False}
    assert field_accuracy_score(predictions, truths) == pytest.approx(2 / 3)
    assert field_accuracy_score({}, {}) == 1.0


# --- registry and aggregation -------------------------------------------------


def test_registry_declares_directions() -> None:
    assert set(METRICS) == {"cer", "line_cer", "wer", "word_f1", "field_accuracy"}
    assert METRICS["cer"].direction == "lower"
    assert METRICS["line_cer"].direction == "lower"
    assert METRICS["wer"].direction == "lower"
    assert METRICS["word_f1"].direction == "higher"
    assert METRICS["field_accuracy"].direction == "higher"
    assert all(metric.aggregation == "mean" for metric in METRICS.values())
    assert METRICS["cer"].better(0.1, 0.2)
    assert METRICS["word_f1"].better(0.9, 0.8)


def test_registry_functions_take_prediction_then_truth() -> None:
    assert METRICS["cer"].fn("SITTING", "KITTEN") == pytest.approx(0.5)
    assert METRICS["field_accuracy"].fn({"total": "9"}, {"total": "9.00"}) == 1.0


def test_unknown_metric_raises_bad_input() -> None:
    with pytest.raises(BadInput, match="cer"):
        get_metric("bleu")
    with pytest.raises(BadInput):
        aggregate("bleu", [1.0])


def test_aggregate_mean_and_empty() -> None:
    assert aggregate("cer", [0.1, 0.2, 0.6]) == pytest.approx(0.3)
    assert math.isnan(aggregate("wer", []))


# --- bootstrap -----------------------------------------------------------------


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    values = [0.05, 0.1, 0.12, 0.3, 0.02, 0.5, 0.07, 0.09, 0.11, 0.2]
    low, high = bootstrap_ci(values, seed=3)
    mean = sum(values) / len(values)
    assert low < mean < high
    assert min(values) <= low and high <= max(values)
    assert bootstrap_ci(values, seed=3) == (low, high)
    assert bootstrap_ci(values, seed=4) != (low, high)


def test_bootstrap_ci_narrows_with_lower_confidence() -> None:
    values = [float(i % 7) for i in range(50)]
    low_95, high_95 = bootstrap_ci(values, confidence=0.95)
    low_50, high_50 = bootstrap_ci(values, confidence=0.50)
    assert low_95 <= low_50 < high_50 <= high_95


def test_bootstrap_ci_chunked_resampling_matches_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force many small chunks; the interval must still be a sensible one.
    monkeypatch.setattr("utils.bench.metrics._BOOTSTRAP_CELLS_PER_CHUNK", 7)
    values = [1.0, 2.0, 3.0, 4.0]
    low, high = bootstrap_ci(values, n_resamples=101)
    assert 1.0 <= low < 2.5 < high <= 4.0


def test_bootstrap_ci_degenerate_inputs() -> None:
    assert bootstrap_ci([0.4]) == (0.4, 0.4)
    assert all(math.isnan(bound) for bound in bootstrap_ci([]))
    with pytest.raises(BadInput):
        bootstrap_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(BadInput):
        bootstrap_ci([1.0, 2.0], n_resamples=0)


# --- line CER: reading order ignored ------------------------------------------

RECEIPT = [
    "SHOP NAME SDN BHD",
    "NO 12 JALAN MERDEKA",
    "CHICKEN RICE 2 X 6.50",
    "ICED TEA 1 X 2.50",
    "TOTAL 15.50",
    "CASH 20.00",
    "CHANGE 4.50",
]


@pytest.mark.parametrize(
    "predicted",
    [
        RECEIPT,  # perfect
        [line.replace("0", "O") for line in RECEIPT],  # misread characters, in order
        RECEIPT[:4] + RECEIPT[5:],  # a line missing
        RECEIPT + ["THANK YOU"],  # an extra line
        [],  # nothing read
    ],
)
def test_line_cer_equals_cer_when_the_lines_are_in_order(predicted: list[str]) -> None:
    truth, prediction = "\n".join(RECEIPT), "\n".join(predicted)
    assert line_cer(prediction, truth) == pytest.approx(cer(prediction, truth))


def test_line_cer_is_much_lower_than_cer_on_shuffled_lines() -> None:
    truth = "\n".join(RECEIPT)
    shuffled = [RECEIPT[i] for i in (4, 0, 6, 2, 5, 1, 3)]
    prediction = "\n".join(line.replace("0", "O") for line in shuffled)  # misread as well

    assert cer(prediction, truth) > 0.5
    assert line_cer(prediction, truth) == pytest.approx(
        cer("\n".join(line.replace("0", "O") for line in RECEIPT), truth)
    )  # only the misread characters count


def test_line_cer_edge_cases() -> None:
    assert line_cer("", "") == 0.0
    assert line_cer("ANYTHING", "") == 1.0
    assert line_cer("  \n\n", "A\nB") == 1.0
    assert line_cer("b\n a", "A\nB") == 0.0  # case and spacing normalised as cer does
