"""Apply a trained model to your own photo at full resolution, or ship a run's model.

Usage:
  python -m benchmark.apply --task local_laplacian in.jpg out.jpg          # checkpoints/hdrnet/<task>.pt
  python -m benchmark.apply --checkpoint RUN_DIR/model.pt in.png out.tif   # any run's model; .tif: 16 bit
  python -m benchmark.apply --task local_laplacian photos/ results/ [--ext .jpg]   # a folder, resumable
  python -m benchmark.apply --export-from RUN_DIR [--to checkpoints/hdrnet/<task>.pt]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from benchmark.core.errors import ArgumentParser, BenchmarkError, command
from benchmark.core.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    list_images,
    read_image,
    write_image,
)
from benchmark.core.runtime import resolve_device
from benchmark.models.interface import NetworkApproximator
from benchmark.models.registry import instantiate, model_targets
from benchmark.training.checkpoints import MODEL_FILE, export, read_model, shipped_path

SIXTEEN_BIT_EXTENSIONS = (".tif", ".tiff")  # jpg and png outputs are 8 bit


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m benchmark.apply",
        description="Run a trained model (HDRNet by default) on a photo at full resolution and write the "
        "result; or copy a finished run's model.pt to where --task finds it.",
        epilog="Input: PNG/JPEG/TIFF, 8 or 16 bit, grey or RGBA (alpha dropped), EXIF-rotated. Output: 8 bit "
        "for .jpg/.png (8-bit photos stay uint8 end to end), 16 bit for .tif. Bad input prints one 'error:' line and exits 2 without writing. "
        "Folders: same relative names under the output folder; outputs already there are kept (a rerun "
        "resumes); unreadable photos are skipped, listed, and make the exit status 1.",
    )
    parser.add_argument("input", nargs="?", type=Path, help="photo to process, or a folder of photos (recursive)")
    parser.add_argument("output", nargs="?", type=Path,
                        help="where to write the result (written atomically); for an input folder, an output folder")
    parser.add_argument("--ext", choices=sorted(IMAGE_EXTENSIONS), help="folders: the outputs' extension "
                        "(default: each input's own)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--task", help="use the shipped checkpoints/hdrnet/<TASK>.pt")
    source.add_argument("--checkpoint", type=Path, metavar="FILE", help="use this model file (a run's model.pt)")
    source.add_argument("--export-from", type=Path, metavar="RUN_DIR",
                        help=f"copy RUN_DIR/{MODEL_FILE} of a finished run to --to, then exit")
    parser.add_argument("--to", type=Path, help="with --export-from: target file (default: the shipped "
                        "checkpoints/<model>/<task>.pt of the run's task)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"refuse larger inputs before decoding them (default {DEFAULT_MAX_PIXELS})")
    args = parser.parse_args(argv)
    if args.export_from is not None:
        if args.input or args.output:
            parser.error("--export-from takes no input or output image")
    elif args.task is None and args.checkpoint is None:
        parser.error("give --task or --checkpoint (or --export-from)")
    elif args.output is None:
        parser.error("give an input and an output image")
    elif args.to is not None:
        parser.error("--to goes with --export-from")
    if args.max_pixels < 1:
        parser.error(f"--max-pixels={args.max_pixels} must be a positive number of pixels")
    return args


def load_model(path: Path, device: torch.device) -> tuple[NetworkApproximator, dict[str, Any]]:
    """The model a checkpoint was trained as (its ``model_config`` through Hydra), with its weights."""
    saved = read_model(path)
    # weights_only loading keeps a file from running code; so must its _target_: only the harness's models
    target = saved["model_config"].get("_target_")
    if target not in model_targets():
        raise BenchmarkError(f"{path}: model_config._target_={target!r} is none of the models in conf/model")
    model = instantiate(OmegaConf.create(saved["model_config"]), "model")
    if not isinstance(model, NetworkApproximator):
        raise BenchmarkError(f"{path}: {target} is not a learned model")
    model.load(path)
    model.to(device)
    return model, saved


def same_file(first: Path, second: Path) -> bool:
    """The same file by path or by inode (hard links, symbolic links, ``./a.png`` and ``a.png``)."""
    if first.resolve() == second.resolve():
        return True
    try:
        return second.exists() and first.samefile(second)
    except OSError:
        return False


def _check_output(input_path: Path, output_path: Path) -> None:
    if output_path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise BenchmarkError(f"{output_path}: unsupported output extension; expected one of {IMAGE_EXTENSIONS}")
    if same_file(input_path, output_path):
        raise BenchmarkError(f"{output_path}: is the input photo; refusing to overwrite it (give another output)")


def _process(model: NetworkApproximator, checkpoint: Path, input_path: Path, output_path: Path,
             max_pixels: int | None) -> tuple[np.ndarray, float]:
    """Read, predict at full resolution, write atomically; returns the input and the predict time (ms).
    An 8-bit photo written as 8 bit stays uint8 end to end (HDRNet's fused kernel reads and writes
    the 8-bit pixels); 16-bit photos or outputs go through float32."""
    eight_bit_output = output_path.suffix.lower() not in SIXTEEN_BIT_EXTENSIONS
    image = read_image(input_path, max_pixels, keep_8bit=eight_bit_output)
    predict_started = time.perf_counter()
    output = model.predict(image)  # numpy on the CPU: CUDA work is finished when it returns
    predict_ms = (time.perf_counter() - predict_started) * 1000
    if not np.isfinite(output).all():
        raise BenchmarkError(f"{checkpoint}: the model's output has NaN or infinite values (broken weights?); "
                             f"nothing written to {output_path}")
    write_image(output_path, output, 8 if eight_bit_output else 16)
    return image, predict_ms


def apply(
    checkpoint: Path, input_path: Path, output_path: Path, device: torch.device,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> None:
    """One photo: read, predict at full resolution, write; prints what ran and how long it took."""
    _check_output(input_path, output_path)
    started = time.perf_counter()
    model, saved = load_model(checkpoint, device)
    image, predict_ms = _process(model, checkpoint, input_path, output_path, max_pixels)
    height, width = image.shape[:2]
    print(
        f"{saved['model_config']['name']} ({saved['task']}, {checkpoint}) on {input_path} ({width}x{height}, "
        f"{device}): predict {predict_ms:.1f} ms (one call, with any one-time set-up such as a kernel "
        f"compile), {time.perf_counter() - started:.2f} s in all -> {output_path}"
    )


def apply_folder(
    checkpoint: Path, input_dir: Path, output_dir: Path, device: torch.device,
    max_pixels: int | None = DEFAULT_MAX_PIXELS, extension: str | None = None,
) -> list[tuple[Path, str]]:
    """Every photo below ``input_dir`` to the same relative name below ``output_dir`` (``extension``
    replacing each one's own when given). Outputs already there are kept, so a rerun resumes; an
    unreadable photo is skipped. Returns the skipped photos with the reason."""
    if output_dir.exists() and not output_dir.is_dir():
        raise BenchmarkError(f"{output_dir}: not a folder (an input folder needs an output folder)")
    if same_file(input_dir, output_dir) or output_dir.resolve().is_relative_to(input_dir.resolve()):
        raise BenchmarkError(f"{output_dir}: is or lies inside the input folder {input_dir}; give another "
                             "output folder (inputs are never overwritten, outputs never read as inputs)")
    photos = list_images(input_dir)
    if not photos:
        raise BenchmarkError(f"{input_dir}: no photos (png/jpg/tif) in it or below it")
    model, saved = load_model(checkpoint, device)
    started = time.perf_counter()
    done, kept, skipped, times = 0, 0, [], []
    for photo in tqdm(photos, desc="apply", unit="photo", file=sys.stderr):
        target = output_dir / photo.relative_to(input_dir)
        target = target.with_suffix(extension) if extension else target
        if target.exists():
            kept += 1
            continue
        try:
            _check_output(photo, target)
            times.append(_process(model, checkpoint, photo, target, max_pixels)[1])
            done += 1
        except BenchmarkError as error:
            skipped.append((photo, str(error)))
    total = time.perf_counter() - started
    per_photo = f", median predict {np.median(times):.1f} ms/photo" if times else ""
    print(f"{saved['model_config']['name']} ({saved['task']}, {checkpoint}) on {input_dir} ({device}): "
          f"{done} written, {kept} already there (kept), {len(skipped)} skipped, {total:.2f} s in all"
          f"{f' ({total / done:.3f} s/photo)' if done else ''}{per_photo} -> {output_dir}")
    for photo, reason in skipped:
        print(f"skipped: {reason if str(photo) in reason else f'{photo}: {reason}'}", file=sys.stderr)
    return skipped


@command
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.export_from is not None:
        print(f"wrote {export(args.export_from, args.to)}")
        return 0
    checkpoint = args.checkpoint or shipped_path(args.task)
    if args.input.is_dir():
        skipped = apply_folder(checkpoint, args.input, args.output, resolve_device(args.device), args.max_pixels,
                               args.ext)
        return 1 if skipped else 0
    if args.ext is not None:
        raise BenchmarkError("--ext goes with an input folder; for one photo the output's name says the format")
    apply(checkpoint, args.input, args.output, resolve_device(args.device), args.max_pixels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
