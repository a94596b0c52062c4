"""Crafted pickles cannot run code, touch files or allocate without bound; real wafer-map pickles still load.

Each attack is first shown to work with plain ``pickle`` where that is harmless (a marker file, a
scratch file truncated), then the loader must refuse it: one line naming the file, the refused
name, the ``--trust-pickle`` hint, and no side effect.
"""
from __future__ import annotations

import glob
import io
import os
import pickle
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.frames import LSWMD_ROWS, make_lswmd_frame, make_mixed_frame, make_wm811k_frame

from adrcs.data.limits import InputLimits
from adrcs.data.loader import load, load_bytes
from adrcs.data.safe_pickle import ALLOWED
from adrcs.errors import InputError, InputTooLarge, UnsupportedMediaError
from adrcs.samples import sample_path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
SHARED_PICKLES = sorted(glob.glob(str(SHARED / "wm811k" / "*.pkl.xz")) + glob.glob(str(SHARED / "mixedwm38" / "*")))


# ---------------------------------------------------------------- building pickles by hand


def _u(text: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE of `text`."""
    raw = text.encode()
    return (b"\x8c" + bytes([len(raw)]) if len(raw) < 256 else b"X" + struct.pack("<I", len(raw))) + raw


def stack_global(module: str, name: str) -> bytes:
    """Protocol 4: push module.name with STACK_GLOBAL (which follows dotted names)."""
    return _u(module) + _u(name) + b"\x93"


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args) with MARK ... TUPLE REDUCE."""
    return func + b"(" + b"".join(args) + b"tR"


def proto4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _eval_via_dotted_name(marker: Path) -> bytes:
    """The reported exploit: STACK_GLOBAL numpy._core.numeric / _frombuffer.__builtins__.get -> eval."""
    get = stack_global("numpy._core.numeric", "_frombuffer.__builtins__.get")
    ev = call(get, _u("eval"))
    return proto4(call(ev, _u(f"__import__('pathlib').Path({str(marker)!r}).write_text('pwned')")))


def _refused(path: Path, *needles: str) -> InputError:
    with pytest.raises(InputError) as err:
        load(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    assert "--trust-pickle" in msg, msg
    for n in needles:
        assert n in msg, msg
    for leak in ("Traceback", "UnpicklingError", "PickleRefused", "TypeError", "Exception"):
        assert leak not in msg, msg
    return err.value


# ---------------------------------------------------------------- attacks


def test_dotted_stack_global_to_eval_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = _eval_via_dotted_name(marker)
    pickle.loads(evil)  # the attack is real: plain unpickling runs it
    assert marker.read_text() == "pwned"
    marker.unlink()
    path = tmp_path / "evil.pkl"
    path.write_bytes(evil)
    _refused(path, "refuses to unpickle numpy._core.numeric._frombuffer.__builtins__.get", "not a wafer-map data class")
    assert not marker.exists()


DOTTED = [
    ("numpy._core.numeric", "_frombuffer.__builtins__.get"),
    ("numpy.core.numeric", "_frombuffer.__globals__.get"),
    ("numpy._core.multiarray", "_reconstruct.__self__"),
    ("pandas", "DataFrame.__init__.__globals__"),
    ("pandas.core.frame", "DataFrame.to_pickle"),
    ("numpy", "ndarray.tofile"),
    ("builtins", "slice.__class__"),
]


@pytest.mark.parametrize("module,name", DOTTED)
def test_every_dotted_name_is_refused(tmp_path, module, name):
    path = tmp_path / "dotted.pkl"
    path.write_bytes(proto4(stack_global(module, name) + b"0N"))
    _refused(path, f"{module}.{name}")


NOT_ALLOWED = [
    ("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("subprocess", "check_call"),
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"),
    ("builtins", "open"), ("builtins", "bytearray"), ("numpy", "memmap"), ("numpy", "load"), ("numpy", "fromfile"),
    ("numpy", "frompyfunc"), ("numpy", "uint8"), ("pandas", "read_pickle"), ("pandas", "read_csv"),
    ("pandas.io.pickle", "read_pickle"), ("copyreg", "_reconstructor"), ("importlib", "import_module"),
    ("shutil", "rmtree"), ("numpy.testing", "assert_"), ("pandas.core.indexes.base", "ensure_index"),
]


@pytest.mark.parametrize("opcode", ["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize("module,name", NOT_ALLOWED)
def test_names_off_the_list_are_refused(tmp_path, module, name, opcode):
    assert (module, name) not in ALLOWED
    ref = f"c{module}\n{name}\n".encode() if opcode == "GLOBAL" else stack_global(module, name)
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02" + ref + b"0N." if opcode == "GLOBAL" else proto4(ref + b"0N"))
    _refused(path, f"refuses to unpickle {module}.{name}")


def test_os_system_via_global_reduce(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "system.pkl"
    path.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())  # protocol 0, GLOBAL + REDUCE
    _refused(path, "os.system")
    assert not marker.exists()


def test_subprocess_and_getattr(tmp_path):
    marker = tmp_path / "ran"
    sub = tmp_path / "sub.pkl"
    sub.write_bytes(pickle.dumps(_Reduce(subprocess.check_call, (["touch", str(marker)],)), protocol=4))
    _refused(sub, "subprocess.check_call")
    ga = tmp_path / "getattr.pkl"
    ga.write_bytes(pickle.dumps(_Reduce(getattr, ("x", "upper"))))
    _refused(ga, "builtins.getattr")
    assert not marker.exists()


def test_memmap_cannot_truncate_files(tmp_path):
    scratch = tmp_path / "scratch.bin"
    scratch.write_bytes(b"x" * 4096)
    evil = pickle.dumps(_Reduce(np.memmap, (str(scratch), np.uint8, "w+", 0, (1,))), protocol=2)
    pickle.loads(evil)  # the attack is real: plain unpickling truncates the file
    assert scratch.stat().st_size == 1
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"precious" * 512)
    path = tmp_path / "memmap.pkl"
    path.write_bytes(pickle.dumps(_Reduce(np.memmap, (str(victim), np.uint8, "w+", 0, (1,))), protocol=2))
    _refused(path, "numpy.memmap")
    assert victim.read_bytes() == b"precious" * 512


def test_huge_shapes_are_refused_before_allocating(tmp_path):
    rec = np._core.multiarray._reconstruct
    cases = {
        "reconstruct.pkl": _Reduce(rec, (np.ndarray, (10 ** 12,), b"b")),
        "ndarray.pkl": _Reduce(np.ndarray, ((10 ** 6, 10 ** 6),)),
        "frombuffer.pkl": _Reduce(np._core.numeric._frombuffer, (b"ab", np.dtype("u1"), (10 ** 12,), "C")),
        "bytes.pkl": _Reduce(bytes, (10 ** 12,)),
        "slice.pkl": _Reduce(slice, (0, 10 ** 15)),
        "range_index.pkl": pd.DataFrame(index=pd.RangeIndex(10 ** 12)),
        "subarray_dtype.pkl": _Reduce(np.dtype, (("u1", (10 ** 9,)),)),
        "frame_of_subarray.pkl": _Reduce(pd.DataFrame, ([[1]], None, None, np.dtype(("u1", (10 ** 9,))))),
    }
    for name, obj in cases.items():
        path = tmp_path / name
        path.write_bytes(pickle.dumps(obj, protocol=4))
        _refused(path)


def _array_state_pickle(shape: tuple, dtype: str, raw) -> bytes:
    """An ndarray pickle whose BUILD state claims `shape` but carries `raw` (numpy crashes on some)."""
    return pickle.dumps(_State(shape, dtype, raw), protocol=2)


class _State:
    """Pickles as ``_reconstruct(ndarray, (0,), 'b')`` + BUILD(state) with the given shape and data."""

    def __init__(self, shape, dtype, raw) -> None:
        self.state = (1, shape, np.dtype(dtype), False, raw)

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), self.state)


@pytest.mark.parametrize("shape,dtype,raw", [
    ((10 ** 8,), "O", [1]),           # numpy segfaults on this one
    ((10 ** 12,), "u1", b"ab"),
    ((3,), "u1", b"ab"),
    ((2,), "O", "not a list"),
])
def test_array_states_that_do_not_match_are_refused(tmp_path, shape, dtype, raw):
    path = tmp_path / "state.pkl"
    path.write_bytes(_array_state_pickle(shape, dtype, raw))
    _refused(path)


def test_codecs_and_bytes_only_plain_uses(tmp_path):
    import _codecs

    path = tmp_path / "codec.pkl"
    path.write_bytes(pickle.dumps(_Reduce(_codecs.encode, ("x" * 10, "zlib")), protocol=2))
    _refused(path, "_codecs.encode")


def test_persistent_id_and_damaged_streams_are_one_line(tmp_path):
    cases = {
        "persid.pkl": b"\x80\x02P1\n.",
        "frame.pkl": b"\x80\x04\x95" + struct.pack("<Q", 2 ** 40) + b"N.",
        "binbytes8.pkl": b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 40) + b"ab",
        "truncated.pkl": pickle.dumps(make_wm811k_frame(np.random.default_rng(0), per_class=1))[:300],
    }
    for name, raw in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(InputError) as err:
            load(path)
        msg = str(err.value)
        assert "\n" not in msg and name in msg and "Error" not in msg, msg


def test_uploads_refuse_pickles_with_415_hint():
    good = pickle.dumps(make_wm811k_frame(np.random.default_rng(0), per_class=1))
    limits = InputLimits.for_service(1 << 20)
    for content in (good, _eval_via_dotted_name(Path("/nonexistent/marker"))):
        with pytest.raises(UnsupportedMediaError) as err:
            load_bytes(content, "lot.pkl", limits=limits)
        msg = str(err.value)
        assert msg.startswith("lot.pkl: pickle uploads are refused") and "adrcs convert" in msg
    buf = io.BytesIO()
    np.savez(buf, arr_0=np.array([np.zeros((2, 2), np.uint8), np.zeros((3, 3), np.uint8)], dtype=object))
    with pytest.raises(UnsupportedMediaError, match="m.npz: holds pickled object arrays"):
        load_bytes(buf.getvalue(), "m.npz", limits=limits)


def test_object_npz_goes_through_the_strict_unpickler(tmp_path):
    maps = np.empty(2, dtype=object)
    maps[0], maps[1] = np.zeros((3, 4), np.uint8), np.ones((5, 5), np.uint8)
    ok = tmp_path / "ragged.npz"
    np.savez(ok, arr_0=maps)
    assert [m.shape for m in load(ok).maps] == [(3, 4), (5, 5)]
    evil = tmp_path / "evil.npz"
    np.savez(evil, arr_0=np.array([_Reduce(getattr, ("x", "upper"))], dtype=object))
    _refused(evil, "builtins.getattr")


# ---------------------------------------------------------------- real pickles load strictly


def _same(a, b) -> None:
    assert len(a) == len(b) and a.class_names == b.class_names and np.array_equal(a.labels, b.labels)
    assert all(np.array_equal(x, y) for x, y in zip(a.maps, b.maps))


@pytest.mark.parametrize("name", ["wm811k", "wm811k_val", "mixedwm38", "mixedwm38_val"])
def test_shipped_samples_load_strictly(name):
    _same(load(sample_path(name)), load(sample_path(name), trust_pickle=True))


@pytest.mark.skipif(not SHARED_PICKLES, reason="../shared data not present")
@pytest.mark.parametrize("path", SHARED_PICKLES, ids=lambda p: "/".join(Path(p).parts[-2:]))
def test_shared_splits_load_strictly(path):
    ds = load(path)
    assert len(ds) > 0 and ds.notes["unlabeled"] < len(ds)


def _without_frames(obj, protocol: int) -> bytes:
    """A pickle without FRAME opcodes, so names can be rewritten in place."""
    buf = io.BytesIO()
    p = pickle._Pickler(buf, protocol=protocol)
    p.framer.start_framing = lambda: None  # frames are optional for readers
    p.dump(obj)
    return buf.getvalue()


def _numpy1_names(raw: bytes) -> bytes:
    """Rewrite numpy 2.x module names (numpy._core.*) as numpy 1.x wrote them (numpy.core.*)."""
    for mod in (b"numpy._core.multiarray", b"numpy._core.numeric"):
        old = mod.replace(b"._core", b".core")
        raw = raw.replace(b"\x8c" + bytes([len(mod)]) + mod, b"\x8c" + bytes([len(old)]) + old)  # protocol 4
        raw = raw.replace(b"c" + mod + b"\n", b"c" + old + b"\n")  # protocol 2 GLOBAL
    return raw


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("maker", ["wm811k", "mixed", "lswmd"])
def test_numpy_1x_and_2x_names_load_strictly(tmp_path, protocol, maker, rng):
    df = {"wm811k": lambda: make_wm811k_frame(rng, per_class=2), "mixed": lambda: make_mixed_frame(rng),
          "lswmd": lambda: make_lswmd_frame(rng)}[maker]()
    v2 = _without_frames(df, protocol)
    v1 = _numpy1_names(v2)
    assert b"numpy._core" in v2 and b"numpy._core" not in v1 and b"numpy.core.multiarray" in v1
    sets = []
    for tag, raw in (("v1", v1), ("v2", v2)):
        path = tmp_path / f"{tag}.pkl"
        path.write_bytes(raw)
        sets.append(load(path))
    _same(*sets)
    _same(sets[0], load(tmp_path / "v1.pkl", trust_pickle=True))


def test_lswmd_legacy_pandas_names_load_strictly(tmp_path, rng):
    df = make_lswmd_frame(rng)
    df.index = pd.Index(np.arange(len(df)) * 3)
    raw = pickle.dumps(df, protocol=2).replace(b"pandas.core.indexes.", b"pandas.indexes.")
    path = tmp_path / "LSWMD.pkl"
    path.write_bytes(raw)
    ds = load(path)
    assert ds.notes["format"] == "lswmd"
    assert ds.labels.tolist() == [ds.class_names.index(e) if e else -1 for _, _, e in LSWMD_ROWS]
    _same(ds, load(path, trust_pickle=True))
