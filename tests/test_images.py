"""Reading, writing and converting images: benchmark/core/images.py."""

from __future__ import annotations

import errno
import logging
import warnings

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageOps

from benchmark.core.errors import BenchmarkError, ImageError
from benchmark.core.images import (
    from_tensor,
    list_images,
    read_image,
    resize,
    to_tensor,
    write_image,
)


@pytest.fixture
def rgb8() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)


def test_png_round_trip_8_bit(tmp_path, rgb8):
    image = rgb8.astype(np.float32) / 255
    write_image(tmp_path / "a.png", image)
    loaded = read_image(tmp_path / "a.png")
    assert loaded.dtype == np.float32 and loaded.shape == (20, 30, 3) and loaded.flags.c_contiguous
    np.testing.assert_array_equal(loaded, image)  # also proves RGB order survives OpenCV's BGR


def test_png_round_trip_16_bit_keeps_precision(tmp_path):
    image = np.random.default_rng(1).random((17, 23, 3)).astype(np.float32)
    write_image(tmp_path / "a.png", image, bit_depth=16)
    loaded = read_image(tmp_path / "a.png")
    assert np.abs(loaded - image).max() < 1e-4  # 8 bit would be off by up to 2e-3
    assert np.unique(np.round(loaded * 65535)).size > 256


