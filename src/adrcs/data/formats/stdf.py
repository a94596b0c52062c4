"""STDF V4 wafer-sort files (Standard Test Data Format, ``.stdf`` / ``.std``, gzip / bz2 handled by the loader):
one map per wafer.

What is read (every other record, the parametric PTR / MPR / FTR above all, is stepped over by its header
without being decoded: see ``adrcs.data.fab.stdf_records``):

* FAR: byte order (REC_LEN as written: CPU_TYPE 2 little endian, 1 big endian); STDF_VER must be 4.
* MIR: lot (``LOT_ID``) and the meta ``part_type`` (PART_TYP), ``test_program`` (JOB_NAM), ``program_rev``
  (JOB_REV), ``sublot`` (SBLOT_ID), ``tool`` (NODE_NAM), ``tester`` (TSTR_TYP), ``start_time`` (START_T).
* WIR .. WRR: one block per wafer and test head (HEAD_NUM); ``WAFER_ID`` (the WIR's, else the WRR's) names
  it, ``start_time`` / ``finish_time`` from their START_T / FINISH_T (ISO 8601 UTC). Blocks with the same
  WAFER_ID (a wafer probed again later in the file) make one map. Without blocks: dies no WIR opened
  belong to a wafer that the next WRR of their head closes and names; without any WIR / WRR, one wafer per
  head. A wafer without an id gets its number in the file (``"1"``, ``"2"``...).
* PIR / PRR: a part is opened by a PIR and closed by the PRR of the same HEAD_NUM / SITE_NUM, so several
  heads and sites may interleave. A die is at the PRR's X_COORD / Y_COORD and goes to the wafer open on its
  head (the only open wafer when its head has none). PRRs without coordinates (-32768) are not placed
  (``unplaced_count``); a wafer with no placed die is refused ("no die coordinates").
* Pass / fail: PART_FLG bit 3 (set: fail) unless bit 4 says that flag is invalid; then the HBR pass flag
  (HBIN_PF ``P`` / ``F``) of the die's hard bin, else the SBR flag (SBIN_PF) of its soft bin, else hard bin
  1 passes and every other bin fails (``pass_fail_from_bins`` counts these dies). With
  ``FabOptions.good_bins`` (``--good-bins``) the hard bin alone decides. ``bins`` are the hard bins.
* Retests: a die (x, y) tested more than once in a wafer counts by its last result, or its first with
  ``FabOptions.retest == "first"`` (``--retest``); ``retest_count`` is the number of results set aside.
* WCR: POS_X ``L`` (x grows to the left) -> ``flip_x``, POS_Y ``U`` (y grows upward) -> ``flip_y``;
  without a WCR, x grows to the right and y downward. WF_FLAT is kept as ``notch`` (UP / DOWN / LEFT /
  RIGHT), with wafer_size, die_width, die_height, wf_units, center_x, center_y.

STDF lists tested dies only, so no die is ever "untested" (status 3): positions without a PRR are off the
map. Fields a record leaves out (a shorter REC_LEN, as the standard allows) count as missing. Damaged files are
refused with one line naming the record: ``record N (PRR) at byte B: problem`` (N counts from 1 with the FAR, B
is the record header's position in the decompressed data): a record running past the end of the file, a PRR
without its PIR, an STDF V3 file, a wafer without coordinates. Memory: one chunk of the file (32 MiB) at a time
and 24 bytes per PRR; at most ``limits.max_maps`` wafers.
"""
from __future__ import annotations

import struct
from datetime import datetime, timezone
from typing import Any, BinaryIO

import numpy as np

from adrcs.data.fab.options import FabOptions
from adrcs.data.fab.stdf_records import CODES, Batch, RecordStream, decode_prrs, record_name
from adrcs.data.fab.wafer_grid import FAIL, PASS, FabWafer
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge

NAME = "stdf"
FAB = True

PIR, PRR, WIR, WRR = CODES["PIR"], CODES["PRR"], CODES["WIR"], CODES["WRR"]
WANTED = {CODES[n] for n in ("MIR", "WIR", "WRR", "WCR", "PIR", "PRR", "HBR", "SBR")}
MISSING = -32768  # X_COORD / Y_COORD of a part without coordinates
_NOTCH = {"U": "UP", "D": "DOWN", "L": "LEFT", "R": "RIGHT"}
_UNITS = {1: "in", 2: "cm", 3: "mm", 4: "mil"}
_MIR = ("U4", "U4", "U1", "C1", "C1", "C1", "U2", "C1") + ("Cn",) * 11
_MIR_KEYS = ("setup_t", "start_t", "stat_num", "mode_cod", "rtst_cod", "prot_cod", "burn_tim", "cmod_cod", "lot",
             "part_type", "tool", "tester", "test_program", "program_rev", "sublot", "operator", "exec_typ",
             "exec_ver", "test_cod")
