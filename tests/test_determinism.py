"""One seed, one result: the same HDRNet job trained twice from scratch gives the same metrics, bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.__main__ import run
from benchmark.core.errors import BenchmarkError
from benchmark.hdrnet import warmup
from tests.conftest import cli_env, compose_config, run_cli

METRICS = ("psnr", "ssim", "delta_e", "identity_psnr")  # everything per image but the timings


def test_same_seed_same_metrics(tmp_path):
    jobs = [  # own caches: both train from scratch, neither resumes the other's checkpoint
        subprocess.Popen(
            [sys.executable, "-m", "benchmark", "profile=smoke", "model=hdrnet", "seed=3",
             f"hydra.run.dir={tmp_path / name}"],
            cwd=tmp_path, env=cli_env(tmp_path / name / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    for job in jobs:
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr
        assert "Resuming" not in stdout
    first, second = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("first", "second"))
    assert first["split"] == second["split"]
    assert first["training"]["loss_after"] == second["training"]["loss_after"]
    assert [{key: row[key] for key in METRICS} for row in first["images"]] == [
        {key: row[key] for key in METRICS} for row in second["images"]
    ]


FUSED_GRADIENTS = """
import hashlib, sys, numba, torch
torch.set_num_threads(int(sys.argv[1]))  # before numba's OpenMP threads start: they must not reset it
from benchmark.hdrnet.fused import fused_guided_slice_apply
torch.manual_seed(0)
grid = torch.randn(4, 12, 8, 16, 16, requires_grad=True)
image = torch.rand(4, 3, 128, 96, requires_grad=True)
hidden, out = torch.nn.Linear(3, 16), torch.nn.Linear(16, 1)
(fused_guided_slice_apply(grid, image, hidden, out) * torch.rand(4, 3, 128, 96)).sum().backward()
tensors = (grid.grad, image.grad, hidden.weight.grad, out.weight.grad)
print(torch.get_num_threads(), numba.get_num_threads(), hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest())
"""


def test_fused_gradients_do_not_depend_on_the_thread_count():
    """The backward sums its row blocks in a fixed order: 1 and 2 threads give the same bits, and
    the thread count asked of torch is the one torch and numba still use after the kernels ran."""
    def gradients(threads: int) -> list[str]:
        return subprocess.run([sys.executable, "-c", FUSED_GRADIENTS, str(threads)], capture_output=True, text=True,
                              env=cli_env(Path("unused")), check=True, timeout=300).stdout.split()

    # first into numba's cache: just-compiled code rounds differently from cached code (warmup.py)
    gradients(1)
    outputs = [gradients(threads) for threads in (1, 2)]
    assert [(torch_threads, numba_threads) for torch_threads, numba_threads, _ in outputs] == [("1", "1"), ("2", "2")]
    assert outputs[0][2] == outputs[1][2]


def test_the_reproducibility_settings_are_in_force_and_recorded(tmp_path):
    """MKL's alignment-independent mode and fixed thread counts are set before torch loads."""
    script = "import benchmark, os, torch; print(os.environ['MKL_CBWR'], os.environ['MKL_DYNAMIC'])"
    env = {key: value for key, value in cli_env(tmp_path).items() if not key.startswith(("MKL_", "OMP_DYNAMIC"))}
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          check=True).stdout.split() == ["AUTO,STRICT", "FALSE"]
    results = run(compose_config(["profile=smoke", "model=bicubic", "threads=1",
                                  f"data.cache_dir={tmp_path / 'cache'}"]), tmp_path / "run")
    assert results["environment"]["torch_threads"] == 1
    assert results["environment"]["reproducibility"]["MKL_CBWR"] == "AUTO,STRICT"


ORDER_SCRIPT = """
import sys
import time
from benchmark.__main__ import run
from tests.conftest import compose_config
base = ["task=local_laplacian", "profile=smoke", "data.max_side=384", "data.max_images=6", "train.steps=2",
        f"data.cache_dir={sys.argv[1]}"]
for model in sys.argv[2:]:
    results = run(compose_config([*base, f"model={model}"]), __import__("pathlib").Path(sys.argv[1]) / model)
print(repr(results["summary"]["psnr"]))
"""


def test_a_model_scores_the_same_alone_or_after_a_learned_one_in_the_same_process(tmp_path):
    """Process-wide CPU state (denormal flushing) is set for every run: JBU's range weights near
    underflow once scored 27.49 dB alone and 27.53 dB after HDRNet in one sweep."""
    def psnr(*models: str) -> str:
        job = subprocess.run([sys.executable, "-c", ORDER_SCRIPT, str(tmp_path / "_".join(models)), *models],
                             capture_output=True, text=True, env=cli_env(tmp_path), cwd=Path(__file__).parents[1],
                             timeout=300, check=True)
        return job.stdout.split()[-1]
    assert psnr("jbu") == psnr("hdrnet", "jbu")


@pytest.mark.slow
def test_the_first_run_after_the_kernels_changed_matches_the_next(tmp_path):
    """An empty numba cache (as after a fresh install, or a git pull that rewrote fused.py): the first
    run fills it in a subprocess and then loads from it, as the second does; compiled in-process, its
    float results would differ in the last bits (numba issue #10617)."""
    results = {}
    for name in ("first", "second"):
        env = {**cli_env(tmp_path / name / "cache"), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
        done = run_cli(["profile=smoke", "model=hdrnet", f"hydra.run.dir={tmp_path / name}"], tmp_path, env, timeout=600)
        assert done.returncode == 0, done.stderr
        assert ("lacks HDRNet's current kernels" in done.stderr) == (name == "first")
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert results["first"]["training"]["loss_after"] == results["second"]["training"]["loss_after"]


def test_a_failed_kernel_warm_up_is_one_error(monkeypatch):
    monkeypatch.setattr(warmup, "kernel_cache_is_current", lambda: False)
    monkeypatch.setattr(warmup.subprocess, "run", lambda *args, **kwargs: subprocess.CompletedProcess(
        args, 1, "", "Traceback ...\nOSError: [Errno 28] No space left on device"))
    warmup.ensure_kernel_cache.cache_clear()
    try:
        with pytest.raises(BenchmarkError, match="numba's cache failed: OSError: .Errno 28. No space left"):
            warmup.ensure_kernel_cache()
    finally:
        warmup.ensure_kernel_cache.cache_clear()


def test_a_file_inlined_into_the_kernels_newer_than_their_cache_makes_it_stale(tmp_path, monkeypatch):
    """numba keys a kernel's cache on its own file; code inlined from another (simd_lookup's
    intrinsic) changes nothing there, so the harness compares that file's time with the index's."""
    warmup.ensure_kernel_cache()
    inlined = tmp_path / "inlined.py"
    inlined.write_text("")
    monkeypatch.setattr(warmup, "INLINED", (str(inlined),))
    os.utime(inlined, (0, 0))
    assert warmup.kernel_cache_is_current()
    later = time.time() + 3600
    os.utime(inlined, (later, later))
    assert not warmup.kernel_cache_is_current()
