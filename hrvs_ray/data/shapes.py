"""Image shapes without pixels: the MAMe shape table shipped in the package, metadata CSVs,
and the shape each input set gives an image. Pure: no torch, no ray, no Pillow.

The shipped table ``mame_shapes.csv.gz`` (file, medium, subset, width, height) is derived
from the authors' ``MAMe_dataset.csv`` (37,407 rows) by ``write_shape_table``.
"""
from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..config import InputSetSpec

SHAPE_TABLE = "mame_shapes.csv.gz"
METADATA_CSV = "MAMe_dataset.csv"
LABELS_CSV = "MAMe_labels.csv"
MAME_COLUMNS = ["Image file", "Medium", "Museum", "Museum-based instance ID", "Subset",
                "Width", "Height", "Product size", "Aspect ratio"]


@dataclass(frozen=True)
class ShapeTable:
    """One row per image: id (file name), medium, subset, original width and height."""
    ids: tuple[str, ...]
    mediums: tuple[str, ...]
    subsets: tuple[str, ...]
    widths: np.ndarray
    heights: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, subset: str) -> ShapeTable:
        if subset == "all":
            return self
        keep = [i for i, s in enumerate(self.subsets) if s == subset]
        return ShapeTable(tuple(self.ids[i] for i in keep), tuple(self.mediums[i] for i in keep),
                          tuple(self.subsets[i] for i in keep), self.widths[keep], self.heights[keep])

    def sorted(self) -> ShapeTable:
        """Rows in canonical (id) order, the order batch plans index into."""
        order = sorted(range(len(self.ids)), key=self.ids.__getitem__)
        return ShapeTable(tuple(self.ids[i] for i in order), tuple(self.mediums[i] for i in order),
                          tuple(self.subsets[i] for i in order), self.widths[order], self.heights[order])


def _table(rows: Iterable[tuple[str, str, str, int, int]]) -> ShapeTable:
    rows = list(rows)
    return ShapeTable(tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows),
                      np.array([r[3] for r in rows], dtype=np.int64),
                      np.array([r[4] for r in rows], dtype=np.int64))


def shipped_shape_table() -> ShapeTable:
    """The real MAMe shape distribution, available on any machine without the dataset."""
    raw = resources.files("hrvs_ray.data").joinpath(SHAPE_TABLE).read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    return _table((r["file"], r["medium"], r["subset"], int(r["width"]), int(r["height"])) for r in reader)


def read_metadata_csv(path: Path) -> ShapeTable:
    """Read a MAMe_dataset.csv (authors' layout). Raises ValueError naming the file and row."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("Image file", "Medium", "Subset", "Width", "Height")
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a MAMe metadata file, missing columns {missing}")
        for n, r in enumerate(reader, start=2):
            try:
                w, h = int(float(r["Width"])), int(float(r["Height"]))
            except (TypeError, ValueError):
                raise ValueError(f"{path}: line {n}: width/height not numbers: "
                                 f"{r.get('Width')!r} x {r.get('Height')!r}") from None
            if w <= 0 or h <= 0:
                raise ValueError(f"{path}: line {n}: non-positive image size {w} x {h}")
            # The authors' CSV spells one medium "Woven fabric " (trailing space) while
            # MAMe_labels.csv says "Woven fabric": names are compared stripped.
            rows.append((r["Image file"], r["Medium"].strip(), r["Subset"], w, h))
    return _table(rows)


def write_shape_table(metadata_csv: Path, out: Path) -> int:
    """Derive the shipped shape table from the authors' metadata (reproducible: gzip mtime 0)."""
    t = read_metadata_csv(metadata_csv)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "medium", "subset", "width", "height"])
    for row in zip(t.ids, t.mediums, t.subsets, t.widths.tolist(), t.heights.tolist(), strict=False):
        w.writerow(row)
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        f.write(buf.getvalue().encode())
    return len(t)


def transformed_arrays(spec: InputSetSpec, heights: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(heights, widths) after the input set's resize, for many images at once: the one
    implementation of the resize arithmetic (the planner and the image preparation both
    use it, so a prepared array always has exactly the planned shape).

    - fixed [H, W]: every image becomes H x W.
    - shorter_side N: the shorter side becomes exactly N and the longer side is
      round-half-up(longer * N / shorter), in integer arithmetic so every machine agrees
      (1000x2000 -> 500x1000, 999x1000 -> 500x501; a square stays N x N).
    - none: unchanged.
    """
    heights = np.asarray(heights, dtype=np.int64)
    widths = np.asarray(widths, dtype=np.int64)
    if spec.resize == "fixed":
        return np.full_like(heights, spec.size[0]), np.full_like(widths, spec.size[1])
    if spec.resize == "shorter_side":
        n = spec.size[0]
        portrait = heights > widths
        h = np.where(portrait, (2 * heights * n + widths) // (2 * widths), n)
        w = np.where(portrait, n, (2 * widths * n + heights) // (2 * heights))
        return h, w
    return heights.copy(), widths.copy()


def transformed_shape(spec: InputSetSpec, height: int, width: int) -> tuple[int, int]:
    """(height, width) of one image after the resize: ``transformed_arrays`` on one element."""
    h, w = transformed_arrays(spec, np.array([height]), np.array([width]))
    return int(h[0]), int(w[0])


def label_index(mediums: Sequence[str], labels: Sequence[str] | None = None) -> dict[str, int]:
    """Medium -> class index: the dataset's MAMe_labels.csv order when given, else sorted names
    (which is the same order for the real 29 MAMe mediums)."""
    names = list(labels) if labels else sorted(set(mediums))
    return {m: i for i, m in enumerate(names)}
