"""Evaluation metrics (JSON-ready reports built on scikit-learn)."""

from adrcs.metrics.classification import classification_report, multilabel_report, report_for

__all__ = ["classification_report", "multilabel_report", "report_for"]
