"""Token and database files are private from their creation: `write_secret` and `ensure_private_sqlite`
(0600 in the open() call, no symlink followed, nothing overwritten; SQLite's side files inherit 0600)."""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from adrcs.errors import InputError
from adrcs.serve.private_files import ensure_private_sqlite, new_secret_file, sqlite_file, write_secret

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def umask_022():
    """The usual umask, under which a plain create gives 0644 (the finding of issue 15)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def umask_000():
    """No umask at all: only the mode passed at creation keeps others out."""
    old = os.umask(0)
    yield
    os.umask(old)


def _one_line_naming(err: InputError, path: Path) -> str:
    msg = str(err)
    assert "\n" not in msg and str(path) in msg
    return msg


# ---------------------------------------------------------------------------------------------- write_secret
def test_write_secret_is_0600_even_without_umask(tmp_path, umask_000):
    p = write_secret(tmp_path / "admin.token", "abc\n")
    assert p.read_text() == "abc\n"
    assert _mode(p) == 0o600


def test_write_secret_sets_the_mode_in_the_open_call(tmp_path, monkeypatch):
    """No window: the file is created 0600 with O_EXCL|O_NOFOLLOW, not created and chmod'ed afterwards."""
    calls = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *a, **k):
        calls.append((flags, mode))
        return real_open(path, flags, mode, *a, **k)

    monkeypatch.setattr(os, "open", spy)
    write_secret(tmp_path / "t", "x")
    (flags, mode), = calls
    assert mode == 0o600
    for f in (os.O_CREAT, os.O_EXCL, os.O_NOFOLLOW):
        assert flags & f == f


def test_write_secret_refuses_an_existing_file(tmp_path):
    p = tmp_path / "admin.token"
    p.write_text("old")
    with pytest.raises(InputError) as e:
        write_secret(p, "new")
    assert "exists" in _one_line_naming(e.value, p)
    assert p.read_text() == "old"


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_write_secret_refuses_a_symlink(tmp_path, dangling):
    target = tmp_path / "elsewhere"
    if not dangling:
        target.write_text("precious")
    link = tmp_path / "admin.token"
    link.symlink_to(target)
    with pytest.raises(InputError) as e:
        write_secret(link, "token")
    assert "symbolic link" in _one_line_naming(e.value, link)
    assert (target.read_text() == "precious") if not dangling else not target.exists()


def test_write_secret_refuses_a_symlink_raced_in_after_the_check(tmp_path, monkeypatch):
    """Even when a link appears between the check and the open, O_EXCL refuses it."""
    target, link = tmp_path / "victim", tmp_path / "t"
    target.write_text("precious")
    real_open = os.open

    def race(path, flags, mode=0o777, *a, **k):
        if Path(path) == link and not link.is_symlink():
            link.symlink_to(target)
        return real_open(path, flags, mode, *a, **k)

    monkeypatch.setattr(os, "open", race)
    with pytest.raises(InputError):
        write_secret(link, "token")
    assert target.read_text() == "precious"


@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_write_secret_bad_places_are_one_line_errors(tmp_path, where):
    p = tmp_path / "no" / "such" / "t" if where == "missing-folder" else tmp_path
    with pytest.raises(InputError) as e:
        write_secret(p, "x")
    _one_line_naming(e.value, p)


# ---------------------------------------------------------------------------------------- ensure_private_sqlite
def test_sqlite_file_of_urls(tmp_path):
    assert sqlite_file(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db"
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql://u@h/db", "sqlite:///file:x.db?mode=ro&uri=true",
                "not a url"):
        assert sqlite_file(url) is None


def test_other_databases_are_left_alone(tmp_path):
    assert ensure_private_sqlite("postgresql://u@127.0.0.1:1/db") is None
    assert ensure_private_sqlite("sqlite:///:memory:") is None
    assert list(tmp_path.iterdir()) == []


def test_plain_sqlite_file_would_be_world_readable(tmp_path, umask_022):
    """Why this module exists: SQLite creates a new database (and its WAL files) with 0644 under umask 022."""
    conn = sqlite3.connect(tmp_path / "plain.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    assert _mode(tmp_path / "plain.db") == 0o644 and _mode(tmp_path / "plain.db-wal") == 0o644
    conn.close()


def test_new_store_database_and_wal_files_are_private(tmp_path, umask_022):
    from adrcs.serve.store import Store

    url = f"sqlite:///{tmp_path / 'sub' / 'adrcs.db'}"
    db = ensure_private_sqlite(url)
    assert db == tmp_path / "sub" / "adrcs.db" and _mode(db) == 0o600 and db.stat().st_size == 0
    store = Store(url)  # migrations and WAL on the empty file
    try:
        store.create_token("eve", "engineer")
        wal, shm = db.with_name("adrcs.db-wal"), db.with_name("adrcs.db-shm")
        assert wal.exists() and shm.exists()
        assert {_mode(p) for p in (db, wal, shm)} == {0o600}  # SQLite copies the database file's mode
    finally:
        store.close()


def test_rollback_journal_is_private_too(tmp_path, umask_022):
    db = ensure_private_sqlite(f"sqlite:///{tmp_path / 'j.db'}")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=PERSIST")  # the journal stays after the commit, so it can be checked
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    assert _mode(db.with_name("j.db-journal")) == 0o600


def test_existing_open_database_is_tightened_with_a_warning(tmp_path, caplog):
    db = tmp_path / "old.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    os.chmod(db, 0o644)
    (tmp_path / "old.db-wal").write_bytes(b"")
    os.chmod(tmp_path / "old.db-wal", 0o664)
    with caplog.at_level(logging.WARNING, logger="adrcs.serve"):
        assert ensure_private_sqlite(f"sqlite:///{db}") == db
    assert _mode(db) == 0o600 and _mode(tmp_path / "old.db-wal") == 0o600
    assert sum("readable by other users" in r.getMessage() for r in caplog.records) == 2
    assert sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone() == (0,)  # contents untouched


def test_private_existing_database_is_left_as_is(tmp_path, caplog):
    db = tmp_path / "ok.db"
    sqlite3.connect(db).close()
    os.chmod(db, 0o600)
    with caplog.at_level(logging.WARNING, logger="adrcs.serve"):
        ensure_private_sqlite(f"sqlite:///{db}")
    assert _mode(db) == 0o600 and not caplog.records


def test_dangling_symlink_database_is_refused(tmp_path):
    link = tmp_path / "adrcs.db"
    link.symlink_to(tmp_path / "elsewhere" / "x.db")
    with pytest.raises(InputError) as e:
        ensure_private_sqlite(f"sqlite:///{link}")
    assert "symbolic link" in _one_line_naming(e.value, link)
    assert not (tmp_path / "elsewhere").exists()


def test_unusable_database_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError) as e:
        ensure_private_sqlite(f"sqlite:///{blocker / 'adrcs.db'}")
    assert "\n" not in str(e.value) and str(blocker) in str(e.value)


def test_new_secret_file_is_made_before_the_secret_and_removed_on_failure(tmp_path):
    p = tmp_path / "admin.token"
    with new_secret_file(p) as f:
        assert _mode(p) == 0o600  # already private while the secret is being made
        f.write("tok\n")
    assert p.read_text() == "tok\n"
    q = tmp_path / "other.token"
    with pytest.raises(ValueError):
        with new_secret_file(q) as f:
            f.write("half")
            raise ValueError("the store failed")
    assert not q.exists()
    made = []
    with pytest.raises(InputError):
        with new_secret_file(p) as f:  # exists: refused before the block runs, so no secret is made
            made.append(True)
    assert made == [] and p.read_text() == "tok\n"
