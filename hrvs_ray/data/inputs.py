"""Input sets (LR&FS / MR&VS / HR&VS) as prepared, cached uint8 arrays.

Pillow and numpy, no torch. Decoding a 10 MP JPEG costs ~0.1 s, more than a training
step spends on a small image, so every image an input set needs is decoded and resized
once, stored as ``.npy``, and read back (memory-mapped) by every later cell on any node.

Transforms (the shape arithmetic is ``shapes.transformed_arrays``, the one function the
planner uses too, so a prepared array always has exactly the planned shape):

- ``fixed [H, W]``: resized to H x W, aspect ratio not kept (LR&FS: 256 x 256).
- ``shorter_side N``: the shorter side becomes exactly N; the longer side becomes
  round-half-up(longer * N / shorter), computed in integers (a 1000 x 2001 image with
  N = 500 becomes 500 x 1001, since 1000.5 rounds up). MR&VS: N = 500.
- ``none``: the original pixels (HR&VS); still cached, so no cell decodes a JPEG twice.

Resizing is Pillow's ``BILINEAR`` filter, which widens its support when shrinking (so it
is antialiased) and runs in fixed-point integer arithmetic: the same bytes on every CPU.

Cache layout: ``CACHE/<dataset fingerprint>/<input-set key>-<hash of resize, size,
filter, format>/<image id>.npy``. A changed dataset or transform gets a new folder, so a
stale array is never reused. Files are written to a unique temporary name and renamed
into place, so processes on several nodes may prepare the same image at once.
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import InputSetSpec
from ..fsutil import atomic_write
from .mame import Dataset, DatasetError, open_rgb
from .shapes import transformed_arrays

FILTER = "bilinear"
CACHE_FORMAT = 1  # bump when the stored array layout or transform code changes


@dataclass(frozen=True)
class PrepareStats:
    images: int        # distinct ids asked for
    hits: int          # already in the cache
    decoded: int       # decoded from the JPEG (and resized) now
    seconds: float     # wall time of the whole prepare call
    bytes: int         # size of the prepared arrays


def input_set_dir(dataset: Dataset, spec: InputSetSpec, cache_root: Path) -> Path:
    params = {"resize": spec.resize, "size": list(spec.size), "filter": FILTER, "format": CACHE_FORMAT}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_root) / dataset.fingerprint / f"{spec.key}-{digest}"


class PreparedSet:
    """The images of one input set, prepared on first use and cached on disk."""

    def __init__(self, dataset: Dataset, input_set: InputSetSpec, cache_root: Path) -> None:
        self.dataset = dataset
        self.input_set = input_set
        self.dir = input_set_dir(dataset, input_set, cache_root)

    def shape(self, image_id: str) -> tuple[int, int]:
        """(height, width) of the prepared image."""
        return self._shapes[image_id]

    @functools.cached_property
    def _shapes(self) -> dict[str, tuple[int, int]]:
        # every image of the dataset at once, through the planner's own arithmetic
        t = self.dataset.table
        h, w = transformed_arrays(self.input_set, t.heights, t.widths)
        return dict(zip(t.ids, zip(h.tolist(), w.tolist(), strict=False), strict=False))

    def get(self, image_id: str) -> np.ndarray:
        """uint8 (height, width, 3) prepared pixels (read-only when they come from the cache)."""
        return self._get(image_id)[0]

    def prepare(self, ids: Iterable[str], workers: int = 1) -> PrepareStats:
        """Make sure every id is in the cache. Pillow releases the GIL while decoding and
        resizing, so ``workers`` threads use that many cores."""
        t0 = time.perf_counter()
        unique = list(dict.fromkeys(ids))
        for i in unique:
            if i not in self.dataset.shapes:
                raise DatasetError(f"image {i!r} is not in the dataset at {self.dataset.root}")

        def one(i: str) -> tuple[bool, int]:
            if self._cached(i) is not None:
                return True, 0
            arr = self._decode_and_store(i)
            return False, arr.nbytes

        if workers > 1 and len(unique) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(one, unique))
        else:
            results = [one(i) for i in unique]
        hits = sum(1 for hit, _ in results if hit)
        nbytes = sum(3 * h * w for h, w in (self.shape(i) for i in unique))
        return PrepareStats(images=len(unique), hits=hits, decoded=len(unique) - hits,
                            seconds=time.perf_counter() - t0, bytes=nbytes)

    # -- internals ------------------------------------------------------------------------

    def _path(self, image_id: str) -> Path:
        return self.dir / f"{image_id}.npy"

    def _get(self, image_id: str) -> tuple[np.ndarray, bool]:
        arr = self._cached(image_id)
        if arr is not None:
            return arr, True
        return self._decode_and_store(image_id), False

    def _cached(self, image_id: str) -> np.ndarray | None:
        """The cached array, or None if absent or unusable (then it is rebuilt)."""
        try:
            arr = np.load(self._path(image_id), mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            return None  # damaged file (e.g. a disk error): decode again and replace it
        h, w = self.shape(image_id)
        if arr.dtype != np.uint8 or arr.shape != (h, w, 3):
            return None
        return np.asarray(arr)

    def _decode_and_store(self, image_id: str) -> np.ndarray:
        h, w = self.shape(image_id)
        img = open_rgb(self.dataset.image_path(image_id), self.dataset.shapes[image_id])
        if (img.height, img.width) != (h, w):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self._path(image_id)
        try:
            atomic_write(final, lambda tmp: _save_npy(tmp, arr))
        except OSError as e:
            raise DatasetError(f"cannot write the prepared-image cache {final}: {e}") from None
        return arr


def _save_npy(path: Path, arr: np.ndarray) -> None:
    # through a file object: np.save given a name not ending in .npy would append ".npy"
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
