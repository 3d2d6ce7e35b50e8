"""Training of the learned models: random full-resolution crops, L2 at full resolution, Adam, resumable."""

from __future__ import annotations

import fcntl
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
import torch.optim.optimizer as optimizer_module
from tqdm import tqdm

from benchmark.core import settings
from benchmark.core.errors import BenchmarkError
from benchmark.core.files import write_atomic
from benchmark.core.images import to_tensor
from benchmark.core.runtime import keep_freed_memory
from benchmark.data.augment import is_variant
from benchmark.data.pairs import PairSet
from benchmark.training.curves import last_fifth_gain
from benchmark.training.losses import mse_loss

LR_SCHEDULES = ("cosine", "constant")
CONTEXTS = ("crop", "photo")


@runtime_checkable
class WholePhotoModel(Protocol):
    """A network whose image-wide part reads a low-resolution copy of the photo (HDRNet, the deep
    guided filter, the 3D LUTs): it can train on crops while seeing the whole photo, as it does at
    test time (train.context=photo)."""

    def lowres(self, image: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, image: torch.Tensor, lowres: torch.Tensor, window: torch.Tensor) -> torch.Tensor: ...


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
    context: str = "photo"  # what the image-wide part sees in training: the whole photo (as at test) or the crop

    def validate(self) -> None:
        for key in ("steps", "batch_size", "crop_size", "checkpoint_every", "eval_every"):
            settings.integer(f"train.{key}", getattr(self, key), 1)
        settings.number("train.lr", self.lr, 0, above=True)
        settings.choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        settings.number("train.weight_decay", self.weight_decay, 0)
        settings.choice("train.context", self.context, CONTEXTS)


def check_crop_size(crop_size: int, images: list[np.ndarray]) -> None:
    """Every training image must hold a ``crop_size`` square crop."""
    smallest = min(min(image.shape[:2]) for image in images)
    if crop_size > smallest:
        raise BenchmarkError(
            f"train.crop_size={crop_size} is larger than the smallest training image side ({smallest} px)"
        )


# inputs, targets (B, 3, S, S) [, lowres (B, 3, h, w) or, where the photos' views differ in shape,
# a list of B (3, h_i, w_i), window (B, 4)]
Batch = tuple[torch.Tensor | list[torch.Tensor], ...]


