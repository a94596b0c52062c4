"""One evaluation output for every classifier (wafer maps or images): the report dict, its plots and the table."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np


def evaluation_report(y: np.ndarray, probs: np.ndarray, class_names: list[str], multilabel: bool, plot_dir: Path,
                      title: str, say: Callable[[str], None] = print, history: Path | None = None) -> dict[str, Any]:
    """Report (`metrics.classification.report_for`), plots (confusion matrix, ROC, training curves when
    `history` is given) in `plot_dir`, and a printed table for the given labels and probabilities."""
    from adrcs.metrics.classification import report_for
    from adrcs.report.plots import plot_training_curves, write_report_plots
    from adrcs.report.tables import print_report

    report = report_for(y, probs, class_names, multilabel)
    write_report_plots(report, y, probs, plot_dir)
    if history is not None:
        plot_training_curves(history, plot_dir / "training_curves.png")
    print_report(report, title=title)
    return report
