"""Label-name normalisation and label-cell cleaning."""
from __future__ import annotations

import numpy as np
import pytest

from adrcs.data.labels import clean_label, normalize_name, parse_mixed_type, wm811k_class_names
from adrcs.data.wafer_map_set import WM811K_CLASSES


@pytest.mark.parametrize("raw, expected", [
    ("near-full", "Near-full"), ("Nearfull", "Near-full"), ("near_full", "Near-full"), ("NEARFULL", "Near-full"),
    ("Near Full", "Near-full"), ("Near-full", "Near-full"),
    ("none", "none"), ("None", "none"), ("NONE", "none"), ("normal", "none"), ("Normal", "none"),
    ("edge-loc", "Edge-Loc"), ("Edge_Loc", "Edge-Loc"), ("EdgeLoc", "Edge-Loc"), ("EDGE-LOC", "Edge-Loc"),
    ("edge-ring", "Edge-Ring"), ("Edge_Ring", "Edge-Ring"), ("edgering", "Edge-Ring"),
    ("center", "Center"), ("donut", "Donut"), ("loc", "Loc"), ("random", "Random"), ("scratch", "Scratch"),
    ("  Scratch \n", "Scratch"), (b"Donut", "Donut"),
])
def test_normalize_name_variants(raw, expected):
    assert normalize_name(raw) == expected


def test_every_canonical_name_is_a_fixed_point():
    assert [normalize_name(c) for c in WM811K_CLASSES] == WM811K_CLASSES


def test_unknown_names_are_kept_stripped():
    assert normalize_name("  Weird-Blob ") == "Weird-Blob"
    assert normalize_name("cluster_7") == "cluster_7"


@pytest.mark.parametrize("cell, expected", [
    (np.array([["Loc"]], dtype=object), "Loc"),
    (np.array(["Scratch"], dtype=object), "Scratch"),
    (np.zeros((0, 0)), None),
    ([], None),
    (None, None),
    (float("nan"), None),
    ("  ", None),
    (" Center ", "Center"),
    ([["Donut"]], "Donut"),
    (b"Random", "Random"),
])
def test_clean_label_cells(cell, expected):
    assert clean_label(cell) == expected


def test_class_names_full_wm811k_list_when_all_known():
    assert wm811k_class_names({"Loc", "none"}) == WM811K_CLASSES
    assert wm811k_class_names(set()) == WM811K_CLASSES


def test_class_names_with_unknown_names():
    assert wm811k_class_names({"Loc", "zeta", "Center", "alpha"}) == ["Center", "Loc", "alpha", "zeta"]


def test_parse_mixed_type():
    assert parse_mixed_type("C-EL-S") == ["Center", "Edge-Loc", "Scratch"]
    assert parse_mixed_type("NF") == ["Near-full"]
    assert parse_mixed_type("Normal") == []
    assert parse_mixed_type("Edge-Loc+Donut") == ["Edge-Loc", "Donut"]
    assert parse_mixed_type("C-XYZ") is None
