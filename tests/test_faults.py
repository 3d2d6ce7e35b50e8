"""Faults lose nothing: non-finite numbers, damaged caches, full disks, decompression bombs, data
loss in apply — each a clear one-line error or a counted skip (bad settings: test_bad_settings.py),
with no partial file left behind (issue 11's probe, one test per case or per kind of case)."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import PROJECT_ROOT, regress
from benchmark.__main__ import checkpoint_path, run
from benchmark.apply import main as apply_main
from benchmark.core import files
from benchmark.core.errors import BenchmarkError, ImageError
from benchmark.core.images import _library_message, read_image, write_image
from benchmark.data.photos import BUNDLED_PHOTOS, DataIssues, load_photos
from benchmark.report import main as report_main
from benchmark.training.train import read_training_checkpoint
from tests.conftest import cli_env, compose_config

SMOKE = ["profile=smoke", "task=local_laplacian", "device=cpu"]


def smoke_config(tmp_path: Path, *overrides: str):
    return compose_config([*SMOKE, f"data.cache_dir={tmp_path / 'cache'}", *overrides])


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished smoke HDRNet run directory (results.json + model.pt)."""
    root = tmp_path_factory.mktemp("finished")
    run(compose_config([*SMOKE, f"data.cache_dir={root / 'cache'}"]), root / "run")
    return root / "run"


# --- Non-finite numbers -------------------------------------------------------------------------

NAN_GUIDE_SCRIPT = """
import numpy as np
import torch
from benchmark.hdrnet.fused import fused_guided_slice_apply, fused_slice_apply, guided_slice_apply
torch.manual_seed(0)
grid = torch.randn(2, 12, 8, 16, 16, requires_grad=True)
image = torch.rand(2, 3, 120, 90, requires_grad=True)
guide = torch.rand(2, 120, 90)
guide[0, 10:20, 5:50] = float("nan"); guide[1, 3] = float("inf"); guide[1, 4] = -float("inf"); guide[0, 50] = 1e30
guide.requires_grad_(True)
for _ in range(5):
    out = fused_slice_apply(grid, guide, image)
    out.sum().backward()
finite = [bool(torch.isfinite(t).all()) for t in (out, grid.grad, image.grad, guide.grad)]
hidden, last = torch.nn.Linear(3, 16), torch.nn.Linear(16, 1)
with torch.no_grad():
    hidden.weight[0, 0] = float("nan")
guided = fused_guided_slice_apply(grid, image, hidden, last)
guided.sum().backward()  # NaN weights give NaN weight gradients, but every index stays in the grid
weights = [w.detach().numpy() for w in (hidden.weight, hidden.bias, last.weight)] + [np.array([np.nan], np.float32)]  # a NaN guide
photo = image[0].detach().permute(1, 2, 0).contiguous().numpy()
grid_array = grid[:1].detach().numpy()
inference = [guided_slice_apply(photo, grid_array, *weights), guided_slice_apply((photo * 255).astype(np.uint8), grid_array, *weights)]
print("finite", finite + [bool(torch.isfinite(guided).all())] + [bool(np.isfinite(out.astype(np.float32)).all()) for out in inference])
"""


