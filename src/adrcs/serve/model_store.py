"""The model store (``adrcs serve --model-store DIR``): run folders every replica can load.

Replicas on several hosts share one registry (the database), so a registered model must not live at a path
only one host has. With a model store, a run folder is copied into ``DIR/<version>/`` when it is registered
(the version is the checkpoint's content hash, so the folder name says what is inside) and the registry keeps
the path *relative to the store* (``wafer-0123abcdef01``); retraining writes its runs under ``DIR/runs/<job>``
and registers them the same way. Each replica mounts the store (NFS, SMB, a shared volume) wherever it likes
and resolves the relative paths against its own mount point.

Why a shared folder and not blobs in the database: run folders are checkpoints of tens to hundreds of MB plus
their ONNX exports; in the database every replica would have to unpack them to a local cache anyway, and the
store's backups would grow with every retrain. A folder is what the trainers write, and what ``adrcs predict``
and ``adrcs export`` read.

Without a model store the registry keeps absolute paths (one host: ``--workers N`` on one machine is fine).
Folders and files created here are private to the service's user (0700 / 0600).
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath

from adrcs.errors import InputError

RUNS = "runs"  # retrain jobs write their run folders under DIR/runs/<job>


def _private_tree(root: Path) -> None:
    """Make a copied folder private: folders 0700, files 0600 (no links followed)."""
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, 0o700)
        for name in files:
            p = Path(folder) / name
            if not p.is_symlink():
                os.chmod(p, 0o600)


class ModelStore:
    """Where registered run folders live: `root` (shared by replicas) or, with no root, where they are."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = None if root in (None, "") else Path(root).expanduser().resolve()

    def __bool__(self) -> bool:
        return self.root is not None

    def check(self) -> None:
        """Create the store folder (0700) when missing; InputError naming it when it is not a writable folder."""
        if self.root is None:
            return
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(self.root, f"--model-store cannot be created: {e.strerror or e}") from None
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise InputError(self.root, "--model-store must be a folder the service can write")

    def registry_path(self, run_dir: str | Path, version: str) -> str:
        """The path the registry keeps for `run_dir`: relative to the store (copied in first when it is outside),
        or, without a store, the absolute path."""
        run_dir = Path(run_dir).resolve()
        if self.root is None:
            return str(run_dir)
        try:
            return PurePosixPath(*run_dir.relative_to(self.root).parts).as_posix()  # already inside
        except ValueError:
            pass
        dest = self.root / version
        if not (dest / "model.ckpt").is_file():
            self.check()
            tmp = self.root / f".incoming-{uuid.uuid4().hex}"
            shutil.copytree(run_dir, tmp, symlinks=True)
            _private_tree(tmp)
            try:
                os.rename(tmp, dest)  # atomic: other replicas never see half a folder
            except OSError:  # another replica registered the same version a moment ago (same content)
                shutil.rmtree(tmp, ignore_errors=True)
                if not (dest / "model.ckpt").is_file():
                    raise
        return version

    def resolve(self, path: str) -> Path:
        """The local folder of a registry path. A relative path needs a store; LookupError when there is none or
        the path would leave it (the message names no server path)."""
        p = PurePosixPath(path)
        if Path(path).is_absolute():
            return Path(path)
        if self.root is None:
            raise LookupError("the model lives in a model store, and this replica has no --model-store")
        if ".." in p.parts:
            raise LookupError("a model path leaves the model store")
        return self.root.joinpath(*p.parts)

    def run_dir(self, job: str) -> Path:
        """Where retrain job `job` writes its run folder (inside the store)."""
        assert self.root is not None
        return self.root / RUNS / job

    def is_local(self, path: str) -> bool:
        """True when a registry path is an absolute, host-local path (not inside this store)."""
        return Path(path).is_absolute()
