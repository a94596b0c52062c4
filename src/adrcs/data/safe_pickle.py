"""Unpickling wafer-map files without running code from them.

`StrictUnpickler` builds only what pandas / numpy DataFrames, Series and arrays of wafer maps
need: an explicit allow-list of exact ``(module, qualified name)`` pairs (`ALLOWED`), found by
scanning with ``pickletools.genops`` the shipped samples, the ../shared WM-811K and MixedWM38
splits, an LSWMD-style frame and frames written under numpy 1.x (``numpy.core.*``) and 2.x
(``numpy._core.*``) names with protocols 2, 4 and 5. Names with a dot are refused before any
lookup (protocol 4 would follow them: ``_frombuffer.__builtins__.get`` is ``eval``), and so is
everything else not on the list (``numpy.memmap``, ``os.system``, ``builtins.getattr``, ...).

The callables on the list are wrapped so that a crafted pickle cannot make them allocate more
than the byte cap or hand them states that crash numpy: array shapes, buffers, slices and range
indexes are checked before anything is built, and ``numpy.ndarray`` is only usable through
``_reconstruct``. `trusted_load` (``--trust-pickle``) unpickles everything, for files the user trusts.
"""
from __future__ import annotations

import _compat_pickle
import importlib
import math
import pickle
from typing import Any, BinaryIO, Callable

import numpy as np

from adrcs.data.limits import InputLimits, describe_bytes

try:  # pandas' compat unpickler knows old class layouts (BlockManager without args, ...)
    from pandas.compat.pickle_compat import Unpickler as _PandasUnpickler
    from pandas.compat.pickle_compat import _class_locations_map as _PANDAS_MOVES
except Exception:  # pragma: no cover - private module moved
    _PandasUnpickler = pickle._Unpickler  # type: ignore[attr-defined,misc]
    _PANDAS_MOVES = {}

REFUSAL = "refuses to unpickle {what} ({why}); if you trust this file, rerun with --trust-pickle"
NOT_DATA_CLASS = "not a wafer-map data class"
BAD_VALUE = "not what wafer-map data holds"

# Module renames between old pandas (the one that wrote Kaggle's LSWMD.pkl) and pandas >= 1.
_MODULE_PREFIXES = [
    ("pandas.indexes", "pandas.core.indexes"),
    ("pandas.core.categorical", "pandas.core.arrays.categorical"),
    ("pandas.tslib", "pandas._libs.tslibs"),
]
_CLASS_MOVES = {
    **_PANDAS_MOVES,
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "NumericIndex"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.index", "Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.index", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.index", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.internals", "BlockManager"): ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.internals", "SingleBlockManager"): ("pandas.core.internals.managers", "SingleBlockManager"),
}


