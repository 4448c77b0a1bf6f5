"""The one image reader: half-decodable JPEG/PNG files are refused, good files decode as cv2.imread does."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ggo.data.imagefile import ImageFileError, read_image_file


def film(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """A textured gray image: it compresses to many bytes, so a cut lands in the pixel data."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    return np.clip(120 + 50 * np.sin(yy / 7) * np.cos(xx / 11) + rng.normal(0, 12, (height, width)), 0, 255).astype(np.uint8)


GOOD = {
    "gray.png": film(),
    "film16.png": film().astype(np.uint16) * 257,
    "rgba.png": cv2.cvtColor(film(), cv2.COLOR_GRAY2BGRA),
    "colour.jpg": cv2.cvtColor(film(), cv2.COLOR_GRAY2BGR),
    "gray.jpeg": film(),
    "film16.tif": film().astype(np.uint16) * 257,
    "gray.bmp": film(),
    "gray.webp": film(),
}


def write_cut(path: Path, image: np.ndarray, fraction: float, params: tuple[int, ...] = ()) -> Path:
    """Write ``image`` to ``path`` and keep only the first ``fraction`` of its bytes."""
    ok, encoded = cv2.imencode(path.suffix, image, list(params))
    assert ok
    data = encoded.tobytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_files_decode_exactly_as_cv2_imread(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    assert cv2.imwrite(str(path), GOOD[name])
    for flags in (cv2.IMREAD_UNCHANGED, cv2.IMREAD_GRAYSCALE):
        expected = cv2.imread(str(path), flags)
        got = read_image_file(path, flags=flags)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), (name, flags)
        assert np.array_equal(read_image_file(path.read_bytes(), flags=flags), expected)
    assert read_image_file(path).dtype == (np.uint16 if "16" in name else np.uint8)


@pytest.mark.parametrize(
    ("name", "image", "params"),
    [
        ("cut.jpg", film(), ()),
        ("cut-colour.jpeg", cv2.cvtColor(film(), cv2.COLOR_GRAY2BGR), ()),
        ("cut-progressive.jpg", film(), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
        ("cut.png", film(), ()),
        ("cut16.png", film().astype(np.uint16) * 257, ()),
    ],
)
@pytest.mark.parametrize("fraction", [1 / 3, 0.97])
def test_truncated_jpeg_and_png_are_refused_naming_the_file(
    name: str, image: np.ndarray, params: tuple[int, ...], fraction: float, tmp_path: Path
) -> None:
    # OpenCV's imread decodes such a JPEG as far as the data goes and greys the rest.
    path = write_cut(tmp_path / name, image, fraction, params)
    with pytest.raises(ImageFileError, match=rf"{name}: truncated or corrupt (JPEG|PNG) .*copy the file again") as caught:
        read_image_file(path)
    assert caught.value.name == str(path) and "truncated" in caught.value.reason
    with pytest.raises(ImageFileError, match=r"^row 3: truncated or corrupt"):
        read_image_file(path.read_bytes(), name="row 3")  # what the served model receives


@pytest.mark.parametrize("name", ["cut.tif", "cut.bmp", "cut.webp"])
def test_truncated_tiff_bmp_and_webp_are_refused_too(name: str, tmp_path: Path) -> None:
    path = write_cut(tmp_path / name, film(), 0.5)
    with pytest.raises(ImageFileError, match=rf"{name}: "):
        read_image_file(path)


def test_a_png_with_a_damaged_chunk_is_refused(tmp_path: Path) -> None:
    data = bytearray(cv2.imencode(".png", film())[1].tobytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the image data: its chunk's CRC no longer matches
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageFileError, match=r"flipped\.png: truncated or corrupt PNG"):
        read_image_file(path)


def test_empty_missing_and_non_image_files_say_so(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageFileError, match=r"empty\.png: the file is empty"):
        read_image_file(tmp_path / "empty.png")
    with pytest.raises(ImageFileError, match=r"notes\.png: not an image ggo reads: its first bytes are not those of a PNG, JPEG"):
        read_image_file(tmp_path / "notes.png")
    with pytest.raises(FileNotFoundError, match=r"missing\.png: no such file"):
        read_image_file(tmp_path / "missing.png")


def test_pixel_limit_applies_from_the_header_and_can_be_lifted(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), film(200, 300))
    with pytest.raises(ImageFileError, match=r"big\.png: 300 x 200 pixels .* over the 0.05 megapixel limit"):
        read_image_file(path, max_pixels=50_000)
    assert read_image_file(path, max_pixels=None).shape == (200, 300)


def test_only_png_jpeg_tiff_bmp_and_webp_are_read_by_their_first_bytes(tmp_path: Path) -> None:
    from hostile_images import pnm, radiance_hdr

    for name, data in {"film.hdr": radiance_hdr(64, 48), "film.pgm": pnm(64, 48)}.items():
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None, "OpenCV would decode it"
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageFileError, match=rf"{name}: not an image ggo reads: its first bytes are not those of a PNG, JPEG, TIFF, BMP or WebP file$"):
            read_image_file(tmp_path / name)
    # A PNG named .jpg is read by what it is, not by its name.
    assert cv2.imwrite(str(tmp_path / "film.png"), film())
    (tmp_path / "named.jpg").write_bytes((tmp_path / "film.png").read_bytes())
    assert np.array_equal(read_image_file(tmp_path / "named.jpg"), film())


def test_a_png_whose_header_a_careful_parser_refuses_is_never_decoded() -> None:
    from hostile_images import damaged_chunk_png

    small = damaged_chunk_png(100, 100)
    assert cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_UNCHANGED).shape == (100, 100), "OpenCV reads it whole"
    with pytest.raises(ImageFileError, match=r"^row 0: its PNG header cannot be read \(broken PNG file \(bad header checksum in b'tEXt'\)\)"):
        read_image_file(small, name="row 0")


def test_sizes_come_from_the_header_before_any_pixel_is_decoded() -> None:
    import psutil

    from hostile_images import damaged_chunk_png, zero_png

    from ggo.data.imagefile import read_header

    bomb = zero_png(20_000, 20_000)  # 0.4 MB that inflate to 400 MB
    header = read_header(bomb, "bomb", max_pixels=None)
    assert (header.format, header.width, header.height, header.mode) == ("PNG", 20_000, 20_000, "L")
    rss = psutil.Process().memory_info().rss
    with pytest.raises(ImageFileError, match=r"^bomb: 20000 x 20000 pixels \(400 megapixels\) is over the 100 megapixel limit"):
        read_image_file(bomb, name="bomb")
    with pytest.raises(ImageFileError, match=r"^damaged: its PNG header cannot be read"):
        read_image_file(damaged_chunk_png(10_400, 10_400), name="damaged")  # 108 megapixels behind a broken chunk
    assert psutil.Process().memory_info().rss - rss < 50e6, "nothing was decoded"


def test_opencv_pixel_cap_is_ggos_limit_unless_the_environment_sets_one() -> None:
    import os
    import subprocess
    import sys

    code = "import os, ggo.data.imagefile as f; print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'], f.MAX_PIXELS)"
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["100000000", "100000000"]
    env["OPENCV_IO_MAX_IMAGE_PIXELS"] = "5000000"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "5000000"
