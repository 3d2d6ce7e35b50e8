"""A task's data: pairs made by its reference operator, or human-made pairs read from a folder."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark.core.errors import BenchmarkError
from benchmark.data.augment import AugmentConfig, pair_variants, photo_variants
from benchmark.data.fivek import fivek_layout
from benchmark.data.pair_folders import (
    PairFolder,
    listed_names,
    load_pair_folder,
    read_names,
)
from benchmark.data.pairs import PairSet, make_pairs
from benchmark.data.photos import DataIssues, load_photos, split_items
from benchmark.models.interface import Operator
from benchmark.models.registry import instantiate
from benchmark.training.train import check_crop_size


@dataclass(frozen=True)
class TaskData:
    train: PairSet
    test: PairSet
    operator: Operator | None  # None when the targets were made by people
    synthetic: bool  # targets from a built-in stand-in (e.g. synthetic Photoshop looks)
    source: str  # where the pairs came from, for the console and results.json
    augmented: int = 0  # of the training pairs, how many are variants (data.augment)


def _folder_split(
    layout: PairFolder, pairs: PairSet, cfg: DictConfig, issues: DataIssues
) -> tuple[PairSet, PairSet, str]:
    """The data set's own split when it has one (FiveK's test.txt, Random250, ...), else the seeded
    split; and a description of it."""
    test_list = layout.root / layout.test_list if layout.test_list else None
    if test_list is None or not test_list.is_file():
        train, test = split_items(pairs, cfg.data.test_fraction, split_seed(cfg))
        return train, test, f"seeded split (data.test_fraction={cfg.data.test_fraction}, seed {split_seed(cfg)})"
    test_names = set(read_names(test_list, layout.root / layout.input_dir, issues))
    train_names = set(listed_names(layout, layout.train_lists, issues)) if layout.train_lists else None
    train = [p for p in pairs if p.name not in test_names and (train_names is None or p.name in train_names)]
    test = [p for p in pairs if p.name in test_names]
    if not train or not test:
        raise BenchmarkError(f"{test_list}: leaves {len(train)} training and {len(test)} test pairs")
    lists = " + ".join(layout.train_lists) if layout.train_lists else "the rest"
    return train, test, f"official split: train {lists}, test {layout.test_list}"


def split_seed(cfg: DictConfig) -> int:
    """``data.split_seed``, or ``seed`` when it is null."""
    return cfg.seed if cfg.data.get("split_seed") is None else cfg.data.split_seed


def prepare_task(cfg: DictConfig, cache_dir: Path, issues: DataIssues, crop_size: int | None = None) -> TaskData:
    """Load, split and (for operator tasks) make the pairs of ``cfg.task``. ``crop_size``: the
    training crop of a learned model that will train, checked against the training photos first;
    only then are ``data.augment`` variants added to the training pairs (nothing else trains)."""
    task = cfg.task
    augment = AugmentConfig.from_config(cfg.data.get("augment"))
    variants = augment.variants if crop_size is not None else 0
    min_side = max(crop_size or 0, cfg.data.min_side)
    pairs_cfg = task.get("pairs")
    if pairs_cfg is not None and pairs_cfg.root:
        root = Path(pairs_cfg.root).expanduser()
        if pairs_cfg.get("layout") == "fivek":
            layout, described = fivek_layout(root, pairs_cfg.expert, pairs_cfg.input)
        else:
            layout = PairFolder(root, pairs_cfg.input_dir, pairs_cfg.output_dir, pairs_cfg.get("filelist"),
                                pairs_cfg.get("test_list"))
            described = f"{layout.input_dir}/ + {layout.output_dir}/"
        pairs = load_pair_folder(layout, cfg.data.max_side, cfg.data.max_images, issues)
        train, test, split = _folder_split(layout, pairs, cfg, issues)
        if crop_size is not None:
            check_crop_size(crop_size, [pair.input for pair in train])
        extra = pair_variants(train, replace(augment, variants=variants), cfg.seed, min_side)
        return TaskData(train + extra, test, None, False, f"pairs from {root}: {described}; {split}", len(extra))
    if task.get("operator") is None:
        raise BenchmarkError(task.get("missing_data") or f"task={task.name} needs data.root")
    operator = instantiate(task.operator, "task.operator")
    try:  # parameters are checked when the operator runs: try it on a tiny image before any work
        operator(np.full((16, 16, 3), 0.5, np.float32))
    except ValueError as error:  # operators' messages start with the parameter's name
        raise BenchmarkError(f"task.operator.{error}") from None
    params = OmegaConf.to_container(task.operator, resolve=True)
    photos = load_photos(cfg.data.root, cfg.data.max_side, cfg.data.max_images, issues)
    train_photos, test_photos = split_items(photos, cfg.data.test_fraction, split_seed(cfg))
    if crop_size is not None:  # before the operator runs on every photo, not after
        check_crop_size(crop_size, [photo.image for photo in train_photos])
    extra = photo_variants(train_photos, replace(augment, variants=variants), cfg.seed, min_side)
    train, reused_train = make_pairs(train_photos + extra, task.name, operator, params, cache_dir)
    test, reused_test = make_pairs(test_photos, task.name, operator, params, cache_dir)
    synthetic = bool(task.get("synthetic", False))
    source = f"{'synthetic ' if synthetic else ''}pairs made by {task.operator._target_} " \
             f"({reused_train + reused_test} of {len(train) + len(test)} from the cache in {cache_dir})"
    return TaskData(train, test, operator, synthetic, source, len(extra))