_WRR = ("U1", "U1", "U4", "U4", "U4", "U4", "U4", "U4", "Cn", "Cn", "Cn", "Cn")
_WCR = ("R4", "R4", "R4", "U1", "C1", "I2", "I2", "C1", "C1")
_BIN = ("U1", "U1", "U2", "U4", "C1")  # HBR / SBR up to the pass flag
_SIZES = {"U1": 1, "U2": 2, "U4": 4, "I2": 2, "R4": 4, "C1": 1}


def sniff_bytes(head: bytes) -> bool:
    """An STDF file: a FAR first (REC_LEN 2 in either byte order, REC_TYP 0, REC_SUB 10, CPU_TYPE 0-2, a
    STDF_VER); versions other than 4 are taken too, so that the reader can say which version it is."""
    return (len(head) >= 6 and head[:2] in (b"\x02\x00", b"\x00\x02") and head[2] == 0 and head[3] == 10
            and head[4] <= 2 and 1 <= head[5] <= 9)


def _fields(body: bytes, types: tuple[str, ...], e: str) -> list[Any]:
    """Fields of a record body in order; None for those the record leaves out (a shorter REC_LEN)."""
    out: list[Any] = []
    i, n = 0, len(body)
    for t in types:
        if t == "Cn":
            if i >= n:
                out.append(None)
                continue
            k = body[i]
            out.append(body[i + 1: i + 1 + k].decode("latin-1").strip(" \x00") or None)
            i += 1 + k
            continue
        size = _SIZES[t]
        if i + size > n:
            out.append(None)
            i = n
            continue
        if t == "C1":
            out.append(body[i: i + 1].decode("latin-1"))
        else:
            out.append(struct.unpack_from(e + {"U1": "B", "U2": "H", "U4": "I", "I2": "h", "R4": "f"}[t], body, i)[0])
        i += size
    return out


def _iso(t: int | None) -> str | None:
    """STDF time (U4 seconds since 1970, UTC) as ISO 8601; None for 0 / missing."""
    if not t:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Block:
    """One WIR .. WRR block (or dies no WIR opened) as read: its PRRs as arrays of `stdf_records.PRR_COLUMNS`
    (24 bytes a die), and the positions of those in the current chunk still to be decoded."""

    def __init__(self, head: int, where: str, wir: bool = False, wafer_id: str | None = None,
                 start: int | None = None) -> None:
        self.head, self.where, self.wir, self.wafer_id, self.start = head, where, wir, wafer_id, start
        self.rows: list[np.ndarray] = []
        self.pending: list[int] = []
        self.wrr: list[Any] | None = None


