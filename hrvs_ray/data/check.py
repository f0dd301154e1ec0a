"""Every problem with a dataset's images and metadata, found in one pass.

Pillow and numpy, no torch, no ray. ``check_image`` classifies one file (from its header
alone, or with a full decode); ``check_images`` runs it over many files: header reads in this
process (20,000 headers take under a second; threads did not help, parsing holds the
GIL), full decodes on a process pool, one process per core; ``metadata_problems`` looks
at the CSV.

Problem kinds (``KINDS``): the file is ``missing``; ``unreadable`` (permissions, a
folder where a file should be); ``empty``; ``unidentifiable`` (not an image Pillow
knows); ``too-large`` (more pixels than the metadata's largest image allows: Pillow
would refuse it as a decompression bomb); ``size`` (header size differs from the CSV);
``truncated`` / ``corrupt`` (full decode only); ``unknown-medium`` and ``metadata``
(CSV rows).
"""
from __future__ import annotations

import os
import stat
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .mame import PIXEL_LIMIT_MARGIN, DatasetError, raise_pixel_limit, read_labels
from .shapes import LABELS_CSV, ShapeTable

KINDS = ("missing", "unreadable", "empty", "unidentifiable", "too-large", "size", "truncated", "corrupt",
         "unknown-medium", "metadata")
CHUNK = 64   # images per pool task: enough to hide the task overhead, small enough for a smooth bar

Item = tuple[str, int, int]   # (path, expected height, expected width)


@dataclass(frozen=True)
class Problem:
    file: str
    kind: str       # one of KINDS
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def pixel_limit(max_pixels: int) -> int:
    """The most pixels an image may have: the metadata's largest plus the margin that
    ``mame.raise_pixel_limit`` gives Pillow."""
    return int(max_pixels) + int(max_pixels * PIXEL_LIMIT_MARGIN)


def check_image(path: str, expected: tuple[int, int], limit: int, full: bool) -> list[Problem]:
    """The problems of one image file (empty when it is fine). ``expected`` is the CSV's
    (height, width); ``limit`` the most pixels allowed; ``full`` decodes every pixel
    (finds truncated files) instead of reading the header only."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [Problem(path, "missing", "no such file (is the data/ folder complete?)")]
    except OSError as e:
        return [Problem(path, "unreadable", f"cannot stat: {e.strerror or e}")]
    if stat.S_ISDIR(st.st_mode):
        return [Problem(path, "unreadable", "is a directory, not an image file")]
    if not stat.S_ISREG(st.st_mode):
        return [Problem(path, "unreadable", "not a regular file")]
    if st.st_size == 0:
        return [Problem(path, "empty", "0 bytes")]
    return _open_and_check(path, expected, limit, full)


def _open_and_check(path: str, expected: tuple[int, int], limit: int, full: bool) -> list[Problem]:
    raise_pixel_limit(limit)   # Pillow must not refuse what the metadata allows; only ever raised
    try:
        with Image.open(path) as im:
            h, w = im.height, im.width
            if h * w > limit:
                return [_too_large(path, h, w, expected, limit)]
            if (h, w) != tuple(expected):
                return [Problem(path, "size", f"image is {h}x{w} (height x width) but the metadata "
                                              f"says {expected[0]}x{expected[1]}")]
            if full:
                im.load()
    except PermissionError as e:
        return [Problem(path, "unreadable", f"permission denied ({e.strerror or e})")]
    except UnidentifiedImageError:
        return [Problem(path, "unidentifiable", f"not an image Pillow can read (starts with {_head(path)})")]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return [Problem(path, "too-large", f"refused by Pillow's decompression-bomb limit: {e}")]
    except OSError as e:
        kind = "truncated" if "truncated" in str(e) else "corrupt"
        return [Problem(path, kind, f"cannot decode: {e}")]
    except (ValueError, SyntaxError, EOFError) as e:
        return [Problem(path, "corrupt", f"cannot decode: {type(e).__name__}: {e}")]
    return []


def _too_large(path: str, h: int, w: int, expected: tuple[int, int], limit: int) -> Problem:
    return Problem(path, "too-large", f"image is {h}x{w} ({_px(h * w)}) but the metadata says "
                                      f"{expected[0]}x{expected[1]}; above {_px(limit)} (the metadata's "
                                      f"largest image) Pillow refuses it as a decompression bomb")


def _px(n: int) -> str:
    return f"{n / 1e6:.1f} MP" if n >= 1_000_000 else f"{n:,} px"


def _head(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return repr(f.read(8))
    except OSError:
        return "unreadable bytes"


def _check_chunk(items: Sequence[Item], limit: int, full: bool) -> list[Problem]:
    return [p for path, h, w in items for p in check_image(path, (h, w), limit, full)]


def check_images(items: Sequence[Item], limit: int, full: bool, workers: int | None = None,
                 progress: bool = False) -> list[Problem]:
    """``check_image`` over every item: full decodes on a process pool of ``workers``
    (default: the cores this process may use), header reads here. Problems come back in
    the order of ``items``; a tqdm bar on stderr when ``progress``."""
    workers = min(workers or len(os.sched_getaffinity(0)), -(-len(items) // CHUNK)) if full else 1
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    bar = _bar(len(items), "decoding" if full else "reading headers", progress)
    out: list[Problem] = []
    # Pillow only warns between its limit and twice that: make the warning an error
    with warnings.catch_warnings():
        _bomb_warning_is_error()
        try:
            with _pool(workers) as pool:
                for chunk, found in zip(chunks, pool.map(_check_chunk, chunks, [limit] * len(chunks),
                                                         [full] * len(chunks)), strict=False):
                    out += found
                    bar.update(len(chunk))
        finally:
            bar.close()
    return out


def _bomb_warning_is_error() -> None:
    warnings.simplefilter("error", Image.DecompressionBombWarning)


class _InProcess:
    """The ``map`` of an executor, run here (no pool to start for one worker)."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def map(fn, *iterables):
        return map(fn, *iterables)


