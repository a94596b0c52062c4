"""adrcs.data.image_formats and ImageSet: DeepPCB lists, Pascal VOC, class folders, detection, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from adrcs.data.image_formats import detect, load_images
from adrcs.data.image_formats import class_folders, deeppcb, voc
from adrcs.data.image_set import ImageSet
from adrcs.errors import InputError

REAL_DEEPPCB = Path("/work/shared/data/deeppcb/trainval.txt")


def _image(path: Path, rects=(), size=(64, 64), mode: str = "L") -> Path:
    """A black image (width, height = size) with white filled rectangles (x1, y1, x2, y2), edges exclusive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new(mode, size, 0)
    draw = ImageDraw.Draw(im)
    for x1, y1, x2, y2 in rects:
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=255 if mode == "L" else (255, 255, 255))
    im.save(path)
    return path


def _write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def _deeppcb(root: Path) -> Path:
    """Two image pairs in DeepPCB's layout; one annotation uses commas, CRLF and blank lines."""
    _image(root / "group1/100/100000_test.jpg", [(10, 10, 20, 22), (40, 30, 50, 60)])
    _image(root / "group1/100/100000_temp.jpg")
    _image(root / "group1/100/100001_test.jpg", [(5, 5, 15, 15)])
    _image(root / "group1/100/100001_temp.jpg")
    _write(root / "group1/100_not/100000.txt", "10 10 20 22 1\n40 30 50 60 6\n")
    _write(root / "group1/100_not/100001.txt", "\n5,5,15,15,3\n\n", newline="\r\n")
    return _write(root / "trainval.txt", "group1/100/100000.jpg group1/100_not/100000.txt\n\n"
                                         "group1/100/100001.jpg,group1/100_not/100001.txt\n", newline="\r\n")


def _voc_xml(filename: str | None, objects, size=(64, 64)) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox>"
        f"<part><name>ignored</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>999</xmax><ymax>999</ymax></bndbox></part>"
        f"</object>"
        for n, b, d in objects
    )
    fname = f"<filename>{filename}</filename>" if filename is not None else ""
    return (f"<annotation>{fname}<size><width>{size[0]}</width><height>{size[1]}</height><depth>1</depth></size>"
            f"{objs}</annotation>")


def _voc(root: Path, images: str = "JPEGImages", annotations: str = "Annotations") -> Path:
    """Three images: a scratch + a (difficult) void, a void only, and none; one found by stem only."""
    _image(root / images / "a.jpg", [(4, 4, 20, 12), (30, 30, 40, 40)])
    _image(root / images / "b.PNG", [(10, 10, 30, 30)])
    _image(root / images / "c.jpg")
    _write(root / annotations / "a.xml", _voc_xml("a.jpg", [("scratch", (4, 4, 20, 12), 0),
                                                             ("void", ("30.0", "30.0", "40.0", "40.0"), 1)]))
    _write(root / annotations / "b.xml", _voc_xml(None, [("void", (10, 10, 30, 30), 0)]))
    _write(root / annotations / "c.xml", _voc_xml("c.jpg", []))
    return root


def _class_folders(root: Path) -> Path:
    _image(root / "good/g1.png")
    _image(root / "good/sub/g2.JPG")
    _image(root / "good/g1_ref.png")            # template of g1.png
    _image(root / "crack/c1_test.jpg", [(5, 5, 10, 10)])
    _image(root / "crack/c1_temp.jpg")          # DeepPCB-style template of c1_test.jpg
    _image(root / "crack/lonely_template.bmp")  # a template with no image: not a sample
    _image(root / "stray.png")                  # in the root: ignored
    (root / "empty").mkdir()
    return root


# ---------------------------------------------------------------- formats


