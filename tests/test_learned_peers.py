"""The learned peers of HDRNet (DESIGN.md §6): deep guided filter (Wu et al. 2018) and image-adaptive
3D LUTs (Zeng et al. 2020): their ops, their start at the identity, that they learn, and a harness run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.deep_guided_filter import (
    DeepGuidedFilter,
    DeepGuidedFilterApproximator,
    GuidanceNet,
    guided_filter_layer,
    upsample_window,
)
from baselines.lut3d import (
    ImageAdaptiveLUT,
    LUT3DApproximator,
    apply_lut,
    identity_lut,
    lut_monotonicity,
    lut_smoothness,
)
from benchmark.__main__ import run
from benchmark.core.images import read_image, resize, to_tensor
from benchmark.data.pairs import Pair
from benchmark.data.photos import BUNDLED_PHOTOS
from benchmark.models.registry import CONF_DIR, options
from benchmark.training.train import CropSampler, TrainConfig, train_network
from tests.conftest import compose_config, move_off_init, psnr

M = 33  # LUT entries per axis


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread for this file: the results do not depend on it, and on a 2-core machine
    that is already busy, two OpenMP threads made these tests ~40x slower (190 s instead of 5 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def photo(name: str = "kodim03", size: tuple[int, int] = (128, 192)) -> torch.Tensor:
    """A real photo (bundled Kodak), area-resized to ``size`` (H, W), as a (1, 3, H, W) tensor."""
    return to_tensor(resize(read_image(BUNDLED_PHOTOS / f"{name}.png"), size))


def lut_from(fn) -> torch.Tensor:
    """A (3, M, M, M) LUT indexed [out, b, g, r] whose entry at lattice point (r, g, b) is fn(r, g, b)."""
    ramp = torch.linspace(0, 1, M)
    b, g, r = torch.meshgrid(ramp, ramp, ramp, indexing="ij")
    return torch.stack(fn(r, g, b))


# ---------------------------------------------------------------------------------------------
# 3D LUT


def test_identity_lut_lookup_returns_the_input_exactly():
    image = torch.rand(2, 3, 37, 53)
    image[0, :, 0, :4] = torch.tensor([0.0, 1.0, 0.5, 1 / 32])[None]  # lattice ends and a vertex
    assert (apply_lut(identity_lut(M), image) - image).abs().max() < 1e-5


def test_channel_swap_lut_swaps_red_and_blue():
    """The grid_sample coordinate-order pitfall: with (b, g, r) instead of (r, g, b) as the grid's
    last axis, this LUT would come back as the identity."""
    swap = lut_from(lambda r, g, b: (b, g, r))
    image = torch.rand(1, 3, 29, 31)
    out = apply_lut(swap, image)
    assert (out - image[:, [2, 1, 0]]).abs().max() < 1e-5
    assert (out - image).abs().max() > 0.1


def test_nonlinear_lut_exact_at_vertices_and_linear_between():
    """out = (r^2, r*b, 1 - g): r^2 is exact at vertices and piecewise linear between them; r*b and
    1 - g are multilinear, which trilinear interpolation reproduces exactly everywhere."""
    lut = lut_from(lambda r, g, b: (r**2, r * b, 1 - g))
    k = torch.arange(M, dtype=torch.float32)
    rng = torch.Generator().manual_seed(1)
    vertices = torch.stack([k[torch.randperm(M, generator=rng)] / (M - 1) for _ in range(3)])  # (3, M) exact k/32
    out = apply_lut(lut, vertices.view(1, 3, 1, M))[0, :, 0]
    r, g, b = vertices
    assert torch.allclose(out, torch.stack([r**2, r * b, 1 - g]), atol=1e-6)

    midpoints = torch.stack([(k[:-1] + 0.5) / (M - 1), vertices[1, :-1], vertices[2, :-1]])  # r halfway
    out = apply_lut(lut, midpoints.view(1, 3, 1, M - 1))[0, :, 0]
    r, g, b = midpoints
    halfway = ((k[:-1] / (M - 1)) ** 2 + ((k[:-1] + 1) / (M - 1)) ** 2) / 2
    assert torch.allclose(out[0], halfway, atol=1e-6)
    assert (out[0] - r**2).abs().min() > 1e-4  # genuinely the chord, not the curve
    assert torch.allclose(out[1:], torch.stack([r * b, 1 - g]), atol=1e-6)

    anywhere = torch.rand(1, 3, 16, 16)
    out = apply_lut(lut, anywhere)[0].reshape(3, -1)
    r, g, b = anywhere[0].reshape(3, -1)
    lattice = np.linspace(0, 1, M)
    chord = np.interp(r.numpy(), lattice, lattice**2)
    assert np.allclose(out[0].numpy(), chord, atol=1e-6)
    assert torch.allclose(out[1:], torch.stack([r * b, 1 - g]), atol=1e-5)


def test_lut_regularisers():
    identity = identity_lut(M)
    assert lut_monotonicity(identity).item() == 0  # the identity never decreases
    assert lut_monotonicity(torch.zeros_like(identity)).item() == 0
    assert lut_smoothness(torch.full_like(identity, 0.3)).item() == 0  # constant: perfectly smooth
    # The paper's R_s is not zero for the identity: one channel steps by 1/32 along each axis.
    assert lut_smoothness(identity).item() == pytest.approx((1 / (M - 1)) ** 2, rel=1e-5)
    inverted = lut_from(lambda r, g, b: (1 - r, g, b))
    assert lut_monotonicity(inverted).item() == pytest.approx(1 / (M - 1) / 3, rel=1e-5)
    bumped = identity.clone()
    bumped[1, 5, 7, 9] += 0.2  # a local bump: decreases after it along g
    assert lut_monotonicity(bumped).item() > 0
    assert lut_smoothness(bumped).item() > lut_smoothness(identity).item()


def test_lut_model_regularization_term():
    model = ImageAdaptiveLUT()
    lambda_s, lambda_m = model.lambda_smooth, model.lambda_monotone
    assert (lambda_s, lambda_m) == (1e-4, 10.0)
    # Bases identity, 0, 0: R_m = 0 and R_s = (1/32)^2 from the identity basis.
    assert model.regularization().item() == pytest.approx(lambda_s / (M - 1) ** 2, rel=1e-5)
    model.train()
    model(torch.rand(2, 3, 40, 40))
    weights = model._last_weights.detach()
    expected = lambda_s * ((1 / (M - 1)) ** 2 + weights.pow(2).mean().item())
    assert model.regularization().item() == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        model.luts[1] = lut_from(lambda r, g, b: (1 - r, g, b))
    assert model.regularization().item() > lambda_m * 0.01  # + lambda_m * R_m (1/96)


def test_lut_model_starts_at_the_identity():
    model = ImageAdaptiveLUT()
    image = photo()
    for train_mode in (False, True):
        model.train(train_mode)
        with torch.no_grad():
            assert (model(image) - image).abs().max() < 1e-5
    with torch.no_grad():
        weights = model.weights(model.lowres(torch.cat([image, photo("kodim07")])))
    assert torch.allclose(weights[:, 0], torch.ones(2))  # w_0 = 1; w_1, w_2 image-dependent
    assert (weights[0, 1:] - weights[1, 1:]).abs().min() > 1e-3


def test_lut_model_parameter_count_and_odd_sizes():
    model = ImageAdaptiveLUT()
    approx = LUT3DApproximator("lut3d", 3, 33, 1e-4, 10.0, 0.5)
    cnn = (3 * 9 + 1) * 16 + (16 * 9 + 1) * 32 + (32 * 9 + 1) * 64 + (64 * 9 + 1) * 128 + (128 * 9 + 1) * 128
    norms = 2 * (16 + 32 + 64 + 128)
    output = 128 * 64 * 3 + 3
    luts = 3 * 3 * 33**3
    assert luts == 323_433
    assert approx.parameter_count() == sum(p.numel() for p in model.parameters()) == cnn + norms + output + luts
    assert approx.parameter_count() == 593_516
    for shape in [(1, 3, 1, 1), (2, 3, 17, 41), (1, 3, 301, 99)]:
        assert model(torch.rand(shape)).shape == shape


# ---------------------------------------------------------------------------------------------
# Deep guided filter


@pytest.mark.parametrize(("low", "high"), [((16, 24), (64, 96)), ((17, 23), (67, 91))])
def test_guided_filter_layer_reproduces_an_affine_map(low, high):
    """Low-res target = alpha_c * guide + beta_c: every window fits (alpha, beta), so the upsampled
    coefficients applied to the high-res guide give alpha * guide_hr + beta (eps -> 0)."""
    guide_lr, guide_hr = torch.rand(2, 3, *low), torch.rand(2, 3, *high)
    alpha = torch.tensor([0.5, -1.2, 2.0]).view(1, 3, 1, 1)
    beta = torch.tensor([0.1, 0.9, -0.3]).view(1, 3, 1, 1)
    out = guided_filter_layer(guide_lr, alpha * guide_lr + beta, guide_hr, radius=1, eps=1e-8)
    assert out.shape == guide_hr.shape
    assert (out - (alpha * guide_hr + beta)).abs().max() < 1e-4
    # A locally varying map is not reproduced: the layer really fits windows.
    wavy = guide_lr**2
    assert (guided_filter_layer(guide_lr, wavy, guide_hr, 1, 1e-8) - guide_hr**2).abs().max() > 1e-2


def test_guided_filter_coefficients_are_upsampled_at_pixel_centres():
    """Flat guide: A = 0 and b = box mean of the target. For a ramp target b is the ramp inside,
    and full-res pixel X reads it at (X + 0.5) * w / W - 0.5 (align_corners=False)."""
    ramp = torch.arange(8.0).expand(1, 3, 4, 8)
    out = guided_filter_layer(torch.zeros(1, 3, 4, 8), ramp, torch.zeros(1, 3, 16, 32), radius=1, eps=1e-4)
    x = torch.arange(32.0)
    inside = slice(6, 26)  # where (X + 0.5) / 4 - 0.5 lies in [1, 6], away from the clipped border windows
    assert torch.allclose(out[0, :, :, inside], ((x + 0.5) / 4 - 0.5)[inside].expand(3, 16, -1), atol=1e-5)


def test_guided_filter_layer_with_identity_guidance_from_the_model():
    """The model's guidance net starts as the identity; with it, the layer reproduces an affine
    map of the low-res input at full resolution."""
    guide = GuidanceNet().eval()
    image = photo("kodim07", (96, 144))
    lowres = DeepGuidedFilter(lowres_size=32).lowres(image)
    assert lowres.shape[-2:] == (32, 48)
    with torch.no_grad():
        assert torch.equal(guide(image), image)
        out = guided_filter_layer(guide(lowres), 0.8 * lowres + 0.1, guide(image), radius=1, eps=1e-8)
    assert (out - (0.8 * image + 0.1)).abs().max() < 1e-3


def test_deep_guided_filter_starts_near_the_identity():
    """Exact identity is impossible with eps > 0: A = var / (var + eps) blends flat low-res windows
    towards their mean. On real photos at 3x downsampling the start is within 35 dB of the input."""
    model = DeepGuidedFilter().eval()  # lowres_size 64
    for name in ("kodim03", "kodim07"):
        image = photo(name, (192, 288))
        with torch.no_grad():
            out = model(image)
        assert psnr(out, image) > 35
        assert (out - image).abs().mean() < 5e-3
    with torch.no_grad():  # with a tiny eps the same network is the identity to 1e-3
        tiny_eps = DeepGuidedFilter(eps=1e-8).eval()
        tiny_eps.load_state_dict(model.state_dict())
        assert (tiny_eps(image) - image).abs().max() < 1e-3


def test_deep_guided_filter_shapes_and_parameter_count():
    model = DeepGuidedFilter()
    for shape in [(1, 3, 67, 91), (2, 3, 65, 129), (1, 3, 33, 47), (1, 3, 1, 1), (1, 3, 301, 99)]:
        assert model(torch.rand(shape)).shape == shape
    assert model.lowres(torch.rand(1, 3, 301, 99)).shape[-2:] == (195, 64)  # shorter side 64, aspect kept
    can = 3 * 24 * 9 + 5 * 24 * 24 * 9 + 6 * (2 + 2 * 24) + 24 * 3 + 3
    guide = 3 * 15 + (2 + 2 * 15) + 15 * 3 + 3
    approx = DeepGuidedFilterApproximator("deep_guided_filter", 64, 1, 1e-4, 24, 5, 15)
    assert approx.parameter_count() == can + guide == 27_068


def test_guidance_net_batch_norm_from_pixel_covariance():
    """Training-mode AN in the guidance net takes the hidden layer's batch statistics from the 3x3
    pixel covariance; it must equal BatchNorm over the hidden activations themselves."""
    guide = GuidanceNet().train()
    with torch.no_grad():
        guide.norm.w1.fill_(0.7)
        guide.norm.weight.uniform_(0.5, 1.5)
        guide.norm.bias.uniform_(-0.1, 0.1)
        guide.out.weight.normal_()
    image = torch.rand(2, 3, 20, 30)
    hidden = guide.hidden(image.permute(0, 2, 3, 1)).reshape(-1, 15)
    normed = torch.nn.functional.batch_norm(hidden, None, None, guide.norm.weight, guide.norm.bias, True, 0.1, 1e-3)
    mixed = torch.nn.functional.leaky_relu(hidden + 0.7 * normed, 0.2)
    expected = guide.out(mixed).view(2, 20, 30, 3).permute(0, 3, 1, 2)
    assert torch.allclose(guide(image), expected, atol=1e-5)


def test_batch_statistics_only_in_gradient_steps():
    """Monitoring passes (no_grad, training mode) must not move BatchNorm's running statistics."""
    model = DeepGuidedFilter()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    with torch.no_grad():
        model(torch.rand(2, 3, 80, 80))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if "running" in k)
    model(torch.rand(2, 3, 80, 80)).sum().backward()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if "running" in k)


