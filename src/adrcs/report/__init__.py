"""Reporting: evaluation plots (matplotlib/Agg) and tables (rich, markdown)."""

from adrcs.report.plots import (
    plot_confusion_matrix,
    plot_multilabel_confusion,
    plot_roc_curves,
    plot_training_curves,
    write_report_plots,
)
from adrcs.report.tables import markdown_table, print_report, report_table

__all__ = [
    "plot_confusion_matrix",
    "plot_roc_curves",
    "plot_training_curves",
    "plot_multilabel_confusion",
    "write_report_plots",
    "print_report",
    "report_table",
    "markdown_table",
]
