"""Run one (task, model, profile) job: pairs, fit, full-resolution evaluation, results.json.

Usage: python -m benchmark task=local_laplacian model=hdrnet [profile=smoke|quick|paper] [key=value ...]
       python -m benchmark --help    (Hydra's help: config groups and every key)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra import compose, initialize_config_dir
from hydra.core import utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException, HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.core import settings
from benchmark.core.errors import BenchmarkError
from benchmark.core.files import (
    remove_stale_temporaries,
    write_bytes_atomic,
    write_errors,
    write_json_atomic,
)
from benchmark.core.runtime import resolve_device, use_threads
from benchmark.data.augment import is_variant
from benchmark.data.photos import DataIssues
from benchmark.data.tasks import prepare_task
from benchmark.evaluation.evaluate import (
    Example,
    TimingConfig,
    evaluate,
    write_examples,
)
from benchmark.evaluation.metrics import METRICS, Lpips
from benchmark.evaluation.results import environment, format_table, summarise
from benchmark.models.interface import Approximator, FitContext, NetworkApproximator
from benchmark.models.registry import CONF_DIR, config_path, instantiate
from benchmark.training.checkpoints import MODEL_FILE, check_model_config, write_model
from benchmark.training.curves import write_training_curve
from benchmark.training.train import TrainConfig


def checkpoint_path(cfg: DictConfig) -> Path:
    """Same training config, same checkpoint: re-running a command resumes or reuses its training."""
    keyed = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("task", "model", "train", "data")}
    for how_not_what in ("cache_dir", "max_pixels"):  # where and how to read, not what to train on
        keyed["data"].pop(how_not_what, None)
    keyed["seed"] = cfg.seed
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.data.cache_dir) / "checkpoints" / f"{cfg.task.name}-{cfg.model.name}-{digest}.pt"


def validate(cfg: DictConfig) -> None:
    """Every top-level, data and eval setting a run uses, before any work (train.*: TrainConfig)."""
    for group in ("task", "model"):  # a conf file whose name: disagrees with its file name stops here
        config_path(group, cfg[group].name)
    settings.integer("seed", cfg.seed, 0)
    settings.integer("threads", cfg.threads, 1, optional=True)
    data = cfg.data
    settings.integer("data.split_seed", data.get("split_seed"), 0, optional=True)
    min_side = settings.integer("data.min_side", data.min_side, 1)
    max_side = settings.integer("data.max_side", data.max_side, 1, optional=True)
    if max_side is not None and max_side < min_side:
        raise BenchmarkError(f"data.max_side={max_side} must be >= data.min_side={min_side} (or null: native size)")
    settings.integer("data.max_images", data.max_images, 2, optional=True)
    settings.integer("data.max_pixels", data.max_pixels, 1)
    settings.number("data.test_fraction", data.test_fraction, 0, above=True)
    settings.integer("eval.warmup", cfg.eval.warmup, 0)
    settings.integer("eval.repeats", cfg.eval.repeats, 1)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The whole job; nothing is written to ``run_dir`` until the results are complete."""
    validate(cfg)
    device = resolve_device(cfg.device)
    train_cfg = TrainConfig(**cfg.train)
    train_cfg.validate()
    timing = TimingConfig(**{k: cfg.eval[k] for k in ("warmup", "repeats")})
    use_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if cfg.model.get("checkpoint"):  # weights of another model stop the run here, naming the setting
        check_model_config(cfg.model)
    model: Approximator = instantiate(cfg.model, "model")
    cache_dir = Path(cfg.data.cache_dir)
    removed = remove_stale_temporaries(cache_dir)
    if removed:
        print(f"removed {removed} temporary file(s) left in {cache_dir} by killed runs", flush=True)
    issues = DataIssues(strict=cfg.data.strict, min_side=cfg.data.min_side, max_pixels=cfg.data.max_pixels)
    crop_size = train_cfg.crop_size if isinstance(model, NetworkApproximator) and model.loaded is None else None
    data = prepare_task(cfg, cache_dir / "pairs", issues, crop_size)
    if model.needs_operator and data.operator is None:
        raise BenchmarkError(
            f"model={cfg.model.name} runs the task's reference operator at low resolution, "
            f"but task={cfg.task.name} has none here ({data.source})"
        )
    made = f" ({data.augmented} of them operator-made variants, data.augment)" if data.augmented else ""
    print(f"{len(data.train)} training{made} and {len(data.test)} test pairs: {data.source}", flush=True)
    if issues.skipped:
        print(f"{len(issues.skipped)} bad file(s) skipped (listed in results.json)", flush=True)
    if model.lowres_size is not None:  # the upsampling baselines
        small = sum(max(pair.input.shape[:2]) <= model.lowres_size for pair in data.test)
        if small:
            print(f"warning: {small} of {len(data.test)} test photos are no larger than "
                  f"model.lowres_size={model.lowres_size} px: "
                  f"model={cfg.model.name} runs the operator on them at full resolution and scores them exactly",
                  flush=True)
    lpips = Lpips.load(cfg.eval.lpips_net)
    lpips_status = f"computed: {lpips.definition}" if isinstance(lpips, Lpips) else lpips

    context = FitContext(train_cfg, data.test, checkpoint_path(cfg), device, cfg.seed)
    training = model.fit(data.train, context)
    rows, examples = evaluate(model, data.test, data.operator, timing, str(device), lpips if isinstance(lpips, Lpips) else None)
    non_finite = [f"{row['image']} {key}" for row in rows for key in ("psnr", "ssim", "delta_e")
                  if not math.isfinite(row[key])]
    if non_finite:
        raise BenchmarkError(f"model={cfg.model.name} produced non-finite metrics ({', '.join(non_finite[:3])}); "
                             "no results written")
    results = {
        "task": cfg.task.name,
        "model": cfg.model.name,
        "profile": cfg.profile_name,
        "synthetic": data.synthetic,
        "data_source": data.source,
        "pairs": {"train": len(data.train), "augmented": data.augmented, "test": len(data.test)},
        "skipped_files": issues.skipped,
        "needs_operator": model.needs_operator,
        "upper_bound": model.upper_bound,  # fits on the full-res output (recipes)
        "parameters": model.parameter_count(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "environment": environment(device),
        "metrics": {key: metric.definition for key, metric in METRICS.items()},
        "lpips_status": lpips_status,
        "split": {  # the photos; operator-made variants are counted in "pairs"
            "train": [p.name for p in data.train if not is_variant(p.name)],
            "test": [p.name for p in data.test],
        },
        "training": {k: v for k, v in training.items() if k != "curve"},
        "images": rows,
        "summary": summarise(rows),
    }
    write_outputs(run_dir, results, training.get("curve"), examples,
                  model.network if isinstance(model, NetworkApproximator) else None)
    print(format_table(results))
    print(f"results: {run_dir / 'results.json'}")
    return results


def write_outputs(
    run_dir: Path, results: dict[str, Any], curve: list[dict[str, float]] | None, examples: dict[str, Example],
    network: torch.nn.Module | None,
) -> None:
    """Curve, examples, model.pt, then results.json last: a run directory with a results.json is
    complete. If any write fails (a full disk), what this run wrote is removed again."""
    before = set(run_dir.rglob("*")) if run_dir.exists() else set()
    try:
        if curve is not None:
            with write_errors(run_dir):
                write_training_curve(curve, run_dir)
        write_examples(examples, run_dir / "examples")
        if network is not None:
            write_model(run_dir / MODEL_FILE, network, results)
        write_json_atomic(results, run_dir / "results.json")
    except BaseException:
        for path in sorted(set(run_dir.rglob("*")) - before, reverse=True):  # files before their folders
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        raise


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
        write_bytes_atomic(marker, f"{error}\n".encode())
        raise JobFailed(f"error: {error} (in {marker}; every failed job of the sweep has an error.txt)") from None


def check_overrides(arguments: list[str]) -> None:
    """Unknown config-group options and misspelled keys as one ``BenchmarkError`` before Hydra runs
    (Hydra's own message is several lines and exits 1). Each value of a sweep is checked."""
    parser = OverridesParser.create()
    try:
        overrides = parser.parse_overrides([a for a in arguments if "=" in a and not a.startswith("-")])
    except OverrideParseException as error:
        raise BenchmarkError(" ".join(str(error).split())) from None
    first_values = []
    for override in overrides:
        if override.is_hydra_override():
            continue
        group = CONF_DIR / override.key_or_group
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else \
            [] if override.is_delete() else [override.get_value_element_as_str()]
        if group.is_dir():
            for value in values:
                config_path(override.key_or_group, value)  # an unknown option stops here, naming the known
        line = override.input_line if not override.is_sweep_override() else \
            f"{override.get_key_element()}={values[0] if values else ''}"
        first_values.append(line)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose("config", overrides=first_values)
    except (HydraException, OmegaConfBaseException) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        settings_list = ", ".join(f"{key}.*" if isinstance(value, dict) else key
                                  for key, value in OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml")).items()
                                  if key not in ("defaults", "hydra"))
        raise BenchmarkError(f"{' '.join(lines[:2])}\nsettings: {settings_list}, task.*, model.* "
                             "(python -m benchmark --help lists every key)") from None


def _save_config_atomically(cfg: DictConfig, filename: str, output_dir: Path) -> None:
    """Hydra's ``.hydra/*.yaml`` through the harness's atomic writer: a full disk stops the run with
    one error naming the file instead of a traceback and a config file cut short."""
    write_bytes_atomic(output_dir / filename, OmegaConf.to_yaml(cfg).encode())


def cli() -> None:
    """``python -m benchmark``: the overrides checked, then Hydra; every user error is one line."""
    hydra_utils._save_config = _save_config_atomically  # Hydra 1.3 writes its configs through this
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's exceptions reach the handlers below, not its printer
    try:
        check_overrides(sys.argv[1:])
        main()
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except CompactHydraException as error:  # JobFailed: a sweep's failed jobs, after the others ran
        print(error, file=sys.stderr, flush=True)
        sys.exit(1)
    except HydraException as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    cli()
