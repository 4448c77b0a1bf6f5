"""A folder dataset's cache key at run start: each file's content hash is kept with its size and
times, so an untouched folder is listed, not read, and a changed file is read again."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ggo.data import filehash, prepare_cache
from ggo.data.synthetic import make_synthetic_folder

SMALL = {"resolution": 32, "folds": 2, "test_fraction": 0.25, "progress": False, "layout": "folder"}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Twelve films with BMP masks: an edit that keeps the picture's size keeps the file's size."""
    root = make_synthetic_folder(tmp_path / "ds", 12, 64, distinct=12, link=False)
    for png in sorted((root / "masks").glob("*.png")):
        assert cv2.imwrite(str(png.with_suffix(".bmp")), cv2.imread(str(png), cv2.IMREAD_GRAYSCALE))
        png.unlink()
    return root


def counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    read: list[Path] = []
    real = filehash.file_sha256

    def counted(path: Path) -> str:
        read.append(path)
        return real(path)

    monkeypatch.setattr(filehash, "file_sha256", counted)
    return read


def test_an_untouched_folder_is_listed_but_not_read_again(folder: Path, tmp_path: Path, monkeypatch) -> None:
    read = counting_reads(monkeypatch)
    first = prepare_cache(folder, cache_dir=tmp_path / "cache", **SMALL)
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    assert len(read) == files  # the first start reads every file once
    read.clear()
    again = prepare_cache(folder, cache_dir=tmp_path / "cache", **SMALL)
    assert again.path == first.path and read == []


def test_a_mask_edited_to_the_same_size_rebuilds_and_only_it_is_read(folder: Path, tmp_path: Path, monkeypatch) -> None:
    before = prepare_cache(folder, cache_dir=tmp_path / "cache", **SMALL)
    mask = folder / "masks" / "film-000001.bmp"
    size = mask.stat().st_size
    time.sleep(0.01)  # a later modification time, as any editor leaves
    edited = np.zeros((64, 64), np.uint8)
    edited[10:30, 10:30] = 255
    assert cv2.imwrite(str(mask), edited)
    assert mask.stat().st_size == size
    read = counting_reads(monkeypatch)
    after = prepare_cache(folder, cache_dir=tmp_path / "cache", **SMALL)
    assert read == [mask]
    assert after.path != before.path
    row = int(np.flatnonzero(after.manifest["name"] == "film-000001.png")[0])
    assert not np.array_equal(np.load(after.path / "masks.npy")[row], np.load(before.path / "masks.npy")[row])


def test_a_file_with_its_old_size_and_modification_time_put_back_is_still_read(folder: Path, tmp_path: Path, monkeypatch) -> None:
    """``cp -p`` or ``os.utime`` can restore a modification time; the status-change time they cannot."""
    prepare_cache(folder, cache_dir=tmp_path / "cache", **SMALL)
    mask = folder / "masks" / "film-000002.bmp"
    stat = mask.stat()
    edited = np.zeros((64, 64), np.uint8)
    edited[40:50, 5:60] = 255
    assert cv2.imwrite(str(mask), edited)
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (mask.stat().st_size, mask.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    read = counting_reads(monkeypatch)
    prepare_cache(folder, cache_dir=tmp_path / "cache", **SMALL)
    assert read == [mask]


def test_the_key_is_the_content_digest_with_or_without_kept_hashes(folder: Path, tmp_path: Path) -> None:
    from ggo.data.folder import folder_digest

    plain = folder_digest(folder)
    assert folder_digest(folder, tmp_path / "store") == plain  # hashes written
    assert folder_digest(folder, tmp_path / "store") == plain  # and read back
    (tmp_path / "store").chmod(0o500)  # a read-only store: still the right key
    try:
        (folder / "patients.csv").write_text("image,patient\n")
        assert folder_digest(folder, tmp_path / "store") == folder_digest(folder) != plain
    finally:
        (tmp_path / "store").chmod(0o700)


def test_the_key_is_the_one_caches_were_built_under_before_hashes_were_kept(folder: Path, tmp_path: Path) -> None:
    """The digest every file's content gave when each start read them all (nested files too, in
    the order of sorted paths): caches built then are found, not rebuilt."""
    import hashlib

    from ggo.data.folder import folder_digest

    (folder / "masks" / "sub-dir").mkdir()  # '-' sorts before '/' as a character, after it as a path part
    (folder / "masks" / "sub-dir" / "x.png").write_bytes(b"abc")
    (folder / "masks" / "sub-dir-a").write_bytes(b"e")
    before = hashlib.sha256(b"folder\0")
    paths = [p for sub in ("images", "masks", "lungs") for p in sorted((folder / sub).rglob("*")) if p.is_file()]
    for path in [*paths, folder / "patients.csv"]:
        before.update(f"{path.relative_to(folder).as_posix()}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    assert folder_digest(folder, tmp_path / "store") == folder_digest(folder) == before.hexdigest()
