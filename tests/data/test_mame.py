"""The MAMe on-disk layout: opening, labels, errors a user can act on, image decoding limits."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrvs_ray.config import DatasetSpec, SyntheticSpec
from hrvs_ray.data.mame import DatasetError, load_image, open_dataset, raise_pixel_limit, read_labels
from hrvs_ray.data.shapes import LABELS_CSV, METADATA_CSV, read_metadata_csv
from hrvs_ray.data.synthetic import generate
from tests.helpers import MAME_CSV

SYN = SyntheticSpec(count=16, scale=0.03, seed=1)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mame")
    generate(root, SYN)
    return root


def _spec(root: Path, subset: str = "all", kind: str = "mame") -> DatasetSpec:
    return DatasetSpec(kind=kind, path=str(root), subset=subset, synthetic=SYN if kind == "synthetic" else None)


def test_missing_dataset_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(DatasetError) as e:
        open_dataset(_spec(tmp_path / "nowhere"))
    msg = str(e.value)
    assert str((tmp_path / "nowhere").resolve()) in msg
    assert "https://hpai.bsc.es/MAMe-dataset/" in msg and "MAMe_dataset.csv" in msg and "data/" in msg
    assert "hrvs-ray data synth --out" in msg and "dataset.kind: synthetic" in msg


def test_missing_image_folder_is_reported(tmp_path, synth_root):
    (tmp_path / METADATA_CSV).write_bytes((synth_root / METADATA_CSV).read_bytes())
    with pytest.raises(DatasetError, match="data/ image folder"):
        open_dataset(_spec(tmp_path))


def test_open_synthetic_kind_generates_then_opens(tmp_path):
    ds = open_dataset(_spec(tmp_path / "syn", kind="synthetic"))
    assert (tmp_path / "syn" / METADATA_CSV).is_file() and len(ds) == SYN.count


def test_dataset_contents(synth_root):
    ds = open_dataset(_spec(synth_root))
    meta = read_metadata_csv(synth_root / METADATA_CSV)
    assert list(ds.table.ids) == sorted(meta.ids)
    assert len(ds.labels) == 29 and ds.labels["Albumen photograph"] == 0 and ds.labels["Woven fabric"] == 28
    for i, m, w, h in zip(meta.ids, meta.mediums, meta.widths.tolist(), meta.heights.tolist(), strict=False):
        assert ds.shapes[i] == (h, w)
        assert ds.label(i) == ds.labels[m]
        assert ds.image_path(i) == synth_root / "data" / i and ds.image_path(i).is_file()
    assert re.fullmatch(r"[0-9a-f]{16}", ds.fingerprint)
    assert open_dataset(_spec(synth_root)).fingerprint == ds.fingerprint


def test_subset_selection(synth_root):
    meta = read_metadata_csv(synth_root / METADATA_CSV)
    for subset in sorted(set(meta.subsets)):
        ds = open_dataset(_spec(synth_root, subset))
        assert set(ds.table.subsets) == {subset}
        assert len(ds) == sum(s == subset for s in meta.subsets)
    missing = {"train", "val", "test"} - set(meta.subsets)
    for subset in missing:
        with pytest.raises(DatasetError, match="no images in subset"):
            open_dataset(_spec(synth_root, subset))


def test_fingerprint_follows_the_metadata(tmp_path, synth_root):
    a = open_dataset(_spec(synth_root)).fingerprint
    other = tmp_path / "other"
    generate(other, SyntheticSpec(count=SYN.count, scale=SYN.scale, seed=SYN.seed, quality=60))
    assert (other / METADATA_CSV).read_bytes() == (synth_root / METADATA_CSV).read_bytes()
    assert open_dataset(_spec(other)).fingerprint != a  # same CSV, different pixels


def test_labels_file_order_and_fallback(tmp_path, synth_root):
    for name in (METADATA_CSV,):
        (tmp_path / name).write_bytes((synth_root / name).read_bytes())
    (tmp_path / "data").mkdir()
    ds = open_dataset(_spec(tmp_path))          # no labels file: sorted mediums of the metadata
    mediums = sorted(set(read_metadata_csv(tmp_path / METADATA_CSV).mediums))
    assert ds.labels == {m: i for i, m in enumerate(mediums)}
    (tmp_path / LABELS_CSV).write_text("".join(f"{i},{m}\n" for i, m in enumerate(reversed(mediums))))
    assert open_dataset(_spec(tmp_path)).labels[mediums[0]] == len(mediums) - 1
    (tmp_path / LABELS_CSV).write_text("0,Bronze\n2,Gold\n")
    with pytest.raises(DatasetError, match="without gaps"):
        open_dataset(_spec(tmp_path))
    (tmp_path / LABELS_CSV).write_text("0,Nothing we use\n")
    with pytest.raises(DatasetError, match="not listed"):
        open_dataset(_spec(tmp_path))


def test_real_labels_file_reads_29_mediums():
    real = MAME_CSV.parent / LABELS_CSV
    if not real.is_file():
        pytest.skip("real MAMe labels not on this machine")
    names = read_labels(real)
    assert len(names) == 29 and names[17] == "Oil on canvas" and names == sorted(names)


def test_malformed_metadata_names_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / METADATA_CSV).write_text("Image file,Medium,Subset,Width,Height\na.jpg,Gold,train,abc,10\n")
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / METADATA_CSV))):
        open_dataset(_spec(tmp_path))


def test_load_image_pixels_and_size_check(synth_root):
    ds = open_dataset(_spec(synth_root))
    i = ds.table.ids[0]
    px = load_image(ds.image_path(i), ds.shapes[i])
    assert px.dtype == np.uint8 and px.shape == (*ds.shapes[i], 3) and px.std() > 5
    h, w = ds.shapes[i]
    with pytest.raises(DatasetError) as e:
        load_image(ds.image_path(i), (h + 1, w))
    assert i in str(e.value) and f"{h}x{w}" in str(e.value) and f"{h + 1}x{w}" in str(e.value)


def test_grey_and_png_images_become_rgb(tmp_path):
    Image.fromarray(np.arange(600, dtype=np.uint8).reshape(20, 30) % 251, "L").save(tmp_path / "g.jpg")
    Image.new("RGBA", (7, 5), (10, 20, 30, 40)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "g.jpg").shape == (20, 30, 3)
    assert load_image(tmp_path / "a.png", (5, 7))[0, 0].tolist() == [10, 20, 30]


def test_corrupt_images_give_dataset_error_naming_the_file(tmp_path, synth_root):
    src = (synth_root / "data" / "synth_000000.jpg").read_bytes()
    truncated = tmp_path / "truncated_one.jpg"
    truncated.write_bytes(src[: len(src) // 2])
    garbage = tmp_path / "garbage_one.jpg"
    garbage.write_bytes(b"this is not a jpeg" * 10)
    for bad in (truncated, garbage, tmp_path / "missing_one.jpg"):
        with pytest.raises(DatasetError) as e:
            load_image(bad)
        assert bad.name in str(e.value)
    with pytest.raises(DatasetError, match="truncated"):
        load_image(truncated)


def test_pixel_limit_raised_to_the_metadata_and_no_further(synth_root, monkeypatch):
    ds_meta = read_metadata_csv(synth_root / METADATA_CSV)
    largest = int((ds_meta.widths * ds_meta.heights).max())
    big = synth_root / "data" / ds_meta.ids[int(np.argmax(ds_meta.widths * ds_meta.heights))]
    # Pretend Pillow's limit is small, so this small image is "too large" (Pillow refuses
    # above twice the limit); monkeypatch restores the real limit afterwards.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", largest // 3)
    with pytest.raises(DatasetError, match="decompression-bomb"):
        load_image(big)
    ds = open_dataset(_spec(synth_root))
    assert Image.MAX_IMAGE_PIXELS == largest + largest // 100   # the need plus 1 %, no more
    assert load_image(ds.image_path(big.name)).shape[:2] == ds.shapes[big.name]


def test_raise_pixel_limit_never_lowers_nor_unlimits(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    assert raise_pixel_limit(10) == 1_000_000
    assert raise_pixel_limit(373_000_000) == 373_000_000 + 3_730_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert raise_pixel_limit(10) is not None and Image.MAX_IMAGE_PIXELS > 80_000_000


def test_real_metadata_limit_covers_the_largest_mame_image(monkeypatch):
    real = MAME_CSV.parent / METADATA_CSV
    if not real.is_file():
        pytest.skip("real MAMe metadata not on this machine")
    t = read_metadata_csv(real)
    largest = int((t.widths * t.heights).max())
    assert largest > 370_000_000                     # MAMe's 373 MP image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    limit = raise_pixel_limit(largest)
    assert largest <= limit <= largest * 1.011


def test_real_metadata_mediums_all_have_labels(tmp_path):
    """The authors' CSV writes "Woven fabric " with a trailing space; it must still get its label."""
    real = MAME_CSV.parent
    if not (real / METADATA_CSV).is_file():
        pytest.skip("real MAMe metadata not on this machine")
    for name in (METADATA_CSV, LABELS_CSV):
        (tmp_path / name).write_bytes((real / name).read_bytes())
    (tmp_path / "data").mkdir()
    ds = open_dataset(DatasetSpec(kind="mame", path=str(tmp_path), subset="all"))
    assert len(ds) == 37407 and len(ds.labels) == 29
    woven = next(i for i in ds.table.ids if ds.mediums[i] == "Woven fabric")
    assert ds.label(woven) == 28
    assert sorted(set(ds.label(i) for i in ds.table.ids)) == list(range(29))