def _pool(workers: int) -> ProcessPoolExecutor | _InProcess:
    if workers > 1:
        return ProcessPoolExecutor(max_workers=workers, initializer=_bomb_warning_is_error)
    return _InProcess()


def _bar(total: int, what: str, on: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="img", file=sys.stderr, disable=not on, leave=False)


def metadata_problems(root: Path, csv_name: str, table: ShapeTable, subset: str) -> list[Problem]:
    """CSV rows of ``subset`` whose medium is not in MAMe_labels.csv, and image names
    listed twice. ``table`` is the whole CSV in file order (row i is on line i + 2)."""
    csv_path = f"{root / csv_name}"
    labels_path = root / LABELS_CSV
    problems: list[Problem] = []
    rows = [i for i, s in enumerate(table.subsets) if subset == "all" or s == subset]
    if labels_path.is_file():
        try:
            labels = set(read_labels(labels_path))
        except (DatasetError, OSError, UnicodeDecodeError) as e:
            return [Problem(str(labels_path), "metadata", str(e))]
        problems += [Problem(f"{csv_path}:{i + 2}", "unknown-medium",
                             f"{table.ids[i]}: medium {table.mediums[i].strip()!r} is not in {LABELS_CSV}")
                     for i in rows if table.mediums[i].strip() not in labels]
    counts = Counter(table.ids[i] for i in rows)
    problems += [Problem(f"{csv_path}:{i + 2}", "metadata", f"{table.ids[i]}: listed more than once")
                 for i in rows if counts[table.ids[i]] > 1]
    return problems


def items_for(root: Path, ids: Iterable[str], shapes: dict[str, tuple[int, int]]) -> list[Item]:
    """(path, height, width) of each id, in the MAMe layout ``root/data/<id>``."""
    data = root / "data"
    return [(str(data / i), *shapes[i]) for i in ids]


def format_problems(problems: Sequence[Problem]) -> str:
    """A plain-text table: file, kind, detail (one line per problem)."""
    wf = min(60, max(len("file"), *(len(p.file) for p in problems)))
    wk = max(len("kind"), *(len(p.kind) for p in problems))
    rows = [f"{'file':<{wf}}  {'kind':<{wk}}  detail"]
    rows += [f"{p.file:<{wf}}  {p.kind:<{wk}}  {p.detail}" for p in problems]
    return "\n".join(rows)