def test_deeppcb_reads_pairs_boxes_and_templates(tmp_path):
    lst = _deeppcb(tmp_path)
    ds = load_images(lst)
    assert len(ds) == 2 and ds.class_names == deeppcb.CLASS_NAMES
    assert [p.name for p in ds.paths] == ["100000_test.jpg", "100001_test.jpg"]
    assert [t.name for t in ds.templates] == ["100000_temp.jpg", "100001_temp.jpg"]
    assert ds.boxes[0].dtype == np.float32 and ds.boxes[0].shape == (2, 4)
    np.testing.assert_array_equal(ds.boxes[0], [[10, 10, 20, 22], [40, 30, 50, 60]])
    assert ds.box_labels[0].tolist() == [0, 5] and ds.box_labels[1].tolist() == [2]
    assert (ds.labels == -1).all() and ds.has_boxes and ds.has_templates
    assert ds.meta[["width", "height"]].values.tolist() == [[64, 64], [64, 64]]
    assert ds.meta["line"].tolist() == [1, 3] and ds.notes["format"] == "deeppcb"
    img, tmpl = ds.read_image(0), ds.read_template(0)
    assert img.shape == (64, 64) and img.dtype == np.uint8 and tmpl.shape == (64, 64)
    assert ds.read_image(0, mode="RGB").shape == (64, 64, 3)
    assert img[15, 15] > 200 and img[0, 0] < 50 and tmpl.max() < 50


def test_deeppcb_folder_reads_every_list_file(tmp_path):
    _deeppcb(tmp_path)
    _write(tmp_path / "test.txt", "group1/100/100001.jpg group1/100_not/100001.txt\n")
    ds = load_images(tmp_path)
    assert len(ds) == 3 and ds.meta["split"].tolist() == ["trainval", "trainval", "test"]


def test_deeppcb_plain_names_and_missing_template(tmp_path):
    _image(tmp_path / "x/1.jpg", [(1, 1, 9, 9)])
    _write(tmp_path / "x/1.txt", "1 1 9 9 4\n")
    ds = load_images(_write(tmp_path / "list.txt", f"{tmp_path / 'x/1.jpg'} x/1.txt\n"))  # absolute path too
    assert ds.paths[0].name == "1.jpg" and ds.templates == [None] and not ds.has_templates


def test_voc_default_layout(tmp_path):
    ds = load_images(_voc(tmp_path))
    assert ds.notes["format"] == "voc" and len(ds) == 3
    assert ds.class_names == ["scratch", "void"]
    assert [p.name for p in ds.paths] == ["a.jpg", "b.PNG", "c.jpg"]  # b found by its XML stem
    np.testing.assert_array_equal(ds.boxes[0], [[4, 4, 20, 12], [30, 30, 40, 40]])  # <part> boxes ignored
    assert ds.box_labels[0].tolist() == [0, 1] and ds.box_labels[1].tolist() == [1]
    assert ds.difficult[0].tolist() == [False, True] and ds.boxes[2].shape == (0, 4)
    assert ds.meta["image_id"].tolist() == ["a", "b", "c"] and ds.templates == [None] * 3


def test_voc_named_folders_flat_folder_and_image_sets(tmp_path):
    root = _voc(tmp_path / "custom", images="imgs", annotations="xml")
    assert len(load_images(root, images="imgs", annotations="xml")) == 3
    assert len(load_images(root, images=root / "imgs", annotations=root / "xml", format="voc")) == 3

    flat = tmp_path / "flat"
    _image(flat / "p.jpg", [(2, 2, 6, 6)])
    _write(flat / "p.xml", _voc_xml("p.jpg", [("pit", (2, 2, 6, 6), 0)]))
    ds = load_images(flat)
    assert ds.notes["format"] == "voc" and ds.class_names == ["pit"]

    std = _voc(tmp_path / "std")
    _write(std / "ImageSets/Main/train.txt", "c\na\n")
    _write(std / "ImageSets/Main/void_train.txt", "a 1\nb 0\nc -1\n")
    assert [p.name for p in load_images(std, image_set="train").paths] == ["c.jpg", "a.jpg"]
    by_file = load_images(std / "ImageSets/Main/void_train.txt")  # the list file itself
    assert by_file.notes["format"] == "voc" and [p.name for p in by_file.paths] == ["a.jpg", "b.PNG"]


def test_class_folders_labels_templates_and_extensions(tmp_path):
    ds = load_images(_class_folders(tmp_path))
    assert ds.notes["format"] == "class_folders"
    assert ds.class_names == ["crack", "good"]  # sorted; empty folder is no class
    assert sorted((p.name, ds.class_names[y]) for p, y in zip(ds.paths, ds.labels)) == [
        ("c1_test.jpg", "crack"), ("g1.png", "good"), ("g2.JPG", "good")]
    tmpl = {p.name: (t.name if t else None) for p, t in zip(ds.paths, ds.templates)}
    assert tmpl == {"c1_test.jpg": "c1_temp.jpg", "g1.png": "g1_ref.png", "g2.JPG": None}
    assert ds.notes["orphan_templates"] == 1 and ds.notes["ignored_root_files"] == 1
    assert not ds.has_boxes and all(b.shape == (0, 4) for b in ds.boxes)
    assert ds.class_counts() == {"crack": 1, "good": 2}


