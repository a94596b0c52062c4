"""scripts/deeppcb_patches.py: DeepPCB boxes -> a class-folder patch set split by group folder."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.bench import load_script  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SIDE = 120
GROUPS = ("group10", "group20", "group30", "group40")


dp = load_script("scripts/deeppcb_patches.py", "deeppcb_patches_script")


def make_groups(root: Path, per_group: int = 2, seed: int = 0) -> Path:
    """A DeepPCB-like folder: groupG/G/<id>_test.jpg + _temp.jpg, groupG/G_not/<id>.txt, trainval.txt;
    every image holds one box of each type 1..6 (one of them touching the border)."""
    rng = np.random.default_rng(seed)
    lines = []
    for g in GROUPS:
        gid = g[len("group"):]
        (root / g / gid).mkdir(parents=True)
        (root / g / f"{gid}_not").mkdir(parents=True)
        for i in range(per_group):
            name = f"{gid}{i:03d}"
            base = np.where(rng.random((SIDE, SIDE)) < 0.5, 0, 255).astype(np.uint8)
            img = base.copy()
            boxes = []
            for t in range(1, 7):
                x, y = (0, 0) if t == 1 else (int(v) for v in rng.integers(5, SIDE - 25, 2))
                w, h = (int(v) for v in rng.integers(6, 20, 2))
                img[y:y + h, x:x + w] = 255 - img[y:y + h, x:x + w]
                boxes.append(f"{x} {y} {x + w} {y + h} {t}")
            Image.fromarray(img).save(root / g / gid / f"{name}_test.jpg", quality=95)
            Image.fromarray(base).save(root / g / gid / f"{name}_temp.jpg", quality=95)
            (root / g / f"{gid}_not" / f"{name}.txt").write_text("\n".join(boxes) + "\n")
            lines.append(f"{g}/{gid}/{name}.jpg {g}/{gid}_not/{name}.txt")
    (root / "trainval.txt").write_text("\n".join(lines) + "\n")
    return root


def read_manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def tree_digest(out: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in out.rglob("*") if p.is_file()):
        h.update(f.relative_to(out).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_groups_disjoint_sizes_classes_and_manifest(tmp_path):
    data, out = make_groups(tmp_path / "deeppcb"), tmp_path / "patches"
    summary = dp.build(data, out, size=32, context=2.0, split=":group30:group40", say=lambda s: None)
    rows = read_manifest(out)
    assert len(rows) == len(GROUPS) * 2 * 6
    by_split = {s: {r["group"] for r in rows if r["split"] == s} for s in dp.SPLITS}
    assert by_split == {"train": {"group10", "group20"}, "val": {"group30"}, "test": {"group40"}}
    assert summary["groups"]["train"] == ["group10", "group20"]
    # every row's files exist, in <split>/<class>/, at the requested size; nothing else on disk
    listed = set()
    for r in rows:
        for key in ("file", "template"):
            p = out / r[key]
            assert p.parts[-3:-1] == (r["split"], r["class"])
            with Image.open(p) as im:
                assert im.size == (32, 32) and im.mode == "L"
            listed.add(r[key])
        assert r["template"] == r["file"][: -len(".png")] + "_temp.png"
        assert r["source_image"].startswith(r["group"] + "/") and r["source_image"].endswith("_test.jpg")
        assert (data / r["source_template"]).is_file()
    on_disk = {p.relative_to(out).as_posix() for s in dp.SPLITS for p in (out / s).rglob("*.png")}
    assert on_disk == listed
    for s in dp.SPLITS:
        assert sorted(p.name for p in (out / s).iterdir()) == sorted(dp.CLASS_NAMES)
        assert summary["counts"][s] == {c: sum(1 for r in rows if r["split"] == s and r["class"] == c)
                                        for c in dp.CLASS_NAMES}
    # the class-folder reader pairs every patch with its template crop
    from adrcs.data.image_formats import class_folders

    ds = class_folders.read(out / "train")
    assert sorted(ds.class_names) == sorted(dp.CLASS_NAMES) and len(ds) == 2 * 2 * 6
    assert all(t is not None for t in ds.templates)


def test_crop_is_context_square_padded_at_border():
    img = np.arange(100 * 100, dtype=np.int64).reshape(100, 100).astype(np.uint8)
    win = dp.crop_window((0, 0, 10, 6), 2.0, 4)
    assert win[2] - win[0] == win[3] - win[1] == 20
    assert dp.cut(img, win).shape == (20, 20)
    assert dp.crop_window((50, 50, 52, 51), 2.0, 16)[2:] == (59, 58)  # at least min_side
    assert dp.cut(img, (90, 95, 110, 115)).shape == (20, 20)


def test_deterministic_and_seed_split(tmp_path):
    data = make_groups(tmp_path / "deeppcb")
    a, b = tmp_path / "a", tmp_path / "b"
    dp.build(data, a, size=16, split="3", say=lambda s: None)
    dp.build(data, b, size=16, split="3", say=lambda s: None)
    assert tree_digest(a / "train") == tree_digest(b / "train")
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    rows = read_manifest(a)
    groups = {s: {r["group"] for r in rows if r["split"] == s} for s in dp.SPLITS}
    assert len(groups["test"]) == len(groups["val"]) == 1 and len(groups["train"]) == 2
    assert set().union(*groups.values()) == set(GROUPS)
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])


@pytest.mark.parametrize("case", ["missing", "no_list", "unknown_group", "same_group", "exists", "no_template"])
def test_errors_are_one_line(tmp_path, capsys, case):
    data, out = make_groups(tmp_path / "deeppcb", per_group=1), tmp_path / "patches"
    args = ["--data", str(data), "--out", str(out)]
    if case == "missing":
        args[1] = str(tmp_path / "nowhere")
    elif case == "no_list":
        (data / "trainval.txt").unlink()
    elif case == "unknown_group":
        args += ["--split", ":group30:group99"]
    elif case == "same_group":
        args += ["--split", ":group30:group30"]
    elif case == "exists":
        args += ["--split", ":group30:group40"]
        assert dp.main(args) == 0
        capsys.readouterr()
    elif case == "no_template":
        next(data.rglob("*_temp.jpg")).unlink()
    if case not in ("unknown_group", "same_group", "exists"):
        args += ["--split", ":group30:group40"]
    assert dp.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    if case == "exists":  # --overwrite rebuilds
        assert dp.main(args + ["--overwrite"]) == 0