# ---------------------------------------------------------------------------------------------
# Whole-photo context (train.context=photo)


def test_upsample_window_equals_the_crop_of_the_full_upsampling():
    low = torch.rand(2, 6, 9, 13, dtype=torch.float64)
    full = torch.nn.functional.interpolate(low, size=(70, 101), mode="bilinear", align_corners=False)
    for top, left in [(0, 0), (37, 64), (22, 5)]:
        crop = upsample_window(low, (top, left, 70, 101), (33, 37))
        assert torch.allclose(crop, full[..., top:top + 33, left:left + 37], atol=1e-12)


@pytest.mark.parametrize("make", [DeepGuidedFilter, ImageAdaptiveLUT], ids=["deep_guided_filter", "lut3d"])
def test_crops_with_the_whole_photo_view_equal_crops_of_the_whole_output(make):
    """Output on a crop, given the whole photo's low-res view and the crop's window = that window of the
    output on the whole photo with that view (a landscape and a portrait photo in one batch: views of
    two shapes); the view is the model's own of the (flipped) photo, within float rounding."""
    model = make().eval()
    move_off_init(model.parameters(), 0.05)  # the image-wide parts far from the identity start
    photos = [photo("kodim03", (96, 144))[0], photo("kodim04", (144, 96))[0]]
    pairs = [Pair(str(i), p.permute(1, 2, 0).numpy(), p.permute(1, 2, 0).numpy()) for i, p in enumerate(photos)]
    inputs, _, lowres, window = CropSampler(pairs, 40, 6, seed=3, lowres=model.lowres).sample()
    assert isinstance(lowres, list) == (make is DeepGuidedFilter)  # the DGF keeps the aspect: two shapes
    flipped = [p.flip(dims) if dims else p for p in photos for dims in ([], [-1], [-2], [-1, -2])]
    with torch.no_grad():
        crops = model(inputs, lowres, window)
        for crop_input, crop, view, (top, left, height, width) in zip(inputs, crops, lowres, window.tolist()):
            whole = next(p for p in flipped if p.shape[1:] == (height, width)
                         and torch.equal(p[:, top:top + 40, left:left + 40], crop_input)
                         and torch.allclose(model.lowres(p[None])[0], view, rtol=0, atol=1e-6))  # flipped views
            whole_window = torch.tensor([[0, 0, height, width]])
            output = model(whole[None], [view] if isinstance(lowres, list) else view[None], whole_window)[0]
            assert (crop - output[:, top:top + 40, left:left + 40]).abs().max() < 1e-5


