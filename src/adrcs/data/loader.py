"""Loading wafer-map files of any supported format into a `WaferMapSet`.

The file is opened once: an ``.npz`` (or any zip of ``.npy`` arrays) with ``numpy.load``,
anything else as a pickle (xz/gzip/bz2/zip/zstd compression is recognised from the file's first
bytes, so the extension does not matter). The object read is handed to the format modules in
``adrcs.data.formats``, whose ``sniff`` picks the reader.

Pickles can run code when loaded: load only files from sources you trust, or pass
``trusted=False`` (what the inspection service does with uploads): pickles are then unpickled with
`SafeUnpickler`, which only builds numpy / pandas data classes, and npz files never unpickle.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from adrcs.data import formats
from adrcs.data.formats import NpzArrays
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError

__all__ = ["load", "load_many", "summarize"]

_MAGIC = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
]


def load(path: str | Path, *, require_labels: bool = False, trusted: bool = True) -> WaferMapSet:
    """Read one wafer-map file, auto-detecting its format.

    Supported: processed WM-811K pickles, Kaggle's raw ``LSWMD.pkl``, the MixedWM38 npz and the
    processed MixedWM38 pickles (see ``adrcs.data.formats``). Maps come back as uint8 die codes
    0/1/2; unlabeled maps are kept (label -1) and counted in ``notes["unlabeled"]``.

    Raises InputError (naming the file and the problem) for anything that is not readable wafer-map
    data, and, with ``require_labels``, when no map carries a label. ``trusted=False``: see the module docs.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a wafer-map file (.pkl, .pkl.xz, .npz)")
    obj = _read_object(p, trusted)
    if isinstance(obj, pd.DataFrame) and len(obj) == 0:
        raise InputError(p, "contains no wafer maps (the table has no rows)")
    fmt = formats.detect(p, obj)
    if fmt is None:
        raise InputError(p, _unrecognised(obj))
    try:
        ds = fmt.read(p, obj)
    except InputError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        raise InputError(p, f"cannot read as {fmt.NAME} ({type(e).__name__}: {_short(e)})") from e
    if len(ds) == 0:
        raise InputError(p, "contains no wafer maps")
    n_unlabeled = int((~ds.labeled_mask).sum())
    ds.notes.update({"format": fmt.NAME, "source": str(p), "unlabeled": n_unlabeled})
    if require_labels and n_unlabeled == len(ds):
        raise InputError(p, f"no labeled maps (all {len(ds)} maps are unlabeled)")
    return ds


def load_many(paths: Iterable[str | Path], *, require_labels: bool = False) -> WaferMapSet:
    """Load several files and join them (class lists merged in first-seen order)."""
    paths = list(paths)
    if not paths:
        raise InputError(None, "no input files given")
    sets = [load(p) for p in paths]
    if len({s.multilabel for s in sets}) > 1:
        single = next(p for p, s in zip(paths, sets) if not s.multilabel)
        multi = next(p for p, s in zip(paths, sets) if s.multilabel)
        raise InputError(multi, f"is multi-label data and cannot be combined with single-label {single}")
    ds = sets[0] if len(sets) == 1 else WaferMapSet.concat(sets)
    if len(sets) > 1:
        ds.notes = {
            "format": ",".join(dict.fromkeys(s.notes.get("format", "?") for s in sets)),
            "source": [str(p) for p in paths],
            "unlabeled": sum(s.notes.get("unlabeled", 0) for s in sets),
        }
    if require_labels and ds.notes["unlabeled"] == len(ds):
        raise InputError(paths[0] if len(paths) == 1 else None, f"no labeled maps in {', '.join(map(str, paths))}")
    return ds


