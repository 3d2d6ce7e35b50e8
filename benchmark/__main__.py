"""Run one (task, model, profile) job: pairs, fit, full-resolution evaluation, results.json.

Usage: python -m benchmark task=local_laplacian model=hdrnet [profile=smoke|quick|paper] [key=value ...]
       python -m benchmark --help    (Hydra's help: config groups and every key)
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from benchmark.approximator import Approximator, FitContext, NetworkApproximator
from benchmark.checkpoints import MODEL_FILE, check_model_config, write_model
from benchmark.curves import write_training_curve
from benchmark.data import DataIssues
from benchmark.errors import BenchmarkError
from benchmark.evaluate import TimingConfig, evaluate, write_examples
from benchmark.metrics import METRIC_DEFINITIONS, Lpips
from benchmark.results import environment, format_table, summarise, write_json_atomic
from benchmark.tasks import instantiate, prepare_task
from benchmark.train import TrainConfig


def resolve_device(name: str) -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchmarkError(f"device={name!r} is not one of auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError(f"device={name!r} asked for CUDA, but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise BenchmarkError(f"device={name!r} is not one of auto, cpu, cuda, cuda:N")
    return device


def checkpoint_path(cfg: DictConfig) -> Path:
    """Same training config, same checkpoint: re-running a command resumes or reuses its training."""
    keyed = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("task", "model", "train", "data")}
    keyed["data"].pop("cache_dir")
    keyed["seed"] = cfg.seed
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.data.cache_dir) / "checkpoints" / f"{cfg.task.name}-{cfg.model.name}-{digest}.pt"


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The whole job; nothing is written to ``run_dir`` until the results are complete."""
    device = resolve_device(cfg.device)
    train_cfg = TrainConfig(**cfg.train)
    train_cfg.validate()
    timing = TimingConfig(**{k: cfg.eval[k] for k in ("warmup", "repeats")})
    if timing.warmup < 0 or timing.repeats < 1:
        raise BenchmarkError(f"eval.warmup={timing.warmup} must be >= 0 and eval.repeats={timing.repeats} >= 1")
    if cfg.data.min_side < 1:
        raise BenchmarkError(f"data.min_side={cfg.data.min_side} must be a positive number of pixels")
    torch.manual_seed(cfg.seed)
    if cfg.model.get("checkpoint"):  # weights of another model stop the run here, naming the setting
        check_model_config(cfg.model)
    model: Approximator = instantiate(cfg.model, "model")
    issues = DataIssues(strict=cfg.data.strict, min_side=cfg.data.min_side)
    data = prepare_task(cfg, Path(cfg.data.cache_dir) / "pairs", issues)
    if model.needs_operator and data.operator is None:
        raise BenchmarkError(
            f"model={cfg.model.name} runs the task's reference operator at low resolution, "
            f"but task={cfg.task.name} has none here ({data.source})"
        )
    print(f"{len(data.train)} training and {len(data.test)} test pairs: {data.source}", flush=True)
    if issues.skipped:
        print(f"{len(issues.skipped)} bad file(s) skipped (listed in results.json)", flush=True)
    lpips = Lpips.load(cfg.eval.lpips_net)
    lpips_status = "computed" if isinstance(lpips, Lpips) else lpips

    context = FitContext(train_cfg, data.test, checkpoint_path(cfg), device, cfg.seed)
    training = model.fit(data.train, context)
    rows, examples = evaluate(model, data.test, data.operator, timing, str(device), lpips if isinstance(lpips, Lpips) else None)
    results = {
        "task": cfg.task.name,
        "model": cfg.model.name,
        "profile": cfg.profile_name,
        "synthetic": data.synthetic,
        "data_source": data.source,
        "skipped_files": issues.skipped,
        "needs_operator": model.needs_operator,
        "upper_bound": getattr(model, "upper_bound", False),  # fits on the full-res output (recipes)
        "parameters": model.parameter_count(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "environment": environment(device),
        "metrics": METRIC_DEFINITIONS,
        "lpips_status": lpips_status,
        "split": {"train": [p.name for p in data.train], "test": [p.name for p in data.test]},
        "training": {k: v for k, v in training.items() if k != "curve"},
        "images": rows,
        "summary": summarise(rows),
    }
    if "curve" in training:
        write_training_curve(training["curve"], run_dir)
    write_examples(examples, run_dir / "examples")
    if isinstance(model, NetworkApproximator):
        write_model(run_dir / MODEL_FILE, model.network, results)
    write_json_atomic(results, run_dir / "results.json")
    print(format_table(results))
    print(f"results: {run_dir / 'results.json'}")
    return results


class JobFailed(CompactHydraException):
    """A multirun job's ``error:``; Hydra runs the other jobs first, then prints it and exits 1."""


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """One job. A bad config stops a single run (exit 2); in a multirun it fails only its own job."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        run(cfg, run_dir)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        # Ctrl-C in training arrives as a BenchmarkError too: it stops the whole sweep.
        if hydra_cfg.mode != RunMode.MULTIRUN or isinstance(error.__context__, KeyboardInterrupt):
            sys.exit(2)
        marker = run_dir / "error.txt"
        marker.with_suffix(".tmp").write_text(f"{error}\n")
        marker.with_suffix(".tmp").replace(marker)
        raise JobFailed(f"error: {error} (in {marker}; every failed job of the sweep has an error.txt)") from None


if __name__ == "__main__":
    main()
