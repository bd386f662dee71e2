"""Text and field metrics for OCR benchmarks: CER, line CER, WER, word F1, field accuracy.

Every per-item function takes the prediction first and the ground truth second.
Definitions follow the benchmark issue exactly:

- word F1: multiset of upper-cased whitespace-separated words;
- CER / WER: Levenshtein distance over characters / words of both texts after
  ``normalize_for_cer`` (whitespace collapsed, stripped, upper-cased), divided by
  the ground-truth length;
- field accuracy: numeric fields compared as numbers (tolerance 0.005), other
  fields compared after ``normalize_field`` (upper-case letters and digits only).

``METRICS`` declares each metric's direction and aggregation, in the spirit of
lm-evaluation-harness, so the benchmark runner and the UI never hard-code them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

from utils.errors import BadInput

NUMERIC_FIELDS: frozenset[str] = frozenset({"total", "subtotal", "tax"})
NUMERIC_TOLERANCE = 0.005
"""Half a cent: amounts that round to the same cents count as equal."""

# ---------------------------------------------------------------------------
# Edit distance
# ---------------------------------------------------------------------------


def levenshtein(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1) between two sequences.

    Works on strings (characters) and on lists of words alike: rapidfuzz compares
    the items of any sequence of hashables, in compiled code.
    """
    return Levenshtein.distance(a, b)


# ---------------------------------------------------------------------------
# Text metrics
# ---------------------------------------------------------------------------


def normalize_for_cer(text: str) -> str:
    """Whitespace runs (newlines included) become one space; stripped; upper-cased."""
    return " ".join(text.split()).upper()


def cer(prediction: str, truth: str) -> float:
    """Character error rate: Levenshtein(truth, prediction) / len(truth), after normalisation.

    Can exceed 1.0 when the prediction is much longer than the truth.
    """
    return _error_rate(normalize_for_cer(prediction), normalize_for_cer(truth))


def wer(prediction: str, truth: str) -> float:
    """Word error rate: word-level Levenshtein / number of ground-truth words."""
    return _error_rate(normalize_for_cer(prediction).split(), normalize_for_cer(truth).split())


