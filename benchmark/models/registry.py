"""The models and tasks the harness knows: discovered from ``conf/model`` and ``conf/task`` (the
file name is the option; its ``name:`` must agree), built through Hydra."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from benchmark import PROJECT_ROOT
from benchmark.core.errors import BenchmarkError

if TYPE_CHECKING:  # the interface imports training, which reads checkpoints, which reads this
    from benchmark.models.interface import Approximator

CONF_DIR = PROJECT_ROOT / "conf"


def _checked_name(path: Path) -> str:
    """The option a conf file is: its file name, which its ``name:`` (where it has one) must equal."""
    declared = OmegaConf.load(path).get("name", path.stem)
    if declared != path.stem:
        raise BenchmarkError(f"{path.relative_to(PROJECT_ROOT)}: name: {declared} must equal the file name {path.stem}")
    return path.stem


def options(group: str) -> list[str]:
    """The options of config group ``group`` (``model``, ``task``, ...), sorted, names checked."""
    return [_checked_name(path) for path in sorted((CONF_DIR / group).glob("*.yaml"))]


def config_path(group: str, option: str) -> Path:
    """``conf/<group>/<option>.yaml`` with its name checked, or one error naming the known options."""
    path = CONF_DIR / group / f"{option}.yaml"
    if not path.is_file():
        known = sorted(other.stem for other in (CONF_DIR / group).glob("*.yaml"))
        raise BenchmarkError(f"{group}={option}: no such option; {group} is one of {', '.join(known)}")
    _checked_name(path)
    return path


def instantiate(node: DictConfig, key: str) -> Any:
    """Hydra's instantiate, with a constructor's complaint turned into a one-line error."""
    try:
        return hydra.utils.instantiate(node, _convert_="all")
    except InstantiationException as error:
        message = " ".join(str(error.__cause__ or error).split())  # one line
        raise BenchmarkError(f"{key}: {message}") from None


def model_class(model_cfg: DictConfig | dict[str, Any]) -> type[Approximator]:
    """The class a ``model`` config builds, without building it (to read its declared hooks)."""
    return hydra.utils.get_class(model_cfg["_target_"])


def model_targets() -> set[str]:
    """The ``_target_`` of every model in ``conf/model``: what a checkpoint may name."""
    return {OmegaConf.load(config_path("model", name))._target_ for name in options("model")}