def summarize(ds: WaferMapSet) -> dict:
    """Counts for a quick look at a set.

    Returns {"total", "multilabel", "unlabeled", "classes": {name: count}, "map_sizes": {"HxW": count}}
    with map sizes sorted by count (most common first). For multi-label data a class count is the
    number of labeled maps carrying that label, and "normal" counts labeled maps with no label.
    """
    mask = ds.labeled_mask
    labels = ds.labels[mask]
    if ds.multilabel:
        per = labels.sum(axis=0) if len(labels) else np.zeros(len(ds.class_names), int)
        classes = {c: int(n) for c, n in zip(ds.class_names, per)}
    else:
        per = np.bincount(labels, minlength=len(ds.class_names)) if len(labels) else np.zeros(len(ds.class_names), int)
        classes = {c: int(n) for c, n in zip(ds.class_names, per)}
    sizes = Counter(f"{m.shape[0]}x{m.shape[1]}" for m in ds.maps)
    out = {
        "total": len(ds),
        "multilabel": bool(ds.multilabel),
        "unlabeled": int((~mask).sum()),
        "classes": classes,
        "map_sizes": dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
    if ds.multilabel:
        out["normal"] = int((labels.sum(axis=1) == 0).sum()) if len(labels) else 0
    return out


# ---------------------------------------------------------------- reading the file


def _short(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unrecognised(obj: Any) -> str:
    if isinstance(obj, NpzArrays):
        return f"npz file has no 'arr_0' array (the wafer maps); arrays are {sorted(obj)}"
    if isinstance(obj, pd.DataFrame):
        return f"no wafer-map column (expected 'waferMap'); columns are {[str(c) for c in obj.columns]}"
    kind = type(obj).__name__ if type(obj).__module__ == "builtins" else f"{type(obj).__module__}.{type(obj).__name__}"
    return f"holds a {kind}, not a DataFrame with a 'waferMap' column"


def _compression(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _is_npz(p: Path, compression: str | None) -> bool:
    if p.suffix.lower() == ".npz":
        return True
    if compression != "zip":
        return False
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return bool(names) and all(n.endswith(".npy") for n in names)


def _read_object(p: Path, trusted: bool = True) -> Any:
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InputError(p, f"cannot be read ({e.strerror or _short(e)})") from e
    if not head:
        raise InputError(p, "contains no wafer maps (the file is empty)")
    compression = _compression(head)
    if _is_npz(p, compression):
        return _read_npz(p, allow_pickle=trusted)
    if not trusted:
        return _read_untrusted_pickle(p, compression)
    return _read_pickle(p, compression)


def _read_npz(p: Path, allow_pickle: bool = True) -> NpzArrays:
    try:
        try:
            with np.load(p, allow_pickle=False) as z:
                return NpzArrays({k: z[k] for k in z.files})
        except ValueError as e:
            if "allow_pickle" not in str(e):
                raise
            if not allow_pickle:
                raise InputError(p, "npz holds object arrays (pickled data), refused for untrusted input; "
                                    "send maps of one size as an (N, H, W) array") from e
        with np.load(p, allow_pickle=True) as z:  # object arrays (maps of different sizes)
            return NpzArrays({k: z[k] for k in z.files})
    except InputError:
        raise
    except Exception as e:  # zip, zlib, format and EOF errors from a damaged or foreign file
        raise InputError(p, f"not a pickle or npz file (bad npz: {type(e).__name__}: {_short(e)})") from e


# Import errors that old pandas pickles (Kaggle's LSWMD.pkl) raise under pandas >= 1.
_COMPAT_ERRORS = (ImportError, AttributeError, TypeError, ValueError, UnicodeDecodeError, NotImplementedError)


def _read_pickle(p: Path, compression: str | None) -> Any:
    try:
        return pd.read_pickle(p, compression=compression)
    except _COMPAT_ERRORS as e:
        first: Exception = e
    except Exception as e:  # UnpicklingError, EOFError, LZMAError, BadGzipFile, zlib.error, ...
        raise InputError(p, f"not a pickle or npz file ({type(e).__name__}: {_short(e)})") from e
    try:
        with _open_stream(p, compression) as f:
            return _LegacyUnpickler(f, encoding="latin1").load()
    except Exception as e:
        hint = f"{type(first).__name__}: {_short(first)}"
        if not isinstance(first, (ImportError, AttributeError)):
            raise InputError(p, f"not a pickle or npz file ({hint})") from first
        raise InputError(p, f"cannot unpickle ({hint}; retry with the legacy-pandas unpickler: {type(e).__name__}: {_short(e)})") from e


def _open_stream(p: Path, compression: str | None):
    if compression == "xz":
        return lzma.open(p, "rb")
    if compression == "gzip":
        return gzip.open(p, "rb")
    if compression == "bz2":
        return bz2.open(p, "rb")
    if compression == "zip":
        z = zipfile.ZipFile(p)
        names = [n for n in z.namelist() if not n.endswith("/")]
        if len(names) != 1:
            z.close()
            raise ValueError(f"zip file holds {len(names)} files, expected one pickle")
        return io.BytesIO(z.read(names[0]))
    if compression == "zstd":
        import zstandard  # optional, as in pandas

        return zstandard.ZstdDecompressor().stream_reader(open(p, "rb"))
    return open(p, "rb")


try:  # pandas' own compat unpickler knows later class moves (Int64Index -> Index, ...)
    from pandas.compat.pickle_compat import Unpickler as _BaseUnpickler
except Exception:  # pragma: no cover - private module moved
    _BaseUnpickler = pickle._Unpickler  # type: ignore[attr-defined,misc]

# Module renames between old pandas (the one that wrote LSWMD.pkl) and pandas >= 1.
_MODULE_PREFIXES = [
    ("pandas.indexes", "pandas.core.indexes"),
    ("pandas.core.categorical", "pandas.core.arrays.categorical"),
    ("pandas.tslib", "pandas._libs.tslibs"),
]
_CLASS_MOVES = {
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "NumericIndex"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.internals", "BlockManager"): ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.internals", "SingleBlockManager"): ("pandas.core.internals.managers", "SingleBlockManager"),
}


class _LegacyUnpickler(_BaseUnpickler):  # type: ignore[misc,valid-type]
    """Unpickler mapping `pandas.indexes.*` -> `pandas.core.indexes.*` and similar moves."""

    def find_class(self, module: str, name: str) -> Any:
        for old, new in _MODULE_PREFIXES:
            if module == old or module.startswith(old + "."):
                module = new + module[len(old):]
                break
        module, name = _CLASS_MOVES.get((module, name), (module, name))
        return super().find_class(module, name)


# What `SafeUnpickler` may build: numpy / pandas classes and their pickle helpers, a few builtins.
_SAFE_ROOTS = ("numpy", "pandas")
_SAFE_HELPERS = ("_reconstruct", "_frombuffer", "scalar", "_unpickle", "__pyx_unpickle", "_new_", "new_block",
                 "_DType_reconstruct",
                 "_restore_", "__newobj__")
_SAFE_OTHERS = {("builtins", n) for n in ("set", "frozenset", "slice", "complex", "bytearray", "range", "list",
                                          "dict", "tuple", "object", "int", "float", "str", "bytes", "bool")} | {
    ("copyreg", "_reconstructor"), ("collections", "OrderedDict"), ("_codecs", "encode"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "timedelta"), ("datetime", "timezone")}


class SafeUnpickler(_LegacyUnpickler):
    """Unpickler for untrusted files: only numpy / pandas classes and their unpickling helpers
    (plus plain builtins), so a crafted pickle cannot call `os.system` and the like."""

    def find_class(self, module: str, name: str) -> Any:
        obj = super().find_class(module, name)
        mod = getattr(obj, "__module__", module) or module
        if (module, name) in _SAFE_OTHERS:
            return obj
        if any(m == r or m.startswith(r + ".") for m in (module, mod) for r in _SAFE_ROOTS) and (
                isinstance(obj, type) or name.startswith(_SAFE_HELPERS)):
            return obj
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from an untrusted pickle")


def _read_untrusted_pickle(p: Path, compression: str | None) -> Any:
    try:
        with _open_stream(p, compression) as f:
            return SafeUnpickler(f, encoding="latin1").load()
    except Exception as e:
        raise InputError(p, f"not a readable wafer-map pickle ({type(e).__name__}: {_short(e)})") from e
