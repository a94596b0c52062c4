"""STDF V4 wafer-sort files written from die-code maps (0 no die, 1 pass, 2 fail), for the STDF reader's tests,
the shipped sample and the format benchmark.

`write_stdf` writes FAR, ATR, MIR, WCR, then per wafer WIR, per die PIR, parametric records (PTR / MPR / FTR)
and PRR, then WRR; HBR / SBR summaries (HEAD_NUM 255), PCR and MRR at the end. It returns one plan per wafer
(what the reader should give back): ``expected`` (the source map with its all-empty border rows and columns
trimmed: STDF has no map extent), ``expected_first`` (the map read with ``--retest first``), ``bins`` (hard
bin per die, -1 off the wafer), ``wafer``, ``head``, ``fails``, ``retests``, ``unplaced``, ``dies``.

Die (row r, column c) of a map is written at x = x0 + c (x0 + W-1-c when POS_X is ``L``) and y = y0 + r
(y0 + H-1-r when POS_Y is ``U``), so every orientation reads back as the map drawn.
"""
from __future__ import annotations

import bz2
import gzip as gzip_module
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

START_T = 1_700_000_000  # MIR START_T; wafer k starts 600 s later per wafer


def _cn(text: str) -> bytes:
    b = text.encode("latin-1")[:255]
    return bytes([len(b)]) + b


class Records:
    """Encodes records in one byte order (``"<"`` little endian, ``">"`` big endian)."""

    def __init__(self, e: str) -> None:
        self.e = e

    def rec(self, typ: int, sub: int, body: bytes) -> bytes:
        return struct.pack(self.e + "HBB", len(body), typ, sub) + body

    def far(self, version: int = 4) -> bytes:
        return self.rec(0, 10, bytes([1 if self.e == ">" else 2, version]))

    def atr(self, text: str) -> bytes:
        return self.rec(0, 20, struct.pack(self.e + "I", START_T) + _cn(text))

    def mir(self, lot: str, part: str, job: str, node: str, tester: str, sublot: str = "") -> bytes:
        body = struct.pack(self.e + "IIBcccHc", START_T - 60, START_T, 1, b"P", b" ", b" ", 65535, b" ")
        return self.rec(1, 10, body + b"".join(_cn(s) for s in (lot, part, node, tester, job, "REV7", sublot)))

    def wcr(self, pos_x: str, pos_y: str, flat: str = "D") -> bytes:
        body = struct.pack(self.e + "fffBchhcc", 300.0, 5.5, 4.25, 3, flat.encode(), 10, 12, pos_x.encode(),
                           pos_y.encode())
        return self.rec(2, 30, body)

    def wir(self, head: int, wafer_id: str, start: int) -> bytes:
        return self.rec(2, 10, struct.pack(self.e + "BBI", head, 255, start) + _cn(wafer_id))

    def wrr(self, head: int, wafer_id: str, finish: int, parts: int, good: int) -> bytes:
        body = struct.pack(self.e + "BBIIIIII", head, 255, finish, parts, 0, 0, good, 0)
        return self.rec(2, 20, body + _cn(wafer_id) + _cn(f"FAB-{wafer_id}") + _cn("FR1") + _cn("MASK-A"))

    def pir(self, head: int, site: int) -> bytes:
        return self.rec(5, 10, bytes([head, site]))

    def prr(self, head: int, site: int, flg: int, hbin: int, sbin: int, x: int, y: int, part_id: str = "") -> bytes:
        body = struct.pack(self.e + "BBBHHHhhI", head, site, flg, 100, hbin, sbin, x, y, 1500) + _cn(part_id)
        return self.rec(5, 20, body + _cn("") + b"\x00")

    def ptr(self, test: int, head: int, site: int, result: float, text: str = "") -> bytes:
        body = struct.pack(self.e + "IBBBBf", test, head, site, 0, 0, result)
        if text:  # the first PTR of a test carries its name, limits and units
            body += _cn(text) + _cn("") + struct.pack(self.e + "BbbbffB", 0, 0, 0, 0, -1.0, 1.0, 1) + b"V"
        return self.rec(15, 10, body)

    def mpr(self, test: int, head: int, site: int, results: Sequence[float]) -> bytes:
        body = struct.pack(self.e + "IBBBBHH", test, head, site, 0, 0, 0, len(results))
        return self.rec(15, 15, body + struct.pack(self.e + f"{len(results)}f", *results) + _cn(f"mpr{test}"))

    def ftr(self, test: int, head: int, site: int) -> bytes:
        body = struct.pack(self.e + "IBBBBIIIIiihHH", test, head, site, 0, 0xFF, 1000, 0, 1, 0, 0, 0, 0, 0, 0)
        return self.rec(15, 20, body)

    def dtr(self, text: str) -> bytes:
        return self.rec(50, 30, _cn(text))

    def gdr(self, values: np.ndarray) -> bytes:  # generic data: R4 fields (type code 7) with their values
        n = len(values)
        fields = np.zeros(n, np.dtype([("code", "u1"), ("v", self.e + "f4")]))
        fields["code"], fields["v"] = 7, values
        return self.rec(50, 10, struct.pack(self.e + "H", n) + fields.tobytes())

    def bin_record(self, sub: int, num: int, count: int, pf: str) -> bytes:
        return self.rec(1, sub, struct.pack(self.e + "BBHIc", 255, 0, num, count, pf.encode()) + _cn(f"BIN{num}"))

    def pcr(self, parts: int, good: int) -> bytes:
        return self.rec(1, 30, struct.pack(self.e + "BBIIIII", 255, 0, parts, 0, 0, good, 0))

    def mrr(self) -> bytes:
        return self.rec(1, 20, struct.pack(self.e + "Ic", START_T + 86400, b" ") + _cn("") + _cn(""))


