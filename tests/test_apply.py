"""Trained models as files: a run's model.pt, model.checkpoint, `python -m benchmark.apply`, export."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmark import PROJECT_ROOT, apply
from benchmark.__main__ import run
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import read_image, resize, write_image
from benchmark.data.photos import BUNDLED_PHOTOS
from benchmark.hdrnet import oracle
from benchmark.models.registry import instantiate
from benchmark.training import checkpoints
from tests.conftest import compose_config, move_off_init, run_cli

CPU = torch.device("cpu")


def run_apply(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m benchmark.apply ARGS` as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, "-m", "benchmark.apply", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of a finished smoke run of HDRNet (16 steps on 96-px photos)."""
    root = tmp_path_factory.mktemp("trained")
    result = run_cli(["profile=smoke", f"hydra.run.dir={root / 'run'}", f"data.cache_dir={root / 'cache'}"], cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "run"


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A small photo (not one the model saw at this size) as an 8-bit PNG."""
    path = tmp_path / "photo.png"
    write_image(path, resize(read_image(BUNDLED_PHOTOS / "kodim05.png"), (80, 120)))
    return path


def test_a_learned_run_writes_a_slim_model_file_before_its_results(trained):
    saved = checkpoints.read_model(trained / checkpoints.MODEL_FILE)
    results = json.loads((trained / "results.json").read_text())
    assert (trained / checkpoints.MODEL_FILE).stat().st_size < 5_000_000
    assert saved["model_config"] == {k: v for k, v in results["config"]["model"].items() if k != "checkpoint"}
    assert saved["task"] == "local_laplacian"
    training = saved["training"]
    assert (training["steps"], training["seed"], training["profile"], training["loaded_from"]) == (16, 0, "smoke", None)
    assert training["test_psnr"] == results["summary"]["psnr"]
    assert training["git_revision"] == results["environment"]["git_revision"]
    assert (trained / "results.json").stat().st_mtime_ns >= (trained / checkpoints.MODEL_FILE).stat().st_mtime_ns


def test_apply_writes_what_predict_returns(trained, photo, tmp_path):
    checkpoint = trained / checkpoints.MODEL_FILE
    result = run_apply(["--checkpoint", str(checkpoint), "--device", "cpu", str(photo), "out/result.png"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "predict" in result.stdout and " ms" in result.stdout
    model, _ = apply.load_model(checkpoint, CPU)
    expected = model.predict(read_image(photo))
    eight_bit = model.predict(read_image(photo, keep_8bit=True))  # what an 8-bit output is made from
    written = read_image(tmp_path / "out" / "result.png", keep_8bit=True)
    assert written.shape == (80, 120, 3) and eight_bit.dtype == np.uint8
    np.testing.assert_array_equal(written, eight_bit)
    # the uint8 path rounds the fused kernel's result: at most one level from the float path's
    assert np.abs(written.astype(int) - np.rint(expected * 255)).max() <= 1

    assert apply.main(["--checkpoint", str(checkpoint), str(photo), str(tmp_path / "result.tif")]) == 0
    np.testing.assert_array_equal(np.rint(read_image(tmp_path / "result.tif") * 65535), np.rint(expected * 65535))


def test_model_checkpoint_loads_instead_of_training_with_identical_metrics(trained, tmp_path):
    checkpoint = trained / checkpoints.MODEL_FILE
    cache = trained.parent / "cache"  # pairs reused; the training checkpoint's key differs, so none is reused
    result = run_cli(["profile=smoke", f"hydra.run.dir={tmp_path / 'run'}", f"data.cache_dir={cache}",
                      f"model.checkpoint={checkpoint}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Resuming" not in result.stdout and "held-out PSNR" not in result.stdout
    trained_results = json.loads((trained / "results.json").read_text())
    loaded_results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert loaded_results["training"]["loaded_from"] == str(checkpoint)
    assert loaded_results["training"]["trained"]["steps"] == 16
    for key in ("psnr", "ssim", "delta_e"):
        assert [row[key] for row in loaded_results["images"]] == [row[key] for row in trained_results["images"]]
    resaved = checkpoints.read_model(tmp_path / "run" / checkpoints.MODEL_FILE)
    for name, tensor in checkpoints.read_model(checkpoint)["state_dict"].items():
        assert torch.equal(tensor, resaved["state_dict"][name]), name


def _junk_checkpoint(tmp_path: Path, trained: Path) -> str:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    return str(tmp_path / "junk.pt")


def test_a_damaged_or_unsafe_model_file_is_refused_in_one_short_line(tmp_path):
    """torch wraps a weights-only refusal in advice to load the file unrestricted (which would let
    it run code); the error keeps only the reason."""
    torch.save({"x": torch.zeros(3)}, tmp_path / "whole.pt")
    files = {
        "code.pt": (pickle.dumps({"a": print}, protocol=2), "refused by the weights-only loader: "),
        "empty.pt": (b"", "the file ends early"),
        "cut.pt": ((tmp_path / "whole.pt").read_bytes()[:200], "RuntimeError: PytorchStreamReader failed"),
    }
    for name, (data, reason) in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(BenchmarkError) as caught:
            checkpoints.read_model(tmp_path / name)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / name}: not a model checkpoint ({reason}"), message
        assert "weights_only" not in message and "\n" not in message and len(message) < 300 + len(str(tmp_path))


def _training_checkpoint(tmp_path: Path, trained: Path) -> str:
    return str(next((trained.parent / "cache" / "checkpoints").glob("*.pt")))


@pytest.mark.parametrize(
    "make_checkpoint, overrides, message",
    [
        (lambda tmp, run_dir: str(tmp / "missing.pt"), [], r"missing\.pt: no such checkpoint file"),
        (_junk_checkpoint, [], r"junk\.pt: not a model checkpoint"),
        (_training_checkpoint, [], "it is a training checkpoint from the cache"),
        (lambda tmp, run_dir: str(run_dir / "model.pt"), ["model.grid.luma_bins=4"],
         r"model\.pt: trained for a different model: model\.grid\.luma_bins=4 but the checkpoint has 8$"),
        (lambda tmp, run_dir: str(run_dir / "model.pt"), ["model.guide=curves", "model.lowres_size=128"],
         "model.guide='curves' but the checkpoint has 'pointwise'; model.lowres_size=128 but the checkpoint has 256"),
    ],
    ids=["missing", "junk", "training-checkpoint", "grid", "guide-and-size"],
)
def test_a_checkpoint_that_does_not_fit_stops_the_run_naming_file_and_setting(
    trained, tmp_path, make_checkpoint, overrides, message
):
    cfg = compose_config(["profile=smoke", f"data.cache_dir={trained.parent / 'cache'}",
                          f"model.checkpoint={make_checkpoint(tmp_path, trained)}", *overrides])
    with pytest.raises(BenchmarkError, match=message):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_task_name_means_the_shipped_checkpoint_made_by_export(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "SHIPPED_DIR", tmp_path / "checkpoints")
    shipped = tmp_path / "checkpoints" / "hdrnet" / "local_laplacian.pt"
    assert checkpoints.resolve("local_laplacian", "hdrnet") == shipped
    with pytest.raises(BenchmarkError, match="no such checkpoint file .ship one with: python -m benchmark.apply"):
        checkpoints.read_model(shipped)

    assert apply.main(["--export-from", str(trained)]) == 0  # default target: the shipped path
    assert checkpoints.read_model(shipped)["training"]["steps"] == 16
    assert checkpoints.resolve(str(trained / "model.pt"), "hdrnet") == trained / "model.pt"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "nope", "{photo}", "{out}"], "unknown task 'nope'; tasks: dehaze, "),
        (["--checkpoint", "{tmp}/missing.pt", "{photo}", "{out}"], "missing.pt: no such checkpoint file"),
        (["--checkpoint", "{model}", "{tmp}/broken.png", "{out}"], "broken.png: "),
        (["--checkpoint", "{model}", "{photo}", "{tmp}/out.gif"], "out.gif: unsupported output extension"),
        (["--checkpoint", "{model}", "{photo}"], "give an input and an output image"),
        (["--export-from", "{tmp}", "--to", "{out}"], "not a finished run .no results.json"),
        (["--export-from", "{tmp}/bicubic_run", "--to", "{out}"], "learns nothing .no model.pt.: nothing to export"),
    ],
    ids=["unknown-task", "missing-checkpoint", "unreadable-image", "bad-extension", "no-output", "export-unfinished",
         "export-unlearned"],
)
def test_bad_input_is_one_error_line_exit_2_and_no_output(trained, photo, tmp_path, capsys, args, message):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    (tmp_path / "bicubic_run").mkdir()
    (tmp_path / "bicubic_run" / "results.json").write_text("{}")  # a finished run that trains nothing
    values = {"photo": photo, "out": tmp_path / "out.png", "tmp": tmp_path, "model": trained / "model.pt"}
    assert apply.main([arg.format(**values) for arg in args]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ")
    assert re.search(message, errors[0]), errors[0]
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.gif").exists()


def test_cli_help_and_an_error_as_a_user_sees_them(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        apply.main(["--help"])
    assert exited.value.code == 0 and "--export-from" in capsys.readouterr().out
    failed = run_apply(["--task", "nope", "in.png", "out.png"], tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines() == [failed.stderr.strip()] and failed.stderr.startswith("error: ")


def test_settings_that_leave_the_weights_alone_may_differ_from_the_checkpoint(trained):
    cfg = compose_config(["profile=smoke", f"model.checkpoint={trained / 'model.pt'}", "model.fullres=grid_sample"])
    checkpoints.check_model_config(cfg.model)  # no error: the full-res kernel is how, not what


@pytest.mark.parametrize("model_name", ["deep_guided_filter", "lut3d"])
def test_learned_peers_load_their_model_file(tmp_path: Path, model_name: str) -> None:
    """model.checkpoint= works for every learned model, not only HDRNet: the weights load bit-exactly."""
    config = OmegaConf.load(Path(__file__).parents[1] / "conf" / "model" / f"{model_name}.yaml")
    torch.manual_seed(0)
    trained = instantiate(config, "model")
    move_off_init(trained.network.parameters(), 0.01)
    results = {
        "config": {"model": OmegaConf.to_container(config), "seed": 0}, "task": "local_laplacian",
        "profile": "smoke", "training": {"steps": 1}, "summary": {"psnr": 30.0}, "environment": {"git_revision": "x"},
    }
    checkpoints.write_model(tmp_path / "model.pt", trained.network, results)
    config.checkpoint = str(tmp_path / "model.pt")
    loaded = instantiate(config, "model")
    for (name, ours), theirs in zip(loaded.network.state_dict().items(), trained.network.state_dict().values()):
        assert torch.equal(ours, theirs), name
    assert loaded.loaded is not None and loaded.loaded["loaded_from"] == str(tmp_path / "model.pt")
    pixels = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)  # uint8 in, uint8 out
    as_float = loaded.predict(pixels.astype(np.float32) / 255)
    np.testing.assert_array_equal(loaded.predict(pixels), np.rint(np.clip(as_float, 0, 1) * 255).astype(np.uint8))


def test_apply_on_a_folder_skips_bad_files_keeps_inputs_and_resumes(trained, tmp_path):
    checkpoint = trained / checkpoints.MODEL_FILE
    photos = tmp_path / "photos"
    for index, name in enumerate(["a.png", "sub/b.jpg", "c.tif"]):
        write_image(photos / name, resize(read_image(BUNDLED_PHOTOS / f"kodim0{index + 1}.png"), (64, 96)))
    (photos / "broken.png").write_bytes(b"not a png")
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    result = run_apply(["--checkpoint", str(checkpoint), str(photos), "out", "--ext", ".png"], tmp_path)
    assert result.returncode == 1  # one photo could not be read
    assert "3 written, 0 already there (kept), 1 skipped" in result.stdout and "s/photo" in result.stdout
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "broken.png" in skipped[0]
    out = tmp_path / "out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a.png", "c.png", "sub/b.png"]
    model, _ = apply.load_model(checkpoint, CPU)
    expected = model.predict(read_image(photos / "sub" / "b.jpg", keep_8bit=True))
    np.testing.assert_array_equal(read_image(out / "sub" / "b.png", keep_8bit=True), expected)
    assert {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()} == before  # inputs untouched

    (out / "c.png").unlink()  # as if interrupted before c: a rerun writes only c
    stamp = (out / "a.png").stat().st_mtime_ns
    result = run_apply(["--checkpoint", str(checkpoint), str(photos), "out", "--ext", ".png"], tmp_path)
    assert "1 written, 2 already there (kept), 1 skipped" in result.stdout
    assert (out / "a.png").stat().st_mtime_ns == stamp and (out / "c.png").is_file()


@pytest.mark.parametrize("output", ["photos", "photos/results"])
def test_apply_refuses_an_output_folder_in_the_input_folder(trained, tmp_path, output):
    write_image(tmp_path / "photos" / "a.png", np.full((40, 40, 3), 0.5, np.float32))
    code = apply.main(["--checkpoint", str(trained / checkpoints.MODEL_FILE), str(tmp_path / "photos"),
                       str(tmp_path / output)])
    assert code == 2 and not (tmp_path / "photos" / "results").exists()


def test_grid_oracle_fits_each_test_photo_better_than_the_prediction(trained, tmp_path, capsys):
    assert oracle.main([str(trained), "--steps", "40"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if "| local_laplacian |" in line]
    results = json.loads((trained / "results.json").read_text())
    assert [row[1].strip() for row in rows[:-1]] == results["split"]["test"] and "mean" in rows[-1][1]
    identity, predicted, fitted = (float(value) for value in rows[-1][2:])
    assert predicted == pytest.approx(results["summary"]["psnr"], abs=0.01)  # the run's own figure
    assert abs(identity - results["summary"]["identity_psnr"]) < 0.01
    assert fitted > predicted + 1  # the grid fitted to the target can only be closer than the prediction
    assert oracle.main([str(trained), str(tmp_path)]) == 2  # every run checked before the first is fitted
    output = capsys.readouterr()
    assert "not a finished learned run" in output.err and "| local_laplacian |" not in output.out
