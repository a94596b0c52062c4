"""Loading wafer-map files of any supported format into a `WaferMapSet`.

The loader decides from a file's first bytes (after decompression, streaming: xz, gzip, bz2,
zstd, a one-file zip), never from its name: an npz (zip of ``.npy`` arrays) goes to
`npz_reader`, a real pickle to the unpickler, anything else gets a "not a wafer-map file (looks
like ...)" message. The object read is handed to the format modules in ``adrcs.data.formats``,
whose ``sniff`` picks the reader.

Pickles are read with `safe_pickle.StrictUnpickler` (only the classes wafer-map data needs)
unless ``trust_pickle`` (``--trust-pickle``); ``allow_pickle=False`` (uploads to the service)
refuses pickles altogether. Everything is read within `InputLimits`: uncompressed bytes, map
side, map count.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from adrcs.data import file_kind, formats
from adrcs.data.data_paths import expand_data_paths
from adrcs.data.bounded_io import DECODE_ERRORS, Source, decoded_head, open_data, read_head
from adrcs.data.fab import DEFAULT_FAB_OPTIONS, FabOptions, wafer_set
from adrcs.data.formats import NpzArrays
from adrcs.data.limits import DEFAULT_LIMITS, InputLimits, describe_bytes
from adrcs.data.npz_reader import is_npz, read_npz
from adrcs.data.safe_pickle import PickleRefused, strict_load, trusted_load
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError, InputTooLarge, UnsupportedMediaError

__all__ = ["load", "load_bytes", "load_many", "summarize"]

PICKLE_UPLOAD_HINT = ("pickle uploads are refused (they can run code); convert with `adrcs convert FILE OUT.npz` "
                      "and upload the npz, or send JSON")
MAX_COLUMNS = 10_000


def load(path: str | Path, *, require_labels: bool = False, trust_pickle: bool = False, allow_pickle: bool = True,
         limits: InputLimits | None = None, trusted: bool | None = None, fab: FabOptions | None = None) -> WaferMapSet:
    """Read one wafer-map file, auto-detecting its format.

    Supported: processed WM-811K pickles, Kaggle's raw ``LSWMD.pkl``, the MixedWM38 npz, the
    processed MixedWM38 pickles and the ``adrcs convert`` npz (see ``adrcs.data.formats``). Maps
    come back as uint8 die codes 0/1/2; unlabeled maps are kept (label -1) and counted in
    ``notes["unlabeled"]``.

    trust_pickle: unpickle anything (only for files you trust); default: the strict unpickler.
    allow_pickle: False refuses pickles (and pickled npz arrays) with UnsupportedMediaError.
    limits: size limits (default `InputLimits()`); over a limit -> InputTooLarge.
    trusted: older spelling; ``trusted=False`` is the default behaviour now (strict unpickler).
    fab: how fab files (STDF, KLARF, SINF, E142 / G85) become pass/fail maps (`FabOptions`).

    Raises InputError (naming the file and the problem) for anything that is not readable wafer-map
    data, and, with ``require_labels``, when no map carries a label.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    image_format = _image_dataset(p)
    if image_format is not None:
        raise InputError(p, f"is image data ({image_format}), not wafer maps: use it with an image model "
                            "(task: detect or image_classify) in train / evaluate / predict")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a wafer-map file (.pkl, .pkl.xz, .npz)")
    try:
        return _load(p, str(p), p, require_labels, trust_pickle, allow_pickle, limits or DEFAULT_LIMITS, fab)
    except OSError as e:
        raise InputError(p, f"cannot be read ({e.strerror or 'I/O error'})") from None


def load_bytes(content: bytes, name: str, *, allow_pickle: bool = False, limits: InputLimits,
               require_labels: bool = False, fab: FabOptions | None = None) -> WaferMapSet:
    """Read an uploaded wafer-map file from memory (no temporary file), as untrusted input.

    `name` (the client's file name) is the only name in error messages. Pickles get
    UnsupportedMediaError unless `allow_pickle` (then the strict unpickler); npz files never
    unpickle unless `allow_pickle`. Over a limit -> InputTooLarge.
    """
    name = Path(name or "upload").name or "upload"
    if not content:
        raise InputError(name, "empty upload")
    return _load(bytes(content), name, Path(name), require_labels, False, allow_pickle, limits, fab)


class FabFile:
    """A fab file (STDF, KLARF, SINF, E142 / G85) found by its first bytes: its format module and source."""

    def __init__(self, fmt: Any, source: Source) -> None:
        self.fmt, self.source = fmt, source

    def read(self, name: str, options: FabOptions, limits: InputLimits) -> WaferMapSet:
        """The file's wafers as a `WaferMapSet` (one map per wafer), read as a bounded stream."""
        with open_data(self.source, name, limits.max_uncompressed_bytes, limits.flag) as stream:
            try:
                wafers = self.fmt.read_stream(stream, name, options, limits)
            except (InputError, InputTooLarge):
                raise
            except DECODE_ERRORS as e:
                raise InputError(name, f"is damaged or truncated ({_short(e)})") from None
        return wafer_set(name, wafers, limits)