class CropSampler:
    """Batches of random crops with random flips, drawn from one seeded torch generator.

    With ``lowres`` (a model's whole-photo view, ``(1, 3, H, W) -> (1, 3, s, s)``) a batch also
    holds each crop's flipped whole photo at low resolution and the crop's window in it.
    """

    def __init__(
        self, pairs: PairSet, crop_size: int, batch_size: int, seed: int,
        lowres: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        check_crop_size(crop_size, [pair.input for pair in pairs])
        self.inputs = [to_tensor(p.input)[0] for p in pairs]
        self.targets = [to_tensor(p.target)[0] for p in pairs]
        self.crop_size, self.batch_size = crop_size, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.lowres = lowres
        self._lowres_cache: dict[tuple[int, bool, bool], torch.Tensor] = {}

    def _photo_lowres(self, index: int, flip_x: bool, flip_y: bool) -> torch.Tensor:
        """The view of photo ``index`` flipped so: the photo's view flipped. The antialiased resize's
        filter is mirror-symmetric, so that is the flipped photo's view up to the order of its sums
        (within 2e-7), at a quarter of the resizes (a 1000-step quick run: 126 instead of 504)."""
        key = (index, flip_x, flip_y)
        if key not in self._lowres_cache:
            dims = [dim for dim, flipped in ((-1, flip_x), (-2, flip_y)) if flipped]
            if dims:
                self._lowres_cache[key] = self._photo_lowres(index, False, False).flip(dims)
            else:
                with torch.no_grad():
                    self._lowres_cache[key] = self.lowres(self.inputs[index][None])
        return self._lowres_cache[key]

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def sample(self) -> Batch:
        inputs, targets, lowres, windows, size = [], [], [], [], self.crop_size
        for _ in range(self.batch_size):
            index = self._randint(len(self.inputs))
            image, target = self.inputs[index], self.targets[index]
            height, width = image.shape[1:]
            top = self._randint(height - size + 1)
            left = self._randint(width - size + 1)
            crops = [image[:, top : top + size, left : left + size], target[:, top : top + size, left : left + size]]
            flip_x, flip_y = bool(self._randint(2)), bool(self._randint(2))
            dims = [dim for dim, flipped in ((-1, flip_x), (-2, flip_y)) if flipped]
            if flip_x:
                left = width - left - size  # where the flipped crop sits in the flipped photo
            if flip_y:
                top = height - top - size
            # views until the batch is stacked; a flip copies once (both axes in one call)
            input_crop, target_crop = (crop.flip(dims) for crop in crops) if dims else crops
            inputs.append(input_crop)
            targets.append(target_crop)
            if self.lowres is not None:
                lowres.append(self._photo_lowres(index, flip_x, flip_y))
                windows.append((top, left, height, width))
        batch = (torch.stack(inputs), torch.stack(targets))
        if self.lowres is None:
            return batch
        same_shape = len({view.shape for view in lowres}) == 1
        # joined in the views' own memory layout (HDRNet's: channels-last, as its network reads them)
        views = torch.cat(lowres) if same_shape else [view[0] for view in lowres]
        return (*batch, views, torch.tensor(windows, dtype=torch.int64))


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


def save_torch(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` through the harness's atomic writer (benchmark.core.files)."""
    write_atomic(path, lambda handle: torch.save(state, handle))


def _finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(parameter).all()) for parameter in model.parameters())


def load_failure(error: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed on a file, in one short line: the
    weights-only unpickler's own reason (not torch's wrapping advice to load the file unrestricted,
    which would let a file run code), else the error's first sentence."""
    text = " ".join(str(error).split())
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].split(" Check the documentation", 1)[0].strip()
        return f"refused by the weights-only loader: {detail[:160]}"
    if isinstance(error, EOFError):
        return "the file ends early"
    return f"{type(error).__name__}: {text.split('. ')[0][:160]}"


def read_training_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """A cached training checkpoint, or None (with a warning) when it is unreadable: truncated by a
    killed writer of an older version, emptied by a full disk, or holding non-finite weights."""
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        usable = isinstance(saved, dict) and {"model", "optimizer", "scheduler", "sampler_rng", "progress"} <= saved.keys()
        usable = usable and all(bool(torch.isfinite(t).all()) for t in saved["model"].values() if t.is_floating_point())
    except Exception as error:  # torch raises pickle, zip, EOF and runtime errors for a damaged file
        usable, reason = False, load_failure(error)
    else:
        reason = "not a training checkpoint of this harness, or non-finite weights"
    if not usable:
        print(f"warning: {path}: unreadable checkpoint ({reason}); training from scratch", flush=True)
        return None
    return saved


def adam(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam as in the paper (§4), with a small L2 weight decay; torch's fused implementation (one
    kernel for all parameters: 0.8 ms a step for HDRNet on 2 cores, against 2 ms for the default loop)."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def adam_step(optimizer: torch.optim.Adam) -> None:
    """``optimizer.step()`` for an ``adam`` optimizer whose parameters all have their state: the
    same call of torch's fused kernel (the same bits), without ``Optimizer.step``'s bookkeeping
    around it each step (profiler record, hooks, the tensors regrouped by device and dtype): 0.83 ->
    0.50 ms of a quick HDRNet training step (DESIGN §10). The first step, which makes the state,
    and any optimizer this does not cover go through ``optimizer.step()``."""
    group = optimizer.param_groups[0]
    params = [param for param in group["params"] if param.grad is not None]
    states = [optimizer.state.get(param) for param in params]
    covered = (
        len(optimizer.param_groups) == 1 and group["fused"] and params and all(states)
        and not any(group[flag] for flag in ("amsgrad", "maximize", "capturable", "differentiable",
                                             "decoupled_weight_decay"))
        and not (optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                 or optimizer_module._global_optimizer_pre_hooks or optimizer_module._global_optimizer_post_hooks)
        and len({(param.device, param.dtype) for param in params}) == 1
    )
    if not covered:
        optimizer.step()
        return
    steps = [state["step"] for state in states]
    beta1, beta2 = group["betas"]
    with torch.no_grad():  # what torch.optim.adam._fused_adam does for one device and dtype
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params, [param.grad for param in params], [state["exp_avg"] for state in states],
            [state["exp_avg_sq"] for state in states], [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
            beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False, grad_scale=None,
            found_inf=None,
        )


def descend(optimizer: torch.optim.Adam, loss: torch.Tensor) -> None:
    """One training step on ``loss``, which the model's forward pass has just made: the old
    gradients cleared, ``loss`` back-propagated, ``adam_step``. The training loop and the speed
    benchmark's ``train_step`` both take it."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    adam_step(optimizer)


def _in_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Each parameter's optimizer state in the parameter's memory layout. The fused Adam step pairs
    values by memory order, and a loaded state keeps the layout it was saved in (a checkpoint from
    before HDRNet's convolution weights went channels-last holds contiguous ones): left so, resuming
    would silently update each weight with another one's moments."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param).copy_(value)


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
    regularization: Callable[[], torch.Tensor | float] = lambda: 0.0,
) -> dict[str, Any]:
    """Train ``model`` (full-resolution ``(B, 3, H, W)`` in and out) for ``cfg.steps`` steps,
    resuming from ``checkpoint_path`` when it exists; ``regularization()`` is added to every step's loss.

    ``monitor_pairs`` (the held-out images) are only evaluated for the PSNR-vs-time curve: they
    never feed a gradient or a model choice. Returns the training summary and curve. A job that
    finds the same checkpoint in training elsewhere waits, then resumes from (reuses) it.
    """
    with checkpoint_lock(checkpoint_path):
        torch.manual_seed(seed)
        keep_freed_memory()  # each step's tensors reuse the last one's pages: no page faults
        if cfg.context == "photo" and not isinstance(model, WholePhotoModel):
            raise BenchmarkError(f"train.context=photo needs a model whose image-wide part reads a low-resolution "
                                 f"copy of the photo; {type(model).__name__} has none")
        sampler = CropSampler(train_pairs, cfg.crop_size, cfg.batch_size, seed,
                              model.lowres if cfg.context == "photo" else None)
        model.to(device)
        optimizer = adam(model, cfg.lr, cfg.weight_decay)
        scheduler = _scheduler(optimizer, cfg)
        state: dict[str, Any] = {"step": 0, "train_seconds": 0.0, "curve": [], "losses": []}
        saved = read_training_checkpoint(checkpoint_path, device) if checkpoint_path.exists() else None
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            _in_parameter_layout(optimizer)
            scheduler.load_state_dict(saved["scheduler"])
            sampler.generator.set_state(saved["sampler_rng"].cpu())
            state = saved["progress"]
            print(f"Resuming from {checkpoint_path} at step {state['step']}/{cfg.steps}", flush=True)
        else:
            state["loss_before"] = full_loss(model, train_pairs, device)
            state["curve"].append({"step": 0, "train_seconds": 0.0, "test_psnr": mean_psnr(model, monitor_pairs, device)})

        sampler_rng = sampler.generator.get_state()  # as of the last completed step

        def save() -> None:
            if not _finite(model):
                raise BenchmarkError(
                    f"training diverged: non-finite weights after step {state['step']}/{cfg.steps} "
                    f"(train.lr={cfg.lr} is too high?); no checkpoint written"
                )
            save_torch(
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
                inputs, targets, *context = (t.to(device) if isinstance(t, torch.Tensor) else [v.to(device) for v in t]
                                             for t in sampler.sample())
                loss = mse_loss(model(inputs, *context), targets)  # L2 at full resolution (HDRNet §3.5)
                loss = loss + regularization()  # the model's own prior, e.g. 3D LUT smoothness
                if not torch.isfinite(loss):  # stop at once: nothing after this step is saved
                    raise BenchmarkError(
                        f"training diverged: loss {loss.item()} at step {state['step'] + 1}/{cfg.steps} "
                        f"(train.lr={cfg.lr} is too high?); the last finite checkpoint is kept"
                    )
                descend(optimizer, loss)
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
        if "train_psnr" not in state:  # as test PSNR, on the training photos themselves (not their variants)
            state["loss_after"] = full_loss(model, train_pairs, device)
            state["train_psnr"] = mean_psnr(model, [p for p in train_pairs if not is_variant(p.name)], device)
            save()
        gain = last_fifth_gain(state["curve"])
        bar.write(f"PSNR on the training photos (their variants left out): {state['train_psnr']:.2f} dB; "
                  f"held-out PSNR gained over the last fifth of the training time: "
                  f"{'n/a' if gain is None else f'{gain:+.2f} dB'}")
        return {
            "steps": state["step"],
            "train_seconds": state["train_seconds"],
            "loss_before": state["loss_before"],
            "loss_after": state["loss_after"],
            "train_psnr": state["train_psnr"],
            "last_fifth_gain_db": gain,
            "checkpoint": str(checkpoint_path),
            "curve": state["curve"],
        }
