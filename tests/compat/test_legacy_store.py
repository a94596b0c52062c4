"""A service store (SQLite) created by 264f045 upgrades in place through Alembic with no record lost: every
row count is kept, the records read back as the old code read them, old tokens still authenticate, and the
store takes new writes afterwards.

The fixture (tests/data/legacy/store.db, expected/store.json with its test-only token secrets) is written by
`python scripts/make_legacy_fixtures.py --old-src <old tree>/src --only store`.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"


def _counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()


def _version(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        con.close()


def _subset(new: dict, old: dict) -> dict:
    """`new` restricted to the keys the old record had (new fields may be added), as JSON would give it."""
    return json.loads(json.dumps({k: new.get(k) for k in old}, default=str))


@pytest.fixture()
def old_store(tmp_path: Path) -> Path:
    db = tmp_path / "store.db"
    shutil.copy(LEGACY / "store.db", db)
    return db


def test_old_store_upgrades_with_nothing_lost(old_store: Path) -> None:
    from alembic.script import ScriptDirectory

    from adrcs.serve.store import Store, alembic_config

    before = _counts(old_store)
    old_version = _version(old_store)
    assert before["inspections"] == 40 and before["reviews"] == 3
    head = ScriptDirectory.from_config(alembic_config(f"sqlite:///{old_store}")).get_current_head()
    assert old_version != head  # the fixture really is an older schema

    Store(f"sqlite:///{old_store}").close()  # opening migrates to head
    assert _version(old_store) == head
    after = _counts(old_store)
    lost = {t: (n, after.get(t)) for t, n in before.items() if t != "alembic_version" and after.get(t) != n}
    assert not lost, f"row counts changed: {lost}"

    Store(f"sqlite:///{old_store}").close()  # a second start finds nothing to do
    assert _counts(old_store) == after


def test_old_records_read_back_as_before(old_store: Path) -> None:
    from adrcs.serve.store import NewInspection, Store

    expected = json.loads((LEGACY / "expected" / "store.json").read_text())
    with Store(f"sqlite:///{old_store}") as store:
        rows = [r.to_dict() for r in store.list_inspections(limit=1000, newest_first=False)]
        assert len(rows) == len(expected["inspections"])
        for new, old in zip(rows, expected["inspections"]):
            assert _subset(new, old) == old
        models = [m.to_dict() for m in store.list_models()]
        assert [_subset(n, o) for n, o in zip(models, expected["models"])] == expected["models"]
        assert {k: store.champion(k).version for k in expected["champions"]} == expected["champions"]
        assert [_subset(n, o) for n, o in zip(store.model_events(), expected["events"])] == expected["events"]
        assert [_subset(t.to_dict(), o) for t, o in zip(store.list_tokens(), expected["tokens"])] == expected["tokens"]
        # old secrets: the live one authenticates, the revoked one does not
        assert store.check_token(expected["secrets"]["eng1"]) == ("eng1", "engineer")
        assert store.check_token(expected["secrets"]["line-1"]) is None
        first = expected["inspections"][0]
        assert store.get_blob(first["input_sha256"]) is not None

        # and the upgraded store goes on working: ids continue, reviews attach to old inspections
        [rec] = store.add_inspections([NewInspection(kind="wafer_map", model_version="v2", predicted="Center",
                                                     probabilities={"Center": 0.9, "none": 0.1}, confidence=0.9,
                                                     content=b"new", media_type="application/json", lot="LOT9")])
        assert rec.id == 41
        store.add_review(1, action="correct", label="Donut", reviewer="eng1")
        assert store.get_inspection(1).effective_label == "Donut"
        assert store.count_inspections() == 41
