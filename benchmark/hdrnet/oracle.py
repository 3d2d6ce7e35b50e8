"""How good could HDRNet's bilateral grid be on each test photo? Where a run's gap comes from.

Usage: python -m benchmark.hdrnet.oracle RUN_DIR... [--steps 300] [--threads 1]

For each HDRNet run (a ``python -m benchmark`` run directory with its ``model.pt``), every test
photo's grid of affine coefficients is fitted to that photo's full-resolution target by Adam,
starting from the grid the network predicted, with the network's guide kept: the best this
representation (grid size, luma bins, learned guide) can do on the photo. Its gap to the network's
prediction is what the network fails to predict from a 256x256 view (data or budget); its gap to
the target is what the representation cannot express (the model). BGU fits the same kind of grid
from the operator's low-resolution output, so it sits between the two.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from benchmark.apply import load_model
from benchmark.core.errors import ArgumentParser, BenchmarkError, command
from benchmark.core.images import from_tensor, to_tensor
from benchmark.core.runtime import use_threads
from benchmark.data.photos import DataIssues
from benchmark.data.tasks import prepare_task
from benchmark.evaluation import metrics
from benchmark.hdrnet.fused import fused_guided_slice_apply
from benchmark.hdrnet.model import HDRNet, PointwiseGuide
from benchmark.training.checkpoints import MODEL_FILE


def psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    """The harness's PSNR (``evaluation.metrics.psnr``) of ``output`` clipped to [0, 1], as predict clips it."""
    return metrics.psnr(from_tensor(output.clamp(0, 1)), from_tensor(target))


def fit_grid(model: HDRNet, image: torch.Tensor, target: torch.Tensor, steps: int) -> tuple[float, float]:
    """PSNR of the predicted grid and of the grid fitted to ``target`` (``image``, ``target``: (1, 3, H, W)),
    the guide kept as trained."""
    hidden, out = model.guide.hidden, model.guide.out
    with torch.no_grad():
        predicted = model.coefficients(model.lowres(image))
        before = psnr(fused_guided_slice_apply(predicted, image, hidden, out), target)
    grid = predicted.clone().requires_grad_()
    optimizer = torch.optim.Adam([grid], lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        loss = F.mse_loss(fused_guided_slice_apply(grid, image, hidden, out), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        return before, psnr(fused_guided_slice_apply(grid, image, hidden, out), target)


def _pointwise_hdrnet(run: Path) -> HDRNet:
    """The trained network of a finished HDRNet run with the pointwise guide, or one error naming the run."""
    if not (run / ".hydra" / "config.yaml").is_file() or not (run / MODEL_FILE).is_file():
        raise BenchmarkError(f"{run}: not a finished learned run (needs .hydra/config.yaml and {MODEL_FILE})")
    model = load_model(run / MODEL_FILE, torch.device("cpu"))[0].network.eval()
    if not isinstance(model, HDRNet) or not isinstance(model.guide, PointwiseGuide):
        raise BenchmarkError(f"{run}: not an HDRNet run with model.guide=pointwise (the fused kernel's guide)")
    return model


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m benchmark.hdrnet.oracle", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="HDRNet run directories (with model.pt)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps per photo (cosine-decayed lr 1e-2)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: runs beside a sweep)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be positive")
    use_threads(args.threads)
    models = {run: _pointwise_hdrnet(run) for run in args.runs}  # every run checked before any is fitted
    print("| task | photo | identity | predicted grid | fitted grid |")
    print("|---|---|---|---|---|")
    for run, model in models.items():
        cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
        data = prepare_task(cfg, Path(cfg.data.cache_dir) / "pairs", DataIssues(strict=False, min_side=cfg.data.min_side))
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        rows = []
        for pair in data.test:
            image, target = to_tensor(pair.input), to_tensor(pair.target)
            rows.append((psnr(image, target), *fit_grid(model, image, target, args.steps)))
            print(f"| {cfg.task.name} | {pair.name} | {rows[-1][0]:.2f} | {rows[-1][1]:.2f} | {rows[-1][2]:.2f} |",
                  flush=True)
        identity, before, after = np.mean(rows, axis=0)
        print(f"| {cfg.task.name} | **mean** | {identity:.2f} | {before:.2f} | {after:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