def _error_rate(prediction: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    if not truth:
        return 0.0 if not prediction else 1.0
    return levenshtein(truth, prediction) / len(truth)


def line_cer(prediction: str, truth: str) -> float:
    """CER that ignores the order of lines: each ground-truth line is paired with at most
    one predicted line (cheapest edits first), then the pairs' edits, every unpaired line
    and the surplus line breaks are counted, over the same denominator as ``cer``.

    Equal to ``cer`` for a prediction whose lines come in the truth's order (barring an
    alignment that crosses line ends); far lower when the right lines come in another order
    (columns read one after the other, a table read by columns).
    """
    truth_lines, predicted_lines = _lines(truth), _lines(prediction)
    if not truth_lines:
        return 0.0 if not predicted_lines else 1.0
    pairs = _pair_lines(truth_lines, predicted_lines)
    paired_truth = {t for t, _, _ in pairs}
    paired_prediction = {p for _, p, _ in pairs}
    errors = sum(distance for _, _, distance in pairs)
    errors += sum(len(line) for i, line in enumerate(truth_lines) if i not in paired_truth)
    errors += sum(len(line) for j, line in enumerate(predicted_lines) if j not in paired_prediction)
    # The line breaks, as cer sees them: one space between lines on either side.
    errors += abs((len(truth_lines) - 1) - max(len(predicted_lines) - 1, 0))
    return errors / len(" ".join(truth_lines))


def _lines(text: str) -> list[str]:
    """The non-blank lines, each normalised as ``cer`` normalises a whole text."""
    return [normalize_for_cer(line) for line in text.splitlines() if line.strip()]


def _pair_lines(truth: list[str], predicted: list[str]) -> list[tuple[int, int, int]]:
    """(truth index, predicted index, edit distance), one-to-one, greedily cheapest first;
    among equal costs the pair nearest the same position wins, so in-order text pairs
    line i with line i. Greedy, not optimal: scipy's Hungarian solver is not a dependency."""
    if not predicted:
        return []
    distances = cdist(truth, predicted, scorer=Levenshtein.distance, dtype=np.int64)
    rows, columns = np.indices(distances.shape)
    order = np.lexsort((np.abs(rows - columns).ravel(), distances.ravel()))
    used_truth: set[int] = set()
    used_prediction: set[int] = set()
    pairs = []
    for flat in order:
        i, j = divmod(int(flat), len(predicted))
        if i in used_truth or j in used_prediction:
            continue
        used_truth.add(i)
        used_prediction.add(j)
        pairs.append((i, j, int(distances[i, j])))
    return pairs


def word_f1(prediction: str, truth: str) -> float:
    """F1 over the multisets of upper-cased whitespace-separated words."""
    predicted_words = Counter(prediction.upper().split())
    true_words = Counter(truth.upper().split())
    if not predicted_words and not true_words:
        return 1.0
    common = sum((predicted_words & true_words).values())
    if common == 0:
        return 0.0  # also covers exactly one side empty
    precision = common / sum(predicted_words.values())
    recall = common / sum(true_words.values())
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------
# Structured fields
# ---------------------------------------------------------------------------


def normalize_field(value: str) -> str:
    """Upper-case letters and digits only (any script); NFKC first so full-width forms match."""
    folded = unicodedata.normalize("NFKC", value).upper()
    return "".join(char for char in folded if char.isalpha() or char.isdigit())


_NUMBER_TOKEN = re.compile(r"-?\d[\d.,]*")


def parse_amount(value: str) -> float | None:
    """The one number in ``value`` ("RM 1,234.50", "12,50", "$9"), or None.

    Currency symbols and letters around the number are ignored. A value with
    several separate numbers ("2 x 4.50") is ambiguous and gives None.
    """
    tokens = _NUMBER_TOKEN.findall(value)
    if len(tokens) != 1:
        return None
    token = tokens[0].rstrip(".,")
    return float(_canonical_decimal(token))


def _canonical_decimal(token: str) -> str:
    """Rewrite a number with "," / "." separators into Python's "1234.5" form.

    - both separators: the one that comes last is the decimal point ("1.234,50");
    - one separator used several times: thousands grouping ("1,234,567");
    - a single ",": decimal unless exactly three digits follow ("12,50" vs "1,234");
    - a single ".": always decimal (receipts write amounts with a point).
    """
    last_comma, last_dot = token.rfind(","), token.rfind(".")
    if last_comma >= 0 and last_dot >= 0:
        decimal = "," if last_comma > last_dot else "."
        grouping = "." if decimal == "," else ","
        return token.replace(grouping, "").replace(decimal, ".")
    separator = "," if last_comma >= 0 else "." if last_dot >= 0 else ""
    if not separator:
        return token
    if token.count(separator) > 1:
        return token.replace(separator, "")
    if separator == "," and len(token) - last_comma - 1 == 3:
        return token.replace(",", "")
    return token.replace(separator, ".")


def field_correct(
    name: str,
    predicted: str | float | None,
    truth: str | float | None,
    numeric_fields: frozenset[str] | set[str] = NUMERIC_FIELDS,
) -> bool:
    """Whether one extracted field matches the ground truth.

    Numeric fields (by lower-cased name) compare as numbers within 0.005; when
    either side does not parse as one number they fall back to the string rule.
    A missing or empty prediction is always wrong.
    """
    if predicted is None or not str(predicted).strip() or truth is None:
        return False
    predicted_text, true_text = str(predicted), str(truth)
    if name.lower() in numeric_fields:
        predicted_amount, true_amount = parse_amount(predicted_text), parse_amount(true_text)
        if predicted_amount is not None and true_amount is not None:
            return math.isclose(
                predicted_amount, true_amount, rel_tol=0.0, abs_tol=NUMERIC_TOLERANCE
            )
    return normalize_field(predicted_text) == normalize_field(true_text)


def field_accuracy(
    predictions: Mapping[str, Any],
    truths: Mapping[str, Any],
    numeric_fields: frozenset[str] | set[str] = NUMERIC_FIELDS,
) -> dict[str, bool]:
    """Per ground-truth field: was it extracted correctly? Missing predictions are wrong."""
    return {
        name: field_correct(name, predictions.get(name), truth, numeric_fields)
        for name, truth in truths.items()
    }


def field_accuracy_score(predictions: Mapping[str, Any], truths: Mapping[str, Any]) -> float:
    """Fraction of ground-truth fields extracted correctly (1.0 when there are none)."""
    per_field = field_accuracy(predictions, truths)
    if not per_field:
        return 1.0
    return sum(per_field.values()) / len(per_field)


# ---------------------------------------------------------------------------
# Registry and aggregation
# ---------------------------------------------------------------------------

Direction = Literal["higher", "lower"]
Aggregation = Literal["mean", "median"]


@dataclass(frozen=True)
class Metric:
    """How one metric is computed per item and summarised over a run."""

    name: str
    fn: Callable[[Any, Any], float]
    """Per item: ``fn(prediction, truth) -> float``."""
    direction: Direction
    """Which way is better; the UI uses it to colour and rank runs."""
    aggregation: Aggregation = "mean"
    description: str = ""

    def better(self, first: float, second: float) -> bool:
        """Whether ``first`` is strictly better than ``second`` for this metric."""
        return first > second if self.direction == "higher" else first < second


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("cer", cer, "lower", description="Character error rate"),
        Metric(
            "line_cer",
            line_cer,
            "lower",
            description="CER with lines paired regardless of their order: below cer when "
            "the right lines were read in another order (columns, tables), above it when "
            "lines were merged or split",
        ),
        Metric("wer", wer, "lower", description="Word error rate"),
        Metric("word_f1", word_f1, "higher", description="Word-multiset F1"),
        Metric(
            "field_accuracy",
            field_accuracy_score,
            "higher",
            description="Share of structured fields extracted correctly",
        ),
    )
}

