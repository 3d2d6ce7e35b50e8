"""Full-resolution image quality metrics (DESIGN.md §8), one value per image.

All take float HxWx3 RGB, sRGB-encoded, in [0, 1]; averaging over test images is the caller's.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from skimage.color import deltaE_cie76, rgb2lab
from skimage.metrics import structural_similarity

from benchmark.core.images import to_tensor
from benchmark.evaluation.lpips_weights import lpips_alex_path

PSNR_CAP_DB = 100.0  # identical images would give +inf, which JSON cannot hold

def _check_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred, dtype=np.float32), np.asarray(target, dtype=np.float32)
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"expected two HxWx3 images of one shape, got {pred.shape} and {target.shape}")
    return pred, target


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB over all pixels and channels, data range 1, capped at ``PSNR_CAP_DB``."""
    pred, target = _check_pair(pred, target)
    mse = float(np.mean(np.square(pred.astype(np.float64) - target)))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(1.0 / mse))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM as in Wang et al. 2004 (Gaussian σ=1.5 window, population covariance), RGB mean."""
    pred, target = _check_pair(pred, target)
    if min(pred.shape[:2]) < 11:
        height, width = pred.shape[:2]
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {width}x{height}")
    value = structural_similarity(
        pred,
        target,
        channel_axis=2,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    return float(value)


def delta_e(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean CIE76 ΔE (L2 distance in CIELAB, D65) over pixels, as in the FiveK literature."""
    pred, target = _check_pair(pred, target)
    return float(np.mean(deltaE_cie76(rgb2lab(pred), rgb2lab(target), channel_axis=-1)))


# torchvision weights lpips 0.1.4 builds its backbones from (``tv.<net>(pretrained=True)``).
_LPIPS_BACKBONES = {
    "alex": ("alexnet", torchvision.models.AlexNet_Weights.IMAGENET1K_V1),
    "vgg": ("vgg16", torchvision.models.VGG16_Weights.IMAGENET1K_V1),
    "squeeze": ("squeezenet1_1", torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1),
}


def lpips_weights_path(net: str) -> Path:
    """The backbone weights LPIPS ``net`` loads: for ``alex``, the file ``make install`` builds
    (``benchmark.evaluation.lpips_weights``) when present; else torchvision's ImageNet file in the torch hub cache."""
    if net not in _LPIPS_BACKBONES:
        raise ValueError(f"LPIPS net={net!r}; expected one of {sorted(_LPIPS_BACKBONES)}")
    if net == "alex" and lpips_alex_path().is_file():
        return lpips_alex_path()
    url = _LPIPS_BACKBONES[net][1].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


class Lpips:
    """LPIPS distance, built only from weights already on disk: nothing is downloaded.

    The backbone is created with random weights (``pnet_rand=True``, so torchvision never
    fetches anything) and then loaded, ``weights_only``, from ``lpips_weights_path``; the
    linear heads ship inside the ``lpips`` package (and equal those in the built alex file).
    """

    def __init__(self, model: torch.nn.Module, net: str, device: torch.device, weights: Path) -> None:
        self.model, self.net, self.device = model, net, device
        self.definition = f"lpips v0.1, net={net}, inputs scaled to [-1, 1], backbone weights {weights}"

    @classmethod
    def load(cls, net: str = "alex", device: str | torch.device = "cpu") -> Lpips | str:
        """An ``Lpips`` when the backbone's weights are in the torch cache, else a one-line reason."""
        weights_path = lpips_weights_path(net)
        backbone = _LPIPS_BACKBONES[net][0]
        if not weights_path.is_file():
            built = " (for alex, make install builds them: python -m benchmark.evaluation.lpips_weights)" if net == "alex" else ""
            return (
                f"skipped: {backbone} ImageNet weights not in torch cache ({weights_path}){built}; "
                "LPIPS needs them and nothing is downloaded at run time"
            )
        try:
            model = _build_lpips(net, weights_path)
        except Exception as error:  # a corrupt or mismatched cache file: report, don't crash
            detail = f"{type(error).__name__}: {error}".splitlines()[0]
            return f"skipped: could not load {backbone} weights from {weights_path} ({detail})"
        device = torch.device(device)
        return cls(model.to(device), net, device, weights_path)

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        """LPIPS distance between two HxWx3 [0, 1] images (lower is more similar)."""
        pred, target = _check_pair(pred, target)
        with torch.no_grad():
            scaled = [to_tensor(image, self.device) * 2 - 1 for image in (pred, target)]  # lpips: [-1, 1]
            distance = self.model(*scaled)
        return float(distance.item())


def _build_lpips(net: str, weights_path: Path) -> torch.nn.Module:
    import lpips  # heavy import, only when LPIPS is actually used

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" notices
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    # lpips splits torchvision's ``features`` into slices that keep the layer indices as names:
    # "slice2.3.weight" holds "features.3.weight".
    remapped = {}
    for key in model.net.state_dict():
        _slice, index, rest = key.split(".", 2)
        remapped[key] = state[f"features.{index}.{rest}"]
    model.net.load_state_dict(remapped, strict=True)
    return model.eval().requires_grad_(False)


@dataclass(frozen=True)
class Metric:
    """One quality metric, as evaluation, results.json, the report and regression all read it.

    Adding a metric is adding one record to ``METRICS`` (and its function)."""

    key: str  # results.json key, per image and in the summary
    label: str  # report caption, e.g. "PSNR (dB)"
    column: str  # console column
    fmt: str  # number format
    higher_is_better: bool
    definition: str  # results.json:metrics
    compute: Callable[[np.ndarray, np.ndarray], float] | None  # None: needs the network loaded per run (LPIPS)
    regress_floor: float | None = None  # smallest change benchmark.regress flags; None: not checked
    unit: str = ""


METRICS: dict[str, Metric] = {metric.key: metric for metric in (
    Metric("psnr", "PSNR (dB)", "PSNR dB", "{:.2f}", True, (
        "PSNR in dB = 10*log10(1/MSE); MSE over all pixels and RGB channels of the sRGB-encoded "
        f"image, data range 1; capped at {PSNR_CAP_DB:g} dB (identical images); "
        "mean over test images of per-image values"), psnr, 0.05, "dB"),
    Metric("ssim", "SSIM", "SSIM", "{:.4f}", True, (
        "SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, population "
        "covariance, data range 1, computed per RGB channel of the sRGB-encoded image and averaged "
        "(skimage.metrics.structural_similarity); mean over test images of per-image values"), ssim, 0.001),
    Metric("delta_e", "ΔE (CIELAB)", "ΔE", "{:.2f}", False, (
        "CIE76 colour difference: Euclidean distance in CIELAB (D65, 2 degree observer; sRGB "
        "decoded to linear then XYZ by skimage.color.rgb2lab), mean over pixels; "
        "mean over test images of per-image values"), delta_e),
    Metric("lpips", "LPIPS", "LPIPS", "{:.4f}", False, (
        "LPIPS v0.1 (Zhang et al. 2018) with the stated backbone and ImageNet weights; RGB [0,1] "
        "scaled to [-1,1], full resolution; mean over test images of per-image values"), None, 0.002),
)}


def scorers(lpips: Lpips | None) -> dict[str, Callable[[np.ndarray, np.ndarray], float] | None]:
    """Each metric's function for this run; None for a metric that could not be set up (it is
    then null in results.json, with the reason in lpips_status)."""
    return {key: metric.compute if metric.compute is not None else lpips for key, metric in METRICS.items()}
