import json

import numpy as np
import pytest

from adrcs.metrics import classification_report, multilabel_report, report_for

NAMES = ["center", "donut", "edge"]

SINGLE_KEYS = {
    "accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall",
    "weighted_precision", "weighted_recall", "per_class", "confusion_matrix", "class_names",
    "roc_auc_macro", "roc_auc_per_class", "n_samples", "multilabel",
}


def _probs_from_preds(preds, n_classes, hi=0.8):
    lo = (1.0 - hi) / (n_classes - 1)
    p = np.full((len(preds), n_classes), lo)
    p[np.arange(len(preds)), preds] = hi
    return p


def _known():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    return y_true, _probs_from_preds(y_pred, 3)


def test_single_label_known_confusion():
    y_true, probs = _known()
    r = classification_report(y_true, probs, NAMES)
    assert set(r) == SINGLE_KEYS
    assert r["multilabel"] is False
    assert r["n_samples"] == 6
    assert r["class_names"] == NAMES
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]

    pc = r["per_class"]
    assert pc["center"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert pc["donut"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert pc["edge"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})

    macro_f1 = (0.5 + 0.8 + 2 / 3) / 3
    assert r["macro_f1"] == pytest.approx(macro_f1)
    assert r["weighted_f1"] == pytest.approx(macro_f1)  # equal supports
    assert r["macro_precision"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert r["macro_recall"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert r["weighted_recall"] == pytest.approx(4 / 6)


def test_weighted_differs_from_macro_with_unequal_support():
    y_true = np.array([0, 0, 0, 1])
    probs = _probs_from_preds(np.array([0, 0, 1, 1]), 2)
    r = classification_report(y_true, probs, ["a", "b"])
    assert r["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert r["per_class"]["b"]["f1"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert r["weighted_f1"] == pytest.approx((3 * 0.8 + 2 / 3) / 4)
    assert r["weighted_precision"] == pytest.approx((3 * 1.0 + 0.5) / 4)


def test_zero_division_gives_zero_not_nan():
    y_true = np.array([0, 0, 1, 1])
    probs = _probs_from_preds(np.array([0, 0, 0, 0]), 3)  # class 1 never predicted, class 2 absent
    r = classification_report(y_true, probs, NAMES)
    assert r["per_class"]["donut"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert r["per_class"]["edge"]["support"] == 0
    json.dumps(r, allow_nan=False)


def test_roc_auc_perfect_constant_and_absent():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    perfect = _probs_from_preds(y_true, 3, hi=0.9)
    r = classification_report(y_true, perfect, NAMES)
    assert r["roc_auc_macro"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in r["roc_auc_per_class"].values())

    const = np.full((6, 3), 1 / 3)
    r = classification_report(y_true, const, NAMES)
    assert r["roc_auc_macro"] == pytest.approx(0.5)

    # class "edge" absent from y_true -> None, macro over the rest
    y2 = np.array([0, 0, 1, 1])
    r = classification_report(y2, _probs_from_preds(y2, 3), NAMES)
    assert r["roc_auc_per_class"]["edge"] is None
    assert r["roc_auc_per_class"]["center"] == pytest.approx(1.0)
    assert r["roc_auc_macro"] == pytest.approx(1.0)

    # only one class present -> nothing computable
    y3 = np.array([1, 1, 1])
    r = classification_report(y3, _probs_from_preds(y3, 3), NAMES)
    assert r["roc_auc_macro"] is None
    assert set(r["roc_auc_per_class"].values()) == {None}
    json.dumps(r, allow_nan=False)


def test_single_label_json_serialisable_and_plain_types():
    y_true, probs = _known()
    r = classification_report(y_true, probs, NAMES)
    s = json.dumps(r, allow_nan=False)
    assert json.loads(s) == r
    assert type(r["accuracy"]) is float
    assert type(r["confusion_matrix"][0][0]) is int
    assert type(r["per_class"]["center"]["support"]) is int


def test_single_label_accepts_torch_tensors():
    import torch
    y_true, probs = _known()
    r = classification_report(torch.tensor(y_true), torch.tensor(probs), NAMES)
    assert r["accuracy"] == pytest.approx(4 / 6)


def test_mismatched_names_raises():
    y_true, probs = _known()
    with pytest.raises(ValueError):
        classification_report(y_true, probs, ["a", "b"])


ML_NAMES = ["scratch", "ring", "cluster"]


def _ml_known():
    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    preds = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1]])
    probs = np.where(preds == 1, 0.9, 0.1)
    return y_true, probs


def test_multilabel_known_example():
    y_true, probs = _ml_known()
    r = multilabel_report(y_true, probs, ML_NAMES)
    for key in ("exact_match", "accuracy", "macro_f1", "micro_f1", "hamming_loss", "per_label",
                "per_class", "roc_auc_macro", "roc_auc_per_class", "confusion_matrix",
                "class_names", "n_samples", "multilabel", "threshold"):
        assert key in r
    assert r["multilabel"] is True
    assert r["threshold"] == 0.5
    assert r["n_samples"] == 4
    assert r["exact_match"] == pytest.approx(0.5)
    assert r["accuracy"] == r["exact_match"]
    assert r["hamming_loss"] == pytest.approx(2 / 12)
    pl = r["per_label"]
    assert pl["scratch"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2})
    assert pl["ring"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert pl["cluster"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert r["per_class"] == r["per_label"]
    assert r["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.8) / 3)
    assert r["micro_f1"] == pytest.approx(5 / 6)
    assert r["confusion_matrix"]["cluster"] == [[1, 1], [0, 2]]
    assert r["confusion_matrix"]["scratch"] == [[2, 0], [0, 2]]
    assert r["roc_auc_per_class"]["scratch"] == pytest.approx(1.0)
    json.dumps(r, allow_nan=False)


def test_multilabel_threshold_and_absent_label():
    y_true = np.array([[1, 0], [1, 0], [0, 0]])
    probs = np.array([[0.7, 0.2], [0.4, 0.1], [0.1, 0.3]])
    r = multilabel_report(y_true, probs, ["a", "b"], threshold=0.3)
    assert r["threshold"] == 0.3
    # threshold 0.3: preds [[1,0],[1,0],[0,1]] -> row 3 wrong
    assert r["exact_match"] == pytest.approx(2 / 3)
    assert r["roc_auc_per_class"]["b"] is None  # no positives
    assert r["roc_auc_per_class"]["a"] == pytest.approx(1.0)
    assert r["roc_auc_macro"] == pytest.approx(1.0)
    json.dumps(r, allow_nan=False)


def test_report_for_dispatches():
    y_true, probs = _known()
    assert report_for(y_true, probs, NAMES, multilabel=False)["multilabel"] is False
    yt, pr = _ml_known()
    assert report_for(yt, pr, ML_NAMES, multilabel=True)["multilabel"] is True
