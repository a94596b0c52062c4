"""Console (rich) and markdown rendering of evaluation reports."""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

__all__ = ["print_report", "report_table", "markdown_table", "print_synth_report"]


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"
    try:  # numpy scalars etc.
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f.is_integer() and "int" in type(v).__name__:
        return str(int(f))
    return "n/a" if not math.isfinite(f) else f"{f:.{digits}f}"


def report_table(report: dict, title: str) -> Table:
    """One row per class (single-label) or label (multi-label) with precision,
    recall, F1, support and (when available) ROC-AUC, followed by a macro-average row."""
    per_class: dict = report.get("per_class") or report.get("per_label") or {}
    aucs: dict = report.get("roc_auc_per_class") or {}
    show_auc = "roc_auc_per_class" in report
    kind = "label" if report.get("multilabel") else "class"

    table = Table(title=title, show_lines=False, header_style="bold")
    table.add_column(kind, style="cyan", no_wrap=True)
    for col in ("precision", "recall", "f1"):
        table.add_column(col, justify="right")
    table.add_column("support", justify="right")
    if show_auc:
        table.add_column("roc-auc", justify="right")

    names = list(report.get("class_names") or per_class.keys())
    for name in names:
        m = per_class.get(name, {})
        row = [str(name), _fmt(m.get("precision")), _fmt(m.get("recall")), _fmt(m.get("f1")),
               _fmt(m.get("support"))]
        if show_auc:
            row.append(_fmt(aucs.get(name)))
        table.add_row(*row)

    if names:
        total = sum(int(per_class.get(n, {}).get("support") or 0) for n in names)
        macro = ["macro avg", _fmt(report.get("macro_precision")), _fmt(report.get("macro_recall")),
                 _fmt(report.get("macro_f1")), str(total)]
        if show_auc:
            macro.append(_fmt(report.get("roc_auc_macro")))
        table.add_section()
        table.add_row(*macro, style="bold")
        if "weighted_f1" in report and not report.get("multilabel"):
            weighted = ["weighted avg", _fmt(report.get("weighted_precision")),
                        _fmt(report.get("weighted_recall")), _fmt(report.get("weighted_f1")),
                        str(total)]
            if show_auc:
                weighted.append("")
            table.add_row(*weighted, style="bold")
    return table


def print_report(report: dict, title: str = "Evaluation", console: Console | None = None) -> None:
    """Print the per-class table followed by summary lines."""
    console = console or Console()
    console.print(report_table(report, title))
    n = report.get("n_samples")
    if report.get("multilabel"):
        console.print(f"Exact match: {_fmt(report.get('exact_match', report.get('accuracy')))}"
                      f"   Hamming loss: {_fmt(report.get('hamming_loss'))}"
                      f"   (threshold {_fmt(report.get('threshold'), 2)})")
        console.print(f"Macro-F1: {_fmt(report.get('macro_f1'))}"
                      f"   Micro-F1: {_fmt(report.get('micro_f1'))}"
                      + (f"   Weighted-F1: {_fmt(report.get('weighted_f1'))}"
                         if "weighted_f1" in report else ""))
    else:
        console.print(f"Accuracy: {_fmt(report.get('accuracy'))}")
        console.print(f"Macro-F1: {_fmt(report.get('macro_f1'))}"
                      f"   Weighted-F1: {_fmt(report.get('weighted_f1'))}")
    console.print(f"ROC-AUC (macro): {_fmt(report.get('roc_auc_macro'))}"
                  + (f"   Samples: {n}" if n is not None else ""))


def _md_cell(v: Any) -> str:
    if v is None:
        return ""
    s = _fmt(v) if isinstance(v, float) or type(v).__module__ == "numpy" else str(v)
    return s.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """GitHub-flavoured markdown table; floats with 4 decimals, None/missing as blank."""
    cols: Sequence[str] = list(columns)
    lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |",
             "| " + " | ".join("---" for _ in cols) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(row.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def print_synth_report(report: dict[str, Any], console: Console | None = None) -> None:
    """Per-class synthesis quality as a rich table (lower FD/KID is better)."""
    cols = ["n_train", "n_real", "fd", "fd_oversample", "kid", "kid_oversample", "classifier_accuracy",
            "real_accuracy", "memorised_share"]
    t = Table(title=f"{report['method']} synthesizer: synthetic vs held-out real maps")
    t.add_column("class")
    for c in cols:
        t.add_column(c.replace("_", " "), justify="right")
    for name, row in report["classes"].items():
        t.add_row(name, *[_fmt(row.get(c)) for c in cols])
    (console or Console()).print(t)
