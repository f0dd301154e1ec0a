"""The MAMe dataset on disk, in the authors' layout: ``ROOT/MAMe_dataset.csv`` (metadata),
``ROOT/MAMe_labels.csv`` (``index,medium``, no header) and ``ROOT/data/<Image file>``.

Pillow and numpy, no torch. Every failure a user can meet (dataset missing, metadata
malformed, image corrupt or of the wrong size) is a ``DatasetError`` that names the file
and says what to do.

Pillow refuses images above ``PIL.Image.MAX_IMAGE_PIXELS`` (about 89 MP) as possible
decompression bombs; MAMe's largest image is 373 MP. ``open_dataset`` raises the limit to
what the metadata says the largest image is, never further and never to "unlimited".
Truncated JPEGs are refused (Pillow's LOAD_TRUNCATED_IMAGES stays off): a half-grey image
would silently change what a step measures.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import DatasetSpec, SyntheticSpec
from ..errors import UserError
from .shapes import LABELS_CSV, METADATA_CSV, ShapeTable, label_index, read_metadata_csv

MAME_URL = "https://hpai.bsc.es/MAMe-dataset/"
PIXEL_LIMIT_MARGIN = 0.01  # 1 % above the largest listed image
_PILLOW_DEFAULT_LIMIT = Image.MAX_IMAGE_PIXELS or int(1024 * 1024 * 1024 // 4 // 3)


class DatasetError(UserError, RuntimeError):
    """A dataset or image that cannot be used; the message says which file and what to do."""


@dataclass(frozen=True)
class Dataset:
    """One subset of a MAMe-layout folder. Rows are sorted by id (the order batch plans use)."""
    root: Path
    table: ShapeTable
    labels: dict[str, int]                 # medium -> class index
    shapes: dict[str, tuple[int, int]]     # id -> (height, width), original pixels
    mediums: dict[str, str]                # id -> medium (stripped, as in the labels file)
    fingerprint: str                       # cache key: changes whenever the metadata does

    def image_path(self, image_id: str) -> Path:
        return self.root / "data" / image_id

    def label(self, image_id: str) -> int:
        return self.labels[self.mediums[image_id]]

    def __len__(self) -> int:
        return len(self.table)


def missing_message(root: Path, what: str) -> str:
    return (f"MAMe dataset not found: {what}.\n"
            f"  Looked in: {root.resolve()}\n"
            f"  To use the real data: download the MAMe dataset (metadata CSV and the data/ folder of "
            f"images) from the MAMe project page {MAME_URL} and unpack it so that "
            f"{root / METADATA_CSV} and {root / 'data'}/ exist.\n"
            f"  To run without it: create a synthetic look-alike with "
            f"'hrvs-ray data synth --out {root}', or set 'dataset.kind: synthetic' in the sweep file.")


def _fingerprint(root: Path) -> str:
    h = hashlib.sha256((root / METADATA_CSV).read_bytes())
    # A synthetic folder's quality setting changes pixels but not the CSV: include its marker.
    from .synthetic import MARKER
    marker = root / MARKER
    if marker.is_file():
        h.update(b"\0" + marker.read_bytes())
    return h.hexdigest()[:16]


def read_labels(path: Path) -> list[str]:
    """Medium names in class-index order from a MAMe_labels.csv (``index,medium`` lines)."""
    by_index: dict[int, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            try:
                idx = int(row[0])
            except ValueError:
                raise DatasetError(f"{path}: line {n}: expected 'index,medium', got {','.join(row)!r}") from None
            name = ",".join(row[1:]).strip()
            if not name or idx in by_index:
                raise DatasetError(f"{path}: line {n}: empty or duplicate label {','.join(row)!r}")
            by_index[idx] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise DatasetError(f"{path}: label indices must be 0..{len(by_index) - 1} without gaps")
    return [by_index[i] for i in range(len(by_index))]


def raise_pixel_limit(max_pixels: int) -> int:
    """Let Pillow decode images of up to ``max_pixels`` (plus a 1 % margin) without calling
    them decompression bombs. Never lowers the current limit, never makes it unlimited.
    Returns the limit now in force."""
    need = int(max_pixels) + int(max_pixels * PIXEL_LIMIT_MARGIN)
    current = Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS is not None else _PILLOW_DEFAULT_LIMIT
    Image.MAX_IMAGE_PIXELS = max(current, need)
    return Image.MAX_IMAGE_PIXELS


def metadata_path(root: Path) -> Path:
    """``root/MAMe_dataset.csv``; DatasetError saying where it looked and how to get the
    data when it or the ``data/`` image folder is not there."""
    csv_path = root / METADATA_CSV
    if not csv_path.is_file():
        raise DatasetError(missing_message(root, f"no {METADATA_CSV}"))
    if not (root / "data").is_dir():
        raise DatasetError(missing_message(root, f"{METADATA_CSV} is there but the data/ image folder is not"))
    return csv_path


def read_metadata(csv_path: Path) -> ShapeTable:
    """The whole metadata CSV in file order; DatasetError naming the file (and row)."""
    try:
        return read_metadata_csv(csv_path)
    except (ValueError, OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{csv_path}: cannot read the metadata: {e}") from None


def open_dataset(spec: DatasetSpec) -> Dataset:
    """Open (and, for ``kind: synthetic``, first generate if needed) the dataset at ``spec.path``."""
    root = Path(spec.path)
    if spec.kind == "synthetic":
        from .synthetic import ensure_synthetic
        try:
            ensure_synthetic(root, spec.synthetic or SyntheticSpec())
        except OSError as e:
            raise DatasetError(f"cannot write the synthetic dataset in {root}: {e}") from None
    elif spec.kind != "mame":
        raise DatasetError(f"unknown dataset kind {spec.kind!r} (expected 'mame' or 'synthetic')")
    csv_path = metadata_path(root)
    full = read_metadata(csv_path)
    table = full.select(spec.subset).sorted()
    if len(table) == 0:
        raise DatasetError(f"{csv_path}: no images in subset {spec.subset!r} "
                           f"(subsets present: {', '.join(sorted(set(full.subsets))) or 'none'})")
    if len(set(table.ids)) != len(table):
        raise DatasetError(f"{csv_path}: duplicate image file names in subset {spec.subset!r}")

    # The authors' CSV spells one medium "Woven fabric " (trailing space, all 1,450 rows)
    # while MAMe_labels.csv says "Woven fabric": compare names stripped.
    labels_path = root / LABELS_CSV
    names = read_labels(labels_path) if labels_path.is_file() else None
    labels = label_index([m.strip() for m in full.mediums], names)
    mediums = {i: m.strip() for i, m in zip(table.ids, table.mediums, strict=False)}
    unknown = sorted(set(mediums.values()) - set(labels))
    if unknown:
        raise DatasetError(f"{labels_path}: mediums used in {METADATA_CSV} but not listed: {unknown}")

    raise_pixel_limit(int((table.widths * table.heights).max()))
    return Dataset(
        root=root, table=table, labels=labels,
        shapes={i: (int(h), int(w)) for i, h, w in zip(table.ids, table.heights, table.widths, strict=False)},
        mediums=mediums,
        fingerprint=_fingerprint(root),
    )


def open_rgb(path: Path, expected: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``path`` fully into an RGB Pillow image; DatasetError on any failure."""
    try:
        with Image.open(path) as im:
            im.load()  # decode now, so a truncated file fails here and not later
            rgb = im.convert("RGB") if im.mode != "RGB" else im.copy()
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found (is the data/ folder complete?)") from None
    except Image.DecompressionBombError as e:
        raise DatasetError(f"{path}: refused by Pillow's decompression-bomb limit ({e}); "
                           f"the metadata lists a smaller size than the file has") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        # OSError covers unreadable, truncated ("image file is truncated") and unidentified files.
        raise DatasetError(f"{path}: cannot decode image: {type(e).__name__}: {e}") from None
    if expected is not None and (rgb.height, rgb.width) != tuple(expected):
        raise DatasetError(f"{path}: image is {rgb.height}x{rgb.width} (height x width) but the "
                           f"metadata says {expected[0]}x{expected[1]}")
    return rgb


def load_image(path: Path, expected: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 (height, width, 3) RGB pixels of ``path``; ``expected`` is (height, width)."""
    return np.asarray(open_rgb(path, expected), dtype=np.uint8)
