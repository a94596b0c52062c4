"""Reading npz files (zips of ``.npy`` arrays) within limits: sizes and shapes come from the zip
directory and each member's ``.npy`` header BEFORE any array data is read.

Object arrays (pickled inside the ``.npy``) go through the strict unpickler, through full
unpickling with ``--trust-pickle``, or are refused where pickles are not accepted (uploads).
"""
from __future__ import annotations

import math
import zipfile
from typing import Any

import numpy as np

from adrcs.data.bounded_io import DECODE_ERRORS, BoundedReader, Source, open_raw, too_large
from adrcs.data.formats import NpzArrays
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge, UnsupportedMediaError

PICKLED_NPZ_HINT = ("holds pickled object arrays, refused for uploads (they can run code); convert with "
                    "`adrcs convert FILE OUT.npz` and upload that npz")
MAX_MEMBERS = 1000


def is_npz(source: Source) -> bool:
    """True when `source` is a zip whose members are all ``.npy`` arrays."""
    try:
        with zipfile.ZipFile(open_raw(source)) as z:
            names = z.namelist()
    except DECODE_ERRORS:
        return False
    return bool(names) and all(n.endswith(".npy") for n in names)


def read_npz(source: Source, name: str, limits: InputLimits, *, allow_pickle: bool, trust_pickle: bool,
             flag: str = "--max-uncompressed-mb") -> NpzArrays:
    """The arrays of an npz, by name (``arr_0.npy`` -> ``arr_0``), within `limits`.

    Raises InputTooLarge when the declared or actual sizes pass the byte cap or ``arr_0`` (the
    MixedWM38 maps) holds too many or too large maps; UnsupportedMediaError for object arrays
    when not `allow_pickle`; InputError for a damaged file.
    """
    cap = limits.max_uncompressed_bytes
    try:
        with zipfile.ZipFile(open_raw(source)) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            if len(infos) > MAX_MEMBERS:
                raise InputTooLarge(name, f"npz holds {len(infos)} arrays (at most {MAX_MEMBERS})")
            if sum(i.file_size for i in infos) > cap:  # declared sizes, before reading anything
                raise too_large(name, cap, flag)
            out = NpzArrays()
            used = 0
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with z.open(info) as member:
                    f = BoundedReader(member, cap - used, name, flag)
                    out[key] = _read_member(f, key, name, limits, allow_pickle, trust_pickle, flag)
                    used += f.count
            return out
    except InputError:
        raise
    except DECODE_ERRORS + (KeyError,) as e:
        raise InputError(name, f"is a damaged npz file ({_short(e)})") from None


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())[:120]
    return text or "unreadable"


def _read_member(f: BoundedReader, key: str, name: str, limits: InputLimits, allow_pickle: bool,
                 trust_pickle: bool, flag: str) -> Any:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise InputError(name, f"array {key} uses .npy format version {version}, expected 1.0 or 2.0")
    n = math.prod(shape)
    if key == "arr_0" and len(shape) == 3:  # MixedWM38 maps (N, H, W): limits from the header
        _check_stack(name, shape, limits)
    if dtype.hasobject:
        if not allow_pickle:
            raise UnsupportedMediaError(name, PICKLED_NPZ_HINT)
        from adrcs.data.safe_pickle import PickleRefused, strict_load, trusted_load

        class _Once:  # the member stream, opened once (no retry needed for numpy's own pickles)
            def __enter__(self):
                return f

            def __exit__(self, *exc):
                return False

        try:
            arr = trusted_load(_Once) if trust_pickle else strict_load(_Once, limits)
        except InputError:
            raise
        except PickleRefused as e:
            raise InputError(name, f"array {key}: {e.message()}") from None
        except Exception as e:  # a damaged pickle inside the .npy
            raise InputError(name, f"array {key} is damaged ({_short(e)})") from None
        if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
            raise InputError(name, f"array {key} does not match its header")
        return arr
    nbytes = n * dtype.itemsize
    if nbytes > f.cap - f.count:
        raise too_large(name, limits.max_uncompressed_bytes, flag, what=f"array {key} {tuple(shape)}")
    buf = np.empty(nbytes, np.uint8)
    view, pos = memoryview(buf), 0
    while pos < nbytes:
        got = f.readinto(view[pos:])
        if not got:
            raise InputError(name, f"array {key} is truncated")
        pos += got
    arr = buf.view(dtype) if dtype.itemsize else np.zeros(n, dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


def _check_stack(name: str, shape: tuple, limits: InputLimits) -> None:
    n, h, w = shape
    if n > limits.max_maps:
        raise InputTooLarge(name, f"holds {n} maps, more than the limit of {limits.max_maps}")
    if max(h, w) > limits.max_map_side:
        raise InputTooLarge(name, f"maps of {h}x{w} are larger than the limit of {limits.max_map_side} per side")
