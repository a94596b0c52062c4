"""`adrcs token create|revoke` and `adrcs adapt` from the command line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.cli import run_cli as run
from helpers.runs import small_maps, train_wafer_run

from adrcs.serve.inputs import encode_map
from adrcs.serve.store import NewInspection, Store

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_token_create_and_revoke(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 't.db'}"
    code, out, err = run(["token", "create", "--db", db, "--name", "alice", "--role", "engineer"], capsys)
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert Store(db).check_token(token) == ("alice", "engineer")
    code, _, err = run(["token", "create", "--db", db, "--name", "bob", "--role", "boss"], capsys)
    assert code == 2 and err.startswith("adrcs: error:") and len(err.strip().splitlines()) == 1
    code, _, err = run(["token", "revoke", "--db", db, "--name", "alice"], capsys)
    assert code == 0 and Store(db).check_token(token) is None
    code, _, err = run(["token", "revoke", "--db", db, "--name", "nobody"], capsys)
    assert code == 2 and "nobody" in err


@pytest.mark.slow
def test_adapt_cli_writes_report(tmp_path, capsys):
    run_dir = train_wafer_run(tmp_path, 0)
    db = f"sqlite:///{tmp_path / 'a.db'}"
    store = Store(db)
    names = json.loads((run_dir / "drift_reference.json").read_text())["class_names"]
    recs = store.add_inspections([NewInspection(kind="wafer_map", model_version="v0", predicted=names[0],
                                                probabilities={names[0]: 0.6}, confidence=0.6,
                                                content=encode_map(np.array(m, np.uint8)),
                                                media_type="application/x-npy", lot="L")
                                  for m in small_maps(12, seed=5)])
    for i, r in enumerate(recs):
        store.add_review(r.id, action="correct", label=names[i % len(names)], reviewer="eng")
    code, out, err = run(["adapt", "--db", db, "--model", run_dir, "--out", tmp_path / "ch", "--epochs", "1",
                          "--progress", "false"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "ch" / "adapt_report.json").read_text())
    assert report["n_pool"] + report["n_audit"] == 12 and '"promoted"' in out
    code, _, err = run(["adapt", "--db", db, "--model", tmp_path / "nope", "--out", tmp_path / "x"], capsys)
    assert code == 2 and "nope" in err


def test_encode_map_is_exactly_np_save() -> None:
    import io

    from adrcs.serve.inputs import decode_map

    rng = np.random.default_rng(0)
    for a in (rng.integers(0, 3, (25, 27)), rng.integers(0, 3, (52, 52)).astype(np.uint8)[:, ::2], np.zeros((1, 1))):
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(a, np.uint8), allow_pickle=False)
        assert encode_map(a) == buf.getvalue()  # the stored blob (and its sha256) stays what np.save gives
        assert np.array_equal(decode_map(encode_map(a)), a)
