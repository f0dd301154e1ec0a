"""A MAMe look-alike: rows drawn from the real shape table, photo-like seeded images.

No torch, no ray. ``draw_rows`` is pure numpy (the planner calls it without pixels);
the image generator adds Pillow.

Why the images look the way they do: a benchmark of seconds per megapixel needs JPEGs
that cost what photographs cost to decode, so flat colour (which decodes and compresses
unrealistically well) is not good enough. Each image is a colour noise pyramid with equal
energy per octave (the 1/f amplitude spectrum of natural images), plus a gradient and a
few hard-edged shapes. It is built from PCG64 integers, Pillow's fixed-point 8-bit
resampling, Pillow's shape drawing and integer numpy arithmetic, with no floating-point
numpy math (whose SIMD variants differ between CPUs), so a given numpy + Pillow gives the
same pixels on every machine.

Writing is crash-safe: every file goes to a temporary name and is renamed into place,
and the completion marker ``.hrvs-synthetic.json`` (holding the spec) is written last
and removed first, so an interrupted generation is never taken for a complete one.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import SyntheticSpec
from ..fsutil import atomic_write_bytes
from .shapes import LABELS_CSV, MAME_COLUMNS, METADATA_CSV, ShapeTable, shipped_shape_table

MARKER = ".hrvs-synthetic.json"
# Bump when the drawing or the pixels change, so old folders are regenerated.
GENERATOR_VERSION = 1
MIN_SIDE = 16
MUSEUM = "Synthetic (hrvs-ray)"
_IMAGE_PURPOSE = 1  # SeedSequence tag separating per-image streams from the row draw


def _rng(*entropy: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(entropy))))


def draw_rows(table: ShapeTable, spec: SyntheticSpec) -> ShapeTable:
    """``spec.count`` rows of ``table`` (without replacement while there are enough rows),
    each keeping its medium and subset, sides scaled by ``spec.scale`` (round half up,
    at least 16 px), renamed ``synth_000000.jpg`` ... in draw order."""
    n = len(table)
    if n == 0:
        raise ValueError("cannot draw synthetic rows from an empty shape table")
    if spec.count <= 0 or not spec.scale > 0:
        raise ValueError(f"synthetic count and scale must be > 0, got {spec.count}, {spec.scale}")
    idx = _rng(spec.seed).choice(n, size=spec.count, replace=spec.count > n)
    # float64 multiply, add and floor are exactly rounded IEEE operations: same result everywhere.
    w = np.maximum(MIN_SIDE, np.floor(table.widths[idx] * spec.scale + 0.5).astype(np.int64))
    h = np.maximum(MIN_SIDE, np.floor(table.heights[idx] * spec.scale + 0.5).astype(np.int64))
    ids = tuple(f"synth_{i:06d}.jpg" for i in range(spec.count))
    return ShapeTable(ids, tuple(table.mediums[i] for i in idx), tuple(table.subsets[i] for i in idx), w, h)


# --- pixels ------------------------------------------------------------------------------

def synth_image(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A photo-like uint8 (height, width, 3) image from ``rng``."""
    from PIL import Image, ImageDraw

    # Coarsest level: a few cells across; each finer level doubles the resolution.
    levels = max(1, int(max(height, width) // 4).bit_length())
    gh, gw = -(-height >> (levels - 1)) + 1, -(-width >> (levels - 1)) + 1
    base = rng.integers(40, 216, size=3)
    img = np.empty((gh, gw, 3), np.int16)
    img[:] = base
    # Per-image contrast profile: coarse octaves carry the scene, the finest one the grain.
    amp = int(rng.integers(14, 24))
    grain = int(rng.integers(8, 14))
    chroma = int(rng.integers(3, 8))
    for level in range(levels):
        h, w = img.shape[:2]
        # Coarse octaves a little stronger: large-scale light and colour changes, as in photos.
        a = grain if level == levels - 1 else amp * 2 if level < 2 else amp
        luma = rng.integers(-a, a + 1, size=(h, w, 1), dtype=np.int16)
        col = rng.integers(-chroma, chroma + 1, size=(h, w, 3), dtype=np.int16)
        img = np.clip(img + luma + col, 0, 255)
        if level < levels - 1:
            up = Image.fromarray(img.astype(np.uint8), "RGB").resize((2 * w, 2 * h), Image.Resampling.BICUBIC)
            img = np.asarray(up).astype(np.int16)
    y0 = int(rng.integers(0, img.shape[0] - height + 1))
    x0 = int(rng.integers(0, img.shape[1] - width + 1))
    img = img[y0:y0 + height, x0:x0 + width]

    # Linear illumination gradient: up to 40 grey levels across the image each way (integers).
    gx, gy = (int(v) for v in rng.integers(-40, 41, size=2))
    ramp = (np.arange(width, dtype=np.int32)[None, :] * gx // width
            + np.arange(height, dtype=np.int32)[:, None] * gy // height)
    img = img + ramp[:, :, None].astype(np.int16)

    # Hard edges: objects in front of the textured background.
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    n_shapes = int(rng.integers(2, 7))
    offsets = rng.integers(-60, 61, size=(n_shapes + 1, 3)).astype(np.int16)
    for k in range(1, n_shapes + 1):
        x = rng.integers(0, width, size=2)
        y = rng.integers(0, height, size=2)
        box = [int(x.min()), int(y.min()), int(x.max()) + 1, int(y.max()) + 1]
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=k)
        elif kind == 1:
            draw.rectangle(box, fill=k)
        else:
            pts = rng.integers(0, [width, height], size=(int(rng.integers(3, 7)), 2))
            draw.polygon([(int(p[0]), int(p[1])) for p in pts], fill=k)
    offsets[0] = 0
    img = img + np.take(offsets, np.asarray(mask), axis=0)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- the MAMe layout ---------------------------------------------------------------------

def _marker_text(spec: SyntheticSpec) -> str:
    return json.dumps({"generator_version": GENERATOR_VERSION, "spec": asdict(spec)}, sort_keys=True) + "\n"


def metadata_csv_text(rows: ShapeTable) -> str:
    """The authors' MAMe_dataset.csv columns and number formats for ``rows``."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(MAME_COLUMNS)
    for i, (name, medium, subset, w, h) in enumerate(zip(rows.ids, rows.mediums, rows.subsets,
                                                         rows.widths.tolist(), rows.heights.tolist(), strict=False)):
        out.writerow([name, medium, MUSEUM, f"synthetic-{i}", subset, f"{w}.0", f"{h}.0",
                      f"{w * h}.0", f"{w / h:.4f}"])
    return buf.getvalue()


def labels_csv_text(mediums: list[str]) -> str:
    """MAMe_labels.csv format: ``index,medium`` lines, no header."""
    return "".join(f"{i},{m}\n" for i, m in enumerate(mediums))


def generate(root: Path, spec: SyntheticSpec,
             progress: Callable[[int, int], None] | None = None) -> None:
    """Write ``root/MAMe_dataset.csv``, ``root/MAMe_labels.csv`` and ``root/data/*.jpg``,
    then the completion marker. ``progress(done, total)`` is called after each image."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)  # incomplete from here until the end
    shipped = shipped_shape_table()
    rows = draw_rows(shipped, spec)
    data = root / "data"
    data.mkdir(exist_ok=True)
    for i, (name, h, w) in enumerate(zip(rows.ids, rows.heights.tolist(), rows.widths.tolist(), strict=False)):
        pixels = synth_image(h, w, _rng(spec.seed, _IMAGE_PURPOSE, i))
        atomic_write_bytes(data / name, encode_jpeg(pixels, spec.quality))
        if progress is not None:
            progress(i + 1, len(rows))
    # A smaller count than last time leaves images nobody lists: remove them.
    keep = set(rows.ids)
    for old in data.glob("synth_*.jpg"):
        if old.name not in keep:
            old.unlink(missing_ok=True)
    # All 29 mediums, not just the drawn ones, so class indices match the real dataset;
    # stripped like the authors' labels file ("Woven fabric " has a trailing space in their CSV).
    atomic_write_bytes(root / LABELS_CSV, labels_csv_text(sorted({m.strip() for m in shipped.mediums})).encode())
    atomic_write_bytes(root / METADATA_CSV, metadata_csv_text(rows).encode())
    atomic_write_bytes(root / MARKER, _marker_text(spec).encode())


def is_complete(root: Path, spec: SyntheticSpec) -> bool:
    """True when ``root`` holds a finished generation of exactly ``spec``."""
    try:
        return (Path(root) / MARKER).read_text(encoding="utf-8") == _marker_text(spec)
    except (OSError, UnicodeDecodeError):
        return False


def ensure_synthetic(root: Path, spec: SyntheticSpec,
                     progress: Callable[[int, int], None] | None = None) -> bool:
    """Generate unless ``root`` already holds this spec. Returns True if it generated.

    Several processes (e.g. one per node on a shared filesystem) may race here safely:
    the output is deterministic and every file is replaced atomically."""
    if is_complete(root, spec):
        return False
    generate(root, spec, progress)
    return True