class _Reader:
    """The record-by-record state of one file: master info, bins, open parts and wafer blocks."""

    def __init__(self, name: str, options: FabOptions, limits: InputLimits, big: bool) -> None:
        self.name, self.options, self.limits = name, options, limits
        self.e = ">" if big else "<"
        self.hi, self.lo = (0, 1) if big else (1, 0)
        self.big = big
        self.mir: dict[str, Any] = {}
        self.wcr: list[Any] | None = None
        self.pf: dict[str, dict[int, str]] = {"HBR": {}, "SBR": {}, "HBR*": {}, "SBR*": {}}  # * = per site
        self.parts: set[int] = set()       # HEAD_NUM << 8 | SITE_NUM of open parts
        self.open: dict[int, _Block] = {}  # head -> its open block
        self.blocks: list[_Block] = []

    def where(self, index: int, offset: int, code: int) -> str:
        return f"record {index} ({record_name(code)}) at byte {offset}"

    def error(self, index: int, offset: int, code: int, problem: str) -> InputError:
        return InputError(self.name, f"{self.where(index, offset, code)}: {problem}")

    def new_block(self, head: int, index: int, offset: int, code: int, **kw: Any) -> _Block:
        if len(self.blocks) >= self.limits.max_maps:
            raise InputTooLarge(self.name, f"{self.where(index, offset, code)}: more than the limit of "
                                           f"{self.limits.max_maps} wafers")
        b = _Block(head, self.where(index, offset, code), **kw)
        self.blocks.append(b)
        return b

    def batch(self, b: Batch) -> None:
        """The wanted records of one chunk, in file order. PIR / PRR (most of them) are handled inline: a PRR is
        matched to its part and wafer here, its fields decoded with numpy for the whole chunk at the end."""
        buf, hi, lo, parts, open_ = b.buf, self.hi, self.lo, self.parts, self.open
        touched: list[_Block] = []
        for p, code, idx in zip(b.pos, b.codes, b.index):
            n = (buf[p + hi] << 8) | buf[p + lo]
            if code == PRR or code == PIR:
                if n < 2:
                    raise self.error(idx, b.offset + p, code, f"REC_LEN {n} is too short for HEAD_NUM and SITE_NUM")
                head = buf[p + 4]
                key = (head << 8) | buf[p + 5]
                if code == PIR:
                    parts.add(key)
                    continue
                if key not in parts:
                    raise self.error(idx, b.offset + p, code, f"a PRR for head {head} site {buf[p + 5]} without a "
                                                              "PIR before it")
                parts.discard(key)
                blk = open_.get(head)
                if blk is None:
                    blk = self.no_wafer(head, idx, b.offset + p, code)
                if not blk.pending:
                    touched.append(blk)
                blk.pending.append(p)
            else:
                self.control(code, buf[p + 4: p + 4 + n], idx, b.offset + p)
        for blk in touched:
            blk.rows.append(decode_prrs(buf, blk.pending, self.big))
            blk.pending.clear()

    def no_wafer(self, head: int, index: int, offset: int, code: int) -> _Block:
        """The block for a die whose head has no open wafer: the only open one if a WIR opened it, else a new
        one for the head (closed by the head's next WRR, WIR or the end of the file)."""
        only = next(iter(self.open.values())) if len(self.open) == 1 else None
        if only is not None and only.wir:
            return only
        blk = self.open[head] = self.new_block(head, index, offset, code)
        return blk

    def control(self, code: int, body: bytes, index: int, offset: int) -> None:
        """MIR, WIR, WRR, WCR, HBR, SBR."""
        e = self.e
        if code == WIR:
            head, _grp, start, wafer_id = _fields(body, ("U1", "U1", "U4", "Cn"), e)
            if head is None:
                raise InputError(self.name, f"{self.where(index, offset, code)}: REC_LEN {len(body)} is too short "
                                            "for HEAD_NUM")
            # a block still open on the head (no WRR) ends here
            self.open[head] = self.new_block(head, index, offset, code, wir=True, wafer_id=wafer_id, start=start)
        elif code == WRR:
            f = _fields(body, _WRR, e)
            head = f[0] if f[0] is not None else 1
            blk = self.open.pop(head, None)
            if blk is None:  # a WRR without a WIR or dies: a wafer without parts, skipped
                blk = self.new_block(head, index, offset, code)
            blk.wrr = f
            blk.wafer_id = blk.wafer_id or f[8]
        elif code == CODES["MIR"]:
            self.mir = dict(zip(_MIR_KEYS, _fields(body, _MIR, e)))
        elif code == CODES["WCR"]:
            self.wcr = _fields(body, _WCR, e)
        else:  # HBR / SBR: HEAD_NUM 255 is the summary over all heads
            head, _site, num, _cnt, pf = _fields(body, _BIN, e)
            kind = record_name(code) + ("" if head == 255 else "*")
            if num is not None and pf in ("P", "F", "p", "f"):
                self.pf[kind].setdefault(num, pf.upper())

    # ---------------------------------------------------------------- the wafers

    def wafers(self) -> list[FabWafer]:
        """One `FabWafer` per wafer id (blocks with the same WAFER_ID joined), in first-seen order."""
        groups: dict[str, list[_Block]] = {}
        for i, b in enumerate(self.blocks):
            groups.setdefault(b.wafer_id or f"\x00{i}", []).append(b)
        out: list[FabWafer] = []
        for key, blocks in groups.items():
            if not any(len(r) for b in blocks for r in b.rows):
                continue  # a WIR / WRR pair without parts (a wafer loaded and not tested)
            out.append(self.wafer(key if not key.startswith("\x00") else str(len(out) + 1), blocks))
        if not out:
            raise InputError(self.name, "holds no part results (PRR records): not wafer-sort data")
        return out

    def status(self, flg: np.ndarray, hbin: np.ndarray, sbin: np.ndarray) -> tuple[np.ndarray, int]:
        """Per die 1 pass / 2 fail, and how many dies had their pass/fail decided by bins (flag invalid)."""
        if self.options.good_bins is not None:
            return np.where(np.isin(hbin, np.asarray(self.options.good_bins)), PASS, FAIL).astype(np.uint8), 0
        st = np.where(flg & 0x08, FAIL, PASS).astype(np.uint8)
        invalid = (flg & 0x10) != 0
        if invalid.any():
            flag = self.pf_table("HBR")[hbin[invalid]]          # 0 unknown, PASS, FAIL
            soft = self.pf_table("SBR")[sbin[invalid]]
            flag = np.where(flag == 0, soft, flag)
            st[invalid] = np.where(flag == 0, np.where(hbin[invalid] == 1, PASS, FAIL), flag)
        return st, int(invalid.sum())

    def pf_table(self, kind: str) -> np.ndarray:
        """Per bin number (0..65535) its pass flag from the HBR / SBR records: PASS, FAIL or 0 (none);
        the summary records (HEAD_NUM 255) first, then the per-head ones."""
        table = np.zeros(1 << 16, np.uint8)
        for source in (self.pf[kind + "*"], self.pf[kind]):  # the summary's flags written last win
            for num, pf in source.items():
                table[num] = PASS if pf == "P" else FAIL
        return table

    def wafer(self, wafer_id: str, blocks: list[_Block]) -> FabWafer:
        d = np.concatenate([r for b in blocks for r in b.rows]).astype(np.int64)  # columns: PRR_COLUMNS
        placed = (d[:, 4] != MISSING) & (d[:, 5] != MISSING)
        if not placed.any():
            raise InputError(self.name, f"{blocks[0].where}: wafer {wafer_id!r} has no die coordinates (all its "
                                        f"{len(d)} PRRs have X_COORD / Y_COORD -32768)")
        dp = d[placed]
        key = (dp[:, 4] + 32768) * 65536 + (dp[:, 5] + 32768)
        if self.options.retest == "first":
            _, keep = np.unique(key, return_index=True)
        else:
            _, rev = np.unique(key[::-1], return_index=True)
            keep = len(key) - 1 - rev
        dp = dp[np.sort(keep)]
        status, by_bins = self.status(dp[:, 1], dp[:, 2], dp[:, 3])
        first, last = blocks[0], blocks[-1]
        wrr = last.wrr or [None] * len(_WRR)
        wcr = self.wcr or [None] * len(_WCR)
        mir = self.mir
        meta = {
            "part_type": mir.get("part_type"), "test_program": mir.get("test_program"),
            "program_rev": mir.get("program_rev"), "sublot": mir.get("sublot"), "tool": mir.get("tool"),
            "tester": mir.get("tester"), "start_time": _iso(first.start) or _iso(mir.get("start_t")),
            "finish_time": _iso(wrr[2]), "head_num": first.head, "site_count": int(len(np.unique(d[:, 0]))),
            "prr_count": int(len(d)), "retest_count": int(placed.sum() - len(dp)),
            "unplaced_count": int((~placed).sum()), "pass_fail_from_bins": by_bins, "bin_kind": "hard",
            "blocks": len(blocks), "fab_wafer_id": wrr[9], "frame_id": wrr[10], "mask_id": wrr[11],
            "notch": _NOTCH.get((wcr[4] or " ").upper()), "wafer_size": _positive(wcr[0]),
            "die_height": _positive(wcr[1]), "die_width": _positive(wcr[2]), "wf_units": _UNITS.get(wcr[3]),
            "center_x": None if wcr[5] in (None, MISSING) else wcr[5],
            "center_y": None if wcr[6] in (None, MISSING) else wcr[6],
        }
        return FabWafer(lot=mir.get("lot") or "", wafer=wafer_id, x=dp[:, 4], y=dp[:, 5], status=status,
                        bins=dp[:, 2], flip_x=(wcr[7] or "").upper() == "L", flip_y=(wcr[8] or "").upper() == "U",
                        meta=meta)


