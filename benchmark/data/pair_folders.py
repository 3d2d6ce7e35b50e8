"""Human-made (input, output) pairs read from folders: Photoshop exports and MIT-Adobe FiveK.

Layouts: HDRNet's ``filelist.txt`` + ``input/`` + ``output/``, and FiveK's (``benchmark.data.fivek``
recognises them); names match by path without extension, so ``input/a.tif`` pairs with
``output/a.jpg``, or by an id (``key="id"``: the name up to its first ``-``, FiveK's ``a0001`` of
``a0001-kme_0258.png``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.core.errors import BenchmarkError
from benchmark.core.images import IMAGE_EXTENSIONS, list_images
from benchmark.data.pairs import Pair
from benchmark.data.photos import DataIssues, fit_max_side


@dataclass(frozen=True)
class PairFolder:
    """Where a pair data set's files are, relative to its root."""

    root: Path
    input_dir: str
    output_dir: str
    filelist: str | None = None  # optional list of names (one a line) to use, relative to input_dir
    test_list: str | None = None  # optional list of test names: the data set's official split
    train_lists: tuple[str, ...] = ()  # the official training lists, combined; the rest is then unused
    key: str = "name"  # "name": path without extension; "id": the file name up to its first "-"

    def folder(self, sub: str) -> Path:
        path = self.root / sub
        if not path.is_dir():
            raise BenchmarkError(f"{self.root}: no {sub}/ folder (expected layout: {self.input_dir}/ + {self.output_dir}/)")
        return path


def _stem(relative: Path) -> str:
    return str(relative.with_suffix("")) if relative.suffix.lower() in IMAGE_EXTENSIONS else str(relative)


def _index(folder: Path, key: str) -> dict[str, Path]:
    stems = {_stem(path.relative_to(folder)): path for path in list_images(folder)}
    if key == "id":
        return {Path(stem).name.split("-", 1)[0]: path for stem, path in sorted(stems.items())}
    return stems


def listed_names(layout: PairFolder, lists: tuple[str, ...], issues: DataIssues) -> list[str]:
    """The names in ``lists`` (relative to the root), in order, each once."""
    names: dict[str, None] = {}
    for name in lists:
        names.update(dict.fromkeys(read_names(layout.root / name, layout.root / layout.input_dir, issues)))
    return list(names)


def read_names(path: Path, inside: Path, issues: DataIssues) -> list[str]:
    """Names listed in ``path``; entries that resolve outside ``inside`` are refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise BenchmarkError(f"{path}: not UTF-8 text (byte {error.start}); save the list as UTF-8") from None
    except OSError as error:
        raise BenchmarkError(f"{path}: cannot read ({error.strerror or error})") from None
    names = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not (inside / entry).resolve().is_relative_to(inside.resolve()):
            issues.skip(path, f"entry {entry!r} points outside {inside}: refused")
            continue
        names.append(_stem(Path(entry)))
    return names


def load_pair_folder(
    layout: PairFolder, max_side: int | None, max_images: int | None, issues: DataIssues
) -> list[Pair]:
    """The usable pairs, sorted by name; bad or unmatched files go to ``issues``."""
    if not layout.root.is_dir():
        raise BenchmarkError(f"{layout.root}: not a folder")
    inputs = _index(layout.folder(layout.input_dir), layout.key)
    outputs = _index(layout.folder(layout.output_dir), layout.key)
    names = sorted(inputs)
    if layout.filelist and (layout.root / layout.filelist).is_file():
        names = read_names(layout.root / layout.filelist, layout.root / layout.input_dir, issues)
    elif layout.train_lists:
        names = listed_names(layout, layout.train_lists, issues)
    test_list = layout.root / layout.test_list if layout.test_list else None
    if test_list is not None and test_list.is_file():  # max_images: the first N others, and every test pair
        test_names = read_names(test_list, layout.root / layout.input_dir, issues)
        tested = set(test_names)
        others = [name for name in names if name not in tested]
        names = others[:max_images] + [name for name in test_names if name in inputs or name in names]
    elif max_images is not None:
        names = names[:max_images]
    pairs = []
    for name in names:
        if name not in inputs:
            issues.skip(layout.root / layout.input_dir / name, "listed but not found")
            continue
        if name not in outputs:
            issues.skip(inputs[name], f"no output with the same name in {layout.output_dir}/")
            continue
        source, target = issues.read(inputs[name], None), issues.read(outputs[name], None)
        if source is None or target is None:
            continue
        if source.shape != target.shape:
            issues.skip(
                inputs[name],
                f"input {source.shape[1]}x{source.shape[0]} and output {target.shape[1]}x{target.shape[0]} differ in size",
            )
            continue
        pairs.append(Pair(name, fit_max_side(source, max_side), fit_max_side(target, max_side)))
    if len(pairs) < 2:
        raise BenchmarkError(f"{layout.root}: {len(pairs)} usable pair(s); at least 2 are needed for a train/test split")
    return pairs
