"""The bad values a new user types: each one error line naming the setting, before any work; and
conf/ files whose name disagrees with their file name."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.__main__ import run
from benchmark.core.errors import BenchmarkError
from benchmark.models import registry
from benchmark.speed import main as speed_main
from tests.conftest import compose_config, run_cli

SMOKE = ["profile=smoke", "task=local_laplacian", "device=cpu"]


def smoke_config(tmp_path: Path, *overrides: str):
    return compose_config([*SMOKE, f"data.cache_dir={tmp_path / 'cache'}", *overrides])


# --- Bad values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("train.steps=abc", "train.steps='abc' must be an integer >= 1"),
    ("train.steps=1.5", "train.steps=1.5 must be an integer >= 1"),
    ("train.batch_size=true", "train.batch_size=True must be an integer >= 1"),
    ("seed=-1", "seed=-1 must be an integer >= 0"),
    ("threads=0", "threads=0 must be an integer >= 1 or null"),
    ("data.max_side=0", "data.max_side=0 must be an integer >= 1 or null"),
    ("data.max_side=20", "data.max_side=20 must be >= data.min_side=32 (or null: native size)"),
    ("data.max_pixels=0", "data.max_pixels=0 must be an integer >= 1"),
    ("eval.repeats=0", "eval.repeats=0 must be an integer >= 1"),
])
def test_bad_values_are_one_error_naming_the_setting(tmp_path, override, message):
    with pytest.raises(BenchmarkError) as caught:
        run(smoke_config(tmp_path, override), tmp_path / "run")
    assert str(caught.value) == message


def test_a_crop_larger_than_the_photos_is_refused_before_any_pair_is_made(tmp_path):
    with pytest.raises(BenchmarkError, match=r"train.crop_size=200 is larger than .* \(64 px\)"):
        run(smoke_config(tmp_path, "train.crop_size=200"), tmp_path / "run")
    assert not list((tmp_path / "cache").rglob("*.npz"))


@pytest.mark.parametrize("setting", ["repeats=0", "warmup=-1", "budget_s=0", "train_crop=abc"])
def test_speed_settings_are_checked(capsys, setting):
    assert speed_main(["sizes=[64x64]", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {setting.split('=')[0]}") and len(err.splitlines()) == 1


@pytest.mark.parametrize("argument, first_line", [
    ("task=foo", "error: task=foo: no such option; task is one of dehaze, detail_enhancement, fivek, "
                 "local_laplacian, photoshop, style_transfer, tone_mapping"),
    ("model=foo", "error: model=foo: no such option; model is one of bgu, bgu_fast, bicubic,"),
    ("trian.steps=5", "error: Could not override 'trian.steps'. To append to your config use +trian.steps=5"),
])
def test_unknown_options_and_keys_are_one_error_line_and_exit_2(tmp_path, argument, first_line):
    result = run_cli(["profile=smoke", argument, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(first_line) and len(lines) <= 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_sweep_checks_each_of_its_values_before_any_job(tmp_path):
    result = run_cli(["-m", "profile=smoke", "model=bicubic,nope", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert result.returncode == 2 and "model=nope: no such option" in result.stderr
    assert not (tmp_path / "sweep").exists()


def test_a_conf_file_whose_name_differs_from_its_file_name_is_refused(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "good.yaml").write_text("name: good\n")
    (tmp_path / "model" / "copied.yaml").write_text("name: good\n")  # copied, renamed, name: left as it was
    monkeypatch.setattr(registry, "CONF_DIR", tmp_path)
    monkeypatch.setattr(registry, "PROJECT_ROOT", tmp_path.parent)
    with pytest.raises(BenchmarkError, match=r"model/copied.yaml: name: good must equal the file name copied"):
        registry.options("model")


def test_every_shipped_conf_file_is_named_after_its_file():
    assert "hdrnet" in registry.options("model") and "local_laplacian" in registry.options("task")