@pytest.mark.parametrize("make, expected", [
    (lambda p: _deeppcb(p), deeppcb),
    (lambda p: _deeppcb(p).parent, deeppcb),
    (lambda p: _voc(p), voc),
    (lambda p: _class_folders(p), class_folders),
])
def test_auto_detection(tmp_path, make, expected):
    assert detect(make(tmp_path)) is expected


def test_explicit_format_and_unknown_format(tmp_path):
    root = _class_folders(tmp_path)
    assert load_images(root, format="class-folders").notes["format"] == "class_folders"
    with pytest.raises(InputError, match="unknown image format 'coco'"):
        load_images(root, format="coco")


# ---------------------------------------------------------------- ImageSet


def _toy_set(n: int = 20) -> ImageSet:
    import pandas as pd

    boxes = [np.array([[0, 0, 10, 10], [0, 0, 2, 2], [5, 5, 6, 6]], np.float32)[: i % 3 + 1] for i in range(n)]
    box_labels = [np.array([i % 2, 1 - i % 2, 1])[: i % 3 + 1] for i in range(n)]
    boxes[0], box_labels[0] = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    return ImageSet(paths=[Path(f"{i}.png") for i in range(n)], templates=[None] * n, boxes=boxes,
                    box_labels=box_labels, labels=np.full(n, -1), class_names=["a", "b"],
                    meta=pd.DataFrame({"index": range(n)}))


def test_image_set_subset_split_and_counts():
    ds = _toy_set()
    dom = ds.dominant_labels()
    assert dom[0] == -1 and dom[1] == 1 and dom[2] == 0  # the largest total box area wins
    assert ds.class_counts() == {"a": 16, "b": 22} and ds.class_counts(per="image") == {"a": 0, "b": 0}
    sub = ds.subset([3, 1])
    assert [p.name for p in sub.paths] == ["3.png", "1.png"] and sub.meta["index"].tolist() == [3, 1]
    assert len(ds.subset(ds.dominant_labels() == 0)) == int((dom == 0).sum())
    tr, held = ds.split(0.25, seed=7)
    tr2, held2 = ds.split(0.25, seed=7)
    assert len(held) == 5 and len(tr) == 15
    assert [p.name for p in held.paths] == [p.name for p in held2.paths]
    assert not {p.name for p in tr.paths} & {p.name for p in held.paths}
    both = ImageSet.concat([ds.subset([1]), _one_image_set(["b", "c"])])
    assert both.class_names == ["a", "b", "c"] and both.box_labels[1].tolist() == [2]


def _one_image_set(names: list[str]) -> ImageSet:
    import pandas as pd

    return ImageSet(paths=[Path("x.png")], templates=[None], boxes=[np.array([[0, 0, 1, 1]])],
                    box_labels=[np.array([1])], labels=np.array([-1]), class_names=names,
                    meta=pd.DataFrame({"index": [0]}))


# ---------------------------------------------------------------- errors


