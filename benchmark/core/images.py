"""The one place images are read, written and converted (DESIGN.md §2).

Inside the harness an image is ``numpy.float32`` HxWx3, RGB, sRGB-encoded, in [0, 1]; models see
torch ``1x3xHxW`` float32. Which decoder reads what, and why:

- PNG: OpenCV, which keeps 16 bit and (via libpng) rejects corrupt or truncated data. A walk over
  the chunks first checks the file reaches IEND and finds the eXIf orientation without decoding.
- TIFF: tifffile (8/16 bit, float; pixels in stored order). Not OpenCV: its TIFF reader applies
  some orientations itself and, in 5.0, fails on orientations 5-8. Compressions tifffile cannot
  decode without ``imagecodecs`` (LZW, JPEG, PackBits) fall back to Pillow for 8-bit data and to
  OpenCV for deeper data without an orientation tag.
- JPEG, BMP, WebP: Pillow, which raises on truncated data (OpenCV 4.x's JPEG reader can return
  a grey-filled image with only a warning on stderr).

EXIF orientation is applied in one place (``_apply_orientation``) for every format.
"""

from __future__ import annotations

import io
import logging
import struct
from pathlib import Path

import cv2
import numpy as np
import tifffile
import torch
from PIL import Image, UnidentifiedImageError

from benchmark.core.errors import BenchmarkError, ImageError
from benchmark.core.files import write_bytes_atomic

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
INTERPOLATIONS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}

DEFAULT_MAX_PIXELS = 100_000_000  # larger images are refused from their header, before decoding
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_ORIENTATION_TAG = 0x0112
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
                    16: 8, 17: 8, 18: 8}  # bytes per value of each TIFF field type
_TIFF_INTEGER_FORMATS = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8


class _DecodeError(Exception):
    """A reason a file cannot be used; ``read_image`` prefixes the path."""


# ---------------------------------------------------------------------------------------------
# Reading