def test_a_nan_guide_never_indexes_out_of_the_grid_in_forward_or_backward():
    # in a subprocess: the bug it guards against was heap corruption (exit 134), not an exception
    job = subprocess.run([sys.executable, "-c", NAN_GUIDE_SCRIPT], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert job.returncode == 0, job.stderr[-2000:]
    assert "finite [True, True, True, True, True, True, True]" in job.stdout


@pytest.mark.parametrize("lr", ["1e6", "100"])
def test_diverging_training_stops_with_one_error_and_keeps_nothing_non_finite(tmp_path, lr):
    cfg = smoke_config(tmp_path, f"train.lr={lr}", "train.steps=40")
    with pytest.raises(BenchmarkError, match="training diverged"):
        run(cfg, tmp_path / "run")
    assert files_under(tmp_path / "run") == []
    checkpoint = checkpoint_path(cfg)
    if checkpoint.exists():  # only a checkpoint of finite weights may stay
        assert read_training_checkpoint(checkpoint, torch.device("cpu")) is not None
    with pytest.raises(BenchmarkError, match="training diverged"):  # the same command: the same error
        run(cfg, tmp_path / "run")


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_a_non_finite_or_non_positive_learning_rate_is_refused_up_front(tmp_path, value):
    with pytest.raises(BenchmarkError, match=f"train.lr={value if value not in ('inf', 'nan') else ''}"):
        run(smoke_config(tmp_path, f"train.lr={value}"), tmp_path / "run")
    assert not (tmp_path / "cache").exists()


def write_results(run_dir: Path, psnr: float, ssim: float, seed: int = 0, model: str = "hdrnet") -> Path:
    images = [{"image": "kodim01", "width": 768, "height": 512, "time_ms": 5.0, "reference_time_ms": 20.0}]
    results = {"task": "local_laplacian", "model": model, "profile": "quick", "config": {"seed": seed},
               "environment": {"git_revision": "abc"}, "images": images, "summary": {"psnr": psnr, "ssim": ssim}}
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(results))  # json writes NaN as a bare NaN
    return run_dir


def test_regress_fails_a_nan_run_and_refuses_to_write_a_baseline_from_one(tmp_path, capsys):
    write_results(tmp_path / "base" / "0", 29.0, 0.90, seed=0)
    write_results(tmp_path / "base" / "1", 29.1, 0.91, seed=1)
    baseline = tmp_path / "baseline.json"
    assert regress.main(["--write-baseline", str(baseline), str(tmp_path / "base")]) == 0
    nan_run = write_results(tmp_path / "nan", float("nan"), float("nan"))
    capsys.readouterr()
    assert regress.main(["--baseline", str(baseline), str(nan_run)]) == 1
    table = capsys.readouterr().out
    assert table.count("REGRESSION") >= 2 and "non-finite" in table
    assert regress.main(["--write-baseline", str(tmp_path / "b2.json"), str(nan_run)]) == 2
    assert "finite results only" in capsys.readouterr().err
    assert not (tmp_path / "b2.json").exists()


def test_a_report_over_a_nan_run_leaves_it_out_with_a_caveat(tmp_path, finished_run, capsys):
    broken = tmp_path / "runs" / "nan"
    broken.mkdir(parents=True)
    results = json.loads((finished_run / "results.json").read_text())
    results["summary"]["psnr"] = results["summary"]["time_ms"] = float("nan")
    (broken / "results.json").write_text(json.dumps(results))
    assert report_main([str(broken), "--out", str(tmp_path / "only-nan")]) == 2
    assert "no run with finite results" in capsys.readouterr().err
    assert report_main([str(broken), str(finished_run), "--out", str(tmp_path / "report")]) == 0
    assert "NaN or infinite results left out" in (tmp_path / "report" / "index.html").read_text()