def renamed(module: str, name: str) -> tuple[str, str]:
    """Where an old pandas / Python 2 name lives now (unchanged for current names)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    for old, new in _MODULE_PREFIXES:
        if module == old or module.startswith(old + "."):
            module = new + module[len(old):]
            break
    return _CLASS_MOVES.get((module, name), (module, name))


# ---------------------------------------------------------------- the allow-list

_NP_CORE = ("numpy.core", "numpy._core")  # numpy 1.x and 2.x names of the same modules
_PD_CLASSES = {  # pandas data classes: name -> (public module, defining module)
    "DataFrame": ("pandas", "pandas.core.frame"), "Series": ("pandas", "pandas.core.series"),
    "Index": ("pandas", "pandas.core.indexes.base"), "RangeIndex": ("pandas", "pandas.core.indexes.range"),
    "CategoricalIndex": ("pandas", "pandas.core.indexes.category"),
    "Categorical": ("pandas", "pandas.core.arrays.categorical"),
    "CategoricalDtype": ("pandas", "pandas.core.dtypes.dtypes"),
    "StringDtype": ("pandas", "pandas.core.arrays.string_"),
    "StringArray": ("pandas.arrays", "pandas.core.arrays.string_"),
    # meta columns of other dtypes: nullable numbers / booleans, naive dates and durations, pd.NA
    "IntegerArray": ("pandas.arrays", "pandas.core.arrays.integer"),
    "FloatingArray": ("pandas.arrays", "pandas.core.arrays.floating"),
    "BooleanArray": ("pandas.arrays", "pandas.core.arrays.boolean"),
    "DatetimeArray": ("pandas.arrays", "pandas.core.arrays.datetimes"),
    "TimedeltaArray": ("pandas.arrays", "pandas.core.arrays.timedeltas"),
    "BooleanDtype": ("pandas", "pandas.core.arrays.boolean"),
    **{f"{k}{b}Dtype": ("pandas", f"pandas.core.arrays.{'integer' if 'Int' in k else 'floating'}")
       for k, bits in (("Int", (8, 16, 32, 64)), ("UInt", (8, 16, 32, 64)), ("Float", (32, 64))) for b in bits},
    "NA": ("pandas", "pandas._libs.missing"),
}
# (module, name) as it appears in a pickle (after `renamed`) -> key of the object it may build
ALLOWED: dict[tuple[str, str], str] = {
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    **{(f"{core}.multiarray", "_reconstruct"): "_reconstruct" for core in _NP_CORE},
    **{(f"{core}.multiarray", "scalar"): "scalar" for core in _NP_CORE},
    **{(f"{core}.numeric", "_frombuffer"): "_frombuffer" for core in _NP_CORE},
    **{(mod, cls): cls for cls, mods in _PD_CLASSES.items() for mod in mods},
    ("pandas.core.indexes.base", "_new_Index"): "_new_Index",
    ("pandas.core.internals.managers", "BlockManager"): "BlockManager",
    ("pandas.core.internals.managers", "SingleBlockManager"): "SingleBlockManager",
    ("pandas._libs.internals", "_unpickle_block"): "_unpickle_block",
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"): "__pyx_unpickle_NDArrayBacked",
    ("builtins", "slice"): "slice",
    ("builtins", "bytes"): "bytes",
    ("builtins", "set"): "set",
    ("builtins", "frozenset"): "frozenset",
    ("collections", "OrderedDict"): "OrderedDict",
    ("_codecs", "encode"): "encode",
}
_PLAIN = {  # key -> (module, attribute) of objects used as they are
    "dtype": ("numpy", "dtype"), "set": ("builtins", "set"), "frozenset": ("builtins", "frozenset"),
    "OrderedDict": ("collections", "OrderedDict"),
    "BlockManager": ("pandas.core.internals.managers", "BlockManager"),
    "SingleBlockManager": ("pandas.core.internals.managers", "SingleBlockManager"),
    "_unpickle_block": ("pandas._libs.internals", "_unpickle_block"),
    "__pyx_unpickle_NDArrayBacked": ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    **{cls: (mods[0], cls) for cls, mods in _PD_CLASSES.items() if cls != "RangeIndex"},
}


class PickleRefused(pickle.UnpicklingError):
    """A name or value outside what wafer-map data needs; ``what`` and ``why`` are shown to the user."""

    def __init__(self, what: str, why: str = BAD_VALUE) -> None:
        super().__init__(what)
        self.what, self.why = what, why

    def message(self) -> str:
        """The one-line problem for InputError."""
        return REFUSAL.format(what=self.what, why=self.why)


class _Token:
    """Stands for a class that the pickle may only hand to a checked helper (never call)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise PickleRefused(f"calling {self.name} directly")


_NDARRAY = _Token("numpy.ndarray")
_RANGE_INDEX = _Token("pandas.RangeIndex")


def _printable(text: str, limit: int = 80) -> str:
    text = "".join(c if c.isprintable() and c.isascii() else "?" for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_shape(shape: Any, dtype: np.dtype, cap: int) -> int:
    """Element count of `shape` (a tuple of ints >= 0) after checking its bytes fit in `cap`."""
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and 0 <= s for s in shape) or len(shape) > 32:
        raise PickleRefused(f"an array of shape {_printable(repr(shape))}")
    n = math.prod(shape)
    if n * max(dtype.itemsize, 1) > cap:
        raise PickleRefused(f"an array of shape {shape}, more than the {describe_bytes(cap)} limit")
    return n