def read_image(
    path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS, keep_8bit: bool = False
) -> np.ndarray:
    """Read an image file as float32 HxWx3 RGB in [0, 1], EXIF orientation applied; with
    ``keep_8bit``, an 8-bit file comes back as its uint8 HxWx3 pixels instead (no float copy).

    An image of more than ``max_pixels`` pixels (by its header) is refused before decoding: a
    small file can declare a huge image (a decompression bomb; Pillow guards the same way).

    8-bit data is divided by 255, 16-bit by 65535; float TIFFs are clipped to [0, 1] (NaN → 0).
    Grey becomes three equal channels; an alpha channel is dropped and a line is logged.
    Raises ``ImageError("<path>: <reason>")`` for anything that is not a complete, usable image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        dangling = path.is_symlink()
        raise ImageError(f"{path}: {'dangling symbolic link' if dangling else 'no such file'}") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image file") from None
    except OSError as error:
        raise ImageError(f"{path}: cannot read file ({error.strerror or error})") from None
    if not data:
        raise ImageError(f"{path}: empty file")
    try:
        if data.startswith(_PNG_SIGNATURE):
            pixels, orientation = _decode_png(data, path, max_pixels)
        elif data[:4] in _TIFF_SIGNATURES:
            pixels, orientation = _decode_tiff(data, max_pixels)
        else:
            pixels, orientation = _decode_pillow(data, max_pixels)
        return _to_rgb(pixels, orientation, path, keep_8bit)
    except _DecodeError as error:
        raise ImageError(f"{path}: {error}") from error
    except Exception as error:  # decoder libraries raise many types; all mean "unusable file"
        raise ImageError(f"{path}: cannot decode image ({_library_message(error)})") from error


def _library_message(error: Exception) -> str:
    """A decoder's complaint on one line; OpenCV's ``file:line: error: (-215:Assertion failed) expr
    in function 'f'`` reduced to its expression."""
    text = " ".join(str(error).split())
    if isinstance(error, cv2.error):
        text = text.split("Assertion failed) ", 1)[-1].split(" in function")[0]
        return f"OpenCV could not decode it: {text[:160]}"
    return f"{type(error).__name__}: {text[:200]}"


def _check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise _DecodeError(
            f"{width}x{height} = {width * height} pixels is more than max_pixels={max_pixels} "
            "(data.max_pixels, apply --max-pixels); not decoded"
        )


def _decode_png(data: bytes, path: Path, max_pixels: int | None) -> tuple[np.ndarray, int]:
    if data[12:16] == b"IHDR":  # the first chunk: width and height, big-endian
        _check_pixels(*struct.unpack(">II", data[16:24]), max_pixels)
    orientation = _png_orientation(data, path)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise _DecodeError("corrupt PNG data (OpenCV/libpng could not decode it)")
    return _bgr_to_rgb(pixels), orientation


def _png_orientation(data: bytes, path: Path) -> int:
    """Walk the PNG chunks: reject a file that stops before IEND, return the eXIf orientation."""
    position, exif = len(_PNG_SIGNATURE), None
    while position + 8 <= len(data):
        length, chunk_type = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length  # length, type, data, CRC
        if end > len(data):
            raise _DecodeError(f"truncated PNG ({chunk_type.decode('latin-1')} chunk cut off)")
        if chunk_type == b"eXIf":
            exif = data[position + 8 : position + 8 + length]
        if chunk_type == b"IEND":
            break
        position = end
    else:
        raise _DecodeError("truncated PNG (file ends before the IEND chunk)")
    if exif is None:
        return 1
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        return int(parsed.get(_ORIENTATION_TAG, 1))
    except Exception:  # an unreadable metadata block should not make the pixels unusable
        log.warning("%s: unreadable eXIf chunk ignored; orientation assumed normal", path)
        return 1


def _decode_tiff(data: bytes, max_pixels: int | None) -> tuple[np.ndarray, int]:
    _check_tiff_complete(data)
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        if len(tiff.pages) == 0:
            raise _DecodeError("truncated or corrupt TIFF (no readable image directory)")
        page = tiff.pages.first
        _check_pixels(page.imagewidth, page.imagelength, max_pixels)
        orientation = int(page.tags.valueof(_ORIENTATION_TAG, 1))
        deep = page.bitspersample > 8 or page.sampleformat == tifffile.SAMPLEFORMAT.IEEEFP
        pixels = None
        if page.photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
            try:
                pixels = page.asarray()
            except (KeyError, ValueError) as error:
                if "imagecodecs" not in str(error):
                    raise
        elif deep:
            raise _DecodeError(f"unsupported TIFF: photometric {page.photometric!s} with >8-bit samples")
        if pixels is not None:
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and pixels.ndim == 3:
                pixels = np.moveaxis(pixels, 0, -1)
            return pixels, orientation
        compression = page.compression
    if not deep:
        return _decode_pillow(data, max_pixels)  # Pillow reads 8-bit LZW/JPEG/PackBits, palette, CMYK...
    if orientation == 1:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is not None:
            return _bgr_to_rgb(pixels), orientation
    raise _DecodeError(
        f"cannot decode this >8-bit {compression!s} TIFF without the 'imagecodecs' package "
        "(install it, or re-save the file uncompressed or with deflate compression)"
    )


def _check_tiff_complete(data: bytes) -> None:
    """Reject a TIFF whose first directory, tag values or strip/tile data run past the file end.

    Needed because tifffile drops a tag whose value is cut off (logging an error) and decodes
    the rest, so a file missing its last bytes could load with, say, its SampleFormat lost.
    """
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets and counts
    offset_format, entry_size = ("Q", 20) if big else ("I", 12)
    inline_bytes = 8 if big else 4

    def unpack(fields: str, at: int) -> tuple[int, ...]:
        if at + struct.calcsize(order + fields) > len(data):
            raise _DecodeError("truncated TIFF (file ends inside its image directory)")
        return struct.unpack_from(order + fields, data, at)

    directory = unpack(offset_format, 8 if big else 4)[0]
    entries = unpack("Q" if big else "H", directory)[0]
    arrays: dict[int, tuple[int, ...]] = {}
    for index in range(entries):
        entry = directory + (8 if big else 2) + index * entry_size
        tag, kind, count = unpack("HH" + offset_format, entry)
        value_at = entry + 4 + inline_bytes
        size = count * _TIFF_TYPE_SIZES.get(kind, 1)
        if size > inline_bytes:
            value_at = unpack(offset_format, value_at)[0]
            if value_at + size > len(data):
                raise _DecodeError(f"truncated TIFF (value of tag {tag} cut off)")
        if tag in (273, 279, 324, 325) and kind in _TIFF_INTEGER_FORMATS:
            arrays[tag] = unpack(f"{count}{_TIFF_INTEGER_FORMATS[kind]}", value_at)
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):  # strips, tiles
        ends = [o + n for o, n in zip(arrays.get(offsets_tag, ()), arrays.get(counts_tag, ()))]
        if ends and max(ends) > len(data):
            raise _DecodeError("truncated TIFF (image data cut off)")


def _decode_pillow(data: bytes, max_pixels: int | None) -> tuple[np.ndarray, int]:
    try:
        opened = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise _DecodeError("not a recognised image format") from None
    with opened as image:
        _check_pixels(*image.size, max_pixels)
        image.load()  # raises OSError("image file is truncated") on cut-off data
        orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
        if image.mode in ("I;16", "I;16L", "I;16B", "I", "F"):
            return np.asarray(image), orientation  # deep grey: keep precision, dtype checked later
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB")), orientation


def _bgr_to_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=2)
    return pixels


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels into displayed pixels for EXIF/TIFF orientation 1-8 (others: as is)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, k=-1)  # 90° clockwise
    if orientation == 7:
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(pixels, k=1)  # 90° counter-clockwise
    return pixels


def _to_rgb(pixels: np.ndarray, orientation: int, path: Path, keep_8bit: bool) -> np.ndarray:
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3:
        raise _DecodeError(f"unsupported image layout (array shape {pixels.shape})")
    if pixels.size == 0:
        raise _DecodeError(f"zero-size image ({pixels.shape[1]}x{pixels.shape[0]} pixels)")
    channels = pixels.shape[2]
    if channels not in (1, 2, 3, 4):
        raise _DecodeError(f"unsupported channel count {channels} (expected grey, RGB, either + alpha)")
    if channels in (2, 4):
        log.info("%s: alpha channel dropped (images are used as opaque RGB)", path)
        pixels = pixels[..., : channels - 1]
    pixels = _apply_orientation(pixels, orientation)
    if keep_8bit and pixels.dtype == np.uint8:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels)
    if pixels.dtype == np.uint8:
        image = pixels.astype(np.float32) / 255
    elif pixels.dtype == np.uint16:
        image = pixels.astype(np.float32) / 65535
    elif pixels.dtype == np.bool_:
        image = pixels.astype(np.float32)
    elif pixels.dtype.kind == "f":
        finite = np.nan_to_num(pixels.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        image = np.clip(finite, 0, 1)
    else:
        raise _DecodeError(f"unsupported sample type {pixels.dtype} (expected uint8, uint16 or float)")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Writing


def write_image(path: str | Path, image: np.ndarray, bit_depth: int = 8, jpeg_quality: int = 95) -> None:
    """Write an HxWx3 image, float in [0, 1] or uint8, atomically (``benchmark.core.files``: temp
    file, fsync, rename).

    The format follows the extension (PNG when there is none); values are clipped and rounded
    to 8 or 16 bit (16 bit: PNG and TIFF only); JPEGs at ``jpeg_quality`` (OpenCV's default 95).
    Parent folders are created. A full disk is one
    ``BenchmarkError`` naming the path, with nothing left behind.
    """
    path = Path(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth={bit_depth!r}; expected 8 or 16")
    extension = path.suffix.lower() or ".png"
    if extension not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: unsupported extension {path.suffix!r}; expected {IMAGE_EXTENSIONS}")
    if bit_depth == 16 and extension not in (".png", ".tif", ".tiff"):
        raise ValueError(f"{path}: 16-bit output needs .png or .tif, not {path.suffix!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"expected a non-empty HxWx3 image, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError(f"{path}: image has NaN or infinite values")
    if image.dtype == np.uint8:  # 8-bit pixels as they are (x 257 for 16 bit: 255 -> 65535)
        pixels = image if bit_depth == 8 else image.astype(np.uint16) * 257
    else:
        scale, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
        pixels = np.rint(np.clip(image, 0, 1) * scale).astype(dtype)
    # Deflate, not OpenCV's default LZW, so that tifffile reads our TIFFs without imagecodecs.
    params = [cv2.IMWRITE_TIFF_COMPRESSION, 8] if extension in (".tif", ".tiff") else []
    if extension in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    ok, encoded = cv2.imencode(extension, np.ascontiguousarray(pixels[..., ::-1]), params)
    if not ok:
        raise ImageError(f"{path}: OpenCV could not encode the image as {extension}")

    write_bytes_atomic(path, encoded.tobytes())


# ---------------------------------------------------------------------------------------------
# Conversion


def to_tensor(image: np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """HxWx3 numpy image → contiguous float32 tensor ``(1, 3, H, W)`` (a copy) on ``device``."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not array.flags.writeable:
        array = array.copy()
    hwc = torch.from_numpy(array)
    if device is not None and torch.device(device).type != "cpu":
        hwc = hwc.to(device)  # transfer first, then reorder on the device
        return hwc.permute(2, 0, 1).unsqueeze(0).contiguous()
    return hwc.permute(2, 0, 1).unsqueeze(0).clone(memory_format=torch.contiguous_format)


def from_tensor(tensor: torch.Tensor) -> np.ndarray:
    """Tensor ``(1, 3, H, W)`` or ``(3, H, W)`` → float32 HxWx3 numpy image clipped to [0, 1]."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a (1, 3, H, W) or (3, H, W) tensor, got shape {tuple(tensor.shape)}")
    hwc = tensor.detach().clamp(0, 1).permute(1, 2, 0).contiguous()
    return np.ascontiguousarray(hwc.to(device="cpu", dtype=torch.float32).numpy())


def resize(image: np.ndarray, size: tuple[int, int], interpolation: str = "area") -> np.ndarray:
    """Resize an HxWx3 image to ``size=(height, width)`` with OpenCV; float32 clipped to [0, 1].

    ``interpolation``: "nearest", "bilinear", "bicubic" or "area" (cv2.INTER_*).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation={interpolation!r}; expected one of {sorted(INTERPOLATIONS)}")
    if not _is_size(size):
        raise ValueError(f"size={size!r}; expected (height, width) as two positive integers")
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {array.shape}")
    height, width = int(size[0]), int(size[1])
    resized = cv2.resize(array, (width, height), interpolation=INTERPOLATIONS[interpolation])
    return np.clip(resized, 0, 1, out=resized)


def _is_size(size: object) -> bool:
    return (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in size)
    )


def list_images(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, extensions case-insensitive).

    Hidden files and folders (names starting with ".", e.g. macOS "._x.jpg" resource forks and
    the harness's temp files) are skipped. Symbolic links with an image name are listed even when
    dangling or looping, so the reader reports them (a skip that is counted) instead of a silent drop.
    """
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"{root}: not a folder")
    return sorted(
        path
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and (path.is_file() or path.is_symlink())
    )
