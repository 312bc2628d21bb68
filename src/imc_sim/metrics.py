"""Task metrics of the GLUE table: accuracy, F1 (positive class), Matthews correlation, Pearson r;
and how every metric (perplexity too, see :mod:`imc_sim.lm`) is formatted in tables and plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float((pred == gold).mean())


def f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """F1 of class 1: 2 TP / (2 TP + FP + FN)."""
    tp = float(((pred == 1) & (gold == 1)).sum())
    wrong = float((pred != gold).sum())
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def matthews(pred: np.ndarray, gold: np.ndarray) -> float:
    """(TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)), 0 when undefined."""
    tp = float(((pred == 1) & (gold == 1)).sum())
    tn = float(((pred == 0) & (gold == 0)).sum())
    fp = float(((pred == 1) & (gold == 0)).sum())
    fn = float(((pred == 0) & (gold == 1)).sum())
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denom if denom else 0.0


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    if pred.std() == 0 or gold.std() == 0:
        return 0.0
    return float(np.corrcoef(pred, gold)[0, 1])


METRICS = {"accuracy": accuracy, "f1": f1, "matthews": matthews, "pearson": pearson}


def compute_metric(name: str, logits: np.ndarray, gold: np.ndarray) -> float:
    """The metric ``name`` from raw logits ([N, C], or [N, 1] for regression) and gold labels."""
    pred = logits[:, 0] if name == "pearson" else logits.argmax(axis=-1)
    return METRICS[name](pred, gold)


@dataclass(frozen=True)
class MetricFormat:
    """How a metric is shown: values times ``scale`` with ``decimals``, ``unit`` on axis labels."""

    scale: float
    decimals: int
    unit: str
    higher_is_better: bool = True

    def __call__(self, value: float) -> str:
        return f"{self.scale * value:.{self.decimals}f}"

    def spread(self, mean: float, std: float, seeds: int) -> str:
        """'mean +- std' in this format; 'mean +- n/a' for one seed (a sample std needs two)."""
        return f"{self(mean)} +- {self(std) if seeds > 1 else 'n/a'}"

    def worst(self, values: Sequence[float]) -> float:
        """The worst of ``values``: the minimum, or the maximum when lower is better."""
        return min(values) if self.higher_is_better else max(values)

    def axis_label(self, name: str) -> str:
        return f"{name} ({self.unit})" if self.unit else name


PERCENT = MetricFormat(100.0, 2, "%")
FORMATS = {"perplexity": MetricFormat(1.0, 2, "", higher_is_better=False)}
"""Metrics not shown as percentages (the rest are fractions in [0, 1] or correlations)."""


def metric_format(name: str) -> MetricFormat:
    """The format of metric ``name``: perplexity as a plain number, the others in percent."""
    return FORMATS.get(name, PERCENT)
