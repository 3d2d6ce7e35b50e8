"""What bad data gets: skipped with a warning and counted (default), or one line with data.strict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmark.__main__ import run
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import write_image
from benchmark.data.pair_folders import PairFolder, load_pair_folder
from benchmark.data.photos import DataIssues, load_photos
from tests.conftest import compose_config, run_cli

FIVEK_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fivek_sample"


def pair_folder(root: Path, rng: np.random.Generator, names: list[str], size=(40, 56)) -> Path:
    for name in names:
        image = rng.random((*size, 3), dtype=np.float32)
        write_image(root / "input" / f"{name}.png", image)
        write_image(root / "output" / f"{name}.png", image**0.8)
    return root


def test_bad_photos_are_skipped_and_counted(tmp_path, photo_dir):
    (photo_dir / "truncated.png").write_bytes((photo_dir / "kodim01.png").read_bytes()[:300])
    (photo_dir / "notes.png").write_text("not an image")
    (photo_dir / "readme.txt").write_text("ignored: not an image extension")
    write_image(photo_dir / "tiny.png", np.zeros((8, 8, 3), np.float32))
    issues = DataIssues(strict=False, min_side=16)
    photos = load_photos(str(photo_dir), None, None, issues)
    assert sorted(p.name for p in photos) == ["kodim01", "kodim03", "kodim04", "kodim07"]
    skipped = {Path(item["file"]).name: item["reason"] for item in issues.skipped}
    assert set(skipped) == {"truncated.png", "notes.png", "tiny.png"}
    assert "smaller than data.min_side=16" in skipped["tiny.png"]

    with pytest.raises(BenchmarkError, match="notes.png|truncated.png") as error:
        load_photos(str(photo_dir), None, None, DataIssues(strict=True, min_side=16))
    assert "data.strict=true" in str(error.value)


def test_exif_rotated_grey_rgba_and_16bit_photos_load(tmp_path, rng):
    folder = tmp_path / "odd"
    folder.mkdir()
    base = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(base).save(folder / "rotated.jpg", exif=exif)
    cv2.imwrite(str(folder / "grey.png"), base[..., 0])
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([base, np.full((48, 64), 7, np.uint8)]))
    cv2.imwrite(str(folder / "deep.png"), base.astype(np.uint16) * 257)
    photos = {p.name: p.image for p in load_photos(str(folder), None, None, DataIssues(strict=True, min_side=16))}
    assert photos["rotated"].shape == (64, 48, 3)
    assert np.array_equal(photos["grey"][..., 0], photos["grey"][..., 2])
    assert photos["rgba"].shape == (48, 64, 3) and photos["deep"].dtype == np.float32


def test_pair_folder_mismatches_and_escaping_filelist(tmp_path, rng):
    root = pair_folder(tmp_path / "looks", rng, ["a", "b", "c", "d"])
    write_image(root / "input" / "orphan.png", rng.random((40, 56, 3), dtype=np.float32))
    write_image(root / "output" / "d.png", rng.random((30, 56, 3), dtype=np.float32))  # wrong size
    (root / "filelist.txt").write_text("a\nb.png\nc\nd\norphan\n../../../etc/passwd\n\n# comment\n")
    issues = DataIssues(strict=False, min_side=16)
    pairs = load_pair_folder(PairFolder(root, "input", "output", "filelist.txt"), None, None, issues)
    assert [p.name for p in pairs] == ["a", "b", "c"]
    reasons = " | ".join(item["reason"] for item in issues.skipped)
    assert "differ in size" in reasons and "no output with the same name" in reasons
    assert "points outside" in reasons and "refused" in reasons
    with pytest.raises(BenchmarkError, match="points outside"):
        load_pair_folder(PairFolder(root, "input", "output", "filelist.txt"), None, None,
                         DataIssues(strict=True, min_side=16))


def test_photoshop_folder_runs_and_bicubic_is_refused(tmp_path, rng):
    root = pair_folder(tmp_path / "exports", rng, [f"img{i}" for i in range(4)], size=(64, 96))
    overrides = ["profile=smoke", "task=photoshop", f"task.root={root}", f"data.cache_dir={tmp_path}"]
    results = run(compose_config([*overrides, "train.steps=2"]), tmp_path / "run")
    assert results["synthetic"] is False and results["summary"]["reference_time_ms"] is None
    with pytest.raises(BenchmarkError, match="model=bicubic .* task=photoshop has none"):
        run(compose_config([*overrides, "model=bicubic"]), tmp_path / "run2")


def test_test_photos_no_larger_than_the_low_res_copy_are_flagged(tmp_path, photo_dir, capsys):
    """An upsampling baseline runs the operator on such a photo at full resolution: exact scores."""
    overrides = ["profile=smoke", "model=bicubic", f"data.root={photo_dir}", f"data.cache_dir={tmp_path}"]
    run(compose_config(overrides), tmp_path / "run")  # smoke: longer side 96
    assert "1 of 1 test photos are no larger than model.lowres_size=256 px" in capsys.readouterr().out
    run(compose_config([*overrides, "model.lowres_size=48"]), tmp_path / "run2")
    assert "no larger than" not in capsys.readouterr().out


def test_photoshop_without_root_uses_marked_synthetic_looks(tmp_path, photo_dir):
    cfg = compose_config(["profile=smoke", "task=photoshop", "model=bicubic", f"data.root={photo_dir}",
                          f"data.cache_dir={tmp_path}"])
    results = run(cfg, tmp_path / "run")
    assert results["synthetic"] is True and "synthetic" in results["data_source"]


def test_fivek_without_data_says_how_to_get_it(tmp_path):
    result = run_cli(["profile=smoke", "task=fivek", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.root=" in result.stderr and "expertC" in result.stderr
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.skipif(not FIVEK_SAMPLE.is_dir(), reason="../shared/data/fivek_sample not present")
def test_fivek_sample_end_to_end_with_official_test_list(tmp_path):
    root = tmp_path / "fivek"
    shutil.copytree(FIVEK_SAMPLE, root)
    names = sorted(p.stem for p in (root / "input").iterdir())
    (root / "test.txt").write_text("\n".join(names[:2]) + "\n")
    cfg = compose_config(["profile=smoke", "task=fivek", f"data.root={root}", "data.max_images=null",
                          f"data.cache_dir={tmp_path}", "train.crop_size=64"])
    results = run(cfg, tmp_path / "run")
    assert results["split"]["test"] == names[:2] and len(results["split"]["train"]) == 6
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["summary"]["psnr"] > saved["summary"]["identity_psnr"] - 1
    with pytest.raises(BenchmarkError, match="task.expert='Z' is not one of A, B, C, D, E"):
        run(compose_config(["profile=smoke", "task=fivek", f"data.root={root}", "task.expert=Z",
                            f"data.cache_dir={tmp_path}"]), tmp_path / "run2")
