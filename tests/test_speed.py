"""python -m benchmark.speed at tiny sizes: every row it promises, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from benchmark import PROJECT_ROOT, speed
from benchmark.speed import main, parse_size, timed_model
from benchmark.training.checkpoints import read_model, shipped_path

ROW_KEYS = {"method", "stage", "task", "width", "height", "megapixels", "median_ms", "p10_ms", "p90_ms", "threads", "device"}


def test_speed_json_has_every_stage(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "speed"
    groups = []  # each set of stages timed against each other in rounds, with its timings

    def recording_rounds(fns, **kwargs):
        groups.append(rounds(fns, **kwargs))
        return dict(groups[-1])

    rounds = speed.time_rounds
    monkeypatch.setattr(speed, "time_rounds", recording_rounds)
    code = main(["model=[hdrnet,bicubic]", "sizes=[96x64,128x96]", "repeats=3", "warmup=1", "train_crop=64",
                 "train_batch=2", "memory_size=64x64", f"out={out}"])
    assert code == 0
    rows = json.loads((out / "speed.json").read_text())
    timed = [row for row in rows if row["stage"] != "peak_memory"]
    assert all(ROW_KEYS <= row.keys() for row in timed)
    stages = {(row["method"], row["stage"]) for row in rows}
    for expected in [("reference", "total"), ("bicubic", "total"), ("bound", "fullres_bandwidth"),
                     ("hdrnet", "total"), ("hdrnet", "downsample"), ("hdrnet", "lowres_net"), ("hdrnet", "fullres"),
                     ("hdrnet", "total_video"), ("hdrnet", "fullres_grid_sample"), ("hdrnet", "train_step"),
                     ("hdrnet", "train_step_grid_sample"), ("hdrnet", "peak_memory"), ("hdrnet", "total_uint8"),
                     ("hdrnet", "fullres_uint8"), ("hdrnet", "total_uint8_via_float32"),
                     ("bound", "fullres_bandwidth_uint8")]:
        assert expected in stages
    for row in timed:
        assert row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] and row["threads"] >= 1
    sizes = {(row["width"], row["height"]) for row in timed if row["method"] == "reference"}
    assert sizes == {(96, 64), (128, 96)}
    # at each size the bound's copy ran in HDRNet's rounds (grid_sample alone), and the bound is its bandwidth
    with_copy = [group for group in groups if speed.BOUND_COPY in group]
    assert len(with_copy) == 2
    assert all({"fullres", "fullres_uint8", "total", "total_uint8"} <= group.keys() for group in with_copy)
    assert not any("fullres_grid_sample" in group for group in groups)
    copied = 2 * 64 * 2**20 * 4  # speed.bandwidth_copy's 256 MB, read and written
    measured = [copied / (group[speed.BOUND_COPY].median_ms / 1e3) / 1e9 for group in with_copy]
    bounds = [row for row in rows if row["method"] == "bound"]
    assert [row["gb_per_s"] for row in bounds] == [measured[0]] * 2 + [measured[1]] * 2
    memory = next(row for row in rows if row["stage"] == "peak_memory")
    assert memory["image_bytes"] == 64 * 64 * 3 * 4 and memory["peak_bytes"] > 0
    assert (out / "speed.png").is_file() and (out / "speed.pdf").is_file() and (out / "speed.csv").is_file()


def test_sizes_by_name_and_bad_settings() -> None:
    assert parse_size("1080p") == (1920, 1080) and parse_size("640x480") == (640, 480)
    bad = [(["sizes=[huge]"], "sizes"), (["sizes=[]"], "sizes: empty"), (["sizes=[1080p,1920x1080]"], "'1080p' again"),
           (["memory_size=huge"], "memory_size: 'huge'"), (["task=nonsense"], "task=nonsense"),
           (["model=nonsense"], "model"), (["model=[]"], "model: empty"), (["colour=1"], "colour")]
    for argv, message in bad:
        result = subprocess.run([sys.executable, "-m", "benchmark.speed", *argv], capture_output=True, text=True,
                                cwd=PROJECT_ROOT)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error:") and message in result.stderr and "Traceback" not in result.stderr


def test_hdrnet_is_timed_with_the_tasks_shipped_weights() -> None:
    """The fused kernel's time depends on the guide's spread over luma bins: time a trained guide."""
    model = timed_model("local_laplacian", "hdrnet")
    shipped = shipped_path("local_laplacian", "hdrnet")
    assert model.loaded["loaded_from"] == str(shipped)
    weights = read_model(shipped)["state_dict"]
    assert all(torch.equal(value, weights[name]) for name, value in model.network.state_dict().items())
    assert timed_model("fivek", "hdrnet").loaded is None  # no shipped weights for it: the initial network
    assert timed_model("local_laplacian", "lut3d").loaded is None


def test_hdrnet_eight_bit_stages_compute_what_they_name() -> None:
    """total_uint8 is the 8-bit path, total_uint8_via_float32 the same photo through the float path:
    the same output, at most a level apart (8-bit output is the float path rounded)."""
    photo = speed.test_photo(96, 64)  # (imported by name, pytest would collect it as a test)
    with torch.no_grad():  # as measure runs them
        stages = timed_model("local_laplacian", "hdrnet").timing_stages(photo, None, torch.device("cpu"))
        eight_bit, round_trip = stages["total_uint8"](), stages["total_uint8_via_float32"]()
    assert eight_bit.dtype == round_trip.dtype == np.uint8 and eight_bit.shape == round_trip.shape == photo.shape
    difference = np.abs(eight_bit.astype(int) - round_trip.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    assert not np.array_equal(eight_bit, np.rint(photo * 255).astype(np.uint8))  # the model did something
