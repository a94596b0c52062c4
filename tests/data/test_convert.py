"""`adrcs convert` npz layout: written by `save_wafer_maps_npz`, read back by the `adrcs-npz` format,
loadable with ``numpy.load(allow_pickle=False)``; round trips of maps, labels, lot, wafer, multi-label."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adrcs.data import MIXEDWM38_CLASSES, WaferMapSet, load
from adrcs.data.limits import InputLimits
from adrcs.data.loader import load_bytes
from adrcs.data.writer import save_wafer_maps_npz
from adrcs.errors import InputError
from helpers.cli import run_cli
from helpers.frames import make_lswmd_frame, make_mixed_arrays


def _same_maps(a: WaferMapSet, b: WaferMapSet) -> None:
    assert len(a) == len(b)
    assert all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a.maps, b.maps))


def test_layout_is_plain_arrays(tmp_path, wm811k_pickle):
    out = save_wafer_maps_npz(load(wm811k_pickle), tmp_path / "maps.npz")
    with np.load(out, allow_pickle=False) as z:  # no object arrays anywhere
        assert str(z["format"]) == "adrcs-wafer-maps" and int(z["version"]) == 1
        assert z["maps_flat"].dtype == np.uint8 and z["maps_flat"].ndim == 1
        assert z["shapes"].shape[1] == 2 and z["labels"].dtype.kind == "U" and z["lot"].dtype.kind == "U"
        assert int(z["shapes"].prod(axis=1).sum()) == z["maps_flat"].size


def test_round_trip_single_label_with_lot_and_wafer(tmp_path, rng):
    df = make_lswmd_frame(rng)  # mixed sizes, unlabeled rows, lotName / waferIndex
    src = tmp_path / "LSWMD.pkl"
    df.to_pickle(src)
    ds = load(src)
    back = load(save_wafer_maps_npz(ds, tmp_path / "lswmd.npz"))
    _same_maps(ds, back)
    assert back.notes["format"] == "adrcs-npz" and back.class_names == ds.class_names
    assert back.labels.tolist() == ds.labels.tolist() and back.notes["unlabeled"] == ds.notes["unlabeled"] > 0
    assert back.meta["lot"].tolist() == df["lotName"].tolist()
    assert back.meta["wafer"].tolist() == [str(int(w)) for w in df["waferIndex"]]
    again = load(save_wafer_maps_npz(back, tmp_path / "again.npz"))  # convert of a convert keeps everything
    assert again.meta["lot"].tolist() == back.meta["lot"].tolist() and again.labels.tolist() == back.labels.tolist()


def test_round_trip_multilabel(tmp_path, rng):
    maps, labels = make_mixed_arrays(rng, n=6)
    labels = labels.astype(np.int8)
    labels[2] = -1  # an unlabeled map
    ds = WaferMapSet(maps=list(maps), labels=labels, class_names=list(MIXEDWM38_CLASSES),
                     meta=pd.DataFrame({"source": ["x"] * 6, "index": range(6)}), multilabel=True)
    back = load(save_wafer_maps_npz(ds, tmp_path / "mixed.npz"))
    _same_maps(ds, back)
    assert back.multilabel and back.class_names == list(MIXEDWM38_CLASSES)
    assert np.array_equal(back.labels, labels) and back.notes["unlabeled"] == 1
    assert back.meta["lot"].tolist() == [""] * 6


def test_upload_route_reads_it_without_pickles(tmp_path, wm811k_pickle):
    out = save_wafer_maps_npz(load(wm811k_pickle), tmp_path / "maps.npz")
    ds = load_bytes(out.read_bytes(), "maps.npz", allow_pickle=False, limits=InputLimits.for_service(1 << 20))
    _same_maps(ds, load(wm811k_pickle))


@pytest.mark.parametrize("change,needle", [
    (lambda a: a.update(version=np.array(2)), "version 2 is not supported"),
    (lambda a: a.update(shapes=a["shapes"][:-1]), "'shapes' add up to"),
    (lambda a: a.update(shapes=-a["shapes"]), "sides outside"),
    (lambda a: a.update(maps_flat=a["maps_flat"].astype(np.int64)), "'maps_flat' should be 1-D uint8"),
    (lambda a: a.update(labels=np.array(["Bogus"] * len(a["labels"]))), "not in 'class_names'"),
    (lambda a: a.update(lot=a["lot"][:1]), "'lot' should be a unicode array"),
    (lambda a: a.pop("maps_flat"), "no 'maps_flat' array"),
])
def test_damaged_layout_is_one_line(tmp_path, wm811k_pickle, change, needle):
    out = save_wafer_maps_npz(load(wm811k_pickle), tmp_path / "maps.npz")
    with np.load(out) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(InputError, match=needle) as err:
        load(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_cli_convert_round_trip_and_trust_pickle(tmp_path, capsys, rng):
    import pickle

    df = make_lswmd_frame(rng)
    legacy = tmp_path / "legacy.pkl"  # old pandas names, as in Kaggle's LSWMD.pkl
    legacy.write_bytes(pickle.dumps(df, protocol=2).replace(b"pandas.core.indexes.", b"pandas.indexes."))
    out = tmp_path / "out.npz"
    code, stdout, err = run_cli(["convert", legacy, out], capsys)
    assert code == 0, err
    assert "maps" in stdout and out.is_file()
    code, stdout, err = run_cli(["convert", legacy, tmp_path / "out2.npz", "--trust-pickle"], capsys)
    assert code == 0, err
    a, b, c = load(legacy, trust_pickle=True), load(out), load(tmp_path / "out2.npz")
    _same_maps(a, b)
    _same_maps(a, c)
    assert b.labels.tolist() == a.labels.tolist()
    code, _, err = run_cli(["convert", legacy, tmp_path / "out.pkl"], capsys)
    assert code == 2 and "must be an .npz" in err and len(err.strip().splitlines()) == 1


def test_written_pickles_hold_plain_strings_whatever_pandas_stores_text_in(tmp_path):
    """pandas with pyarrow keeps text in Arrow arrays, which the strict unpickler refuses: the writer stores
    plain object strings (column names included) so its pickles load everywhere."""
    import pandas as pd

    from adrcs.data.loader import load
    from adrcs.data.writer import plain_strings, save_wafer_maps

    df = plain_strings(pd.DataFrame({"lot": pd.array(["L1", "L2"], dtype="str"), "n": [1, 2]}))
    assert df["lot"].dtype == object and df.columns.dtype == object
    from pathlib import Path

    ds = load(Path(__file__).parents[2] / "src" / "adrcs" / "samples" / "wm811k_sample_val.pkl.xz")
    ds.meta["lotName"] = pd.array(["L1"] * len(ds), dtype="str")
    out = save_wafer_maps(ds, tmp_path / "w.pkl")
    assert b"Arrow" not in out.read_bytes()
    assert len(load(out)) == len(ds)
