"""The whole job as a user runs it: smoke profile end to end, resume, cache reuse, bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.__main__ import run
from benchmark.core.errors import BenchmarkError
from benchmark.core.images import to_tensor, write_image
from benchmark.data.pairs import Pair
from benchmark.evaluation.metrics import PSNR_CAP_DB
from benchmark.hdrnet.model import HDRNet
from benchmark.training import train
from benchmark.training.train import (
    CropSampler,
    TrainConfig,
    adam,
    adam_step,
    train_network,
)
from tests.conftest import compose_config, run_cli

TOP_LEVEL_KEYS = {"task", "model", "config", "environment", "metrics", "images", "summary"}
SUMMARY_KEYS = {"psnr", "ssim", "delta_e", "lpips", "time_ms", "reference_time_ms", "identity_psnr"}


def smoke_args(tmp_path: Path, run_name: str, *extra: str) -> list[str]:
    return [
        "profile=smoke", f"hydra.run.dir={tmp_path / run_name}", f"data.cache_dir={tmp_path / 'cache'}", *extra,
    ]


def test_smoke_run_end_to_end_then_reuses_cache_and_checkpoint(tmp_path):
    first = run_cli(smoke_args(tmp_path, "run1"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    results = json.loads((tmp_path / "run1" / "results.json").read_text())
    assert TOP_LEVEL_KEYS <= results.keys()
    assert SUMMARY_KEYS <= results["summary"].keys()
    assert results["task"] == "local_laplacian" and results["model"] == "hdrnet"
    assert {"torch", "torch_threads", "device", "git_revision"} <= results["environment"].keys()
    assert set(results["metrics"]) == {"psnr", "ssim", "delta_e", "lpips"}
    assert len(results["images"]) == results["summary"]["images"] == 1
    assert not set(results["split"]["train"]) & set(results["split"]["test"])
    training = results["training"]
    assert training["steps"] == 16 and training["loss_after"] < training["loss_before"]
    assert training["train_psnr"] > 10 * np.log10(1 / training["loss_before"])  # on the training photos
    curve = pd.read_csv(tmp_path / "run1" / "training_curve.csv")  # points at steps 0, 8, 16 (eval_every=8)
    assert training["last_fifth_gain_db"] == pytest.approx(curve["test_psnr"].iloc[-1] - curve["test_psnr"].iloc[-2])
    assert (tmp_path / "run1" / "training_curve.csv").read_text().startswith("step,train_seconds,test_psnr")
    assert "mean" in first.stdout and "speedup" in first.stdout
    assert "0 of 10 from the cache" in first.stdout  # 4 photos + 2 operator-made variants of each of 3 training photos

    second = run_cli(smoke_args(tmp_path, "run2"), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "10 of 10 from the cache" in second.stdout and "Resuming" in second.stdout
    again = json.loads((tmp_path / "run2" / "results.json").read_text())
    assert again["summary"]["psnr"] == pytest.approx(results["summary"]["psnr"], abs=1e-9)


def _pairs(rng: np.random.Generator, count: int) -> list[Pair]:
    pairs = []
    for i in range(count):
        image = rng.random((40, 56, 3), dtype=np.float32)
        pairs.append(Pair(f"p{i}", image, np.clip(image**0.7 * 0.9, 0, 1).astype(np.float32)))
    return pairs


def _small_hdrnet() -> HDRNet:
    torch.manual_seed(0)
    return HDRNet(spatial_bins=8, luma_bins=4)


def _train_then_interrupt(pairs: list[Pair], cfg: TrainConfig, checkpoint: Path, at_step: int,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Train a fresh small HDRNet into ``checkpoint``, interrupted (Ctrl-C) at optimizer step ``at_step``."""
    calls = {"n": 0}
    original_step = train.adam_step

    def step_then_interrupt(optimizer):
        calls["n"] += 1
        if calls["n"] == at_step:
            raise KeyboardInterrupt
        original_step(optimizer)

    monkeypatch.setattr(train, "adam_step", step_then_interrupt)
    with pytest.raises(BenchmarkError, match="run the same command again to resume"):
        train_network(_small_hdrnet(), pairs, pairs[:1], cfg, checkpoint, torch.device("cpu"), seed=0)
    monkeypatch.setattr(train, "adam_step", original_step)


def _assert_same_weights(reference: torch.nn.Module, resumed: torch.nn.Module) -> None:
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=f"{name} differs after resume")