def test_apply_refuses_nan_weights(tmp_path, finished_run, capsys):
    saved = torch.load(finished_run / "model.pt", weights_only=True)
    first = next(iter(saved["state_dict"]))
    saved["state_dict"][first] = torch.full_like(saved["state_dict"][first], float("nan"))
    torch.save(saved, tmp_path / "nan.pt")
    photo = tmp_path / "in.png"
    write_image(photo, np.full((40, 60, 3), 0.5, np.float32))
    assert apply_main(["--checkpoint", str(tmp_path / "nan.pt"), str(photo), str(tmp_path / "out.png")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err and not (tmp_path / "out.png").exists()


# --- Data loss -------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same path", "dot path", "hard link", "symbolic link"])
def test_apply_never_overwrites_its_input(tmp_path, finished_run, monkeypatch, capsys, how):
    photo = tmp_path / "a.png"
    write_image(photo, np.full((40, 60, 3), 0.25, np.float32))
    before = photo.read_bytes()
    monkeypatch.chdir(tmp_path)
    output = {"same path": "a.png", "dot path": "./sub/../a.png", "hard link": "b.png", "symbolic link": "c.png"}[how]
    (tmp_path / "sub").mkdir()
    if how == "hard link":
        os.link(photo, tmp_path / "b.png")
    if how == "symbolic link":
        (tmp_path / "c.png").symlink_to(photo)
    assert apply_main(["--checkpoint", str(finished_run / "model.pt"), "a.png", output]) == 2
    assert "is the input photo" in capsys.readouterr().err
    assert photo.read_bytes() == before


# --- Damaged caches --------------------------------------------------------------------------------


def test_damaged_pair_cache_entries_are_made_again(tmp_path):
    cfg = smoke_config(tmp_path, "model=bicubic")
    first = run(cfg, tmp_path / "first")
    entries = sorted((tmp_path / "cache" / "pairs").rglob("*.npz"))
    entries[0].write_bytes(b"")  # zero bytes: EOFError in np.load
    entries[1].write_bytes(entries[1].read_bytes()[:100])  # cut short
    entries[2].write_bytes(b"garbage" * 10)
    second = run(cfg, tmp_path / "second")
    assert second["summary"]["psnr"] == first["summary"]["psnr"]
    assert "1 of 4 from the cache" in second["data_source"]
    assert all(entry.stat().st_size > 1000 for entry in entries)


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "nan weights"])
def test_a_damaged_training_checkpoint_is_trained_again(tmp_path, damage, capsys):
    cfg = smoke_config(tmp_path)
    first = run(cfg, tmp_path / "first")
    checkpoint = checkpoint_path(cfg)
    if damage == "nan weights":
        saved = torch.load(checkpoint, weights_only=True)
        for tensor in saved["model"].values():
            tensor.fill_(float("nan"))
        torch.save(saved, checkpoint)
    else:
        data = checkpoint.read_bytes()
        checkpoint.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": os.urandom(5000)}[damage])
    capsys.readouterr()
    second = run(cfg, tmp_path / "second")
    assert "unreadable checkpoint" in capsys.readouterr().out
    assert second["summary"]["psnr"] == first["summary"]["psnr"]  # retrained from scratch, same seed
    assert read_training_checkpoint(checkpoint, torch.device("cpu")) is not None


def test_temporary_files_of_killed_writers_are_cleaned_up_and_live_ones_kept(tmp_path):
    folder = tmp_path / "cache" / "pairs"
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = folder / f".x.npz.{files._HOST}.{dead.stdout.strip()}.abcd1234.tmp"
    live = folder / f".y.npz.{files._HOST}.{os.getpid()}.abcd1234.tmp"
    old = folder / "x.npz1a2b3c.tmp"  # an older writer's mkstemp name: removed once a day old
    old_dot = folder / ".z.npz9f8e.tmp"
    for path in (orphan, live, old, old_dot):
        path.write_bytes(b"partial")
    os.utime(old_dot, (0, 0))
    assert files.remove_stale_temporaries(tmp_path / "cache") == 2
    assert live.exists() and old.exists() and not orphan.exists() and not old_dot.exists()


