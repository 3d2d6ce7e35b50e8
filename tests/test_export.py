"""ONNX export: the exported low-res graph + fused kernel reproduce the native model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from omegaconf import OmegaConf

from benchmark.core.errors import BenchmarkError
from benchmark.hdrnet.export import OnnxHDRNet, export_onnx, main
from benchmark.hdrnet.fused import guided_slice_apply
from benchmark.hdrnet.model import HDRNet
from benchmark.training.checkpoints import write_model
from tests.conftest import move_off_init


def _trained_looking_model() -> HDRNet:
    """He-initialised layers with the output layer and the guide moved off the identity: a grid
    that varies with the photo, as sensitive to the low-res view as a trained one (perturbing every
    layer of a He-initialised net saturates the output)."""
    torch.manual_seed(0)
    model = HDRNet(spatial_bins=8, luma_bins=4, lowres_size=64).eval()
    move_off_init([*model.coefficients.output.parameters(), *model.guide.parameters()], 0.05)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[HDRNet, Path]:
    model = _trained_looking_model()
    path = tmp_path_factory.mktemp("onnx") / "hdrnet.onnx"
    export_onnx(model, path)
    return model, path


@pytest.mark.parametrize("shape", [(96, 128), (77, 203)])
def test_exported_equals_native_at_any_size(exported: tuple[HDRNet, Path], shape: tuple[int, int]) -> None:
    model, path = exported
    image = np.random.default_rng(1).random((*shape, 3), dtype=np.float32)
    native, onnx = model.enhance(image), OnnxHDRNet(path).enhance(image)
    assert onnx.shape == image.shape
    assert np.abs(onnx - native).max() < 1e-5
    assert np.abs(native - image).max() > 0.01  # the model does something, so agreement means something


def test_uint8_export_equals_native_uint8_and_refuses_float(tmp_path: Path) -> None:
    model = _trained_looking_model()
    export_onnx(model, tmp_path / "u8.onnx", "uint8")
    runner = OnnxHDRNet(tmp_path / "u8.onnx")
    image = (np.random.default_rng(3).random((77, 203, 3)) * 255).astype(np.uint8)
    native, onnx = model.enhance(image), runner.enhance(image)
    assert onnx.dtype == np.uint8 and onnx.shape == image.shape
    # the same float view of the 8-bit pixels on both sides: only a value within float rounding of a
    # half level may round either way (none here; when the graph squeezed the 8-bit pixels with its
    # own rounding, 2.7 % of the values were a level off)
    assert np.abs(onnx.astype(int) - native).max() <= 1 and (onnx != native).mean() < 1e-3
    assert np.abs(native.astype(int) - image).max() > 2
    with pytest.raises(BenchmarkError, match="u8.onnx: exported for uint8 photos, given float32"):
        runner.enhance(image.astype(np.float32) / 255)
    with pytest.raises(BenchmarkError, match="--input-type='uint16'"):
        export_onnx(model, tmp_path / "x.onnx", "uint16")


@pytest.mark.parametrize("input_type", ["float32", "uint8"])
def test_the_whole_graph_gives_what_the_runner_gives(tmp_path: Path, input_type: str) -> None:
    """Any ONNX runtime runs the file whole, the photo squeezed by the graph's own Resize;
    OnnxHDRNet runs it from the Resize on, on the view it makes itself."""
    model = _trained_looking_model()
    export_onnx(model, tmp_path / "m.onnx", input_type)
    runner = OnnxHDRNet(tmp_path / "m.onnx")
    image = np.random.default_rng(4).random((77, 203, 3), dtype=np.float32)
    image = np.rint(image * 255).astype(np.uint8) if input_type == "uint8" else image
    whole = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (grid,) = whole.run(["grid"], {"image": np.ascontiguousarray(image.transpose(2, 0, 1)[None])})
    by_whole_graph, by_runner = guided_slice_apply(image, grid, *runner.guide), runner.enhance(image)
    assert runner.session.get_inputs()[0].shape == [1, 3, 64, 64]  # the runner never feeds the full photo
    if input_type == "uint8":  # a value within float rounding of a half level may round either way
        difference = np.abs(by_runner.astype(int) - by_whole_graph)
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    else:
        assert np.abs(by_runner - by_whole_graph).max() < 1e-5


def test_curves_guide_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="guide=pointwise"):
        export_onnx(HDRNet(spatial_bins=8, lowres_size=64, guide="curves"), tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_not_an_onnx_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(BenchmarkError, match="junk.onnx"):
        OnnxHDRNet(junk)


def test_cli_exports_a_run_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _trained_looking_model()
    model_cfg = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "conf/model/hdrnet.yaml"))
    model_cfg.update(grid={"spatial": 8, "luma_bins": 4}, lowres_size=64)
    results = {
        "config": {"model": model_cfg, "seed": 0}, "task": "local_laplacian", "profile": "smoke",
        "training": {"steps": 1}, "summary": {"psnr": 30.0}, "environment": {"git_revision": "test"},
    }
    write_model(tmp_path / "model.pt", model, results)
    assert main(["--checkpoint", str(tmp_path / "model.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    image = np.random.default_rng(2).random((50, 60, 3), dtype=np.float32)
    assert np.abs(OnnxHDRNet(tmp_path / "m.onnx").enhance(image) - model.enhance(image)).max() < 1e-5
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "n.onnx")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "n.onnx").exists()