def _uninterrupted(tmp_path: Path, rng: np.random.Generator, steps: int) -> tuple[list[Pair], TrainConfig, HDRNet]:
    """Three small pairs, a config checkpointing every 4 steps, and a small HDRNet trained on them straight."""
    pairs = _pairs(rng, 3)
    cfg = TrainConfig(steps=steps, batch_size=2, crop_size=32, lr=1e-3, lr_schedule="cosine",
                      weight_decay=0.0, checkpoint_every=4, eval_every=6)
    reference = _small_hdrnet()
    train_network(reference, pairs, pairs[:1], cfg, tmp_path / "straight.pt", torch.device("cpu"), seed=0)
    return pairs, cfg, reference


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, rng, monkeypatch):
    pairs, cfg, reference = _uninterrupted(tmp_path, rng, 12)
    device = torch.device("cpu")
    _train_then_interrupt(pairs, cfg, tmp_path / "resumed.pt", 7, monkeypatch)
    saved = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert saved["progress"]["step"] == 6

    resumed = _small_hdrnet()
    summary = train_network(resumed, pairs, pairs[:1], cfg, tmp_path / "resumed.pt", device, seed=0)
    assert summary["steps"] == 12
    _assert_same_weights(reference, resumed)


def test_a_checkpoint_with_contiguous_optimizer_state_resumes_to_the_same_weights(tmp_path, rng, monkeypatch):
    """A checkpoint written before the convolution weights went channels-last holds Adam's moments
    contiguous: resuming puts them in their parameters' layout (the fused step pairs values by memory
    order; without that, every 3x3 weight is updated with another one's moments)."""
    pairs, cfg, reference = _uninterrupted(tmp_path, rng, 8)
    _train_then_interrupt(pairs, cfg, tmp_path / "resumed.pt", 5, monkeypatch)
    saved = torch.load(tmp_path / "resumed.pt", weights_only=True)
    moments = [value for state in saved["optimizer"]["state"].values() for value in state.values()
               if value.ndim == 4 and value.shape[2:] != (1, 1)]
    assert moments and all(not value.is_contiguous() for value in moments)  # as this version saves them
    for state in saved["optimizer"]["state"].values():  # as an older version saved them
        for key, value in state.items():
            state[key] = value.contiguous()
    torch.save(saved, tmp_path / "resumed.pt")
    resumed = _small_hdrnet()
    train_network(resumed, pairs, pairs[:1], cfg, tmp_path / "resumed.pt", torch.device("cpu"), seed=0)
    _assert_same_weights(reference, resumed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_step_gives_the_bits_of_optimizer_step(dtype, monkeypatch):
    """``adam_step`` calls torch's fused kernel itself after the first step: the same weights as
    ``Optimizer.step`` at every step, with weight decay under a cosine schedule, and no warning
    from the schedule."""
    models = [_small_hdrnet().to(dtype) for _ in range(2)]
    optimizers = [adam(model, lr=1e-2, weight_decay=1e-3) for model in models]
    full_steps = {"n": 0}
    counted = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        full_steps["n"] += self is optimizers[1]
        return counted(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6, eta_min=1e-4) for o in optimizers]
    generator = torch.Generator().manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(6):
            image = torch.rand(2, 3, 32, 48, generator=generator, dtype=dtype)
            for model, optimizer, schedule in zip(models, optimizers, schedules):
                optimizer.zero_grad(set_to_none=True)
                (model(image) - image.flip(-1)).square().mean().backward()
                adam_step(optimizer) if optimizer is optimizers[1] else optimizer.step()
                schedule.step()
            for first, second in zip(models[0].parameters(), models[1].parameters()):
                assert torch.equal(first, second)
    assert full_steps["n"] == 1  # only the first, which makes Adam's state
    assert not torch.equal(next(models[0].parameters()), next(_small_hdrnet().to(dtype).parameters()))