def _ptr_blob(e: str, n_dies: int, n_ptr: int, head: int, sites: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n_dies, n_ptr) minimal PTRs (16 bytes each, random results) as a structured array."""
    dt = np.dtype([("len", e + "u2"), ("typ", "u1"), ("sub", "u1"), ("test", e + "u4"), ("head", "u1"),
                   ("site", "u1"), ("tflg", "u1"), ("pflg", "u1"), ("result", e + "f4")])
    a = np.zeros((n_dies, n_ptr), dt)
    a["len"], a["typ"], a["sub"], a["head"] = 12, 15, 10, head
    a["test"] = np.arange(1, n_ptr + 1)[None, :]
    a["site"] = sites[:, None]
    a["result"] = rng.standard_normal((n_dies, n_ptr)).astype(np.float32)
    return a


def plan_wafers(maps: Sequence[Any], *, retests: int = 0, unplaced: int = 0, pass_bins: Sequence[int] = (1,),
                fail_bins: Sequence[int] = (5, 6, 7, 8), wafer_ids: Sequence[str] | None = None,
                heads: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """Per map: the bins written and the results the reader should give (see the module text)."""
    rng = np.random.default_rng(seed)
    plans = []
    for k, item in enumerate(maps):
        wid, m = item if isinstance(item, tuple) else ((wafer_ids[k] if wafer_ids else f"{k + 1:02d}"), item)
        m = np.asarray(m, np.uint8)
        hbin = np.full(m.shape, -1, np.int64)
        hbin[m == 1] = rng.choice(np.asarray(pass_bins), size=int((m == 1).sum()))
        hbin[m == 2] = rng.choice(np.asarray(fail_bins), size=int((m == 2).sum()))
        r, c = np.nonzero(m)
        pick = rng.choice(len(r), size=min(retests, len(r)), replace=False)
        re_mask = np.zeros(m.shape, bool)
        re_mask[r[pick], c[pick]] = True
        first = np.where(re_mask, 3 - m, m).astype(np.uint8)  # the retested dies' first result is the other one
        first_bins = np.where(re_mask, np.where(first == 1, pass_bins[0], fail_bins[0]), hbin)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        trim = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        plans.append({"wafer": wid, "head": k % heads + 1, "map": m, "hbin": hbin, "first": first,
                      "first_bins": first_bins, "retest_mask": re_mask, "expected": m[trim],
                      "expected_first": first[trim], "bins": hbin[trim], "bins_first": first_bins[trim],
                      "fails": int((m == 2).sum()), "retests": int(re_mask.sum()), "unplaced": unplaced,
                      "dies": int((m > 0).sum())})
    return plans


def _flags(status: int, pf_source: str) -> int:
    """PART_FLG of a die: bit 3 fail; with pass/fail from bins, bit 4 set and bit 3 the wrong way round."""
    if pf_source == "flag":
        return 0x08 if status == 2 else 0
    return 0x10 | (0 if status == 2 else 0x08)


def write_stdf(path: str | Path, wafers: Sequence[Any], *, lot: str = "LOT1", byte_order: str = "<",
               retests: int = 0, heads: int = 1, sites: int = 1, ptr_per_die: int = 0,
               param_kinds: Sequence[str] = ("PTR",), wcr: tuple[str, str] | None = ("R", "D"),
               blocks: str = "both", pf_source: str = "flag", unplaced: int = 0, origin: tuple[int, int] = (0, 0),
               pass_bins: Sequence[int] = (1,), fail_bins: Sequence[int] = (5, 6, 7, 8),
               wafer_ids: Sequence[str] | None = None, extras: bool = False, gzip: bool = False,
               compress: str | None = None, level: int = 6, version: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """Write `wafers` (die-code maps, or (wafer_id, map) pairs) as one STDF V4 lot file; returns the plans.

    retests: dies per wafer tested twice (first the other result, then the map's, after the wafer's first pass).
    heads: wafers are spread over this many test heads, ``heads`` wafers probed at once (their parts interleaved).
    sites: dies tested together: PIRs of sites 1..n, parametric records test by test, PRRs in reverse order.
    ptr_per_die: parametric records per die, cycling through `param_kinds` (``PTR``, ``MPR``, ``FTR``); with only
        PTRs they are the minimal 16-byte kind with random results, built with numpy (fast enough for 400 MB).
    wcr: (POS_X, POS_Y) of the WCR, None for no WCR. blocks: ``both`` (WIR and WRR), ``wir``, ``wrr``, ``none``.
    pf_source: where pass / fail is: ``flag`` (PART_FLG bit 3), ``hbr`` (bit 4 set: the HBR flags), ``sbr``
        (bit 4, only SBR flags), ``bins`` (bit 4, no flags). unplaced: extra PRRs per wafer without coordinates.
    extras: also DTR, GDR and a 40 kB DTR between wafers. gzip / compress (``gzip`` | ``bz2``), level.
    """
    e = byte_order
    R = Records(e)
    rng = np.random.default_rng(seed + 1)
    plans = plan_wafers(wafers, retests=retests, unplaced=unplaced, pass_bins=pass_bins, fail_bins=fail_bins,
                        wafer_ids=wafer_ids, heads=heads, seed=seed)
    pos_x, pos_y = wcr or ("R", "D")
    fast_ptr = tuple(param_kinds) == ("PTR",) and ptr_per_die > 0
    kind = "gzip" if gzip else compress
    f = (gzip_module.GzipFile(path, "wb", compresslevel=level, mtime=0) if kind == "gzip" else  # reproducible
         bz2.open(path, "wb", compresslevel=level) if kind == "bz2" else open(path, "wb"))
    out: list[bytes] = [R.far(version), R.atr("stdf_writer"),
                        R.mir(lot, "PART-A", "PROG-1", "NODE-9", "TESTER-X", "SUB-1")]
    if wcr is not None:
        out.append(R.wcr(pos_x, pos_y))
    if extras:
        out += [R.dtr("lot start"), R.gdr(np.arange(5, dtype=np.float32))]
    counts: dict[int, int] = {}

    def die_events(k: int, p: dict[str, Any]) -> list[list[bytes]]:
        """The wafer's groups of `sites` dies (PIRs, parametric records, PRRs), retests last."""
        m, head = p["map"], p["head"]
        h, w = m.shape
        r, c = np.nonzero(m)
        xs = origin[0] + (c if pos_x != "L" else w - 1 - c)
        ys = origin[1] + (r if pos_y != "U" else h - 1 - r)
        todo = [(int(x), int(y), int(p["first"][i, j]), int(p["first_bins"][i, j])) for i, j, x, y
                in zip(r, c, xs, ys)]
        todo += [(int(x), int(y), int(m[i, j]), int(p["hbin"][i, j])) for i, j, x, y in zip(r, c, xs, ys)
                 if p["retest_mask"][i, j]]
        todo += [(-32768, -32768, 1, pass_bins[0])] * p["unplaced"]
        site_of = np.arange(len(todo)) % sites + 1
        blob = _ptr_blob(e, len(todo), ptr_per_die, head, site_of, rng) if fast_ptr else None
        groups = []
        for g in range(0, len(todo), sites):
            idx = list(range(g, min(g + sites, len(todo))))
            ev = [R.pir(head, int(site_of[i])) for i in idx]
            if fast_ptr:
                ev.append(blob[idx].T.tobytes())  # test by test, the sites of each test together
            else:
                for t in range(ptr_per_die):
                    kind = param_kinds[t % len(param_kinds)]
                    for i in idx:
                        s = int(site_of[i])
                        ev.append(R.ptr(t + 1, head, s, float(rng.standard_normal()), f"test{t + 1}" if g == 0 else "")
                                  if kind == "PTR" else R.mpr(t + 1, head, s, (0.5, 1.5, 2.5)) if kind == "MPR"
                                  else R.ftr(t + 1, head, s))
            for i in reversed(idx):
                x, y, st, hb = todo[i]
                counts[hb] = counts.get(hb, 0) + 1
                ev.append(R.prr(head, int(site_of[i]), _flags(st, pf_source), hb, hb + 100, x, y, f"{k}-{i}"))
            groups.append(ev)
        return groups

    for start in range(0, len(plans), heads):
        batch = list(enumerate(plans))[start: start + heads]
        for k, p in batch:
            if blocks in ("both", "wir"):
                out.append(R.wir(p["head"], p["wafer"], START_T + 600 * k))
        events = [die_events(k, p) for k, p in batch]
        for g in range(max(len(ev) for ev in events)):  # the heads' die groups interleaved
            for ev in events:
                if g < len(ev):
                    out += ev[g]
        for k, p in batch:
            if blocks in ("both", "wrr"):
                out.append(R.wrr(p["head"], p["wafer"], START_T + 600 * k + 500, p["dies"], p["dies"] - p["fails"]))
        if extras:
            out.append(R.dtr("x" * 250) * 160)  # 160 DTRs of 254 bytes: records longer than a lane's window
            out.append(R.gdr(rng.standard_normal(8000).astype(np.float32)))  # 40 kB of random bytes
        f.write(b"".join(out))  # a wafer at a time: the 400 MB benchmark lot is never held whole
        out.clear()
    for sub, pf_ok in ((40, pf_source in ("flag", "hbr")), (50, pf_source in ("flag", "hbr", "sbr"))):
        for hb, n in sorted(counts.items()):
            num = hb if sub == 40 else hb + 100
            pf = ("P" if hb in pass_bins else "F") if pf_ok else " "
            out.append(R.bin_record(sub, num, n, pf))
    total = sum(counts.values())
    out += [R.pcr(total, counts.get(pass_bins[0], 0)), R.mrr()]
    f.write(b"".join(out))
    f.close()
    return plans
