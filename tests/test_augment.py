"""Operator-made training pairs (data.augment): variants of the training photos only, seeded, cached,
counted; human-made pairs get geometric variants of input and target alike."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.__main__ import run
from benchmark.core.errors import BenchmarkError
from benchmark.data.augment import (
    AugmentConfig,
    geometric,
    is_variant,
    pair_variants,
    photo_variants,
    photometric,
)
from benchmark.data.pairs import Pair
from benchmark.data.photos import DataIssues, Photo
from benchmark.data.tasks import prepare_task
from operators.tone_mapping import linear_to_srgb, srgb_to_linear
from tests.conftest import compose_config


def test_photometric_changes_match_their_definitions(rng):
    image = rng.random((8, 9, 3), dtype=np.float32) * 0.4
    linear = srgb_to_linear(image)
    np.testing.assert_allclose(photometric(image, {"exposure": 1.0}), linear_to_srgb(np.clip(linear * 2, 0, 1)), atol=1e-6)
    np.testing.assert_allclose(photometric(image, {"gamma": 2.0}), linear_to_srgb(linear**2), atol=1e-6)
    grey = photometric(image, {"saturation": 0.0})
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=1e-5)  # no chroma left
    balanced = photometric(image, {"white_balance": [1.0, 0.0]})
    np.testing.assert_allclose(srgb_to_linear(balanced)[..., 0], np.clip(linear[..., 0] * 2, 0, 1), atol=1e-5)
    np.testing.assert_array_equal(photometric(image, {"flip": True}), image)  # geometric only: untouched


def test_geometric_changes_keep_pixels_and_never_go_below_the_crop(rng):
    image = rng.random((40, 60, 3), dtype=np.float32)
    np.testing.assert_array_equal(geometric(image, {"flip": True, "rotate": 1}, 8), np.rot90(image[:, ::-1]))
    assert geometric(image, {"rescale": 0.5}, 8).shape == (20, 30, 3)
    assert min(geometric(image, {"rescale": 0.5}, 32).shape[:2]) == 32


def test_variants_are_seeded_new_and_hashed_by_their_settings(rng):
    photos = [Photo(f"p{i}", rng.random((48, 64, 3), dtype=np.float32), f"hash{i}") for i in range(2)]
    config = AugmentConfig(variants=3)
    first, again = photo_variants(photos, config, 0, 16), photo_variants(photos, config, 0, 16)
    assert [v.name for v in first] == [f"p{i}~aug{k}" for i in range(2) for k in range(3)]
    assert all(np.array_equal(a.image, b.image) and a.content_hash == b.content_hash for a, b in zip(first, again))
    assert len({v.content_hash for v in first}) == 6
    other_seed = photo_variants(photos, config, 1, 16)
    assert all(a.content_hash != b.content_hash for a, b in zip(first, other_seed))


def test_human_made_pairs_get_the_same_geometric_change_on_both_sides(rng):
    image = rng.random((40, 56, 3), dtype=np.float32)
    pairs = [Pair("a", image, image**0.5)]
    for variant in pair_variants(pairs, AugmentConfig(variants=4, kinds=("flip", "rotate", "gamma")), 0, 16):
        np.testing.assert_allclose(variant.target, variant.input**0.5, atol=1e-6)  # no photometric change
    assert pair_variants(pairs, AugmentConfig(variants=2, kinds=("gamma",)), 0, 16) == []


def test_a_run_makes_variants_of_training_photos_only_and_counts_them(tmp_path):
    cache = tmp_path / "cache"
    cfg = compose_config(["profile=smoke", "data.augment.variants=2", f"data.cache_dir={cache}"])
    results = run(cfg, tmp_path / "run")
    assert results["pairs"] == {"train": 9, "augmented": 6, "test": 1}
    assert len(results["split"]["train"]) == 3  # the split lists photos; variants are counted in pairs
    data = prepare_task(cfg, cache / "pairs", DataIssues(False, 32), crop_size=cfg.train.crop_size)  # cached now
    train = [pair.name for pair in data.train]
    assert sorted(name for name in train if is_variant(name)) == sorted(
        f"{n}~aug{k}" for n in results["split"]["train"] for k in range(2))
    assert not any(is_variant(pair.name) for pair in data.test)
    assert len(list((cache / "pairs").rglob("*.npz"))) == 10
    bicubic = run(compose_config(["profile=smoke", "model=bicubic", "data.augment.variants=2",
                                  f"data.cache_dir={cache}"]), tmp_path / "bicubic")
    assert bicubic["pairs"]["augmented"] == 0  # nothing trains: no operator time spent on variants


@pytest.mark.parametrize("override, message", [
    ("data.augment.variants=-1", "data.augment.variants=-1 must be an integer >= 0"),
    ("data.augment.kinds=[blur]", "data.augment.kinds=['blur'] must be a non-empty list of"),
    ("data.augment.scale=[0.5,2]", "data.augment.scale=[0.5, 2] must be [low, high] with 0 < low <= high <= 1"),
])
def test_bad_augment_settings_are_one_error(tmp_path, override, message):
    with pytest.raises(BenchmarkError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run(compose_config(["profile=smoke", override, f"data.cache_dir={tmp_path}"]), tmp_path / "run")