def _load(source: Source, name: str, p: Path, require_labels: bool, trust_pickle: bool, allow_pickle: bool,
          limits: InputLimits, fab: FabOptions | None = None) -> WaferMapSet:
    obj = _read_object(source, name, trust_pickle, allow_pickle, limits)
    if isinstance(obj, FabFile):
        ds = obj.read(name, fab or DEFAULT_FAB_OPTIONS, limits)
        check_set(name, ds, limits)
        ds.notes.update({"format": obj.fmt.NAME, "source": name, "unlabeled": len(ds)})
        if require_labels:
            raise InputError(name, f"{obj.fmt.NAME} files carry no pattern labels (give labels with --labels "
                                   "lot,wafer,label CSV where a verb takes them)")
        return ds
    _precheck(name, obj, limits)
    if isinstance(obj, pd.DataFrame) and len(obj) == 0:
        raise InputError(name, "contains no wafer maps (the table has no rows)")
    fmt = formats.detect(p, obj)
    if fmt is None:
        raise InputError(name, _unrecognised(obj))
    try:
        ds = fmt.read(p, obj)
    except InputError as e:
        raise type(e)(name, e.problem) from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        raise InputError(name, f"cannot read as {fmt.NAME} ({_short(e)})") from None
    except RecursionError:
        raise InputError(name, f"cannot read as {fmt.NAME} (values nested too deeply)") from None
    except MemoryError:
        raise InputTooLarge(name, "does not fit in memory") from None
    if len(ds) == 0:
        raise InputError(name, "contains no wafer maps")
    check_set(name, ds, limits)
    n_unlabeled = int((~ds.labeled_mask).sum())
    ds.notes.update({"format": fmt.NAME, "source": name, "unlabeled": n_unlabeled})
    if require_labels and n_unlabeled == len(ds):
        raise InputError(name, f"no labeled maps (all {len(ds)} maps are unlabeled)")
    return ds


def check_set(name: str, ds: WaferMapSet, limits: InputLimits) -> None:
    """InputTooLarge when `ds` has more maps than `limits.max_maps`, a map side over `max_map_side`
    or more dies in all than `max_uncompressed_bytes`."""
    if len(ds) > limits.max_maps:
        raise InputTooLarge(name, f"holds {len(ds)} maps, more than the limit of {limits.max_maps}")
    _check_maps(name, ds.maps, limits)


def _check_maps(name: str, maps: Iterable[Any], limits: InputLimits) -> None:
    """Side and total-dies limits over the array cells of `maps` (other cells are left to the formats).

    The total counts every reference: one large map referenced many times in a pickle would
    otherwise expand to many copies when converted to die codes."""
    total = 0
    for i, m in enumerate(maps):
        shape = getattr(m, "shape", None)
        if not isinstance(shape, tuple) or not shape:
            continue
        if max(shape) > limits.max_map_side:
            raise InputTooLarge(name, f"map {i} of {'x'.join(map(str, shape))} is larger than the limit of "
                                      f"{limits.max_map_side} per side")
        total += int(getattr(m, "size", 0))
        if total > limits.max_uncompressed_bytes:
            raise InputTooLarge(name, f"maps hold more than {describe_bytes(limits.max_uncompressed_bytes)} of dies "
                                      f"(the limit; raise it with {limits.flag})")


def _precheck(name: str, obj: Any, limits: InputLimits) -> None:
    """Cheap limit checks on what was unpickled, before any format code iterates over it."""
    if isinstance(obj, pd.DataFrame):
        if len(obj) > limits.max_maps:
            raise InputTooLarge(name, f"holds {len(obj)} rows, more than the limit of {limits.max_maps} maps")
        if len(obj.columns) > MAX_COLUMNS:
            raise InputTooLarge(name, f"holds {len(obj.columns)} columns (at most {MAX_COLUMNS})")
        col = formats.map_column(obj)
        if col is not None and obj[col].dtype == object:
            _check_maps(name, obj[col].to_numpy(), limits)


