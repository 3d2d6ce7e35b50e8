"""task=fivek: the layouts people have (480p release, DeepLPF/CURL exports, original exports), their
official splits, 8-bit JPEG and 16-bit PNG inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.__main__ import run
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import read_image, write_image
from benchmark.data.fivek import fivek_layout
from benchmark.data.pair_folders import load_pair_folder
from benchmark.data.photos import DataIssues
from tests.conftest import compose_config

FIVEK_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fivek_sample"
IDS = [f"a{4500 + i:04d}" for i in range(8)]


def _images(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    images = [rng.random((48, 64, 3), dtype=np.float32) for _ in IDS]
    return [(image, np.clip(image * 1.2, 0, 1)) for image in images]


def _write_lists(root: Path, lists: dict[str, list[str]]) -> None:
    for name, entries in lists.items():
        (root / name).write_text("\n".join(entries) + "\n")


def release_480p(root: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    """input/JPG/480p, input/PNG/480p_16bits_XYZ_WB (16-bit), expertC/JPG/480p and the split lists."""
    for name, (image, target) in zip(IDS, pairs):
        write_image(root / "input" / "JPG" / "480p" / f"{name}.jpg", image)
        write_image(root / "input" / "PNG" / "480p_16bits_XYZ_WB" / f"{name}.png", image, bit_depth=16)
        write_image(root / "expertC" / "JPG" / "480p" / f"{name}.jpg", target)
    _write_lists(root, {"train_input.txt": IDS[:3], "train_label.txt": IDS[3:5], "test.txt": IDS[6:]})
    return root  # IDS[5] is in no list: unused, as in the release's loaders


def deeplpf_export(root: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    for name, (image, target) in zip(IDS, pairs):
        write_image(root / "input" / f"{name}-camera_{name[1:]}.png", image)
        write_image(root / "output" / f"{name}-camera_{name[1:]}.png", target)
    _write_lists(root, {"images_train.txt": IDS[:4], "images_valid.txt": IDS[4:6], "images_test.txt": IDS[6:]})
    return root


def test_480p_release_official_split_and_both_inputs(tmp_path, rng):
    root = release_480p(tmp_path / "fivek", _images(rng))
    layout, described = fivek_layout(root, "C", "srgb")
    assert described == "FiveK 480p release (8-bit sRGB JPEG inputs, expert C)"
    pairs = load_pair_folder(layout, None, None, DataIssues(strict=True, min_side=16))
    assert [p.name for p in pairs] == IDS[:5] + IDS[6:]
    xyz, described = fivek_layout(root, "C", "xyz16")
    assert "16-bit XYZ PNG" in described and xyz.input_dir == "input/PNG/480p_16bits_XYZ_WB"
    image = read_image(root / "input" / "PNG" / "480p_16bits_XYZ_WB" / f"{IDS[0]}.png")
    assert len(np.unique(image)) > 256  # really read as 16-bit, not reduced to 8
    results = run(compose_config(["profile=smoke", "task=fivek", f"data.root={root}",
                                  f"data.cache_dir={tmp_path / 'cache'}", "train.crop_size=32"]), tmp_path / "run")
    # the smoke profile's data.max_images=4 caps the training pairs; the official test list stays whole
    assert results["split"]["test"] == IDS[6:] and results["split"]["train"] == IDS[:4]
    assert results["data_source"].endswith("FiveK 480p release (8-bit sRGB JPEG inputs, expert C); official split: "
                                           "train train_input.txt + train_label.txt, test test.txt")


def test_deeplpf_export_is_keyed_by_id_with_train_and_valid_for_training(tmp_path, rng):
    root = deeplpf_export(tmp_path / "fivek", _images(rng))
    layout, described = fivek_layout(root, "C")
    assert "DeepLPF/CURL" in described
    pairs = load_pair_folder(layout, None, None, DataIssues(strict=True, min_side=16))
    assert [p.name for p in pairs] == IDS
    results = run(compose_config(["profile=smoke", "task=fivek", f"data.root={root}",
                                  f"data.cache_dir={tmp_path / 'cache'}", "train.crop_size=32"]), tmp_path / "run")
    assert results["split"]["train"] == IDS[:4] and results["split"]["test"] == IDS[6:]
    with pytest.raises(BenchmarkError, match="holds expert C only; task.expert=A needs an expertA/ folder"):
        fivek_layout(root, "A")


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("expert", "Z", "task.expert='Z' is not one of A, B, C, D, E"),
    ("input", "raw", "task.input='raw' is not one of srgb, xyz16"),
])
def test_bad_fivek_settings_are_named(tmp_path, setting, value, message):
    (tmp_path / "input").mkdir()
    arguments = {"expert": "C", "input_kind": "srgb"} | {"expert" if setting == "expert" else "input_kind": value}
    with pytest.raises(BenchmarkError, match=message):
        fivek_layout(tmp_path, **arguments)


def test_unrecognised_folder_says_which_layouts_are_known(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(BenchmarkError, match="no FiveK layout recognised: expected input/JPG/480p/"):
        fivek_layout(tmp_path, "C")
    (tmp_path / "input").mkdir()
    (tmp_path / "expertA").mkdir()
    with pytest.raises(BenchmarkError, match=r"no expertC/ folder for task.expert=C \(found expertA\)"):
        fivek_layout(tmp_path, "C")


@pytest.mark.skipif(not FIVEK_SAMPLE.is_dir(), reason="../shared/data/fivek_sample not present")
def test_fivek_sample_in_each_layout_gives_the_same_pairs(tmp_path):
    """The real sample (input/ + expertC/ PNGs), rearranged as the 480p release (JPEG) and as a DeepLPF
    export: the same photos pair up in each, and the 480p JPEGs differ from the PNGs by JPEG loss only."""
    names = sorted(p.stem for p in (FIVEK_SAMPLE / "input").iterdir())
    original, _ = fivek_layout(FIVEK_SAMPLE, "C")
    reference = {p.name: p for p in load_pair_folder(original, None, None, DataIssues(strict=True, min_side=16))}
    release = tmp_path / "480p"
    for name in names:
        for side, folder in (("input", "input"), ("expertC", "expertC")):
            write_image(release / folder / "JPG" / "480p" / f"{name}.jpg", read_image(FIVEK_SAMPLE / side / f"{name}.png"))
    _write_lists(release, {"train_input.txt": names[:6], "train_label.txt": [], "test.txt": names[6:]})
    pairs = load_pair_folder(fivek_layout(release, "C")[0], None, None, DataIssues(strict=True, min_side=16))
    assert [p.name for p in pairs] == names
    for pair in pairs:
        assert np.abs(pair.target - reference[pair.name].target).mean() < 0.02
    export = tmp_path / "deeplpf"
    shutil.copytree(FIVEK_SAMPLE / "input", export / "input")
    shutil.copytree(FIVEK_SAMPLE / "expertC", export / "output")
    pairs = load_pair_folder(fivek_layout(export, "C")[0], None, None, DataIssues(strict=True, min_side=16))
    assert [p.name for p in pairs] == [name.split("-")[0] for name in names]
    assert all(np.array_equal(p.input, reference[n].input) for p, n in zip(pairs, names))
