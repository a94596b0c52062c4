"""Files only the service's user may read: the admin token file and the SQLite database.

Both are created with mode 0600 in the ``open()`` call itself (``O_CREAT | O_EXCL | O_NOFOLLOW``), so there
is no moment at which another user could open them, a symbolic link planted at the path is never followed,
and an existing file is never overwritten.

SQLite creates its ``-wal``, ``-shm`` and ``-journal`` files with the permissions of the database file, so a
database created here keeps all of them private. An existing database file that others may read (every
database made before this module: 0644) is tightened to 0600 at start-up, with a warning naming the file
and the old mode; a file of another owner cannot be changed and only gets the warning.
"""
from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from sqlalchemy.engine import URL, make_url

from adrcs.errors import InputError

log = logging.getLogger("adrcs.serve")

PRIVATE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
# create only: fail if anything (a file or a symbolic link, dangling or not) is already at the path
_CREATE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))


def _create_private(path: Path) -> int:
    """A new file at `path`, mode 0600 from the start; InputError when something is already there."""
    if path.is_symlink():
        raise InputError(path, "is a symbolic link: refusing to follow it (remove it or choose another path)")
    try:
        fd = os.open(path, _CREATE_FLAGS, PRIVATE_MODE)
    except FileExistsError:
        raise InputError(path, "already exists: refusing to overwrite it (remove it or choose another path)") from None
    except OSError as e:  # ELOOP (a link raced in), EACCES, ENOENT for the folder, ...
        raise InputError(path, f"cannot create it: {e.strerror or e}") from None
    try:
        os.fchmod(fd, PRIVATE_MODE)  # exactly 0600 whatever the umask (it can only have removed bits)
    except (AttributeError, OSError):  # no fchmod on Windows
        pass
    return fd


@contextmanager
def new_secret_file(path: str | Path) -> Iterator[TextIO]:
    """A NEW text file at `path`, mode 0600 from creation, open for writing: create the file first, then the
    secret, so a secret is never made that cannot be stored::

        with new_secret_file(token_file) as f:
            f.write(store.create_token("admin", "admin") + "\n")

    Refuses (InputError naming the file) an existing file, any symbolic link, or a folder that cannot be
    written. If the block fails, the file is removed again; on success it is flushed to disk.
    """
    path = Path(path).expanduser()
    f = os.fdopen(_create_private(path), "w", encoding="utf-8")
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:  # leave no empty or half-written secret behind
        path.unlink(missing_ok=True)
        if isinstance(e, OSError):  # disk full, ...
            raise InputError(path, f"cannot write it: {e.strerror or e}") from None
        raise


def write_secret(path: str | Path, text: str) -> Path:
    """Write `text` to a NEW file `path` readable and writable by its owner only (0600 from creation).

    Never follows a symbolic link and never overwrites: an existing file, a link, or a folder that cannot
    be written raises :class:`InputError` naming the file. The data is flushed to disk before returning.
    """
    with new_secret_file(path) as f:
        f.write(text)
    return Path(path).expanduser()


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URL; None for other databases, in-memory SQLite and
    ``file:`` URIs (``?uri=true``), which SQLite opens itself."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except Exception:  # noqa: BLE001 - not a URL: the store reports that with its own message
        return None
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    if str(u.query.get("uri", "")).lower() in ("true", "1") or u.database.startswith("file:"):
        return None
    return Path(u.database).expanduser()


def ensure_private_sqlite(url: str | URL) -> Path | None:
    """Make the SQLite file of `url` private before SQLAlchemy opens it; other URLs are left alone (None).

    A missing file is created empty (a valid empty SQLite database) with mode 0600, without following a
    link (a dangling link at the path is refused with InputError), so SQLite gives its -wal/-shm/-journal
    files 0600 too. An existing file (and its side files)
    readable or writable by group or others is tightened to 0600 with a logged warning; when that is not
    allowed (another owner) only the warning is logged. Returns the database file.
    """
    path = sqlite_file(url)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(path.parent, f"cannot create the database folder: {e.strerror or e}") from None
    if path.is_symlink() and not path.exists():  # SQLite would create the file wherever the link points
        raise InputError(path, "is a symbolic link to a missing file: refusing to create the database through it")
    if not path.exists():
        try:
            os.close(_create_private(path))
            return path
        except InputError:
            if not path.exists():  # not a race with another process creating it: a real problem
                raise
    for p in [path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)]:
        _tighten(p)
    return path


def _tighten(path: Path) -> None:
    """chmod 0600 a file that group or others may use; a warning when it cannot be done."""
    try:
        st = path.stat()  # the database itself may be a deliberate link: check what it points to
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or not mode & 0o077:
        return
    try:
        os.chmod(path, mode & 0o700 | PRIVATE_MODE)
        log.warning("%s: was readable by other users (mode %o): changed to %o", path, mode, mode & 0o700 | 0o600)
    except OSError as e:
        log.warning("%s: readable by other users (mode %o) and cannot be changed (%s): run chmod 600 on it",
                    path, mode, e.strerror or e)