def _as_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) and not (isinstance(dtype, (str, bytes)) and len(dtype) < 16):
        raise PickleRefused(f"an array dtype {_printable(repr(dtype))}")
    try:
        return np.dtype(dtype.decode("latin1") if isinstance(dtype, bytes) else dtype)
    except TypeError:
        raise PickleRefused(f"an array dtype {_printable(repr(dtype))}") from None


def check_array_state(state: Any, cap: int) -> None:
    """Refuse an ``ndarray.__setstate__`` state that does not describe data of its own size
    (numpy allocates from the shape first and crashes on some mismatches)."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise PickleRefused("an array state of unknown layout")
    shape, dtype, raw = state[-4], state[-3], state[-1]
    if not isinstance(dtype, np.dtype):
        raise PickleRefused("an array state without a dtype")
    n = _check_shape(shape, dtype, cap)
    if dtype.hasobject:
        if not isinstance(raw, list) or len(raw) != n:
            raise PickleRefused("an object array whose items do not match its shape")
    elif not isinstance(raw, (bytes, bytearray)) or len(raw) != n * dtype.itemsize:
        raise PickleRefused("an array whose data does not match its shape")


def _allowed_objects(limits: InputLimits) -> dict[str, Any]:
    """The objects the allow-list keys stand for, with checks bound to `limits`."""
    from numpy._core import multiarray, numeric  # numpy >= 2 (the ../shared names map here too)

    cap, max_len = limits.max_uncompressed_bytes, max(limits.max_maps, 1 << 16)
    objs: dict[str, Any] = {k: getattr(importlib.import_module(m), a) for k, (m, a) in _PLAIN.items()}
    pd_range = importlib.import_module("pandas").RangeIndex
    new_index = importlib.import_module("pandas.core.indexes.base")._new_Index

    def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDARRAY:
            raise PickleRefused(f"_reconstruct of {_printable(repr(subtype))}")
        dt = _as_dtype(dtype)
        _check_shape(shape, dt, cap)
        return multiarray._reconstruct(np.ndarray, shape, dt)

    def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        dt = _as_dtype(dtype)
        if dt.hasobject or not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
            raise PickleRefused("_frombuffer of a non-byte buffer")
        n = _check_shape(shape, dt, cap)
        if n * dt.itemsize != memoryview(buf).nbytes or order not in ("C", "F"):
            raise PickleRefused("an array whose data does not match its shape")
        return numeric._frombuffer(buf, dt, shape, order)

    def scalar(dtype: Any, obj: Any = None) -> Any:
        dt = _as_dtype(dtype)
        if not dt.hasobject and (not isinstance(obj, bytes) or len(obj) != dt.itemsize):
            raise PickleRefused("a numpy scalar whose data does not match its dtype")
        return multiarray.scalar(dt, obj) if obj is not None else multiarray.scalar(dt)

    def _slice(*args: Any) -> slice:
        if len(args) > 3 or not all(a is None or (isinstance(a, int) and abs(a) <= max_len) for a in args):
            raise PickleRefused(f"a slice {_printable(repr(args))}")
        return slice(*args)

    def _new_index(cls: Any, d: Any) -> Any:
        if not isinstance(d, dict):
            raise PickleRefused("an index without its fields")
        if cls is _RANGE_INDEX:
            bounds = [d.get(k, dflt) for k, dflt in (("start", 0), ("stop", 0), ("step", 1))]
            if not all(isinstance(b, int) for b in bounds) or bounds[2] == 0 or len(range(*bounds)) > max_len:
                raise PickleRefused(f"a range index {_printable(repr(bounds))}")
            cls = pd_range
        elif cls not in (objs["Index"], objs["CategoricalIndex"]):
            raise PickleRefused(f"an index of class {_printable(repr(cls))}")
        return new_index(cls, d)

    def _dtype(*args: Any, **kwargs: Any) -> np.dtype:
        dt = np.dtype(*args, **kwargs)
        if dt.subdtype is not None or dt.fields is not None or dt.itemsize > 1 << 20:
            raise PickleRefused(f"the numpy dtype {_printable(repr(dt))}")
        return dt

    def _bytes(*args: Any) -> bytes:
        if args and not isinstance(args[0], (bytes, bytearray, str, list)):
            raise PickleRefused(f"bytes({_printable(repr(args))})")
        return bytes(*args)

    def encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        plain = ("latin1", "latin-1", "utf-8", "ascii")
        if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in plain:
            raise PickleRefused(f"_codecs.encode with {_printable(repr(encoding))}")
        return obj.encode(encoding, errors)

    objs.update(ndarray=_NDARRAY, RangeIndex=_RANGE_INDEX, dtype=_dtype, _reconstruct=_reconstruct,
                _frombuffer=_frombuffer, scalar=scalar, slice=_slice, _new_Index=_new_index, bytes=_bytes, encode=encode)
    return objs


class StrictUnpickler(_PandasUnpickler):  # type: ignore[misc,valid-type]
    """Unpickler that builds only the `ALLOWED` names, with checked helpers (see the module docs).

    Raises `PickleRefused` for anything else. Based on the pure-Python unpickler so that BUILD
    (``ndarray.__setstate__``) can be checked before numpy sees the state.
    """

    dispatch = _PandasUnpickler.dispatch.copy()

    def __init__(self, file: BinaryIO, limits: InputLimits) -> None:
        super().__init__(file, encoding="latin1")
        self._cap = limits.max_uncompressed_bytes
        self._objects = _allowed_objects(limits)

    def find_class(self, module: str, name: str) -> Any:
        what = f"{_printable(module, 60)}.{_printable(name, 60)}"
        if "." in name or not name:  # protocol 4 follows dotted names: never
            raise PickleRefused(what, NOT_DATA_CLASS)
        key = ALLOWED.get(renamed(module, name))
        if key is None:
            raise PickleRefused(what, NOT_DATA_CLASS)
        return self._objects[key]

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("a persistent id")

    def load_build(self) -> None:
        state = self.stack[-1]
        inst = self.stack[-2]
        if isinstance(inst, np.ndarray):
            check_array_state(state, self._cap)
        elif isinstance(inst, np.dtype) and not (isinstance(state, tuple) and len(state) in (8, 9)
                                                 and all(s is None for s in state[2:5])):
            raise PickleRefused("a structured or unusual numpy dtype")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build


class _TrustedUnpickler(pickle.Unpickler):
    """The fast C unpickler with the old-pandas renames (for files the user trusts)."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(*renamed(module, name))


class _TrustedCompatUnpickler(_PandasUnpickler):  # type: ignore[misc,valid-type]
    """pandas' compat unpickler with the old-pandas renames (old layouts, e.g. Kaggle's LSWMD.pkl)."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(*renamed(module, name))


def strict_load(open_stream: Callable[[], BinaryIO], limits: InputLimits) -> Any:
    """Unpickle with `StrictUnpickler` (raises `PickleRefused` for anything not allowed)."""
    with open_stream() as f:
        return StrictUnpickler(f, limits).load()


# errors that old pandas pickles raise in the fast unpickler; retried with pandas' compat one
COMPAT_ERRORS = (ImportError, AttributeError, TypeError, ValueError, UnicodeDecodeError, NotImplementedError)


def trusted_load(open_stream: Callable[[], BinaryIO]) -> Any:
    """Unpickle everything (``--trust-pickle``): fast path first, pandas' compat unpickler on failure."""
    try:
        with open_stream() as f:
            return _TrustedUnpickler(f, encoding="latin1").load()
    except COMPAT_ERRORS:
        pass
    with open_stream() as f:
        return _TrustedCompatUnpickler(f, encoding="latin1").load()
