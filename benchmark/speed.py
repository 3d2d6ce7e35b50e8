"""Speed benchmark: every method, and HDRNet stage by stage, at several image sizes, in one run.

Usage: python -m benchmark.speed [model=all|NAME|[A,B]] [task=local_laplacian]
                                 [sizes=[768x512,1MP,1080p,4MP,12MP]] [repeats=7] [out=DIR] ...
       python -m benchmark.speed --help

Writes ``speed.json`` (a list of rows: method, stage, width, height, megapixels, median_ms, p10_ms,
p90_ms, threads, device, ...), ``speed.csv``, ``speed.png``/``.pdf`` (time against megapixels,
log-log) into ``out`` (default outputs/speed/<time>), and prints the table. HDRNet's stages:
``downsample`` (the antialiased squeeze to 256x256), ``lowres_net`` (the coefficient network),
``fullres`` (the fused guide + slice + apply kernel, writing into a buffer allocated once, as the
bound's copy does), ``fullres_grid_sample`` (the same stage as every PyTorch port does it: 1x1-conv
guide, ``grid_sample``, apply), ``total`` (photo in, photo out: each output dropped, as a caller of
``HDRNet.enhance`` does, so the next call may write it again, ``benchmark.core.buffers``),
``total_video`` (the same into one output buffer passed as ``out``, as a video pipeline's frames),
``total_uint8`` / ``fullres_uint8`` (8-bit in and out), ``total_uint8_via_float32`` (the same 8-bit
photo through the float32 path: converted in, rounded out, as a caller without the 8-bit path
does); ``train_step`` / ``train_step_grid_sample`` time one Adam step (forward + backward) of the
``quick`` profile: batch 4 of 256x256 crops with their whole-photo views. The ``bound`` rows
``fullres_bandwidth`` / ``fullres_bandwidth_uint8`` are the time to read the input and write the
output once (float32 / 8-bit) at this machine's copy bandwidth: no full-resolution stage can be
faster. Each model's stages at each size are timed against each other in interleaved rounds (each
round times each once, right after an untimed call of its own, in a shuffled order), and the
bound's copy in HDRNet's rounds, so that the machine's drift within a run hits them alike; slow
stages and ``fullres_grid_sample`` run alone.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numba
import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark import PROJECT_ROOT
from benchmark.core import settings
from benchmark.core.errors import BenchmarkError, command
from benchmark.core.files import write_bytes_atomic, write_errors, write_json_atomic
from benchmark.core.images import read_image
from benchmark.core.runtime import keep_freed_memory, resolve_device
from benchmark.core.timing import Timing, time_callable, time_rounds
from benchmark.data.pairs import Pair
from benchmark.data.photos import BUNDLED_PHOTOS
from benchmark.evaluation.results import environment
from benchmark.hdrnet.approximator import HDRNetApproximator
from benchmark.models.registry import CONF_DIR, config_path, instantiate, options
from benchmark.training.checkpoints import shipped_path
from benchmark.training.losses import mse_loss
from benchmark.training.train import CropSampler, adam, descend

SIZES = {  # name -> (width, height)
    "768x512": (768, 512), "1MP": (1152, 864), "1080p": (1920, 1080), "4MP": (2304, 1728), "12MP": (4000, 3000),
}
BOUND_COPY = "bound copy"  # the bandwidth copy among a model's stages (no stage is named so)
PHOTO = BUNDLED_PHOTOS / "kodim05.png"  # real content: the guide's spread sets how many luma bins a row touches


@dataclass
class SpeedConfig:
    model: Any = "all"  # all | a name of conf/model | a list of names
    task: str = "local_laplacian"  # its reference operator is timed, and run by the upsampling baselines
    sizes: list[str] = field(default_factory=lambda: list(SIZES))  # names above or WIDTHxHEIGHT
    warmup: int = 2
    repeats: int = 7
    budget_s: float = 20.0  # per (method, stage, size): slow methods get fewer repeats, never under 3
    train_batch: int = 4
    train_crop: int = 256  # the quick profile's batch and crop (conf/config.yaml train.*)
    memory_size: str = "12MP"  # HDRNet's peak memory is measured at this size (in a fresh process)
    device: str = "auto"  # CUDA rows are added for HDRNet when a GPU is present
    out: str | None = None


def parse_size(text: str, setting: str = "sizes") -> tuple[int, int]:
    """``1080p`` / ``12MP`` / ``640x480`` -> (width, height); errors name ``setting``."""
    if text in SIZES:
        return SIZES[text]
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise BenchmarkError(f"{setting}: {text!r} is not one of {list(SIZES)} or WIDTHxHEIGHT") from None
    if width < 16 or height < 16:
        raise BenchmarkError(f"{setting}: {text!r} is smaller than 16x16")
    return width, height


def parse_sizes(texts: list[str]) -> list[tuple[int, int]]:
    """The ``sizes`` setting -> (width, height) per size, in order: at least one, none twice (the
    table has one column per size)."""
    sizes = [parse_size(text) for text in texts]
    if not sizes:
        raise BenchmarkError("sizes: empty; give at least one, e.g. sizes=[1080p]")
    for index, size in enumerate(sizes):
        if size in sizes[:index]:
            first, text = texts[sizes.index(size)], texts[index]
            again = "listed twice" if text == first else f"{first!r} again ({size[0]}x{size[1]})"
            raise BenchmarkError(f"sizes: {text!r} is {again}; list each size once")
    return sizes


def test_photo(width: int, height: int) -> np.ndarray:
    return np.clip(cv2.resize(read_image(PHOTO), (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)


def model_names(choice: Any) -> list[str]:
    available = options("model")
    names = available if choice == "all" else [choice] if isinstance(choice, str) else list(choice)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise BenchmarkError(f"model: {unknown} not in {available}")
    if not names:
        raise BenchmarkError("model: empty; give all, a name or a list of names")
    return names


def compose_run_config(task: str, model: str, *overrides: str) -> Any:
    """The harness's own config for (task, model): the same models the benchmark runs."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[f"task={task}", f"model={model}", *overrides])