def load_many(paths: Iterable[str | Path], *, require_labels: bool = False, trust_pickle: bool = False,
              limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop",
              progress: Callable[[int, int, str], None] | None = None) -> WaferMapSet:
    """Load several files, folders or globs (see `data_paths.expand_data_paths`) and join them (class lists
    merged in first-seen order); options as in `load`.

    on_error: "stop" (default) raises on the first unreadable file; "skip" goes on and lists the skipped files
        with their problem in ``notes["skipped"]`` (still an error when no file at all could be read).
    progress: called as ``progress(done, total, path)`` after each file when there are several.
    """
    if on_error not in ("stop", "skip"):
        raise InputError(None, f"on_error must be 'stop' or 'skip' (got {on_error!r})")
    given = list(paths)
    if not given:
        raise InputError(None, "no input files given")
    paths = expand_data_paths(given)
    sets, read, skipped = [], [], []
    for i, p in enumerate(paths):
        try:
            sets.append(load(p, trust_pickle=trust_pickle, limits=limits, fab=fab))
            read.append(p)
        except InputError as e:
            if on_error == "stop":
                raise
            skipped.append({"path": str(p), "problem": e.problem})
        if progress is not None and len(paths) > 1:
            progress(i + 1, len(paths), str(p))
    if not sets:
        raise InputError(given[0] if len(given) == 1 else None,
                         f"none of the {len(paths)} files could be read (first: {skipped[0]['path']}: "
                         f"{skipped[0]['problem']})")
    if len({s.multilabel for s in sets}) > 1:
        single = next(p for p, s in zip(read, sets) if not s.multilabel)
        multi = next(p for p, s in zip(read, sets) if s.multilabel)
        raise InputError(multi, f"is multi-label data and cannot be combined with single-label {single}")
    ds = sets[0] if len(sets) == 1 else WaferMapSet.concat(sets)
    if len(sets) > 1:
        ds.notes = {
            "format": ",".join(dict.fromkeys(s.notes.get("format", "?") for s in sets)),
            "source": [str(p) for p in read],
            "unlabeled": sum(s.notes.get("unlabeled", 0) for s in sets),
        }
    if skipped:
        ds.notes["skipped"] = skipped
    if require_labels and ds.notes["unlabeled"] == len(ds):
        raise InputError(paths[0] if len(paths) == 1 else None, f"no labeled maps in {', '.join(map(str, given))}")
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
    if ds.notes.get("format"):
        out["format"] = ds.notes["format"]
    if "lot" in ds.meta.columns:
        out["lots"] = int(ds.meta["lot"].nunique())
    if "untested_flag" in ds.meta.columns:
        out["untested_flagged"] = int(ds.meta["untested_flag"].fillna(False).astype(bool).sum())
    return out


# ---------------------------------------------------------------- reading the file


def _short(e: BaseException, limit: int = 160) -> str:
    """An exception's text on one line, cut to `limit` (no class name: messages reach HTTP clients)."""
    text = " ".join(str(e).split()) or "unreadable"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unrecognised(obj: Any) -> str:
    if isinstance(obj, NpzArrays):
        return f"npz file has no 'arr_0' array (the wafer maps); arrays are {sorted(obj)[:20]}"
    if isinstance(obj, pd.DataFrame):
        return f"no wafer-map column (expected 'waferMap'); columns are {[str(c) for c in obj.columns][:30]}"
    kind = type(obj).__name__ if type(obj).__module__ == "builtins" else f"{type(obj).__module__}.{type(obj).__name__}"
    return f"holds a {kind}, not a DataFrame with a 'waferMap' column"


def _read_object(source: Source, name: str, trust_pickle: bool, allow_pickle: bool, limits: InputLimits) -> Any:
    """The unpickled object or `NpzArrays` of `source`, chosen by content."""
    head = read_head(source, 8)
    if not head:
        raise InputError(name, "contains no wafer maps (the file is empty)")
    flag = limits.flag
    if file_kind.compression_of(head) == "zip" and is_npz(source):
        return read_npz(source, name, limits, allow_pickle=allow_pickle, trust_pickle=trust_pickle, flag=flag)
    content = decoded_head(source, name, limits.max_uncompressed_bytes, formats.FAB_HEAD_BYTES, flag)
    if not content:
        raise InputError(name, "contains no wafer maps (the file is empty)")
    fab_fmt = formats.detect_fab(content)
    if fab_fmt is not None:
        return FabFile(fab_fmt, source)
    if not file_kind.is_pickle(content):
        raise InputError(name, file_kind.not_wafer_map(content))
    if not allow_pickle:
        raise UnsupportedMediaError(name, PICKLE_UPLOAD_HINT)

    def stream():
        return open_data(source, name, limits.max_uncompressed_bytes, flag)

    try:
        return trusted_load(stream) if trust_pickle else strict_load(stream, limits)
    except InputError:
        raise
    except PickleRefused as e:
        raise InputError(name, e.message()) from None
    except MemoryError:
        raise InputTooLarge(name, "does not fit in memory") from None
    except DECODE_ERRORS + (Exception,) as e:  # UnpicklingError, EOFError, damaged compression, ...
        raise InputError(name, f"is not a readable pickle (damaged or truncated: {_short(e)})") from None


def _image_dataset(p: Path) -> str | None:
    """The name of the image-dataset layout `p` is (a DeepPCB list, a VOC root, class folders), else None."""
    if p.is_file() and p.stat().st_size > 1024 * 1024:
        return None  # list files are small; never scan a big wafer-map file as text
    from adrcs.data.image_formats import detect

    try:
        fmt = detect(p)
    except Exception:  # noqa: BLE001 - not an image layout
        return None
    return None if fmt is None else {"deeppcb": "a DeepPCB list", "voc": "Pascal VOC",
                                     "class_folders": "a folder of class folders"}.get(fmt.NAME, fmt.NAME)
