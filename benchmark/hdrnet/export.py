"""Export a trained HDRNet to ONNX: the low-res path as an ONNX graph, full resolution by the fused kernel.

Usage: python -m benchmark.hdrnet.export (--task TASK | --checkpoint model.pt) --out hdrnet.onnx
       [--input-type uint8]

The graph takes the full-resolution photo ``(1, 3, H, W)`` (any H, W; float32 in [0, 1], or uint8
with ``--input-type uint8``: 8-bit photos in and out, scaled to float inside the graph as
``HDRNet.enhance`` scales its view), squeezes it to the network's low-res square and returns the
bilateral grid ``(1, 12, D, Hg, Wg)``: any ONNX runtime can run it whole. The pointwise guide's 65
weights travel in the file's metadata (``hdrnet_guide``), so :class:`OnnxHDRNet` needs only
onnxruntime + the fused kernel to turn a photo into its output. It runs the graph from its
``Resize`` on and makes that node's input itself, the low-res view, as ``HDRNet.enhance`` does
(``antialiased_resize``, reading 8-bit pixels as value / 255): the whole graph would copy the photo
at full resolution into NCHW and, for 8-bit photos, into float32 twice (its Cast and Div) before
squeezing it (1080p: 16 against 4 ms end to end).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import onnxruntime
import torch

from benchmark.apply import load_model
from benchmark.core.errors import ArgumentParser, BenchmarkError, command
from benchmark.core.files import write_bytes_atomic
from benchmark.hdrnet.fused import guided_slice_apply
from benchmark.hdrnet.model import HDRNet, PointwiseGuide
from benchmark.imaging.antialias import antialiased_resize
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
            graph = onnx.load(str(path))
            resizes = [node for node in graph.graph.node if node.op_type == "Resize"]
            if len(resizes) != 1:
                raise ValueError(f"{len(resizes)} Resize nodes, where an export has one (the low-res view)")
            network = onnx.utils.Extractor(graph).extract_model([resizes[0].output[0]], ["grid"])
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()  # the harness's thread count, as the fused kernel's
            # threads that spin after each run steal the cores from the fused kernel (1080p 8-bit: 7.3 -> 3.4 ms)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = onnxruntime.InferenceSession(network.SerializeToString(), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as error:  # onnx and onnxruntime raise their own exception types
            raise BenchmarkError(f"{path}: not a loadable HDRNet export ({' '.join(str(error).split())[:200]})") from None
        metadata = {entry.key: entry.value for entry in graph.metadata_props}
        if GUIDE_KEY not in metadata:
            raise BenchmarkError(f"{path}: no {GUIDE_KEY} metadata; export it with benchmark.hdrnet.export")
        guide = {key: np.asarray(value, np.float32) for key, value in json.loads(metadata[GUIDE_KEY]).items()}
        self.guide = (guide["hidden.weight"], guide["hidden.bias"], guide["out.weight"], guide["out.bias"])
        self.path = path
        self.input_type = "uint8" if graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8 else "float32"
        view = self.session.get_inputs()[0]
        self.view_name, self.view_size = view.name, (view.shape[2], view.shape[3])

    def enhance(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` float32 in [0, 1] -> output clipped to [0, 1]; for a graph exported with
        ``--input-type uint8``, uint8 -> uint8 (rounded)."""
        if image.dtype != np.dtype(self.input_type):
            raise BenchmarkError(f"{self.path}: exported for {self.input_type} photos, given {image.dtype} "
                                 f"(export again with --input-type {image.dtype} or convert the photo)")
        image = np.ascontiguousarray(image)
        view = antialiased_resize(image, self.view_size)  # (h, w, 3) float32 in [0, 1], as the graph's Resize
        (grid,) = self.session.run(["grid"], {self.view_name: np.ascontiguousarray(view.transpose(2, 0, 1)[None])})
        return guided_slice_apply(image, grid, *self.guide)


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
