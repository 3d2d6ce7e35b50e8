"""Trained models as files: a run's slim ``model.pt``, the shipped ``checkpoints/<model>/<task>.pt``.

A model file is ``{"model_config", "task", "state_dict", "training"}``: the resolved ``cfg.model``
(without ``checkpoint``), the task name, the network's weights and a short training summary. It
is what ``model.checkpoint=...`` and ``python -m benchmark.apply`` load; the training checkpoints
in the cache (optimiser state, curve) stay there for resuming.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from benchmark import PROJECT_ROOT
from benchmark.core.errors import BenchmarkError
from benchmark.models.registry import model_class, options
from benchmark.training.train import load_failure, save_torch

MODEL_FILE = "model.pt"  # in every run directory of a learned model
SHIPPED_DIR = PROJECT_ROOT / "checkpoints"
MODEL_KEYS = ("model_config", "task", "state_dict", "training")


def shipped_path(task: str, model: str = "hdrnet") -> Path:
    """``checkpoints/<model>/<task>.pt`` under the project root, for a task that exists."""
    tasks = options("task")
    if task not in tasks:
        raise BenchmarkError(f"unknown task {task!r}; tasks: {', '.join(tasks)}")
    return SHIPPED_DIR / model / f"{task}.pt"


def resolve(value: str, model: str) -> Path:
    """``model.checkpoint``: a file path, or a bare task name meaning the shipped checkpoint."""
    path = Path(value).expanduser()
    if path.is_file() or path.suffix or len(path.parts) > 1:
        return path
    return shipped_path(value, model)


def read_model(path: Path) -> dict[str, Any]:
    """The contents of a model file, checked; one ``BenchmarkError`` naming the file otherwise."""
    if not path.is_file():
        make = f" (ship one with: python -m benchmark.apply --export-from RUN_DIR --to {path})"
        raise BenchmarkError(f"{path}: no such checkpoint file{make if SHIPPED_DIR in path.parents else ''}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip, EOF and runtime errors for a non-checkpoint
        raise BenchmarkError(f"{path}: not a model checkpoint ({load_failure(error)})") from None
    if not isinstance(saved, dict) or not set(MODEL_KEYS) <= saved.keys():
        training_checkpoint = isinstance(saved, dict) and "optimizer" in saved
        hint = ", it is a training checkpoint from the cache" if training_checkpoint else ""
        raise BenchmarkError(
            f"{path}: not a model checkpoint (expected the keys {', '.join(MODEL_KEYS)}{hint}; "
            f"a run of a learned model writes one as {MODEL_FILE})"
        )
    return saved


def _flatten(config: dict[str, Any], skip: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, skip, f"{prefix}{key}."))
        elif f"{prefix}{key}" not in skip:
            flat[f"{prefix}{key}"] = value
    return flat


def check_model_config(model_cfg: DictConfig) -> None:
    """Stop before any work when ``model.checkpoint`` holds weights of a different model."""
    path = resolve(model_cfg.checkpoint, model_cfg.name)
    runtime = model_class(model_cfg).runtime_settings  # how to run, not what was learned: may differ
    saved = _flatten(read_model(path)["model_config"], runtime)
    requested = _flatten(OmegaConf.to_container(model_cfg, resolve=True), runtime)
    differences = [
        f"model.{key}={requested.get(key)!r} but the checkpoint has {saved.get(key)!r}"
        for key in sorted(saved.keys() | requested.keys())
        if saved.get(key) != requested.get(key)
    ]
    if differences:
        raise BenchmarkError(f"{path}: trained for a different model: {'; '.join(differences)}")


def write_model(path: Path, network: torch.nn.Module, results: dict[str, Any]) -> None:
    """A run's model file (a few MB), from its network and its (complete) results."""
    training = results["training"]
    save_torch(
        {
            "model_config": {k: v for k, v in results["config"]["model"].items() if k != "checkpoint"},
            "task": results["task"],
            "state_dict": {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()},
            "training": {
                "steps": training.get("steps"),
                "loaded_from": training.get("loaded_from"),
                "seed": results["config"]["seed"],
                "profile": results["profile"],
                "test_psnr": results["summary"]["psnr"],
                "git_revision": results["environment"]["git_revision"],
            },
        },
        path,
    )


def export(run_dir: Path, target: Path | None) -> Path:
    """Copy a finished run's model file to ``target`` (default: the shipped path of its task)."""
    if not (run_dir / "results.json").is_file():
        raise BenchmarkError(f"{run_dir}: not a finished run (no results.json)")
    if not (run_dir / MODEL_FILE).is_file():
        raise BenchmarkError(f"{run_dir}: a run of a model that learns nothing (no {MODEL_FILE}): nothing to export")
    saved = read_model(run_dir / MODEL_FILE)
    target = target or shipped_path(saved["task"], saved["model_config"]["name"])
    save_torch(saved, target)
    return target