def timed_model(task: str, model: str, *overrides: str) -> Any:
    """(task, model) as the benchmark builds it, with the task's shipped weights where it has some
    (``model.checkpoint=<task>``: checkpoints/<model>/<task>.pt). HDRNet's full-resolution kernel's time
    depends on how many luma bins the guide spreads a row over, so it is timed with a trained guide
    (kodim05 at 1080p, local_laplacian: 5.1 bins per pixel against 5.8 for the initial guide)."""
    shipped = [f"model.checkpoint={task}"] if shipped_path(task, model).is_file() else []
    return instantiate(compose_run_config(task, model, *shipped, *overrides).model, "model")


def timed(fn: Any, cfg: SpeedConfig, device: str = "cpu", once_s: float | None = None) -> Timing:
    """time_callable with repeats cut down for slow calls, so one run fits in minutes (``once_s``: a
    call's time when the caller has just made one, which then counts as a warm-up call)."""
    if once_s is None:
        once_s = _one_call(fn)
    repeats = int(min(cfg.repeats, max(3, cfg.budget_s // max(once_s, 1e-9))))
    return time_callable(fn, warmup=max(cfg.warmup - 1, 0), repeats=repeats, device=device)


def _one_call(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_against_each_other(
    stages: dict[str, Any], cfg: SpeedConfig, device: str = "cpu", alone: tuple[str, ...] = ()
) -> dict[str, Timing]:
    """Each stage timed as ``timed`` does; those fast enough for ``cfg.repeats`` runs within
    ``budget_s`` in interleaved rounds (``time_rounds``), so that a drift in the machine's speed
    within the run (15-35% from minute to minute here) hits them alike and their ratios hold. The
    slow ones and ``alone`` are timed one after the other afterwards, in the order given."""
    onces = {name: _one_call(fn) for name, fn in stages.items() if name not in alone}
    # in rounds, each timed call follows an untimed one of its own: twice the calls
    together = {name: stages[name] for name, once in onces.items() if cfg.budget_s // max(2 * once, 1e-9) >= cfg.repeats}
    timings = time_rounds(together, warmup=max(cfg.warmup - 1, 0), repeats=cfg.repeats, device=device)
    for name, fn in stages.items():
        if name not in timings:
            timings[name] = timed(fn, cfg, device, onces.get(name))
    return {name: timings[name] for name in stages}


@numba.njit(parallel=True, cache=True)
def _parallel_copy(source: np.ndarray, target: np.ndarray) -> None:
    for i in numba.prange(source.shape[0]):
        target[i] = source[i]


def bandwidth_copy() -> tuple[Any, int]:
    """A multi-threaded copy of 256 MB (out of cache), and the bytes it reads + writes."""
    source = np.ones(64 * 2**20, np.float32)
    target = np.empty_like(source)
    return (lambda: _parallel_copy(source, target)), 2 * source.nbytes


def train_step(fullres: str, cfg: SpeedConfig) -> Timing:
    """One training step as the ``quick`` profile takes it (``train.context=photo``): Adam on a batch
    of random crops of the bundled photos with their whole-photo views, forward + backward at full
    resolution, HDRNet with the task's shipped weights (``timed_model``)."""
    torch.manual_seed(0)
    keep_freed_memory()  # as train_network does
    model = timed_model(cfg.task, "hdrnet", f"model.fullres={fullres}").network.train()
    optimiser = adam(model, lr=1e-4, weight_decay=0.0)
    photos = {path.stem: read_image(path) for path in sorted(BUNDLED_PHOTOS.glob("*.png"))}
    pairs = [Pair(name, photo, np.clip(photo, 0, 1) ** 0.8) for name, photo in photos.items()]
    sampler = CropSampler(pairs, cfg.train_crop, cfg.train_batch, seed=0, lowres=model.lowres)
    for _ in range(100):  # fill the sampler's cache of whole-photo views, as the first steps of training do
        sampler.sample()

    def step() -> None:
        inputs, targets, lowres, window = sampler.sample()
        descend(optimiser, mse_loss(model(inputs, lowres, window), targets))

    return time_callable(step, warmup=cfg.warmup, repeats=max(3, cfg.repeats // 2))


def peak_memory(width: int, height: int) -> dict[str, int]:
    """HDRNet inference's memory in a fresh process: the peak resident set while making the photo
    and enhancing it, above the resident set before (libraries loaded, kernels compiled; the peak
    is reset through /proc/self/clear_refs first)."""
    code = (
        "import json, numpy as np, torch; torch.set_flush_denormal(True)\n"
        "from benchmark.hdrnet.model import HDRNet\n"
        "def status(key): return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(key))\n"
        "model = HDRNet().eval(); model.enhance(np.random.rand(64, 64, 3).astype(np.float32))\n"
        "open('/proc/self/clear_refs', 'w').write('5'); before = status('VmRSS:')\n"
        f"photo = np.empty(({height}, {width}, 3), np.float32); photo[:] = 0.5\n"
        "output = model.enhance(photo)\n"
        "print(json.dumps({'peak_bytes': status('VmHWM:') - before, 'image_bytes': photo.nbytes}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise BenchmarkError(f"memory measurement failed: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout)


def device_name(device: str) -> str:
    """The CPU model (from /proc/cpuinfo) or the GPU's name."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    except OSError:  # not Linux
        names = []
    return f"{names[0]} ({len(names)} cores)" if names else platform.processor() or "cpu"


def _row(method: str, stage: str, width: int, height: int, timing: Timing, task: str, **extra: Any) -> dict[str, Any]:
    return {
        "method": method, "stage": stage, "task": task, "width": width, "height": height,
        "megapixels": round(width * height / 1e6, 4), "median_ms": timing.median_ms, "p10_ms": timing.p10_ms,
        "p90_ms": timing.p90_ms, "threads": timing.threads, "device": timing.device.split(":")[0],
        "device_name": device_name(timing.device),
        "runs": timing.runs, **extra,
    }


def measure(cfg: SpeedConfig) -> list[dict[str, Any]]:
    """All rows of speed.json."""
    config_path("task", cfg.task)  # every setting read here checked before anything is timed
    sizes = parse_sizes(cfg.sizes)
    memory_width, memory_height = parse_size(cfg.memory_size, "memory_size")
    names = model_names(cfg.model)
    gpu = resolve_device(cfg.device)
    torch.set_flush_denormal(True)
    run_cfg = compose_run_config(cfg.task, "hdrnet")
    operator = instantiate(run_cfg.task.operator, "task.operator") if run_cfg.task.get("operator") else None
    models = {name: timed_model(cfg.task, name) for name in names}
    copy, copied_bytes = bandwidth_copy()
    rows: list[dict[str, Any]] = []
    for width, height in sizes:
        photo = test_photo(width, height)
        print(f"{width}x{height}", flush=True)
        if operator is not None:
            rows.append(_row("reference", "total", width, height, timed(lambda: operator(photo), cfg), cfg.task))
        copy_timing = None  # the bound's copy runs in the rounds of the stage it bounds, HDRNet's fullres:
        # this machine's copy bandwidth moved between 33 and 61 GB/s within minutes
        for name, model in models.items():
            extra = {"task": cfg.task, "needs_operator": model.needs_operator, "parameters": model.parameter_count()}
            if model.needs_operator and operator is None:
                continue
            given = operator if model.needs_operator else None
            with torch.no_grad():
                for device in [torch.device("cpu")] + ([gpu] if gpu.type == "cuda" else []):
                    stages = model.timing_stages(photo, given, device)
                    with_copy = device.type == "cpu" and "fullres" in stages and copy_timing is None
                    timings = timed_against_each_other({**({BOUND_COPY: copy} if with_copy else {}), **stages},
                                                       cfg, str(device), model.stages_timed_alone)
                    copy_timing = timings.pop(BOUND_COPY) if with_copy else copy_timing
                    rows += [_row(name, stage, width, height, timing, **extra) for stage, timing in timings.items()]
        bandwidth = copied_bytes / ((copy_timing or timed(copy, cfg)).median_ms / 1e3)
        for stage, bytes_per_value in (("fullres_bandwidth", 4), ("fullres_bandwidth_uint8", 1)):
            bound_ms = 2 * photo.size * bytes_per_value / bandwidth * 1e3  # read the input, write the output
            rows.append({**_row("bound", stage, width, height, Timing(bound_ms, bound_ms, bound_ms, bound_ms, 1, 0,
                         numba.get_num_threads(), "cpu"), cfg.task), "gb_per_s": bandwidth / 1e9})
    if any(isinstance(model, HDRNetApproximator) for model in models.values()):  # the fused kernel's own benchmarks
        size = cfg.train_crop
        for stage, fullres in (("train_step", "fused"), ("train_step_grid_sample", "grid_sample")):
            rows.append(_row("hdrnet", stage, size, size, train_step(fullres, cfg), cfg.task, batch=cfg.train_batch))
        memory = peak_memory(memory_width, memory_height)
        rows.append({"method": "hdrnet", "stage": "peak_memory", "task": cfg.task, "width": memory_width,
                     "height": memory_height, "megapixels": round(memory_width * memory_height / 1e6, 4),
                     "device": "cpu", **memory})
    return rows


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame([r for r in rows if "median_ms" in r and not r["stage"].startswith("train")])
    figure, axis = plt.subplots(figsize=(8, 6))
    for (method, stage, device), group in frame.groupby(["method", "stage", "device"]):
        label = method if stage == "total" else f"{method}: {stage}"
        style = "--" if method == "bound" else ":" if stage != "total" else "-"
        axis.plot(group["megapixels"], group["median_ms"], style, marker="o", label=f"{label} ({device})")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("image size (megapixels)")
    axis.set_ylabel("median time (ms)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    for suffix in ("png", "pdf"):
        figure.savefig(out / f"speed.{suffix}", dpi=120)
    plt.close(figure)


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The headline figures: fused stage vs grid_sample and vs the bandwidth bound, HDRNet vs reference."""
    frame = pd.DataFrame([r for r in rows if r.get("device") == "cpu" and "median_ms" in r])
    ms = frame.set_index(["method", "stage", "width", "height"])["median_ms"]
    lines = []
    for (width, height), _ in frame.groupby(["width", "height"]):
        def get(method: str, stage: str) -> float | None:
            return ms.get((method, stage, width, height))
        fused, grid_sample, bound = get("hdrnet", "fullres"), get("hdrnet", "fullres_grid_sample"), get("bound", "fullres_bandwidth")
        total, reference = get("hdrnet", "total"), get("reference", "total")
        if fused is None or bound is None:
            continue
        line = f"{width}x{height}: full-res stage fused {fused:.2f} ms = {fused / bound:.1f}x the bandwidth bound ({bound:.2f} ms)"
        if grid_sample is not None:
            line += f", {grid_sample / fused:.0f}x faster than grid_sample ({grid_sample:.1f} ms)"
        if total is not None and reference is not None:
            line += f"; HDRNet {total:.2f} ms end to end, {reference / total:.1f}x faster than the reference ({reference:.1f} ms)"
        video = get("hdrnet", "total_video")
        if video is not None:
            line += f"; into a reused output buffer (video) {video:.2f} ms"
        eight_bit, eight_bit_bound = get("hdrnet", "total_uint8"), get("bound", "fullres_bandwidth_uint8")
        if eight_bit is not None and total is not None:
            line += f"; uint8 in and out {eight_bit:.2f} ms = {eight_bit / total:.0%} of float32"
            round_trip = get("hdrnet", "total_uint8_via_float32")
            if round_trip is not None:
                line += f", {eight_bit / round_trip:.0%} of the same photo through float32 ({round_trip:.2f} ms)"
            fused_eight_bit = get("hdrnet", "fullres_uint8")
            if fused_eight_bit is not None and eight_bit_bound:
                line += f" (fused stage {fused_eight_bit:.2f} ms = {fused_eight_bit / eight_bit_bound:.1f}x its bound)"
        lines.append(line)
    for stage in ("fullres", "downsample", "lowres_net"):
        part = frame[(frame["method"] == "hdrnet") & (frame["stage"] == stage)]
        if len(part) >= 2:
            slope, intercept = np.polyfit(part["megapixels"], part["median_ms"], 1)
            lines.append(f"hdrnet {stage}: {intercept:.2f} ms + {slope:.2f} ms per megapixel (least squares over "
                         f"{len(part)} sizes; measured {part['median_ms'].min():.2f}-{part['median_ms'].max():.2f} ms)")
    steps = frame[frame["stage"].str.startswith("train_step")].set_index("stage")["median_ms"]
    if {"train_step", "train_step_grid_sample"} <= set(steps.index):
        lines.append(f"training step: fused {steps['train_step']:.0f} ms, grid_sample "
                     f"{steps['train_step_grid_sample']:.0f} ms ({steps['train_step_grid_sample'] / steps['train_step']:.1f}x)")
    memory = [r for r in rows if r["stage"] == "peak_memory"]
    for row in memory:
        images = 2 * row["image_bytes"]
        lines.append(f"peak memory of HDRNet inference at {row['width']}x{row['height']}: "
                     f"{row['peak_bytes'] / 2**20:.0f} MiB = {row['peak_bytes'] / images:.2f}x input + output "
                     f"({images / 2**20:.0f} MiB)")
    return lines


def parse_args(argv: list[str]) -> SpeedConfig:
    base = OmegaConf.structured(SpeedConfig)
    try:
        return OmegaConf.to_object(OmegaConf.merge(base, OmegaConf.from_dotlist(argv)))  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        message = " ".join(str(error).split("\n")[0].split())
        raise BenchmarkError(f"{key}: {message}" if key else message) from None


@command
def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        print("Settings (key=value):\n" + OmegaConf.to_yaml(OmegaConf.structured(SpeedConfig)))
        return 0
    cfg = parse_args(argv)
    settings.integer("warmup", cfg.warmup, 0)
    settings.integer("repeats", cfg.repeats, 1)
    settings.number("budget_s", cfg.budget_s, 0, above=True)
    settings.integer("train_batch", cfg.train_batch, 1)
    settings.integer("train_crop", cfg.train_crop, 16)
    out = Path(cfg.out or f"outputs/speed/{datetime.now():%Y-%m-%d_%H-%M-%S}")
    print(f"threads: torch {torch.get_num_threads()}, numba {numba.get_num_threads()}", flush=True)
    rows = measure(cfg)
    table = pd.DataFrame([r for r in rows if "median_ms" in r])
    write_bytes_atomic(out / "speed.csv", table.to_csv(index=False).encode())
    with write_errors(out):
        plot(rows, out)
    write_json_atomic({"config": asdict(cfg), "environment": environment(torch.device("cpu"))}, out / "speed_meta.json")
    write_json_atomic(rows, out / "speed.json")
    pivot = table.pivot_table(index=["method", "stage", "device"], columns="megapixels", values="median_ms")
    print(pivot.round(2).to_string())
    print("\n".join(summary_lines(rows)))
    print(f"speed: {out / 'speed.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
