"""Source photos: where they come from, their working resolution, bad files and the seeded split."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from benchmark import PROJECT_ROOT
from benchmark.core.errors import BenchmarkError, ImageError
from benchmark.core.images import DEFAULT_MAX_PIXELS, list_images, read_image, resize

BUNDLED_PHOTOS = PROJECT_ROOT / "data" / "kodak"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Photo:
    """One source photo at its working resolution, with the hash of the file it came from."""

    name: str
    image: np.ndarray
    content_hash: str


@dataclass
class DataIssues:
    """Bad files met while loading: skipped with a warning and counted, or fatal with data.strict."""

    strict: bool
    min_side: int
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, path: Path, reason: str) -> None:
        if self.strict:
            raise BenchmarkError(f"{path}: {reason} (data.strict=true stops on bad files)")
        log.warning("skipping %s: %s", path, reason)
        self.skipped.append({"file": str(path), "reason": reason})

    def read(self, path: Path, max_side: int | None) -> np.ndarray | None:
        """The image at its working resolution, or None when the file was skipped."""
        try:
            image = read_image(path, self.max_pixels)
        except ImageError as error:
            self.skip(path, str(error).removeprefix(f"{path}: "))
            return None
        if min(image.shape[:2]) < self.min_side:
            self.skip(path, f"{image.shape[1]}x{image.shape[0]} px is smaller than data.min_side={self.min_side}")
            return None
        return fit_max_side(image, max_side)


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


def load_photos(root: str | None, max_side: int | None, max_images: int | None, issues: DataIssues) -> list[Photo]:
    """Read the photos under ``root`` (sorted by path), at most ``max_images`` of them."""
    folder = photos_root(root)
    paths = list_images(folder)
    if max_images is not None:
        paths = paths[:max_images]
    photos = []
    for path in paths:
        image = issues.read(path, max_side)
        if image is not None:
            content_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            photos.append(Photo(str(path.relative_to(folder).with_suffix("")), image, content_hash))
    if len(photos) < 2:
        raise BenchmarkError(
            f"data.root={str(folder)!r} holds {len(photos)} usable image(s) (png, jpg, tif); "
            "at least 2 are needed for a train/test split"
        )
    return photos


class Named(Protocol):
    name: str


ItemT = TypeVar("ItemT", bound=Named)


def split_items(
    items: Sequence[ItemT], test_fraction: float, seed: int
) -> tuple[list[ItemT], list[ItemT]]:
    """Deterministic split by ``seed``: test items are never trained on."""
    if not 0 < test_fraction < 1:
        raise BenchmarkError(f"data.test_fraction={test_fraction} must be between 0 and 1")
    n_test = max(1, round(len(items) * test_fraction))
    if n_test >= len(items):
        raise BenchmarkError(
            f"data.test_fraction={test_fraction} leaves no training image out of {len(items)}"
        )
    order = np.random.default_rng(seed).permutation(len(items))
    test_ids = set(order[:n_test].tolist())
    train = [item for i, item in enumerate(items) if i not in test_ids]
    test = [item for i, item in enumerate(items) if i in test_ids]
    return train, test
