import re

import numpy as np
import pandas as pd
from rich.console import Console

from adrcs.metrics import report_for
from adrcs.report import (
    markdown_table,
    plot_confusion_matrix,
    plot_multilabel_confusion,
    plot_roc_curves,
    plot_training_curves,
    print_report,
    report_table,
    write_report_plots,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["center", "donut", "edge"]


def _assert_png(path):
    assert path.exists()
    assert path.stat().st_size > 1024
    assert path.read_bytes()[:8] == PNG_MAGIC


def _single():
    y_true = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 3)) + 2.0 * np.eye(3)[y_true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probs


def _multi():
    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    probs = np.array([[0.9, 0.2, 0.8], [0.1, 0.7, 0.6], [0.8, 0.4, 0.1], [0.3, 0.1, 0.9],
                      [0.2, 0.2, 0.2]])
    return y_true, probs


def test_plot_confusion_matrix(tmp_path):
    p = plot_confusion_matrix([[3, 1, 0], [0, 2, 0], [1, 0, 0]], NAMES,
                              tmp_path / "nested" / "cm.png", title="t")
    assert p == tmp_path / "nested" / "cm.png"
    _assert_png(p)
    _assert_png(plot_confusion_matrix(np.eye(3, dtype=int), NAMES, tmp_path / "raw.png",
                                      normalize=False))


def test_plot_roc_curves_single_and_multi(tmp_path):
    y, pr = _single()
    _assert_png(plot_roc_curves(y, pr, NAMES, tmp_path / "roc.png"))
    ym, pm = _multi()
    _assert_png(plot_roc_curves(ym, pm, ["a", "b", "c"], tmp_path / "roc_ml.png", multilabel=True))
    # nothing computable -> placeholder still written
    _assert_png(plot_roc_curves(np.array([1, 1]), np.full((2, 3), 1 / 3), NAMES,
                                tmp_path / "roc_none.png"))


def test_plot_multilabel_confusion(tmp_path):
    cms = {"a": [[5, 1], [2, 3]], "b": [[4, 0], [0, 7]], "c": [[1, 2], [3, 4]],
           "d": [[0, 0], [0, 0]], "e": [[9, 1], [1, 0]]}
    _assert_png(plot_multilabel_confusion(cms, tmp_path / "ml.png"))
    _assert_png(plot_multilabel_confusion({}, tmp_path / "ml_empty.png"))


def _lightning_csv(path):
    # sparse rows as written by Lightning's CSVLogger
    rows = []
    step = 0
    for epoch in range(4):
        for _ in range(3):
            rows.append({"epoch": epoch, "step": step, "train_loss_step": 1.0 / (step + 1),
                         "lr-Adam": 1e-3})
            step += 1
        rows.append({"epoch": epoch, "step": step - 1, "val_loss": 1.2 - 0.2 * epoch,
                     "val_macro_f1": 0.4 + 0.1 * epoch, "val_accuracy": 0.5 + 0.1 * epoch})
        rows.append({"epoch": epoch, "step": step - 1, "train_loss_epoch": 1.1 - 0.2 * epoch})
    cols = ["epoch", "step", "train_loss_step", "lr-Adam", "val_loss", "val_macro_f1",
            "val_accuracy", "train_loss_epoch"]
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    return path


def test_plot_training_curves_partial_csv(tmp_path):
    csv = _lightning_csv(tmp_path / "metrics.csv")
    assert pd.read_csv(csv).isna().any().any()  # really sparse
    _assert_png(plot_training_curves(csv, tmp_path / "curves.png"))
    _assert_png(plot_training_curves(str(csv), tmp_path / "curves_str.png"))
    _assert_png(plot_training_curves(pd.read_csv(csv), tmp_path / "curves_df.png"))


def test_plot_training_curves_only_train_loss(tmp_path):
    csv = tmp_path / "metrics.csv"
    pd.DataFrame({"epoch": [0, 0, 1, 1], "step": [0, 1, 2, 3],
                  "train_loss": [1.0, 0.8, 0.6, np.nan]}).to_csv(csv, index=False)
    _assert_png(plot_training_curves(csv, tmp_path / "curves.png"))


def test_plot_training_curves_empty_and_missing(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _assert_png(plot_training_curves(empty, tmp_path / "a.png"))
    header_only = tmp_path / "header.csv"
    header_only.write_text("epoch,step,val_loss\n")
    _assert_png(plot_training_curves(header_only, tmp_path / "b.png"))
    _assert_png(plot_training_curves(tmp_path / "does_not_exist.csv", tmp_path / "c.png"))
    _assert_png(plot_training_curves(pd.DataFrame(), tmp_path / "d.png"))


def test_write_report_plots_single(tmp_path):
    y, pr = _single()
    rep = report_for(y, pr, NAMES, multilabel=False)
    paths = write_report_plots(rep, y, pr, tmp_path / "out")
    assert {p.name for p in paths} == {"confusion_matrix.png", "roc_curves.png"}
    for p in paths:
        _assert_png(p)


def test_write_report_plots_multilabel(tmp_path):
    y, pr = _multi()
    rep = report_for(y, pr, ["a", "b", "c"], multilabel=True)
    paths = write_report_plots(rep, y, pr, tmp_path)
    assert {p.name for p in paths} == {"confusion_matrix.png", "roc_curves.png",
                                       "per_label_confusion.png"}
    for p in paths:
        _assert_png(p)


def test_print_report_single():
    y, pr = _single()
    rep = report_for(y, pr, NAMES, multilabel=False)
    console = Console(record=True, width=120)
    print_report(rep, title="Test eval", console=console)
    text = console.export_text()
    for name in NAMES:
        assert name in text
    assert f"{rep['macro_f1']:.4f}" in text
    assert "Accuracy" in text and "Macro-F1" in text and "Weighted-F1" in text
    assert "ROC-AUC" in text


def test_print_report_multilabel_and_missing_auc():
    y, pr = _multi()
    rep = report_for(y, pr, ["scratch", "ring", "cluster"], multilabel=True)
    console = Console(record=True, width=120)
    print_report(rep, console=console)
    text = console.export_text()
    assert "scratch" in text and "Exact match" in text
    assert f"{rep['macro_f1']:.4f}" in text

    rep2 = report_for(np.array([1, 1]), np.full((2, 3), 1 / 3), NAMES, multilabel=False)
    console = Console(record=True, width=120)
    print_report(rep2, console=console)
    assert "n/a" in console.export_text()


def test_report_table_rows():
    y, pr = _single()
    rep = report_for(y, pr, NAMES, multilabel=False)
    table = report_table(rep, "T")
    assert table.title == "T"
    assert table.row_count == len(NAMES) + 2  # classes + macro + weighted
    assert [c.header for c in table.columns][-1] == "roc-auc"


def test_markdown_table():
    md = markdown_table([{"model": "cnn", "macro_f1": 0.91234, "n": 3},
                         {"model": "a|b", "macro_f1": None}], ["model", "macro_f1", "n"])
    lines = md.strip().splitlines()
    assert lines[0] == "| model | macro_f1 | n |"
    assert re.fullmatch(r"\|( --- \|)+", lines[1])
    assert lines[2] == "| cnn | 0.9123 | 3 |"
    assert lines[3] == "| a\\|b |  |  |"