# ---------------------------------------------------------------------------------------------
# Both learn, and both run through the harness


def _gamma_pairs(count: int, offset: int) -> list[Pair]:
    pairs = []
    for i in range(count):
        image = resize(read_image(BUNDLED_PHOTOS / f"kodim{offset + i:02d}.png"), (64, 96))
        pairs.append(Pair(f"p{i}", image, np.clip(image**0.7, 0, 1).astype(np.float32)))
    return pairs


@pytest.mark.parametrize("make", [DeepGuidedFilter, ImageAdaptiveLUT], ids=["deep_guided_filter", "lut3d"])
def test_learns_a_gamma_curve(make, tmp_path):
    cfg = TrainConfig(
        steps=40, batch_size=2, crop_size=48, lr=1e-3, lr_schedule="cosine", weight_decay=1e-7,
        checkpoint_every=1000, eval_every=1000,
    )
    model = make()
    prior = model.regularization if isinstance(model, ImageAdaptiveLUT) else (lambda: 0.0)
    summary = train_network(
        model, _gamma_pairs(3, 1), _gamma_pairs(1, 10), cfg, tmp_path / "ckpt.pt", torch.device("cpu"), 0, prior
    )
    assert summary["loss_after"] < 0.5 * summary["loss_before"]
    assert summary["curve"][-1]["test_psnr"] > summary["curve"][0]["test_psnr"] + 1