def _no_newline_error(excinfo, *parts: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and "\r" not in msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def _bad_annotation(line: str):
    def make(root: Path) -> Path:
        lst = _deeppcb(root)
        _write(root / "group1/100_not/100000.txt", f"10 10 20 22 1\n{line}\n")
        return lst
    return make


def _bad_xml(text: str):
    def make(root: Path) -> Path:
        _voc(root)
        _write(root / "Annotations/b.xml", text)
        return root
    return make


def _orphan_xml(root: Path) -> Path:
    _voc(root)
    _write(root / "Annotations/zz.xml", "<annotation><filename>zz.jpg</filename></annotation>")
    return root


def _missing_deeppcb_image(root: Path) -> Path:
    lst = _deeppcb(root)
    (root / "group1/100/100001_test.jpg").unlink()
    return lst


def _missing_voc_image(root: Path) -> Path:
    _voc(root)
    (root / "JPEGImages/c.jpg").unlink()
    return root


def _not_an_image(root: Path) -> Path:
    _class_folders(root)
    _write(root / "good/bad.png", "this is not a png")
    return root


def _empty_list(root: Path) -> Path:
    return _write(root / "trainval.txt", "\n\n")


def _empty_image_set(root: Path) -> Path:
    _voc(root)
    _write(root / "ImageSets/Main/val.txt", "\n")
    return root / "ImageSets/Main/val.txt"


def _unknown_layout(root: Path) -> Path:
    _write(root / "notes/readme.md", "hello")
    return root


@pytest.mark.parametrize("make, parts", [
    (lambda p: p / "nope", ["nope", "not found"]),
    (_unknown_layout, ["unknown image-data layout"]),
    (lambda p: p, ["empty dataset", "folder is empty"]),
    (_bad_annotation("10 10 20 1"), ["100000.txt", "line 2", "expected 5 numbers", "'10 10 20 1'"]),
    (_bad_annotation("10 10 20 x 1"), ["100000.txt", "line 2", "expected 5 numbers"]),
    (_bad_annotation("10 10 20 22 7"), ["100000.txt", "line 2", "unknown defect type 7"]),
    (_bad_annotation("20 10 20 22 1"), ["100000.txt", "line 2", "x2 <= x1"]),
    (_bad_annotation("10 22 20 10 1"), ["100000.txt", "line 2", "y2 <= y1"]),
    (_bad_annotation("50 10 70 22 1"), ["100000.txt", "line 2", "outside the 64x64 image 100000_test.jpg"]),
    (_bad_xml("<annotation><object><name>x</name>"), ["b.xml", "not valid XML"]),
    (_bad_xml(_voc_xml("b.PNG", [("void", (10, "ten", 30, 30), 0)])), ["b.xml", "object 1 (void)", "<ymin>", "'ten'"]),
    (_bad_xml(_voc_xml("b.PNG", [("void", (10, 10, 90, 30), 0)])), ["b.xml", "outside the 64x64 image b.PNG"]),
    (_orphan_xml, ["zz.jpg", "image file not found for annotation zz.xml"]),
    (_missing_deeppcb_image, ["100001_test.jpg", "image file not found", "trainval.txt line 3"]),
    (_missing_voc_image, ["c.jpg", "image file not found for annotation c.xml"]),
    (_not_an_image, ["bad.png", "not an image"]),
    (_empty_list, ["trainval.txt", "empty dataset"]),
    (_empty_image_set, ["val.txt", "empty dataset"]),
])
def test_bad_input_gives_one_line_input_error(tmp_path, make, parts):
    path = make(tmp_path)
    with pytest.raises(InputError) as excinfo:
        load_images(path)
    _no_newline_error(excinfo, *parts)


def test_voc_options_rejected_for_other_formats(tmp_path):
    with pytest.raises(InputError) as excinfo:
        load_images(_deeppcb(tmp_path), annotations="xml", format="deeppcb")
    _no_newline_error(excinfo, "annotations apply to Pascal VOC data only")


def test_corrupt_image_found_on_read_or_with_verify(tmp_path):
    root = _class_folders(tmp_path)
    good = root / "good/g1.png"
    good.write_bytes(good.read_bytes()[:60])  # header intact, pixel data cut
    ds = load_images(root)  # headers only at load
    i = [p.name for p in ds.paths].index("g1.png")
    with pytest.raises(InputError) as excinfo:
        ds.read_image(i)
    _no_newline_error(excinfo, "g1.png", "cannot decode image")
    with pytest.raises(InputError) as excinfo:
        load_images(root, verify=True)
    _no_newline_error(excinfo, "g1.png", "cannot decode image")


# ---------------------------------------------------------------- the real DeepPCB list


@pytest.mark.skipif(not REAL_DEEPPCB.exists(), reason="DeepPCB data not available")
def test_real_deeppcb_first_entries(tmp_path):
    lines = [ln for ln in REAL_DEEPPCB.read_text().splitlines() if ln.strip()][:5]
    base = REAL_DEEPPCB.parent
    lst = _write(tmp_path / "first5.txt", "".join(f"{base / a} {base / b}\n" for a, b in (ln.split() for ln in lines)))
    ds = load_images(lst)
    assert len(ds) == 5 and ds.has_templates and ds.has_boxes
    assert (ds.meta["width"] == 640).all() and (ds.meta["height"] == 640).all()
    labels = np.concatenate(ds.box_labels)
    assert labels.min() >= 0 and labels.max() < len(deeppcb.CLASS_NAMES)
    assert all(((b >= 0) & (b <= 640)).all() for b in ds.boxes)
    assert ds.read_image(0).shape == (640, 640) and ds.read_template(0).shape == (640, 640)