_AGGREGATORS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": lambda values: float(np.mean(values)),
    "median": lambda values: float(np.median(values)),
}


def get_metric(name: str) -> Metric:
    """The registered metric called ``name``; raises BadInput listing the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(sorted(METRICS))
        raise BadInput(f"Unknown metric {name!r}", hint=f"choose one of: {known}") from None


def aggregate(name: str, values: Sequence[float]) -> float:
    """Summarise per-item values of metric ``name``; NaN when there are no values."""
    metric = get_metric(name)
    if len(values) == 0:
        return math.nan
    return _AGGREGATORS[metric.aggregation](np.asarray(values, dtype=float))


_BOOTSTRAP_CELLS_PER_CHUNK = 1_000_000
"""Bound on resamples × items drawn at once, so large runs stay within a few MB."""


def bootstrap_ci(
    values: Sequence[float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; same seed, same interval.

    Empty input gives (nan, nan); a single value gives (value, value).
    """
    if not 0.0 < confidence < 1.0:
        raise BadInput(f"confidence must be between 0 and 1, got {confidence}")
    if n_resamples < 1:
        raise BadInput(f"n_resamples must be at least 1, got {n_resamples}")
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (math.nan, math.nan)
    means = _resampled_means(data, n_resamples, np.random.default_rng(seed))
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(low), float(high))


def _resampled_means(data: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    rows_per_chunk = max(1, _BOOTSTRAP_CELLS_PER_CHUNK // data.size)
    chunks = []
    for start in range(0, n_resamples, rows_per_chunk):
        rows = min(rows_per_chunk, n_resamples - start)
        indices = rng.integers(0, data.size, size=(rows, data.size))
        chunks.append(data[indices].mean(axis=1))
    return np.concatenate(chunks)
