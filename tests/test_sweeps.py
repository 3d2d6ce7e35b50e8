"""Sweeps through each launcher config in conf/hydra/launcher, and what a failing job does to them."""

from __future__ import annotations

import json
import pickle
import re
import warnings
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from submitit.slurm.slurm import SlurmExecutor

from benchmark import PROJECT_ROOT
from tests.conftest import run_multirun


def hydra_config(overrides: list[str]) -> DictConfig:
    """The config, with its ``hydra`` node, that `python -m benchmark -m OVERRIDES` launches from."""
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def job_results(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """results.json of every job of a sweep, by job directory name."""
    return {path.parent.name: json.loads(path.read_text()) for path in sweep_dir.glob("*/results.json")}


@pytest.mark.parametrize(
    ("launcher", "target", "settings"),
    [
        ("parallel", "JoblibLauncher", {"n_jobs": 2, "timeout": None}),
        ("slurm", "SlurmLauncher", {"timeout_min": 240, "cpus_per_task": 4, "mem_gb": 16, "array_parallelism": 64}),
        ("ray_local", "RayLauncher", {"ray": {"init": {"address": None, "num_cpus": 2, "include_dashboard": False},
                                              "remote": {"num_cpus": 1}}}),
    ],
)
def test_launcher_configs_extend_the_plugins(launcher, target, settings):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Hydra's automatic schema matching, had a file shadowed the plugin's
        launcher_cfg = hydra_config([f"hydra/launcher={launcher}"]).hydra.launcher
    assert launcher_cfg._target_.endswith(target)
    assert {key: launcher_cfg[key] for key in settings} == settings


@pytest.mark.slow  # 11-30 s on 2 shared cores
def test_joblib_sweep_runs_every_job_in_parallel(tmp_path):
    sweep_dir = tmp_path / "sweep"
    grid_sweep = ["model.grid.luma_bins=4,8", "model.grid.spatial=8,16"]
    result = run_multirun(["profile=smoke", "model=hdrnet", "hydra/launcher=parallel", *grid_sweep],
                          tmp_path, tmp_path / "cache", sweep_dir)
    assert result.returncode == 0, result.stderr
    assert "Joblib.Parallel(n_jobs=2," in result.stdout
    grids = {(r["config"]["model"]["grid"]["luma_bins"], r["config"]["model"]["grid"]["spatial"])
             for r in job_results(sweep_dir).values()}
    assert grids == set(product((4, 8), (8, 16)))


def test_ray_sweep_on_a_local_two_cpu_instance(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_multirun(["profile=smoke", "model=bicubic", "hydra/launcher=ray_local", "seed=0,1"],
                          tmp_path, tmp_path / "cache", sweep_dir)
    assert result.returncode == 0, result.stderr
    assert "Started a local Ray instance" in result.stderr
    assert re.search(r"Initializing ray with config: .*'num_cpus': 2", result.stdout)
    assert sorted(r["config"]["seed"] for r in job_results(sweep_dir).values()) == [0, 1]


@pytest.mark.slow  # ~10 s; the sbatch script test below covers our SLURM config by default
def test_submitit_local_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_multirun(["profile=smoke", "model=bicubic", "hydra/launcher=submitit_local", "seed=0,1"],
                          tmp_path, tmp_path / "cache", sweep_dir)
    assert result.returncode == 0, result.stderr
    assert sorted(r["config"]["seed"] for r in job_results(sweep_dir).values()) == [0, 1]
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl"))  # each job ran in its own submitit process


def test_slurm_config_makes_one_sbatch_array(tmp_path, monkeypatch):
    """The hydra submitit plugin and submitit's SlurmExecutor, stopped where sbatch would be called."""
    cfg = hydra_config(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}"])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    scripts = []

    def submit_nothing(executor: SlurmExecutor, command: str) -> None:
        scripts.append(executor._make_submission_file_text(command, "uid"))
        raise InterruptedError("no SLURM here")

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is on PATH"
    monkeypatch.setattr(SlurmExecutor, "_submit_command", submit_nothing)
    with pytest.raises(InterruptedError):
        launcher.launch([["seed=0"], ["seed=1"], ["seed=2"]], initial_job_idx=0)
    (script,) = scripts
    sbatch = dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", script, flags=re.MULTILINE))
    assert sbatch["partition"] == "gpu" and sbatch["job-name"] == "bilateral-bench"
    assert sbatch["time"] == "240" and sbatch["cpus-per-task"] == "4" and sbatch["mem"] == "16GB"
    assert sbatch["array"] == "0-2%3"  # three jobs, at most array_parallelism (64) at once
    assert sbatch["output"] == f"{tmp_path}/.submitit/%A_%a/%A_%a_0_log.out"  # logs beside the jobs
    assert "export OMP_NUM_THREADS=4" in script and "submitit.core._submit" in script
    jobs = [pickle.loads(path.read_bytes()) for path in (tmp_path / ".submitit").glob("*.pkl")]
    assert sorted(job.args[0] for job in jobs) == [["seed=0"], ["seed=1"], ["seed=2"]]


# basic: in-process, ~5 s; parallel: loky worker processes, 12-16 s
@pytest.mark.parametrize("launcher", ["basic", pytest.param("parallel", marks=pytest.mark.slow)])
def test_a_bad_job_fails_alone_and_the_sweep_exits_non_zero(tmp_path, launcher):
    sweep_dir = tmp_path / "sweep"
    args = ["profile=smoke", "model=bicubic", f"hydra/launcher={launcher}", "task=fivek,local_laplacian"]
    result = run_multirun(args, tmp_path, tmp_path / "cache", sweep_dir)
    assert result.returncode == 1
    assert result.stderr.count("error: task=fivek needs MIT-Adobe FiveK") == 2  # the job's line, then the sweep's
    assert (sweep_dir / "0_fivek_bicubic" / "error.txt").read_text().startswith("task=fivek needs MIT-Adobe FiveK")
    assert not (sweep_dir / "0_fivek_bicubic" / "results.json").exists()
    assert list(job_results(sweep_dir)) == ["1_local_laplacian_bicubic"]


def test_paper_sweep_is_every_task_times_every_model(tmp_path):
    """eval.repeats=0 makes every job fail at once: 70 one-line errors, and the sweep still exits 1."""
    sweep_dir = tmp_path / "sweep"
    result = run_multirun(["+sweep=paper", "eval.repeats=0"], tmp_path, tmp_path / "cache", sweep_dir)
    assert result.returncode == 1
    tasks, models = ([path.stem for path in (PROJECT_ROOT / "conf" / group).glob("*.yaml")]
                     for group in ("task", "model"))
    jobs = {path.parent.name.split("_", 1)[1] for path in sweep_dir.glob("*/error.txt")}
    assert jobs == {f"{task}_{model}" for task, model in product(tasks, models)}
    assert result.stderr.count("error: eval.repeats=0") == len(jobs) + 1
