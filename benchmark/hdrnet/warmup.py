"""Compile HDRNet's numba kernels into numba's on-disk cache: ``python -m benchmark.hdrnet.warmup``
(``make install`` runs it).

numba optimises the code it has just compiled and the code it loads from its cache differently
(numba issue #10617), and their float results differ in the last bits: the first HDRNet run after
installing (or after a change to the kernels) would train differently from every later one (smoke
profile: loss 0.0015212714077 against 0.0015212714206). With the cache filled first, every run loads
the same code: the same command gives the same bits, the first run included (README, "Determinism").
"""

from __future__ import annotations

import numpy as np
import torch

from benchmark.hdrnet.model import HDRNet


def compile_kernels() -> None:
    """Run every numba kernel specialisation a harness run uses once: inference on float32 and uint8
    photos, and a training step (a crop sliced from its whole photo's grid, no image gradient)."""
    model = HDRNet()
    photo = np.random.default_rng(0).random((48, 64, 3), dtype=np.float32)
    model.enhance(photo)
    model.enhance(np.rint(photo * 255).astype(np.uint8))
    crop = torch.from_numpy(photo).permute(2, 0, 1)[None, :, 8:40, 16:48].contiguous()
    window = torch.tensor([[8, 16, 48, 64]])
    model(crop, model.photo_view(photo), window).square().mean().backward()


if __name__ == "__main__":
    compile_kernels()