def test_corrupt_image_is_skipped_and_counted_or_stops_when_strict(tmp_path, photo_dir):
    (photo_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    lenient = run_cli(smoke_args(tmp_path, "run", f"data.root={photo_dir}", "data.max_images=5"), cwd=tmp_path)
    assert lenient.returncode == 0, lenient.stderr
    assert "skipping" in lenient.stdout and "1 bad file(s) skipped" in lenient.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [Path(item["file"]).name for item in results["skipped_files"]] == ["broken.png"]

    strict = run_cli(
        smoke_args(tmp_path, "strict", f"data.root={photo_dir}", "data.max_images=5", "data.strict=true"), cwd=tmp_path
    )
    assert strict.returncode == 2
    assert "broken.png" in strict.stderr and "Traceback" not in strict.stderr
    assert len([line for line in strict.stderr.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "strict" / "results.json").exists()


@pytest.mark.parametrize("override, named", [("model=nope", "model is one of bgu,"), ("task=nope", "task is one of")])
def test_unknown_group_option_is_named(tmp_path, override, named):
    result = run_cli(smoke_args(tmp_path, "run", override), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {override}: no such option; {named}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "override, named",
    [
        ("model.grid.spatial=12", "model.grid.spatial=12"),
        ("model.guide=edges", "model.guide='edges'"),
        ("train.crop_size=500", "train.crop_size=500"),
        ("train.lr=-1", "train.lr=-1"),
        ("data.test_fraction=1.0", "data.test_fraction=1.0"),
        ("device=tpu", "device='tpu'"),
        ("task.preset=wild", "task.operator.preset: expected one of"),
        ("task.operator.alpha=-1", "task.operator.alpha"),
        ("data.min_side=0", "data.min_side=0"),
    ],
)
def test_bad_settings_give_one_line_naming_the_key(tmp_path, photo_dir, override, named):
    cfg = compose_config(["profile=smoke", f"data.root={photo_dir}", f"data.cache_dir={tmp_path}", override])
    with pytest.raises(BenchmarkError) as error:
        run(cfg, tmp_path / "run")
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run" / "results.json").exists()


def test_rgba_16bit_grey_and_jpeg_photos_run(tmp_path, photo_dir, rng):
    base = np.linspace(0, 1, 96 * 64 * 3, dtype=np.float32).reshape(64, 96, 3)
    import cv2

    cv2.imwrite(str(photo_dir / "rgba.png"), np.dstack([(base * 255).astype(np.uint8), np.full((64, 96), 128, np.uint8)]))
    cv2.imwrite(str(photo_dir / "deep.png"), (base[..., ::-1] * 65535).astype(np.uint16))
    cv2.imwrite(str(photo_dir / "grey.png"), (base[..., 0] * 255).astype(np.uint8))
    write_image(photo_dir / "photo.jpg", rng.random((64, 96, 3), dtype=np.float32))
    cfg = compose_config(
        ["profile=smoke", f"data.root={photo_dir}", f"data.cache_dir={tmp_path}", "data.max_images=8", "train.steps=2"]
    )
    results = run(cfg, tmp_path / "run")
    assert len(results["split"]["train"]) + len(results["split"]["test"]) == 8


def test_bicubic_baseline_runs(tmp_path, photo_dir):
    cfg = compose_config(["profile=smoke", "model=bicubic", f"data.root={photo_dir}", f"data.cache_dir={tmp_path}"])
    results = run(cfg, tmp_path / "run")
    assert results["needs_operator"] is True and results["parameters"] == 0
    # 96-px photos are smaller than lowres_size=256: the output is the operator's own, exactly
    assert results["summary"]["psnr"] == PSNR_CAP_DB
    assert (tmp_path / "run" / "results.json").exists()


def test_whole_photo_context_batches_are_crops_of_the_flipped_photo_at_their_window(rng):
    """train.context=photo: each crop (flips included) is exactly the window of its flipped photo,
    and the low-res view is the model's view of that whole flipped photo (the photo's view flipped:
    within float rounding of the sums), the batch in the layout the model gives its views (HDRNet's
    network reads them channels-last)."""
    pairs = _pairs(rng, 3)
    model = HDRNet(spatial_bins=8, luma_bins=4)
    sampler = CropSampler(pairs, 32, 8, seed=1, lowres=model.lowres)
    plain = CropSampler(pairs, 32, 8, seed=1)
    inputs, targets, lowres, window = sampler.sample()
    plain_inputs, plain_targets = plain.sample()
    assert lowres.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(inputs, plain_inputs) and torch.equal(targets, plain_targets)  # same draws
    photos = [to_tensor(p.input)[0] for p in pairs]
    for crop, view, (top, left, height, width) in zip(inputs, lowres, window.tolist()):
        assert (height, width) == (40, 56)
        matches = [torch.allclose(model.lowres(flipped[None])[0], view, rtol=0, atol=1e-6)
                   for photo in photos for dims in ([], [-1], [-2], [-1, -2])
                   for flipped in [photo.flip(dims) if dims else photo]
                   if torch.equal(flipped[:, top:top + 32, left:left + 32], crop)]
        assert True in matches


def test_context_photo_trains_hdrnet_and_is_refused_for_models_without_a_whole_photo_view(tmp_path, rng):
    results = run(compose_config(["profile=smoke", "train.context=photo", f"data.cache_dir={tmp_path / 'cache'}"]),
                  tmp_path / "run")
    assert results["summary"]["psnr"] > results["summary"]["identity_psnr"]
    cfg = TrainConfig(steps=1, batch_size=1, crop_size=32, lr=1e-3, lr_schedule="cosine", weight_decay=0,
                      checkpoint_every=1, eval_every=1, context="photo")
    with pytest.raises(BenchmarkError, match="train.context=photo needs a model"):
        train_network(torch.nn.Conv2d(3, 3, 1), _pairs(rng, 1), [], cfg, tmp_path / "c.pt", torch.device("cpu"), 0)
    with pytest.raises(BenchmarkError, match="train.context='tile' is not one of crop, photo"):
        run(compose_config(["profile=smoke", "train.context=tile", f"data.cache_dir={tmp_path / 'cache'}"]),
            tmp_path / "bad")
