"""Pair cache: content-hash keys, reuse, atomic entries; seeded split."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.core.errors import BenchmarkError
from benchmark.data.pairs import make_pairs, pair_key
from benchmark.data.photos import DataIssues, Photo, load_photos, split_items


def darken(image: np.ndarray) -> np.ndarray:
    return image * 0.5


def photos(rng: np.random.Generator, count: int = 3) -> list[Photo]:
    return [Photo(f"p{i}", rng.random((12, 16, 3), dtype=np.float32), f"hash{i}") for i in range(count)]


def test_key_depends_on_task_params_content_and_size(rng):
    photo = photos(rng, 1)[0]
    key = pair_key("t", {"alpha": 0.25}, photo)
    assert key == pair_key("t", {"alpha": 0.25}, photo)
    assert key != pair_key("u", {"alpha": 0.25}, photo)
    assert key != pair_key("t", {"alpha": 0.5}, photo)
    assert key != pair_key("t", {"alpha": 0.25}, Photo("p0", photo.image, "other"))
    assert key != pair_key("t", {"alpha": 0.25}, Photo("p0", photo.image[:6], photo.content_hash))


def test_second_call_reuses_the_cache_with_identical_pairs(tmp_path, rng):
    sources = photos(rng)
    first, reused = make_pairs(sources, "t", darken, {"k": 1}, tmp_path)
    assert reused == 0
    second, reused = make_pairs(sources, "t", darken, {"k": 1}, tmp_path)
    assert reused == 3
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.target, b.target)
        np.testing.assert_array_equal(a.input, b.input)
    np.testing.assert_allclose(first[0].target, sources[0].image * 0.5, atol=1 / 65535)
    assert not list(tmp_path.rglob("*.tmp"))


def test_unreadable_cache_entry_is_made_again(tmp_path, rng):
    sources = photos(rng, 1)
    make_pairs(sources, "t", darken, {}, tmp_path)
    (entry,) = list(tmp_path.rglob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:40])  # what a crash mid-write would leave without rename
    pairs, reused = make_pairs(sources, "t", darken, {}, tmp_path)
    assert reused == 0
    np.testing.assert_allclose(pairs[0].target, sources[0].image * 0.5, atol=1 / 65535)


def test_split_is_seeded_disjoint_and_complete(rng):
    sources = photos(rng, 12)
    train, test = split_items(sources, 0.25, seed=0)
    assert len(test) == 3 and len(train) == 9
    assert {p.name for p in train}.isdisjoint(p.name for p in test)
    assert [p.name for p in split_items(sources, 0.25, seed=0)[1]] == [p.name for p in test]
    assert any(
        [p.name for p in split_items(sources, 0.25, seed=s)[1]] != [p.name for p in test] for s in range(1, 5)
    )
    with pytest.raises(BenchmarkError, match="data.test_fraction"):
        split_items(sources, 1.0, seed=0)


def test_bundled_photos_load_at_reduced_size():
    loaded = load_photos(None, max_side=64, max_images=2, issues=DataIssues(strict=True, min_side=32))
    assert [p.name for p in loaded] == ["kodim01", "kodim02"]
    assert max(loaded[0].image.shape[:2]) == 64 and loaded[0].image.dtype == np.float32


def test_missing_or_empty_root_is_named(tmp_path):
    issues = DataIssues(strict=False, min_side=32)
    with pytest.raises(BenchmarkError, match="data.root"):
        load_photos(str(tmp_path / "absent"), None, None, issues)
    with pytest.raises(BenchmarkError, match="0 usable image"):
        load_photos(str(tmp_path), None, None, issues)