# --- Full disks ------------------------------------------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write fails as on a full disk (at the fsync that flushes the data)."""
    def no_space(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(files.os, "fsync", no_space)


def test_a_full_disk_while_making_pairs_is_one_error_and_no_partial_file(tmp_path, full_disk):
    with pytest.raises(BenchmarkError, match=r"\.npz: no space left on device"):
        run(smoke_config(tmp_path, "model=bicubic"), tmp_path / "run")
    assert [p for p in files_under(tmp_path / "cache") if p.endswith((".npz", ".tmp"))] == []
    assert files_under(tmp_path / "run") == []


def test_a_full_disk_at_the_checkpoint_or_the_run_outputs_leaves_no_partial_file(tmp_path, monkeypatch):
    cfg = smoke_config(tmp_path, "data.augment.variants=0")  # every pair is made by the bicubic run below
    run(smoke_config(tmp_path, "model=bicubic"), tmp_path / "pairs-made")  # pairs on a disk with space
    real_fsync = os.fsync
    failing = {"suffix": ".pt"}

    def fsync(descriptor: int) -> None:
        if os.readlink(f"/proc/self/fd/{descriptor}").endswith(failing["suffix"]):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(files.os, "fsync", fsync)
    failing["suffix"] = ".tmp"  # the checkpoint's temporary file: the first torch file written
    with pytest.raises(BenchmarkError, match=r"checkpoints/.*\.pt: no space left on device"):
        run(cfg, tmp_path / "run")
    assert not [p for p in files_under(tmp_path / "cache") if "checkpoints" in p and p.endswith((".pt", ".tmp"))]
    assert files_under(tmp_path / "run") == []
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    run(cfg, tmp_path / "train-only")  # leaves a finished checkpoint, so the next run only evaluates and writes
    original = files.write_atomic

    def write_atomic(path, write):
        if path.name in ("model.pt", "results.json"):
            raise BenchmarkError(f"{path}: no space left on device (or quota exceeded); nothing was written")
        original(path, write)

    for name in ("model.pt", "results.json"):
        monkeypatch.setattr("benchmark.training.checkpoints.save_torch",
                            lambda state, path: write_atomic(Path(path), None) if path.name == name else None)
        monkeypatch.setattr("benchmark.__main__.write_json_atomic",
                            lambda data, path: write_atomic(Path(path), None) if path.name == name else None)
        with pytest.raises(BenchmarkError, match=f"{name}: no space left"):
            run(cfg, tmp_path / f"out-{name}")
        assert files_under(tmp_path / f"out-{name}") == []  # curve, examples and model.pt removed again


def test_a_full_disk_in_apply_and_report_is_one_error_line(tmp_path, finished_run, full_disk, capsys):
    photo = tmp_path / "in.png"
    photo.write_bytes((BUNDLED_PHOTOS / "kodim03.png").read_bytes())
    assert apply_main(["--checkpoint", str(finished_run / "model.pt"), str(photo), str(tmp_path / "out.png")]) == 2
    assert "out.png: no space left on device" in capsys.readouterr().err
    assert report_main([str(finished_run), "--out", str(tmp_path / "report")]) == 2
    assert "no space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


FULL_DISK_CLI = """
import errno, os, sys
from benchmark.core import files
def no_space(descriptor):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
files.os.fsync = no_space
import runpy
sys.argv = ["benchmark", *sys.argv[1:]]
runpy.run_module("benchmark", run_name="__main__", alter_sys=True)
"""


def test_a_full_disk_when_hydra_writes_its_config_is_one_error_and_no_cut_short_file(tmp_path):
    job = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CLI, *SMOKE, "model=bicubic", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=cli_env(tmp_path / "cache"), capture_output=True, text=True, timeout=300,
    )
    assert job.returncode == 2, job.stderr[-2000:]
    assert job.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'run' / '.hydra' / 'config.yaml'}: no space left on device (or quota exceeded); "
        "nothing was written"
    ]
    assert [p for p in files_under(tmp_path / "run") if p.endswith((".yaml", ".tmp"))] == []


# --- Decompression bombs and odd files -----------------------------------------------------------


