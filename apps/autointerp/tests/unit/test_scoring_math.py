import pytest

from interpedia_autointerp.examples import ActivationRecord, format_example, window
from interpedia_autointerp.scoring import (
    classifier_metrics,
    parse_int_list,
    pearson,
    roc_auc,
    without_marked,
)
from interpedia_core.errors import InvalidInput, UpstreamError


def test_roc_auc_perfect_inverted_and_ties() -> None:
    assert roc_auc([0.9, 0.8], [0.1, 0.2, 0.3]) == 1.0
    assert roc_auc([0.1], [0.9, 0.8]) == 0.0
    assert roc_auc([0.5, 0.5], [0.5]) == 0.5
    # 0.6 beats 0.4 and 0.5; 0.45 beats 0.4 only: 3 of 4 pairs.
    assert roc_auc([0.6, 0.45], [0.4, 0.5]) == pytest.approx(0.75)


def test_roc_auc_needs_both_classes() -> None:
    with pytest.raises(InvalidInput):
        roc_auc([0.1], [])


def test_classifier_metrics_hand_counted() -> None:
    truth = [True, True, True, True, False, False]
    predicted = [True, True, True, False, True, False]
    m = classifier_metrics(truth, predicted)
    assert (m.true_positives, m.false_negatives, m.false_positives, m.true_negatives) == (
        3,
        1,
        1,
        1,
    )
    assert m.recall == pytest.approx(0.75)
    assert m.precision == pytest.approx(0.75)
    assert m.balanced_accuracy == pytest.approx((0.75 + 0.5) / 2)
    assert m.f1 == pytest.approx(0.75)


def test_balanced_accuracy_with_one_class_is_its_recall() -> None:
    assert classifier_metrics([True, True], [True, False]).balanced_accuracy == 0.5


def test_pearson() -> None:
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([5, 5, 5], [1, 2, 3]) == 0.0


def test_parse_int_list_takes_the_last_valid_list_and_clamps() -> None:
    assert parse_int_list("thinking [1] ... answer: [1, 0, 12]", 3, low=0, high=10) == [1, 0, 10]
    with pytest.raises(UpstreamError, match="list of 2"):
        parse_int_list("I am not sure", 2, low=0, high=1)


def test_marking_and_windows() -> None:
    record = ActivationRecord(["The", "Ġcat", "Ġsat", "Ġdown"], [0.0, 5.0, 1.0, 2.0])
    assert format_example(record) == "The <<cat>> sat <<down>>"
    assert without_marked(record).tokens == ["The", "Ġsat"]
    long = ActivationRecord([f"t{i}" for i in range(100)], [float(i == 80) for i in range(100)])
    shown = window(long)
    assert len(shown.tokens) == 32 and "t80" in shown.tokens
