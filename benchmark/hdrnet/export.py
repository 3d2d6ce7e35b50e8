"""Export a trained HDRNet to ONNX: the low-res path as an ONNX graph, full resolution by the fused kernel.

Usage: python -m benchmark.hdrnet.export (--task TASK | --checkpoint model.pt) --out hdrnet.onnx
       [--input-type uint8]

The graph takes the full-resolution photo ``(1, 3, H, W)`` (any H, W; float32 in [0, 1], or uint8
with ``--input-type uint8``: 8-bit photos in and out, scaled to float inside the graph as
``HDRNet.enhance`` scales its view), squeezes it to the network's
low-res square inside the graph and returns the bilateral grid ``(1, 12, D, Hg, Wg)``. The
pointwise guide's 65 weights travel in the file's metadata (``hdrnet_guide``), so
:class:`OnnxHDRNet` needs only onnxruntime + the fused kernel to turn a photo into its output.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from benchmark.apply import load_model
from benchmark.core.errors import ArgumentParser, BenchmarkError, command
from benchmark.core.files import write_bytes_atomic
from benchmark.hdrnet.fused import guided_slice_apply
from benchmark.hdrnet.model import HDRNet, PointwiseGuide
from benchmark.training.checkpoints import resolve

GUIDE_KEY = "hdrnet_guide"
INPUT_TYPES = ("float32", "uint8")


class _LowresGrid(torch.nn.Module):
    """Photo -> grid: the part of HDRNet that ONNX runtimes run well (small, convolutional)."""

    def __init__(self, model: HDRNet, eight_bit: bool) -> None:
        super().__init__()
        self.model, self.eight_bit = model, eight_bit

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # uint8 photos: scaled to [0, 1], then squeezed, as HDRNet.enhance's view (benchmark.imaging.antialias)
        return self.model.coefficients(self.model.lowres(image.float() / 255 if self.eight_bit else image))


def export_onnx(model: HDRNet, path: Path, input_type: str = "float32") -> None:
    """Write ``path`` (.onnx) for ``model`` (pointwise guide only: the fused kernel's), its input
    photos of ``input_type`` (one of INPUT_TYPES)."""
    if input_type not in INPUT_TYPES:
        raise BenchmarkError(f"--input-type={input_type!r} must be one of {', '.join(INPUT_TYPES)}")
    if not isinstance(model.guide, PointwiseGuide):
        raise BenchmarkError("ONNX export needs model.guide=pointwise (the fused kernel's guide)")
    model = model.eval().cpu()
    eight_bit = input_type == "uint8"
    example = torch.randint(0, 256, (1, 3, 300, 400), dtype=torch.uint8) if eight_bit else torch.rand(1, 3, 300, 400)
    size = {2: torch.export.Dim("height", min=2), 3: torch.export.Dim("width", min=2)}
    with tempfile.TemporaryDirectory() as scratch:
        exported = Path(scratch) / "model.onnx"
        torch.onnx.export(
            _LowresGrid(model, eight_bit).eval(), (example,), str(exported), input_names=["image"], output_names=["grid"],
            dynamic_shapes={"image": size}, opset_version=18, dynamo=True, verbose=False,
        )  # opset 18: Resize with antialias, as the network's bilinear low-res view
        graph = onnx.load(str(exported))
    guide = {name: tensor.detach().tolist() for name, tensor in model.guide.state_dict().items()}
    entry = graph.metadata_props.add()
    entry.key, entry.value = GUIDE_KEY, json.dumps(guide)
    write_bytes_atomic(path, graph.SerializeToString())


class OnnxHDRNet:
    """An exported HDRNet: onnxruntime for the grid, the fused kernel for guide + slice + apply."""

    def __init__(self, path: Path) -> None:
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise BenchmarkError(f"{path}: not a loadable ONNX model ({' '.join(str(error).split())[:200]})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if GUIDE_KEY not in metadata:
            raise BenchmarkError(f"{path}: no {GUIDE_KEY} metadata; export it with benchmark.hdrnet.export")
        guide = {key: np.asarray(value, np.float32) for key, value in json.loads(metadata[GUIDE_KEY]).items()}
        self.guide = (guide["hidden.weight"], guide["hidden.bias"], guide["out.weight"], guide["out.bias"])
        self.path = path
        self.input_type = "uint8" if self.session.get_inputs()[0].type == "tensor(uint8)" else "float32"

    def enhance(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` float32 in [0, 1] -> output clipped to [0, 1]; for a graph exported with
        ``--input-type uint8``, uint8 -> uint8 (rounded)."""
        if image.dtype != np.dtype(self.input_type):
            raise BenchmarkError(f"{self.path}: exported for {self.input_type} photos, given {image.dtype} "
                                 f"(export again with --input-type {image.dtype} or convert the photo)")
        nchw = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
        (grid,) = self.session.run(["grid"], {"image": nchw})
        return guided_slice_apply(np.ascontiguousarray(image), grid, *self.guide)


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m benchmark.hdrnet.export", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--task", help="a shipped checkpoint: checkpoints/hdrnet/<task>.pt")
    source.add_argument("--checkpoint", type=Path, help="a run's model.pt")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--input-type", choices=INPUT_TYPES, default="float32",
                        help="the photos the graph takes: float32 in [0, 1] (default) or uint8 (8-bit end to end)")
    args = parser.parse_args(argv)
    path = resolve(args.task, "hdrnet") if args.task else args.checkpoint
    model, _ = load_model(path, torch.device("cpu"))
    if not isinstance(model.network, HDRNet):
        raise BenchmarkError(f"{path}: not an HDRNet checkpoint")
    export_onnx(model.network, args.out, args.input_type)
    print(f"onnx: {args.out} ({args.input_type} photos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
