"""Source photos: where they come from, their working resolution and the seeded train/test split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.images import list_images, read_image, resize

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_PHOTOS = PROJECT_ROOT / "data" / "kodak"


@dataclass(frozen=True)
class Photo:
    """One source photo at its working resolution, with the hash of the file it came from."""

    name: str
    image: np.ndarray
    content_hash: str


def photos_root(root: str | None) -> Path:
    """The folder to read photos from: ``data.root`` or the bundled Kodak set."""
    path = Path(root).expanduser() if root else BUNDLED_PHOTOS
    if not path.is_dir():
        raise BenchmarkError(f"data.root={str(path)!r} is not a folder of images")
    return path


def fit_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink (area filter) so the longer side is at most ``max_side``; never enlarge."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    return resize(image, (max(1, round(height * scale)), max(1, round(width * scale))), "area")


def load_photos(root: str | None, max_side: int | None, max_images: int | None) -> list[Photo]:
    """Read the photos under ``root`` (sorted by path), at most ``max_images`` of them."""
    folder = photos_root(root)
    paths = list_images(folder)
    if max_images is not None:
        paths = paths[:max_images]
    if not paths:
        raise BenchmarkError(f"data.root={str(folder)!r} holds no images (png, jpg, tif)")
    photos = []
    for path in paths:
        content_hash = hashlib.sha256(path.read_bytes()).hexdigest()
        image = fit_max_side(read_image(path), max_side)
        photos.append(Photo(str(path.relative_to(folder).with_suffix("")), image, content_hash))
    return photos


def split_photos(photos: list[Photo], test_fraction: float, seed: int) -> tuple[list[Photo], list[Photo]]:
    """Deterministic split by ``seed``: test photos are never trained on."""
    n_test = max(1, round(len(photos) * test_fraction))
    if n_test >= len(photos):
        raise BenchmarkError(
            f"data.test_fraction={test_fraction} leaves no training image out of {len(photos)}"
        )
    order = np.random.default_rng(seed).permutation(len(photos))
    test_ids = set(order[:n_test].tolist())
    train = [p for i, p in enumerate(photos) if i not in test_ids]
    test = [p for i, p in enumerate(photos) if i in test_ids]
    return train, test
