"""adrcs.data.loader: format detection, labels, die codes, metadata, errors."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.frames import (LSWMD_ROWS, make_lswmd_frame, make_mixed_arrays, make_mixed_frame,
                            make_wm811k_frame)
from helpers.wafers import MIXED, make_wafer, to_255

from adrcs.data import MIXEDWM38_CLASSES, WM811K_CLASSES, WaferMapSet, load, load_many
from adrcs.data.loader import summarize
from adrcs.errors import InputError


def _from_255(m: np.ndarray) -> np.ndarray:
    return (m // 127).astype(np.uint8)  # 0->0, 128->1, 255->2


def _assert_die_codes(ds: WaferMapSet) -> None:
    for m in ds.maps:
        assert m.dtype == np.uint8 and m.ndim == 2
        assert set(np.unique(m).tolist()) <= {0, 1, 2}


# ---------------------------------------------------------------- processed WM-811K pickles


def test_processed_pickle(wm811k_pickle):
    ds = load(wm811k_pickle)
    df = make_wm811k_frame(np.random.default_rng(1))
    assert len(ds) == len(df) == 18
    assert not ds.multilabel
    assert ds.class_names == WM811K_CLASSES
    assert ds.labels.dtype == np.int64
    assert ds.labels.tolist() == df["failureCode"].tolist()
    _assert_die_codes(ds)
    for got, raw in zip(ds.maps, df["waferMap"]):
        assert np.array_equal(got, _from_255(raw))
    assert {m.shape for m in ds.maps} == {(20, 20), (24, 18), (30, 30)}
    assert ds.meta["source"].tolist() == [str(wm811k_pickle)] * 18
    assert ds.meta["index"].tolist() == df.index.tolist()
    assert ds.notes["unlabeled"] == 0 and ds.notes["format"] == "wm811k-pickle"


def test_processed_pickle_with_few_classes_keeps_full_class_list(tmp_path, rng):
    df = make_wm811k_frame(rng, classes=["Scratch", "none"], per_class=3)
    path = tmp_path / "few.pkl.xz"
    df.to_pickle(path)
    ds = load(path)
    assert ds.class_names == WM811K_CLASSES
    assert ds.labels.tolist() == [7, 7, 7, 8, 8, 8]


def test_label_spelling_variants_are_normalised(tmp_path, rng):
    names = ["near_full", "NONE", "EdgeLoc", "edge-ring", "center", "Normal"]
    df = pd.DataFrame({"waferMap": [make_wafer("loc", 12, rng) for _ in names], "failureType": names})
    path = tmp_path / "variants.pkl"
    df.to_pickle(path)
    ds = load(path)
    assert ds.class_names == WM811K_CLASSES
    assert [ds.class_names[i] for i in ds.labels] == ["Near-full", "none", "Edge-Loc", "Edge-Ring", "Center", "none"]


def test_unknown_class_names_follow_known_ones_sorted(tmp_path, rng):
    names = ["zeta", "Loc", "alpha", "Center", "zeta"]
    df = pd.DataFrame({"waferMap": [make_wafer("loc", 12, rng) for _ in names], "failureType": names})
    path = tmp_path / "unknown.pkl"
    df.to_pickle(path)
    ds = load(path)
    assert ds.class_names == ["Center", "Loc", "alpha", "zeta"]
    assert [ds.class_names[i] for i in ds.labels] == names


def test_failure_code_only(tmp_path, rng):
    df = make_wm811k_frame(rng, classes=["Donut", "Random"], per_class=2).drop(columns="failureType")
    path = tmp_path / "codes.pkl.gz"
    df.to_pickle(path)
    ds = load(path)
    assert ds.class_names == WM811K_CLASSES
    assert ds.labels.tolist() == [1, 1, 6, 6]


def test_table_without_labels_is_unlabeled(tmp_path, rng):
    path = tmp_path / "nolabels.pkl"
    pd.DataFrame({"waferMap": [make_wafer("center", 10, rng) for _ in range(3)]}).to_pickle(path)
    ds = load(path)
    assert ds.labels.tolist() == [-1, -1, -1]
    assert ds.notes["unlabeled"] == 3
    with pytest.raises(InputError, match="no labeled maps") as err:
        load(path, require_labels=True)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".pkl", ".pkl.gz", ".pkl.bz2", ".pkl.xz", ".pkl.zip", ".bin"])
def test_compression_variants(tmp_path, rng, suffix):
    df = make_wm811k_frame(rng, classes=["Loc"], per_class=2)
    path = tmp_path / f"data{suffix}"
    df.to_pickle(path, compression="xz" if suffix == ".bin" else "infer")  # .bin: xz data, misleading name
    ds = load(path)
    assert ds.labels.tolist() == [4, 4]


def test_values_0_1_2_in_other_dtypes(tmp_path, rng):
    m = make_wafer("scratch", 16, rng)
    df = pd.DataFrame({"waferMap": [m.astype(np.int64), m.astype(np.float32), to_255(m).astype(np.int32)],
                       "failureType": ["Scratch"] * 3})
    path = tmp_path / "dtypes.pkl"
    df.to_pickle(path)
    ds = load(path)
    _assert_die_codes(ds)
    for got in ds.maps:
        assert np.array_equal(got, m)


# ---------------------------------------------------------------- LSWMD.pkl


@pytest.mark.parametrize("split_column", ["trianTestLabel", "trainTestLabel"])
def test_lswmd(tmp_path, split_column):
    df = make_lswmd_frame(np.random.default_rng(2), split_column=split_column)
    path = tmp_path / "LSWMD.pkl"
    df.to_pickle(path)
    ds = load(path)
    assert ds.notes["format"] == "lswmd"
    assert not ds.multilabel
    assert ds.class_names == WM811K_CLASSES
    expected = [WM811K_CLASSES.index(e) if e else -1 for _, _, e in LSWMD_ROWS]
    assert ds.labels.tolist() == expected
    assert ds.notes["unlabeled"] == sum(e is None for _, _, e in LSWMD_ROWS) == 4
    assert len(ds.labeled()) == 5
    for got, raw in zip(ds.maps, df["waferMap"]):
        assert np.array_equal(got, raw) and got.dtype == np.uint8
    assert len({m.shape for m in ds.maps}) == 3
    meta = ds.meta
    assert meta["lotName"].tolist() == df["lotName"].tolist()
    assert meta["waferIndex"].tolist() == df["waferIndex"].tolist()
    assert meta["dieSize"].tolist() == df["dieSize"].tolist()
    split = [None if pd.isna(v) else v for v in meta["trainTestLabel"]]
    assert split[:4] == ["Training", None, "Test", None]
    assert meta["index"].tolist() == list(range(len(df)))
    assert split_column == "trainTestLabel" or "trianTestLabel" not in meta.columns


def test_lswmd_fixture_and_require_labels(lswmd_pickle):
    ds = load(lswmd_pickle, require_labels=True)  # some maps carry labels: fine
    assert (ds.labels == -1).sum() == 4
    assert set(ds.labeled().labels.tolist()) == {WM811K_CLASSES.index(c) for c in ["Loc", "Center", "none", "Edge-Ring", "Near-full"]}


def test_lswmd_all_unlabeled_require_labels(tmp_path, rng):
    df = make_lswmd_frame(rng)
    df["failureType"] = [np.zeros((0, 0))] * len(df)
    path = tmp_path / "unlabeled.pkl"
    df.to_pickle(path)
    assert load(path).notes["unlabeled"] == len(df)
    with pytest.raises(InputError, match="no labeled maps"):
        load(path, require_labels=True)


def test_legacy_pandas_indexes_pickle(tmp_path, rng):
    """Pickles from old pandas name `pandas.indexes.*` (Kaggle's LSWMD.pkl); the loader maps them."""
    df = make_lswmd_frame(rng)
    df.index = pd.Index(np.arange(len(df)) * 3)  # a stored (non-range) index
    raw = pickle.dumps(df, protocol=2).replace(b"pandas.core.indexes.", b"pandas.indexes.")
    assert b"pandas.indexes.base" in raw
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(raw)
    path = tmp_path / "LSWMD_old.pkl"
    path.write_bytes(raw)
    ds = load(path)
    assert ds.notes["format"] == "lswmd"
    assert ds.meta["index"].tolist() == (np.arange(len(df)) * 3).tolist()
    assert ds.labels.tolist() == [WM811K_CLASSES.index(e) if e else -1 for _, _, e in LSWMD_ROWS]


# ---------------------------------------------------------------- MixedWM38


def test_mixed_npz(mixed_npz):
    ds = load(mixed_npz)
    maps, labels = make_mixed_arrays(np.random.default_rng(3))
    assert ds.multilabel and ds.notes["format"] == "mixedwm38-npz"
    assert ds.class_names == MIXEDWM38_CLASSES
    assert ds.labels.dtype == np.int8 and ds.labels.shape == (12, 8)
    assert np.array_equal(ds.labels, labels)
    assert all(np.array_equal(a, b) for a, b in zip(ds.maps, maps))
    _assert_die_codes(ds)
    assert ds.meta["index"].tolist() == list(range(12))
    assert ds.notes["unlabeled"] == 0


def test_mixed_npz_255_codes_and_no_labels(tmp_path, rng):
    maps, _ = make_mixed_arrays(rng, n=4)
    path = tmp_path / "maps_only.npz"
    np.savez(path, arr_0=to_255(maps))
    ds = load(path)
    assert all(np.array_equal(a, b) for a, b in zip(ds.maps, maps))
    assert (ds.labels == -1).all() and ds.notes["unlabeled"] == 4


def test_mixed_npz_wrong_label_width(tmp_path, rng):
    maps, labels = make_mixed_arrays(rng, n=4)
    path = tmp_path / "bad_width.npz"
    np.savez(path, arr_0=maps, arr_1=labels[:, :5])
    with pytest.raises(InputError, match="width 5, expected 8") as err:
        load(path)
    assert str(path) in str(err.value)


def test_mixed_pickle(mixed_pickle):
    ds = load(mixed_pickle)
    df = make_mixed_frame(np.random.default_rng(4))
    assert ds.multilabel and ds.notes["format"] == "mixedwm38-pickle"
    assert ds.class_names == MIXEDWM38_CLASSES
    assert np.array_equal(ds.labels, df[MIXED].to_numpy().astype(np.int8))
    assert ds.labels[0].tolist() == [0] * 8  # defect-free map: labeled, no label set
    assert ds.labeled_mask.all()
    assert all(np.array_equal(a, _from_255(b)) for a, b in zip(ds.maps, df["waferMap"]))
    assert ds.meta["failureType"].tolist() == df["failureType"].tolist()
    assert ds.meta["index"].tolist() == df.index.tolist()
    assert "label" not in ds.meta.columns and "Normal" not in ds.meta.columns


def test_mixed_pickle_label_lists_only(tmp_path, rng):
    df = make_mixed_frame(rng, n=6)
    expected = np.array(df["label"].tolist(), np.int8)
    path = tmp_path / "lists.pkl"
    df.drop(columns=["Normal", *MIXED]).to_pickle(path)
    ds = load(path)
    assert ds.multilabel and np.array_equal(ds.labels, expected)
    df2 = df.drop(columns=["Normal", *MIXED])
    df2["label"] = [row[:7] for row in df2["label"]]
    bad = tmp_path / "short_lists.pkl"
    df2.to_pickle(bad)
    with pytest.raises(InputError, match="width 7, expected 8"):
        load(bad)


# ---------------------------------------------------------------- several files, remapping, summary


def test_load_many_concatenates(wm811k_pickle, lswmd_pickle):
    a, b = load(wm811k_pickle), load(lswmd_pickle)
    ds = load_many([wm811k_pickle, lswmd_pickle])
    assert len(ds) == len(a) + len(b) == 27
    assert ds.class_names == WM811K_CLASSES
    assert ds.labels.tolist() == a.labels.tolist() + b.labels.tolist()
    assert ds.meta["source"].tolist() == [str(wm811k_pickle)] * 18 + [str(lswmd_pickle)] * 9
    assert ds.notes["unlabeled"] == 4
    assert "lotName" in ds.meta.columns


def test_load_many_merges_unknown_classes(tmp_path, rng, wm811k_pickle):
    path = tmp_path / "extra.pkl"
    pd.DataFrame({"waferMap": [make_wafer("loc", 10, rng)] * 2, "failureType": ["Blob", "Loc"]}).to_pickle(path)
    ds = load_many([wm811k_pickle, path])
    assert ds.class_names == WM811K_CLASSES + ["Blob"]
    assert [ds.class_names[i] for i in ds.labels[-2:]] == ["Blob", "Loc"]


def test_load_many_refuses_single_and_multi_label(wm811k_pickle, mixed_npz):
    with pytest.raises(InputError, match="multi-label"):
        load_many([wm811k_pickle, mixed_npz])
    with pytest.raises(InputError, match="no input files"):
        load_many([])


def test_with_classes_remaps(wm811k_pickle):
    ds = load(wm811k_pickle)
    order = list(reversed(WM811K_CLASSES))
    re = ds.with_classes(order)
    assert re.class_names == order
    assert [re.class_names[i] for i in re.labels] == [ds.class_names[i] for i in ds.labels]


def test_summarize(lswmd_pickle, mixed_pickle):
    s = summarize(load(lswmd_pickle))
    assert s["total"] == 9 and s["unlabeled"] == 4 and s["multilabel"] is False
    assert s["classes"]["Loc"] == 1 and s["classes"]["Scratch"] == 0 and sum(s["classes"].values()) == 5
    assert s["map_sizes"] == {"15x17": 3, "22x22": 3, "30x26": 3}
    counts = list(s["map_sizes"].values())
    assert counts == sorted(counts, reverse=True)
    m = summarize(load(mixed_pickle))
    assert m["multilabel"] is True and m["total"] == 12 and m["normal"] == 1
    assert m["classes"]["Center"] == int(make_mixed_frame(np.random.default_rng(4))["Center"].sum())
    assert m["map_sizes"] == {"52x52": 12}


def test_shipped_samples_load():
    from adrcs.samples import sample_path

    for name in ("wm811k", "wm811k_val"):
        ds = load(sample_path(name), require_labels=True)
        assert ds.class_names == WM811K_CLASSES
        assert set(ds.labels.tolist()) == set(range(9))
    for name in ("mixedwm38", "mixedwm38_val"):
        ds = load(sample_path(name), require_labels=True)
        assert ds.multilabel and len({tuple(r) for r in ds.labels.tolist()}) == 38


# ---------------------------------------------------------------- bad input


def _expect_error(path: Path, pattern: str) -> InputError:
    with pytest.raises(InputError, match=pattern) as err:
        load(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.path == str(path)
    return err.value


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.pkl", "file not found")


def test_directory(tmp_path):
    _expect_error(tmp_path, "is a directory")


def test_text_file(tmp_path):
    p = tmp_path / "notes.pkl"
    p.write_text("hello, this is not a pickle\n")
    _expect_error(p, r"not a wafer-map file \(looks like a text file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.pkl"
    p.write_bytes(b"")
    _expect_error(p, "contains no wafer maps")


def test_truncated_xz(tmp_path, wm811k_pickle):
    p = tmp_path / "cut.pkl.xz"
    p.write_bytes(wm811k_pickle.read_bytes()[:200])
    _expect_error(p, "is damaged: its xz data cannot be decompressed")


def test_pickled_list(tmp_path):
    p = tmp_path / "list.pkl"
    p.write_bytes(pickle.dumps([1, 2, 3]))
    _expect_error(p, "holds a list, not a DataFrame")


def test_dataframe_without_wafer_maps(tmp_path):
    p = tmp_path / "table.pkl"
    pd.DataFrame({"a": [1, 2], "failureType": ["Loc", "none"]}).to_pickle(p)
    _expect_error(p, r"no wafer-map column \(expected 'waferMap'\); columns are \['a', 'failureType'\]")


def test_three_d_map(tmp_path, rng):
    p = tmp_path / "3d.pkl"
    maps = [make_wafer("loc", 8, rng), np.zeros((3, 4, 5), np.uint8)]
    pd.DataFrame({"waferMap": maps, "failureType": ["Loc", "Loc"]}).to_pickle(p)
    _expect_error(p, r"map 1 is not 2-D \(shape \(3, 4, 5\)\)")


def test_value_outside_die_codes(tmp_path, rng):
    p = tmp_path / "seven.pkl"
    bad = make_wafer("loc", 8, rng)
    bad[4, 4] = 7
    maps = [make_wafer("loc", 8, rng), to_255(make_wafer("loc", 8, rng)), bad]
    pd.DataFrame({"waferMap": maps, "failureType": ["Loc"] * 3}).to_pickle(p)
    _expect_error(p, r"map 2 has values outside the known die codes \(0/1/2 or 0/128/255\): \[0, 1, 2, 7\]")


def test_mixed_code_schemes_in_one_map(tmp_path, rng):
    p = tmp_path / "mixed_codes.pkl"
    m = to_255(make_wafer("loc", 8, rng))
    m[0, 0] = 1
    pd.DataFrame({"waferMap": [m], "failureType": ["Loc"]}).to_pickle(p)
    _expect_error(p, r"map 0 has values outside the known die codes")


def test_empty_dataframe(tmp_path):
    p = tmp_path / "empty_df.pkl"
    pd.DataFrame({"waferMap": [], "failureType": []}).to_pickle(p)
    _expect_error(p, "contains no wafer maps")


def test_npz_without_arr_0(tmp_path):
    p = tmp_path / "other.npz"
    np.savez(p, images=np.zeros((2, 4, 4)))
    _expect_error(p, r"npz file has no 'arr_0' array .*\['images'\]")


def test_npz_with_2d_arr_0(tmp_path):
    p = tmp_path / "flat.npz"
    np.savez(p, arr_0=np.zeros((4, 4), np.uint8))
    _expect_error(p, r"arr_0 should hold the maps as an \(N, H, W\) array")


def test_damaged_npz(tmp_path):
    p = tmp_path / "broken.npz"
    p.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    _expect_error(p, "is damaged: its zip data cannot be opened")


def test_npz_label_rows_mismatch(tmp_path, rng):
    maps, labels = make_mixed_arrays(rng, n=4)
    p = tmp_path / "rows.npz"
    np.savez(p, arr_0=maps, arr_1=labels[:3])
    _expect_error(p, "has 3 rows but there are 4 maps")


# ---------------------------------------------------------------- content sniffing (never by name)


@pytest.mark.parametrize("content,looks_like", [
    (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "a PNG image"),
    (b'{"maps": [[[0, 1]]]}', "a JSON text"),
    (b"lot,wafer,x,y,bin\nL1,3,0,0,1\n", "a text file"),
    (b"%PDF-1.7\n", "a PDF document"),
    (b"\x93NUMPY\x01\x00", "a single NumPy .npy array"),
])
def test_other_files_are_named_not_unpickled(tmp_path, content, looks_like, monkeypatch):
    from adrcs.data import safe_pickle

    def never(*a, **k):
        raise AssertionError("the unpickler must not see this file")

    monkeypatch.setattr(safe_pickle.StrictUnpickler, "load", never)
    for wrap, suffix in ((lambda b: b, ".pkl"), (__import__("lzma").compress, ".pkl.xz")):
        p = tmp_path / f"data{suffix}"
        p.write_bytes(wrap(content))
        err = _expect_error(p, r"not a wafer-map file \(looks like " + re.escape(looks_like))
        assert "not a pickle" not in str(err)
    from adrcs.data.limits import InputLimits
    from adrcs.data.loader import load_bytes

    with pytest.raises(InputError) as err:
        load_bytes(content, "/srv/secret/up.pkl", limits=InputLimits.for_service(1 << 20))
    assert str(err.value).startswith("up.pkl: not a wafer-map file") and "/srv" not in str(err.value)


def test_meta_columns_of_common_dtypes_load_strictly(tmp_path):
    n = 3
    df = pd.DataFrame({
        "waferMap": [np.ones((4, 4), np.uint8)] * n, "failureType": ["Loc"] * n,
        "when": pd.to_datetime(["2020-01-01"] * n), "count": pd.array([1, None, 3], dtype="Int64"),
        "ok": pd.array([True, None, False], dtype="boolean"), "note": pd.array(["a", None, "c"], dtype="string"),
        "kind": pd.Categorical(["a", "b", "a"]), "took": pd.to_timedelta([1, 2, 3], unit="s"),
    }, index=pd.Index([5, 6, 7]))
    p = tmp_path / "meta.pkl.xz"
    df.to_pickle(p)
    ds = load(p)
    assert ds.meta["index"].tolist() == [5, 6, 7] and ds.meta["count"].isna().sum() == 1


def test_zstd_without_zstandard_is_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if not installed
    p = tmp_path / "maps.pkl.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 32)
    _expect_error(p, "is zstd-compressed; install the 'zstandard' package to read it")


def test_image_datasets_are_named_not_read_as_pickles(tmp_path):
    from adrcs.data import load
    from adrcs.errors import InputError

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "0001_test.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    (tmp_path / "trainval.txt").write_text("imgs/0001.jpg anno/0001.txt\n")
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    for path, needle in ((tmp_path / "trainval.txt", "a DeepPCB list"), (voc, "Pascal VOC")):
        with pytest.raises(InputError) as err:
            load(path)
        assert needle in str(err.value) and "image model" in str(err.value)