@pytest.mark.parametrize("context", ["crop", "photo"])
@pytest.mark.parametrize("model_name", ["deep_guided_filter", "lut3d"])
def test_smoke_run_through_the_harness(model_name, context, photo_dir, tmp_path):
    cfg = compose_config(["profile=smoke", f"model={model_name}", f"data.root={photo_dir}",
                          f"data.cache_dir={tmp_path}", f"train.context={context}"])
    results = run(cfg, tmp_path / "run")
    assert results["model"] == model_name
    assert results["parameters"] == {"deep_guided_filter": 27_068, "lut3d": 593_516}[model_name]
    assert results["training"]["steps"] == 16
    summary = results["summary"]
    assert summary["images"] == 1 and math.isfinite(summary["psnr"]) and summary["time_ms"] > 0
    assert (tmp_path / "run" / "results.json").exists()


def test_budget_files_name_a_model_and_a_profile_and_set_the_steps():
    # conf/budget/<model>_<profile>.yaml is optional in the defaults list: a misspelt name would do nothing
    models, profiles = set(options("model")), set(options("profile"))
    budgets = sorted((CONF_DIR / "budget").glob("*.yaml"))
    assert budgets
    for path in budgets:
        model, profile = path.stem.rsplit("_", 1)
        assert model in models and profile in profiles, path.name
        hdrnet_steps = compose_config([f"profile={profile}"]).train.steps
        steps = compose_config([f"profile={profile}", f"model={model}"]).train.steps
        assert 0 < steps < hdrnet_steps, path.name  # a dearer step: fewer steps for the same minutes
    assert compose_config(["model=lut3d", "train.steps=77"]).train.steps == 77  # the command line wins
