"""MIT-Adobe FiveK (Bychkovsky et al. 2011) as people have it: the layout is recognised by itself.

Recognised under ``data.root``, in this order:

- **480p release** of the 3D-LUT line of work (Zeng et al. 2020; HuiZeng/Image-Adaptive-3DLUT's
  ``datasets.py``): ``input/JPG/480p/NAME.jpg`` (8-bit sRGB) or, with ``task.input=xyz16``,
  ``input/PNG/480p_16bits_XYZ_WB/NAME.png`` (16-bit), targets ``expert<X>/JPG/480p/NAME.jpg``; the
  official split ``train_input.txt`` + ``train_label.txt`` (combined, 4,500) and ``test.txt`` (500),
  one name without extension a line.
- **DeepLPF / CURL** exports (Moran et al. 2020, sjmoran/DeepLPF ``docs/ADOBE_DPE_DATASET.md``):
  ``input/`` + ``output/`` (expert C), files ``aNNNN-<camera>.png`` keyed by the id ``aNNNN``;
  split lists ``images_train.txt`` + ``images_valid.txt`` (training) and ``images_test.txt``.
- **Original / own exports** (Lightroom): ``input/`` + ``expert<X>/``, same names; an optional
  ``test.txt`` (e.g. Random250 or HighVar50) is the test split, else the seeded split.

The recognised layout and split are stated in the console line and in results.json's
``data_source``.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.core import settings
from benchmark.core.errors import BenchmarkError
from benchmark.data.pair_folders import PairFolder

EXPERTS = ("A", "B", "C", "D", "E")
INPUTS = ("srgb", "xyz16")  # the 480p release's 8-bit sRGB JPEGs or its 16-bit XYZ PNGs


def _missing(root: Path) -> str:
    return (f"{root}: no FiveK layout recognised: expected input/JPG/480p/ + expertC/JPG/480p/ (the 480p release), "
            "input/ + output/ (DeepLPF/CURL exports) or input/ + expertC/ (original exports)")


def fivek_layout(root: Path, expert: str, input_kind: str = "srgb") -> tuple[PairFolder, str]:
    """The ``PairFolder`` of the FiveK copy at ``root`` and a one-line description of it."""
    settings.choice("task.expert", expert, EXPERTS)
    settings.choice("task.input", input_kind, INPUTS)
    if not root.is_dir():
        raise BenchmarkError(f"data.root={root}: not a folder")
    target = f"expert{expert}"
    if (root / "input" / "JPG" / "480p").is_dir() or (root / "input" / "PNG").is_dir():
        input_dir = "input/JPG/480p" if input_kind == "srgb" else "input/PNG/480p_16bits_XYZ_WB"
        output_dir = f"{target}/JPG/480p"
        for folder in (input_dir, output_dir):
            if not (root / folder).is_dir():
                raise BenchmarkError(f"{root}: the 480p release's {folder}/ is missing (task.expert={expert}, "
                                     f"task.input={input_kind})")
        lists = [name for name in ("train_input.txt", "train_label.txt") if (root / name).is_file()]
        folder = PairFolder(root, input_dir, output_dir, train_lists=tuple(lists),
                            test_list="test.txt" if (root / "test.txt").is_file() else None)
        kind = "8-bit sRGB JPEG" if input_kind == "srgb" else "16-bit XYZ PNG"
        return folder, f"FiveK 480p release ({kind} inputs, expert {expert})"
    if (root / "input").is_dir() and (root / "output").is_dir() and not (root / target).is_dir():
        if expert != "C":
            raise BenchmarkError(f"{root}: a DeepLPF/CURL export (input/ + output/) holds expert C only; "
                                 f"task.expert={expert} needs an expert{expert}/ folder")
        lists = [name for name in ("images_train.txt", "images_valid.txt") if (root / name).is_file()]
        folder = PairFolder(root, "input", "output", train_lists=tuple(lists),
                            test_list="images_test.txt" if (root / "images_test.txt").is_file() else None,
                            key="id")
        return folder, "FiveK DeepLPF/CURL export (input/ + output/, expert C, files keyed by id)"
    if (root / "input").is_dir():
        if not (root / target).is_dir():
            others = sorted(p.name for p in root.glob("expert?") if p.is_dir())
            raise BenchmarkError(f"{root}: no {target}/ folder for task.expert={expert}"
                                 + (f" (found {', '.join(others)})" if others else ""))
        folder = PairFolder(root, "input", target, test_list="test.txt" if (root / "test.txt").is_file() else None)
        return folder, f"FiveK exports (input/ + {target}/)"
    raise BenchmarkError(_missing(root))
