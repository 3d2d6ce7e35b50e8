"""HDRNet as a harness model: the network built from the ``model.grid`` config."""

from __future__ import annotations

from benchmark.approximator import NetworkApproximator
from benchmark.hdrnet.model import HDRNet


class HDRNetApproximator(NetworkApproximator):
    def __init__(
        self,
        name: str,
        grid: dict[str, int],
        lowres_size: int,
        guide: str,
        lowres_interpolation: str,
    ) -> None:
        super().__init__(name, HDRNet(grid["spatial"], grid["luma_bins"], lowres_size, guide, lowres_interpolation))
