"""The GLUE metrics against worked examples and independent formulas (scipy's Pearson r, the phi
coefficient as a correlation, F1 from precision and recall), and how logits become predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import pearsonr

from imc_sim.metrics import METRICS, accuracy, compute_metric, f1, matthews, metric_format, pearson

# TP 3, TN 4, FP 1, FN 2
GOLD = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
PRED = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 1])

binary = arrays(np.int64, st.integers(2, 40), elements=st.integers(0, 1))


def test_a_worked_confusion_matrix():
    assert accuracy(PRED, GOLD) == pytest.approx(7 / 10)
    assert f1(PRED, GOLD) == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert matthews(PRED, GOLD) == pytest.approx((3 * 4 - 1 * 2) / math.sqrt(4 * 5 * 5 * 6))
    assert f1(1 - PRED, 1 - GOLD) == pytest.approx(2 * 4 / (2 * 4 + 1 + 2))  # class 1 is the positive


@given(binary, st.randoms(use_true_random=False))
def test_f1_is_the_harmonic_mean_of_precision_and_recall(gold, rng):
    pred = np.array([rng.randint(0, 1) for _ in gold])
    tp = int(((pred == 1) & (gold == 1)).sum())
    if tp == 0:
        assert f1(pred, gold) == 0.0
        return
    precision, recall = tp / (pred == 1).sum(), tp / (gold == 1).sum()
    assert f1(pred, gold) == pytest.approx(2 * precision * recall / (precision + recall))


@given(binary, st.randoms(use_true_random=False))
def test_matthews_is_the_correlation_of_the_labels(gold, rng):
    """The phi coefficient; 0 where a row or column of the confusion matrix is empty."""
    pred = np.array([rng.randint(0, 1) for _ in gold])
    if pred.std() == 0 or gold.std() == 0:
        assert matthews(pred, gold) == 0.0
    else:
        assert matthews(pred, gold) == pytest.approx(np.corrcoef(pred, gold)[0, 1])


@given(arrays(np.float64, st.integers(3, 30), elements=st.floats(-5, 5)),
       arrays(np.float64, 30, elements=st.floats(-5, 5)))
def test_pearson_is_scipys(pred, gold):
    gold = gold[: len(pred)]
    if pred.std() == 0 or gold.std() == 0:
        assert pearson(pred, gold) == 0.0
    elif pred.std() > 1e-6 and gold.std() > 1e-6:
        assert pearson(pred, gold) == pytest.approx(pearsonr(pred, gold).statistic, abs=1e-9)


def test_pearson_of_a_constant_is_zero_and_a_unit_spread_is_not_special():
    """Constant predictions (a collapsed regressor) score 0, not NaN; a population std of exactly 1
    is an ordinary case."""
    assert pearson(np.full(4, 2.5), np.array([1.0, 2.0, 3.0, 5.0])) == 0.0
    assert pearson(np.array([1.0, 2.0, 3.0, 5.0]), np.zeros(4)) == 0.0
    assert pearson(np.array([-1.0, 1.0, -1.0, 1.0]), np.array([0.0, 2.0, 0.5, 2.0])) == pytest.approx(
        pearsonr([-1.0, 1.0, -1.0, 1.0], [0.0, 2.0, 0.5, 2.0]).statistic)
    assert pearson(np.array([0.0, 2.0, 0.5, 2.0]), np.array([-1.0, 1.0, -1.0, 1.0])) > 0.9


def test_predictions_are_the_argmax_of_the_logits_or_the_regression_output():
    logits = np.array([[0.1, 2.0, 0.3], [3.0, 0.0, 1.0], [0.0, 0.5, 0.9]])
    assert compute_metric("accuracy", logits, np.array([1, 0, 2])) == 1.0
    assert compute_metric("accuracy", logits, np.array([0, 1, 2])) == pytest.approx(1 / 3)
    binary_logits = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.1], [0.0, 0.3]])
    gold = np.array([1, 0, 1, 1])
    assert compute_metric("f1", binary_logits, gold) == pytest.approx(f1(np.array([1, 0, 0, 1]), gold))
    scores = np.array([[0.5], [1.5], [1.0]])
    assert compute_metric("pearson", scores, np.array([1.0, 3.0, 2.0])) == pytest.approx(1.0)
    assert set(METRICS) == {"accuracy", "f1", "matthews", "pearson"}


def test_axis_labels_carry_the_unit_where_there_is_one():
    assert metric_format("accuracy").axis_label("accuracy") == "accuracy (%)"
    assert metric_format("perplexity").axis_label("perplexity") == "perplexity"
