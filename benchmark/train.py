"""Training of the learned models: random full-resolution crops, L2 at full resolution, Adam, resumable."""

from __future__ import annotations

import fcntl
import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.errors import BenchmarkError
from benchmark.images import to_tensor
from benchmark.pairs import PairSet

LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` config group: the budget and the optimiser (values checked by ``validate``)."""

    steps: int
    batch_size: int
    crop_size: int
    lr: float
    lr_schedule: str
    weight_decay: float
    checkpoint_every: int
    eval_every: int

    def validate(self) -> None:
        for key in ("steps", "batch_size", "crop_size", "checkpoint_every", "eval_every"):
            if getattr(self, key) < 1:
                raise BenchmarkError(f"train.{key}={getattr(self, key)} must be a positive integer")
        if not self.lr > 0:
            raise BenchmarkError(f"train.lr={self.lr} must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise BenchmarkError(f"train.lr_schedule={self.lr_schedule!r} is not one of {LR_SCHEDULES}")
        if self.weight_decay < 0:
            raise BenchmarkError(f"train.weight_decay={self.weight_decay} must be >= 0")


class CropSampler:
    """Batches of random crops with random flips, drawn from one seeded torch generator."""

    def __init__(self, pairs: PairSet, crop_size: int, batch_size: int, seed: int) -> None:
        smallest = min(min(p.input.shape[:2]) for p in pairs)
        if crop_size > smallest:
            raise BenchmarkError(
                f"train.crop_size={crop_size} is larger than the smallest training image side ({smallest} px)"
            )
        self.inputs = [to_tensor(p.input)[0] for p in pairs]
        self.targets = [to_tensor(p.target)[0] for p in pairs]
        self.crop_size, self.batch_size = crop_size, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets, size = [], [], self.crop_size
        for _ in range(self.batch_size):
            index = self._randint(len(self.inputs))
            image, target = self.inputs[index], self.targets[index]
            top = self._randint(image.shape[1] - size + 1)
            left = self._randint(image.shape[2] - size + 1)
            pair = torch.stack([image, target])[:, :, top : top + size, left : left + size]
            if self._randint(2):
                pair = pair.flip(-1)
            if self._randint(2):
                pair = pair.flip(-2)
            inputs.append(pair[0])
            targets.append(pair[1])
        return torch.stack(inputs), torch.stack(targets)


def _psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-10))


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode without gradients, then back: monitoring must not touch BatchNorm statistics."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def mean_psnr(model: torch.nn.Module, pairs: PairSet, device: torch.device) -> float:
    """Mean over images of the full-resolution PSNR of the clipped output."""
    values = []
    with evaluating(model):
        for pair in pairs:
            output = model(to_tensor(pair.input, device)).clamp(0, 1)
            values.append(_psnr_from_mse(F.mse_loss(output, to_tensor(pair.target, device)).item()))
    return sum(values) / len(values)


def full_loss(model: torch.nn.Module, pairs: PairSet, device: torch.device) -> float:
    """The training objective (L2 at full resolution) over whole training images."""
    with evaluating(model):
        losses = [F.mse_loss(model(to_tensor(p.input, device)), to_tensor(p.target, device)).item() for p in pairs]
    return sum(losses) / len(losses)


def _save_atomic(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps, eta_min=cfg.lr * 0.01)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


@contextmanager
def checkpoint_lock(checkpoint_path: Path) -> Iterator[None]:
    """Hold ``<checkpoint>.lock`` (flock): parallel jobs with the same config train it once.

    The lock file stays: deleting it would let a third job lock a new file while a second still
    waits on the old one. The kernel drops the lock when its process dies, so nothing goes stale.
    """
    lock_path = checkpoint_path.with_name(checkpoint_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"Waiting for another job training {checkpoint_path}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def train_network(
    model: torch.nn.Module,
    train_pairs: PairSet,
    monitor_pairs: PairSet,
    cfg: TrainConfig,
    checkpoint_path: Path,
    device: torch.device,
    seed: int,
) -> dict[str, Any]:
    """Train ``model`` (full-resolution ``(B, 3, H, W)`` in and out) for ``cfg.steps`` steps,
    resuming from ``checkpoint_path`` when it exists.

    ``monitor_pairs`` (the held-out images) are only evaluated for the PSNR-vs-time curve: they
    never feed a gradient or a model choice. Returns the training summary and curve. A job that
    finds the same checkpoint in training elsewhere waits, then resumes from (reuses) it.
    """
    with checkpoint_lock(checkpoint_path):
        torch.manual_seed(seed)
        sampler = CropSampler(train_pairs, cfg.crop_size, cfg.batch_size, seed)
        model.to(device)
        # Adam as in the paper (§4); a small L2 weight decay.
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = _scheduler(optimizer, cfg)
        state: dict[str, Any] = {"step": 0, "train_seconds": 0.0, "curve": [], "losses": []}
        if checkpoint_path.exists():
            saved = torch.load(checkpoint_path, map_location=device, weights_only=True)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            sampler.generator.set_state(saved["sampler_rng"].cpu())
            state = saved["progress"]
            print(f"Resuming from {checkpoint_path} at step {state['step']}/{cfg.steps}", flush=True)
        else:
            state["loss_before"] = full_loss(model, train_pairs, device)
            state["curve"].append({"step": 0, "train_seconds": 0.0, "test_psnr": mean_psnr(model, monitor_pairs, device)})

        sampler_rng = sampler.generator.get_state()  # as of the last completed step

        def save() -> None:
            _save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "sampler_rng": sampler_rng,
                    "progress": state,
                },
                checkpoint_path,
            )

        model.train()
        bar = tqdm(total=cfg.steps, initial=state["step"], desc="train", unit="step", dynamic_ncols=True)
        try:
            while state["step"] < cfg.steps:
                started = time.perf_counter()
                inputs, targets = (t.to(device) for t in sampler.sample())
                loss = F.mse_loss(model(inputs), targets)  # L2 at full resolution (HDRNet §3.5)
                if hasattr(model, "regularization"):  # a model's own prior, e.g. 3D LUT smoothness
                    loss = loss + model.regularization()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                state["step"] += 1
                state["train_seconds"] += time.perf_counter() - started
                state["losses"].append(loss.item())
                sampler_rng = sampler.generator.get_state()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.5f}", refresh=False)
                step = state["step"]
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    test_psnr = mean_psnr(model, monitor_pairs, device)
                    state["curve"].append({"step": step, "train_seconds": state["train_seconds"], "test_psnr": test_psnr})
                    bar.write(f"step {step}: {state['train_seconds']:.0f} s of training, held-out PSNR {test_psnr:.2f} dB")
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save()
        except KeyboardInterrupt:
            save()
            bar.close()
            raise BenchmarkError(
                f"interrupted at step {state['step']}/{cfg.steps}; checkpoint saved to {checkpoint_path}: "
                "run the same command again to resume"
            ) from None
        bar.close()
        model.eval()
        if "loss_after" not in state:
            state["loss_after"] = full_loss(model, train_pairs, device)
            save()
        return {
            "steps": state["step"],
            "train_seconds": state["train_seconds"],
            "loss_before": state["loss_before"],
            "loss_after": state["loss_after"],
            "checkpoint": str(checkpoint_path),
            "curve": state["curve"],
        }