def test_tiff_16_bit_and_float(tmp_path):
    values = np.random.default_rng(2).integers(0, 65536, size=(8, 9, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", values, photometric="rgb")
    np.testing.assert_allclose(read_image(tmp_path / "a.tif"), values / 65535, atol=1e-6)
    floats = np.array([[[-0.5, 0.25, 2.0]]], dtype=np.float32).repeat(4, 0).repeat(5, 1)
    tifffile.imwrite(tmp_path / "f.tif", floats, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif")[0, 0], [0.0, 0.25, 1.0])


def test_greyscale_becomes_three_equal_channels(tmp_path, rgb8):
    Image.fromarray(rgb8[..., 0]).save(tmp_path / "g.png")
    Image.fromarray(rgb8[..., 0]).save(tmp_path / "g.jpg", quality=100)
    for name in ("g.png", "g.jpg"):
        loaded = read_image(tmp_path / name)
        assert loaded.shape == (20, 30, 3)
        assert np.array_equal(loaded[..., 0], loaded[..., 1])
        assert np.array_equal(loaded[..., 0], loaded[..., 2])
    np.testing.assert_array_equal(read_image(tmp_path / "g.png")[..., 0], rgb8[..., 0] / np.float32(255))


def test_alpha_is_dropped_and_logged(tmp_path, rgb8, caplog):
    rgba = np.dstack([rgb8, np.full(rgb8.shape[:2], 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with caplog.at_level(logging.INFO, logger="benchmark.core.images"):
        loaded = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(loaded, rgb8 / np.float32(255))  # colour kept, not premultiplied
    messages = [r.getMessage() for r in caplog.records if r.name == "benchmark.core.images"]
    assert len(messages) == 1 and "alpha" in messages[0] and "a.png" in messages[0]


def test_exif_orientation_6_jpeg_is_transposed(tmp_path, rgb8):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb8).save(tmp_path / "o.jpg", exif=exif)
    assert read_image(tmp_path / "o.jpg").shape == (30, 20, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("extension", [".png", ".tif", ".jpg"])
def test_every_orientation_matches_pillow(tmp_path, rgb8, orientation, extension):
    """Our one orientation routine agrees with Pillow's exif_transpose for PNG, TIFF and JPEG."""
    path = tmp_path / f"o{extension}"
    if extension == ".tif":  # tifffile writes the baseline TIFF tag that cameras/editors use
        tifffile.imwrite(path, rgb8, photometric="rgb", extratags=[(0x0112, 3, 1, orientation, True)])
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(rgb8).save(path, exif=exif, **({"quality": 100} if extension == ".jpg" else {}))
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_array_equal(read_image(path), expected)


def test_corrupt_bytes_name_the_file(tmp_path, rgb8):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="garbage.jpg"):
        read_image(garbage)
    write_image(tmp_path / "c.png", rgb8 / 255.0)
    data = bytearray((tmp_path / "c.png").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 32] = bytes(32)  # zero a run inside the pixel data
    (tmp_path / "c.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match="c.png"):
        read_image(tmp_path / "c.png")


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
@pytest.mark.parametrize("extension", [".png", ".jpg", ".tif"])
def test_truncated_file_is_an_error_not_a_grey_image(tmp_path, rgb8, fraction, extension):
    path = tmp_path / f"t{extension}"
    write_image(path, rgb8 / 255.0)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ImageError, match=f"t\\{extension}"):
        read_image(path)


@pytest.mark.parametrize("bigtiff", [False, True])
def test_truncated_tiff_with_directory_first(tmp_path, rgb8, bigtiff):
    """tifffile puts the directory before the pixels; a cut then loses strip data, not tags."""
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, rgb8, photometric="rgb", bigtiff=bigtiff)
    np.testing.assert_array_equal(read_image(path), rgb8 / np.float32(255))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ImageError, match="t.tif: truncated TIFF"):
        read_image(path)


def test_text_file_named_png_missing_file_and_folder(tmp_path):
    (tmp_path / "note.png").write_text("not an image\n")
    with pytest.raises(ImageError, match="note.png"):
        read_image(tmp_path / "note.png")
    with pytest.raises(ImageError, match="absent.png: no such file"):
        read_image(tmp_path / "absent.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png: empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


def test_unsupported_channel_count_and_zero_size(tmp_path):
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((4, 4, 5), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(ImageError, match="five.tif: unsupported channel count 5"):
        read_image(tmp_path / "five.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile: "writing zero-size array to nonconformant TIFF"
        tifffile.imwrite(tmp_path / "zero.tif", np.zeros((0, 4), np.uint8))
    with pytest.raises(ImageError, match="zero.tif"):
        read_image(tmp_path / "zero.tif")


def test_atomic_write_leaves_only_the_target(tmp_path, rgb8):
    target = tmp_path / "out" / "a.png"
    write_image(target, rgb8 / 255.0)
    write_image(target, rgb8[::-1] / 255.0)  # overwrite in place
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]
    np.testing.assert_array_equal(read_image(target), rgb8[::-1] / np.float32(255))


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch, rgb8):
    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("benchmark.core.files.os.replace", fail)
    with pytest.raises(BenchmarkError, match="a.png: no space left on device"):
        write_image(tmp_path / "a.png", rgb8 / 255.0)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_arguments(tmp_path, rgb8):
    with pytest.raises(ValueError, match="bit_depth=12"):
        write_image(tmp_path / "a.png", rgb8 / 255.0, bit_depth=12)
    with pytest.raises(ValueError, match="16-bit"):
        write_image(tmp_path / "a.jpg", rgb8 / 255.0, bit_depth=16)
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "a.png", np.zeros((4, 4)))


def test_tensor_round_trip_and_shapes(rgb8):
    image = rgb8 / np.float32(255)
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 20, 30) and tensor.dtype == torch.float32 and tensor.is_contiguous()
    assert torch.equal(tensor[0, 1], torch.from_numpy(image[..., 1]))
    tensor[0, 0, 0, 0] = 5.0  # a copy: the numpy image is untouched
    assert image[0, 0, 0] <= 1.0
    np.testing.assert_array_equal(from_tensor(tensor[0])[1:], image[1:])
    assert from_tensor(tensor)[0, 0, 0] == 1.0  # clipped
    with pytest.raises(ValueError, match="shape"):
        from_tensor(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        to_tensor(np.zeros((4, 4)))


def test_resize_shapes_and_arguments(rgb8):
    image = rgb8 / np.float32(255)
    for interpolation in ("nearest", "bilinear", "bicubic", "area"):
        out = resize(image, (7, 11), interpolation)
        assert out.shape == (7, 11, 3) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0  # bicubic overshoot is clipped
    assert resize(image, (40, 60), "bicubic").shape == (40, 60, 3)
    with pytest.raises(ValueError, match="'lanczos'"):
        resize(image, (7, 11), "lanczos")
    with pytest.raises(ValueError, match="size"):
        resize(image, (0, 11))


def test_list_images_recursive_sorted_case_insensitive(tmp_path):
    names = ("b.PNG", "a.jpg", "sub/c.TIFF", "sub/deeper/d.JpEg", "notes.txt", "._a.jpg", ".cache/e.png")
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.jpg", "b.PNG", "sub/c.TIFF", "sub/deeper/d.JpEg"]
    with pytest.raises(BenchmarkError, match="not a folder"):
        list_images(tmp_path / "missing")


def test_8_bit_files_read_as_their_uint8_pixels_and_write_back_unchanged(tmp_path, rgb8):
    write_image(tmp_path / "a.png", rgb8.astype(np.float32) / 255)
    pixels = read_image(tmp_path / "a.png", keep_8bit=True)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, rgb8)
    write_image(tmp_path / "b.png", pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "b.png", keep_8bit=True), rgb8)
    write_image(tmp_path / "c.tif", pixels, bit_depth=16)  # 8 -> 16 bit: x 257, the same [0, 1] values
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif"), read_image(tmp_path / "a.png"))
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), rgb8[..., 0])
    assert read_image(grey, keep_8bit=True).shape == (*rgb8.shape[:2], 3)
    cv2.imwrite(str(tmp_path / "d.png"), rgb8.astype(np.uint16) * 257)  # 16-bit files stay float
    assert read_image(tmp_path / "d.png", keep_8bit=True).dtype == np.float32
