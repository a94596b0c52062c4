"""Pascal VOC: one XML annotation file per image, boxes in ``<object><bndbox>``.

Layout: an annotations folder of ``*.xml`` files and an images folder, by default
``Annotations/`` and ``JPEGImages/`` under the root; any other folders can be named with
`images` / `annotations` (relative to the root, or as given). Without ``Annotations/`` the root
itself is read as a flat folder holding both XMLs and images.

Per XML: the image is ``<filename>`` in the images folder (or beside the XML), else the XML's
stem with any image extension. Each direct ``<object>`` gives a class from ``<name>`` and a box
from ``<bndbox>`` ``xmin ymin xmax ymax`` (numbers such as ``"48.0"`` accepted; coordinates are
taken as written, VOC's 1-based pixel indices are not shifted). ``<difficult>`` goes to
`ImageSet.difficult`; ``<part>`` boxes are ignored. Class names are the sorted set of names found.

An image-set list (``ImageSets/Main/train.txt``: one id per line, or ``id flag`` class lists
where flag -1 means absent) restricts and orders the images: pass `image_set` (a name under
``ImageSets/Main`` or a path), or load the list file itself. Images carry boxes only: `labels`
are -1 (see `ImageSet.dominant_labels`).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from adrcs.data.image_formats._common import check_box, image_size, is_image_name, make_meta, short
from adrcs.data.image_set import ImageSet
from adrcs.errors import InputError

NAME = "voc"
BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def sniff(path: str | Path, *, annotations: str | Path | None = None, **kw: Any) -> bool:
    """A folder with ``Annotations/`` or VOC ``*.xml`` files (an ``<annotation>`` root; SEMI E142 / G85 wafer
    maps are XML too), or `annotations` given, or an ``ImageSets/Main/*.txt`` list file."""
    p = Path(path)
    if p.is_file():
        return _is_image_set_list(p)
    if not p.is_dir():
        return False
    return annotations is not None or (p / "Annotations").is_dir() or any(_is_voc_xml(x) for x in _xml_files(p)[:5])


def read(path: str | Path, images: str | Path | None = None, annotations: str | Path | None = None, *,
         image_set: str | Path | None = None, verify: bool = False, **kw: Any) -> ImageSet:
    """Read a VOC root folder (or an ``ImageSets/Main/*.txt`` list inside one)."""
    p = Path(path)
    root = p
    if p.is_file():  # the list file itself: root/ImageSets/Main/<name>.txt
        if not _is_image_set_list(p):
            raise InputError(p, "expected a Pascal VOC folder or an ImageSets/Main/*.txt list file")
        root, image_set = p.parents[2], p
    ann_dir = _folder(root, annotations, "Annotations", "annotations folder")
    img_dir = _folder(root, images, "JPEGImages", "images folder")

    if image_set is not None:
        lst = _image_set_path(root, image_set)
        xmls = [(ann_dir / f"{i}.xml", f"listed in {lst.name} line {n}") for i, n in _read_ids(lst)]
    else:
        xmls = [(x, "") for x in sorted(_xml_files(ann_dir))]
        if not xmls:
            raise InputError(ann_dir, "empty dataset: no .xml annotation files in the folder")

    finder = _ImageFinder(img_dir)
    paths, sizes, boxes, names, difficult, anns = [], [], [], [], [], []
    for xml, where in xmls:
        if not xml.is_file():
            raise InputError(xml, f"annotation file not found ({where})")
        doc = _parse(xml)
        image = finder.find(xml, (doc.findtext("filename") or "").strip())
        size = image_size(image, where=f"image of {xml.name}", verify=verify)
        b, nm, d = _objects(xml, doc, size, image)
        paths.append(image)
        sizes.append(size)
        boxes.append(b)
        names.append(nm)
        difficult.append(d)
        anns.append(str(xml))

    class_names = sorted({n for nm in names for n in nm})
    box_labels = [np.asarray([class_names.index(n) for n in nm], np.int64) for nm in names]
    meta = make_meta(p, NAME, sizes, {"annotation": anns, "image_id": [Path(a).stem for a in anns]})
    return ImageSet(paths=paths, templates=[None] * len(paths), boxes=boxes, box_labels=box_labels,
                    labels=np.full(len(paths), -1, np.int64), class_names=class_names, meta=meta,
                    difficult=difficult)


# ---------------------------------------------------------------- folders and lists


def _xml_files(folder: Path) -> list[Path]:
    return [f for f in folder.iterdir() if f.suffix.lower() == ".xml" and f.is_file() and not f.name.startswith(".")]


def _is_voc_xml(p: Path) -> bool:
    """Whether the XML file's first element is a VOC ``<annotation>`` (read from its first 4 KiB)."""
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    for tag in re.finditer(rb"<([A-Za-z_][\w.:-]*)", head):
        return tag.group(1).split(b":")[-1] == b"annotation"
    return False


def _is_image_set_list(p: Path) -> bool:
    return p.suffix.lower() == ".txt" and p.parent.name == "Main" and p.parent.parent.name == "ImageSets"


def _folder(root: Path, given: str | Path | None, default: str, what: str) -> Path:
    if given is None:
        return root / default if (root / default).is_dir() else root  # flat folder
    g = Path(given)
    folder = root / g if not g.is_absolute() and (root / g).is_dir() else g
    if not folder.is_dir():
        raise InputError(folder, f"{what} not found")
    return folder


def _image_set_path(root: Path, image_set: str | Path) -> Path:
    s = Path(image_set)
    if s.is_file():
        return s
    named = root / "ImageSets" / "Main" / (s.name if s.suffix == ".txt" else f"{s.name}.txt")
    if not named.is_file():
        raise InputError(named, "image-set list not found")
    return named


def _read_ids(lst: Path) -> list[tuple[str, int]]:
    """(image id, line number) pairs of an image-set list; ``id -1`` lines (absent) are skipped."""
    out = []
    for n, line in enumerate(lst.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) > 2 or (len(f) == 2 and f[1] not in ("-1", "0", "1")):
            raise InputError(lst, f"line {n}: expected an image id, optionally followed by 1/0/-1, got {short(line)!r}")
        if len(f) == 1 or f[1] != "-1":
            out.append((f[0], n))
    return out


class _ImageFinder:
    """Finds an annotation's image in the images folder, then beside the XML (one listing each)."""

    def __init__(self, img_dir: Path) -> None:
        self.img_dir = img_dir
        self._index: dict[Path, tuple[dict[str, Path], dict[str, Path]]] = {}

    def _listing(self, folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
        if folder not in self._index:
            files = sorted(f for f in folder.iterdir() if is_image_name(f))
            by_stem: dict[str, Path] = {}
            for f in files:
                by_stem.setdefault(f.stem, f)
            self._index[folder] = ({f.name: f for f in files}, by_stem)
        return self._index[folder]

    def find(self, xml: Path, filename: str) -> Path:
        folders = [self.img_dir] + ([xml.parent] if xml.parent != self.img_dir else [])
        name = Path(filename).name if filename else ""
        for folder in folders:
            by_name, by_stem = self._listing(folder)
            if name and name in by_name:
                return by_name[name]
            if name and (folder / name).is_file():  # e.g. a name without an image extension
                return folder / name
            if xml.stem in by_stem:
                return by_stem[xml.stem]
        looked = f"{name!r} or {xml.stem}.<image ext>" if name else f"{xml.stem}.<image ext>"
        raise InputError(self.img_dir / (name or f"{xml.stem}.jpg"),
                         f"image file not found for annotation {xml.name} (looked for {looked} in {self.img_dir})")


# ---------------------------------------------------------------- one XML


def _parse(xml: Path) -> ET.Element:
    try:
        return ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise InputError(xml, f"not valid XML ({short(e)})") from e


def _objects(xml: Path, doc: ET.Element, size: tuple[int, int],
             image: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    boxes, names, difficult = [], [], []
    for j, obj in enumerate(doc.findall("object"), 1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise InputError(xml, f"object {j} has no <name>")
        where = f"object {j} ({name})"
        bb = obj.find("bndbox")
        if bb is None:
            raise InputError(xml, f"{where} has no <bndbox>")
        box = []
        for tag in BOX_TAGS:
            text = (bb.findtext(tag) or "").strip()
            try:
                box.append(float(text))
            except ValueError:
                raise InputError(xml, f"{where}: <{tag}> is {short(text)!r}, not a number") from None
        check_box(xml, where, box, size[0], size[1], image)
        flag = (obj.findtext("difficult") or "0").strip()
        boxes.append(box)
        names.append(name)
        difficult.append(flag not in ("", "0", "0.0", "false", "False"))
    return np.asarray(boxes, np.float32).reshape(-1, 4), names, np.asarray(difficult, bool)