def _positive(v: float | None) -> float | None:
    return float(v) if v is not None and np.isfinite(v) and v > 0 else None


def _far(stream: BinaryIO, name: str) -> bool:
    """Checks the FAR (the first 6 bytes); True for big-endian files."""
    head = stream.read(6)
    if len(head) < 6:
        raise InputError(name, f"record 1 (FAR) at byte 0: the file ends inside the FAR ({len(head)} of 6 bytes; "
                               "truncated)")
    if head[2:4] != b"\x00\x0a" or head[:2] not in (b"\x02\x00", b"\x00\x02"):
        raise InputError(name, "record 1 at byte 0: not a FAR (File Attributes Record: REC_LEN 2, REC_TYP 0, "
                               "REC_SUB 10), which every STDF file starts with")
    if head[5] != 4:
        raise InputError(name, f"record 1 (FAR) at byte 0: STDF_VER is {head[5]}: this is an STDF V{head[5]} file; "
                               "only STDF V4 is read (convert it to V4 first)")
    return head[:2] == b"\x00\x02"


def read_stream(stream: BinaryIO, name: str, options: FabOptions, limits: InputLimits) -> list[FabWafer]:
    """One `FabWafer` per wafer of an STDF V4 file (see the module text)."""
    big = _far(stream, name)
    records = RecordStream(stream, name, big, offset=6, records=1)
    reader = _Reader(name, options, limits, big)
    for batch in records.batches(WANTED):
        reader.batch(batch)
    return reader.wafers()