def huge_png(path: Path, side: int) -> None:
    """A valid grey PNG of side x side black pixels, a few hundred KB (zlib of zero rows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, photo_dir):
    huge_png(photo_dir / "bomb.png", 16000)
    assert (photo_dir / "bomb.png").stat().st_size < 2_000_000
    issues = DataIssues(strict=False, min_side=16)
    photos = load_photos(str(photo_dir), None, None, issues)
    assert len(photos) == 4
    assert [Path(item["file"]).name for item in issues.skipped] == ["bomb.png"]
    assert "16000x16000 = 256000000 pixels is more than max_pixels=100000000" in issues.skipped[0]["reason"]


@pytest.mark.parametrize("extension", [".png", ".jpg", ".tif"])
def test_max_pixels_applies_to_every_format(tmp_path, extension):
    path = tmp_path / f"photo{extension}"
    write_image(path, np.full((30, 40, 3), 0.5, np.float32))
    assert read_image(path, max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(ImageError, match="40x30 = 1200 pixels is more than max_pixels=1199"):
        read_image(path, max_pixels=1199)


def test_apply_has_the_same_pixel_limit(tmp_path, finished_run, capsys):
    huge_png(tmp_path / "bomb.png", 12000)
    assert apply_main(["--checkpoint", str(finished_run / "model.pt"), str(tmp_path / "bomb.png"),
                       str(tmp_path / "out.png"), "--max-pixels", "1000000"]) == 2
    assert "more than max_pixels=1000000" in capsys.readouterr().err


def test_dangling_and_looping_symlinks_are_counted_skips_or_stop_strict_mode(tmp_path, photo_dir):
    (photo_dir / "dangling.png").symlink_to(photo_dir / "gone.png")
    (photo_dir / "loop.png").symlink_to(photo_dir / "loop.png")
    issues = DataIssues(strict=False, min_side=16)
    assert len(load_photos(str(photo_dir), None, None, issues)) == 4
    reasons = {Path(item["file"]).name: item["reason"] for item in issues.skipped}
    assert reasons["dangling.png"] == "dangling symbolic link"
    assert "Too many levels of symbolic links" in reasons["loop.png"]
    with pytest.raises(BenchmarkError, match="dangling.png: dangling symbolic link"):
        load_photos(str(photo_dir), None, None, DataIssues(strict=True, min_side=16))


def test_opencv_assertion_text_is_reduced_to_its_expression():
    import cv2
    try:
        cv2.resize(np.zeros((0, 0, 3), np.float32), (4, 4))
    except cv2.error as error:
        message = _library_message(error)
    assert message.startswith("OpenCV could not decode it: ") and "in function" not in message
    assert "/io/opencv" not in message and "-215" not in message


def test_a_non_utf8_file_list_is_one_error_naming_it(tmp_path, rng):
    root = tmp_path / "pairs"
    for name in ("a", "b", "c"):
        write_image(root / "input" / f"{name}.png", rng.random((40, 56, 3), dtype=np.float32))
        write_image(root / "output" / f"{name}.png", rng.random((40, 56, 3), dtype=np.float32))
    (root / "filelist.txt").write_bytes("a\nb\n\xe9t\xe9\n".encode("latin-1"))
    with pytest.raises(BenchmarkError, match=r"filelist.txt: not UTF-8 text \(byte 4\)"):
        run(compose_config(["profile=smoke", "task=photoshop", f"task.root={root}", "model=hdrnet",
                            f"data.cache_dir={tmp_path / 'cache'}"]), tmp_path / "run")


# --- Permissions -----------------------------------------------------------------------------------


def test_outputs_follow_the_umask_not_0600(tmp_path):
    previous = os.umask(0o002)  # a shared group folder on a cluster
    try:
        run(smoke_config(tmp_path), tmp_path / "run")
        assert report_main([str(tmp_path / "run"), "--out", str(tmp_path / "report")]) == 0
    finally:
        os.umask(previous)
    written = [tmp_path / "run" / "results.json", tmp_path / "run" / "model.pt",
               *(tmp_path / "cache" / "pairs").rglob("*.npz"), *(tmp_path / "cache" / "checkpoints").glob("*.pt")]
    assert len(written) > 4
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == {"0o664"}
    assert oct(stat.S_IMODE((tmp_path / "report").stat().st_mode)) == "0o775"
