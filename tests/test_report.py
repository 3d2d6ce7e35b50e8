"""python -m benchmark.report: tables against the runs' numbers, figures, links, explainer, bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark import PROJECT_ROOT
from benchmark.__main__ import run
from benchmark.core.images import read_image
from benchmark.evaluation.metrics import psnr
from benchmark.hdrnet.bilateral import apply_affine, bilateral_slice
from benchmark.report import main
from benchmark.reporting.explainer import apply_then_blend, random_grid
from tests.conftest import compose_config

SMOKE = ["profile=smoke", "data.max_images=8"]  # 8 photos: 2 test images, so two example strips
RUNS = {  # run folder -> overrides; created in this order (the grid variant after the default)
    "ll/hdrnet": ["task=local_laplacian", "model=hdrnet"],
    "ll/bicubic": ["task=local_laplacian", "model=bicubic", "model.lowres_size=32"],
    "ll/recipes": ["task=local_laplacian", "model=recipes"],
    "sweep/0_hdrnet_8x4": ["task=local_laplacian", "model=hdrnet", "model.grid.spatial=8", "model.grid.luma_bins=4"],
    "ps/bicubic": ["task=photoshop", "model=bicubic", "model.lowres_size=32"],
}
SPEED_ROWS = [
    {"method": method, "stage": stage, "task": "local_laplacian", "width": 768, "height": 512,
     "megapixels": 0.393216, "median_ms": ms, "p10_ms": ms * 0.9, "p90_ms": ms * 1.1, "threads": 2,
     "device": "cpu", "device_name": "test cpu", "needs_operator": needs, "parameters": parameters}
    for method, stage, ms, needs, parameters in [
        ("reference", "total", 30.0, None, None),
        ("hdrnet", "total", 12.0, False, 482049),
        ("bicubic", "total", 6.0, True, 0),
        ("hdrnet", "lowres_net", 4.0, False, 482049),
        ("bound", "fullres_bandwidth", 0.5, None, None),
    ]
]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five smoke runs (two tasks, a grid variant, an upper bound) and a fake speed.json."""
    root = tmp_path_factory.mktemp("runs")
    for folder, overrides in RUNS.items():
        run(compose_config([*SMOKE, *overrides, f"data.cache_dir={root.parent / 'cache'}"]), root / folder)
    (root / "sweep" / "speed.json").write_text(json.dumps(SPEED_ROWS))
    return root


@pytest.fixture(scope="module")
def report(runs_root: Path) -> Path:
    out = runs_root.parent / "reports" / "smoke"
    assert main([str(runs_root / "ll"), str(runs_root / "sweep"), str(runs_root / "ps"), "--out", str(out)]) == 0
    return out


def _results(runs_root: Path, folder: str) -> dict:
    return json.loads((runs_root / folder / "results.json").read_text())


def _markdown_rows(path: Path) -> dict[str, list[str]]:
    """Rows of a Markdown table by their first cell (header row included)."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def test_psnr_table_holds_the_runs_means_and_bolds_the_best_real_model(runs_root, report):
    table = pd.read_csv(report / "tables" / "quality_psnr.csv", index_col="task")
    for folder in ("ll/hdrnet", "ll/bicubic", "ll/recipes", "ps/bicubic"):
        results = _results(runs_root, folder)
        assert table.at[results["task"], results["model"]] == pytest.approx(results["summary"]["psnr"], abs=1e-12)
    hdrnet = _results(runs_root, "ll/hdrnet")
    assert table.at["local_laplacian", "identity"] == pytest.approx(hdrnet["summary"]["identity_psnr"], abs=1e-12)

    rows = _markdown_rows(report / "tables" / "quality_psnr.md")
    header, row = rows["task"], rows["local_laplacian"]
    assert header[0] == "identity" and "recipes†" in header  # upper bound marked
    bold = [name for name, cell in zip(header, row) if cell.startswith("**")]
    candidates = table.loc["local_laplacian"].drop(["identity", "recipes"]).dropna()
    assert bold == [candidates.idxmax()]
    assert "photoshop*" in rows  # synthetic targets marked
    latex = (report / "tables" / "quality_psnr.tex").read_text()
    assert r"\toprule" in latex and r"\textbf{" in latex and r"local\_laplacian" in latex


def test_table1_prefers_the_default_grid_run_and_names_every_source(runs_root, report):
    sources = pd.read_csv(report / "tables" / "sources.csv", keep_default_na=False).set_index("run_dir")
    default, variant = str(runs_root / "ll" / "hdrnet"), str(runs_root / "sweep" / "0_hdrnet_8x4")
    assert sources.at[default, "table1"] == "model, identity"
    assert sources.at[variant, "table1"] == "no"  # newer, but not the default config
    assert sources.at[variant, "overrides"] == "grid.luma_bins=4, grid.spatial=8"
    assert len(sources) == len(RUNS)


def test_lpips_table_holds_the_runs_values(runs_root, report):
    table = pd.read_csv(report / "tables" / "quality_lpips.csv", index_col="task")
    results = _results(runs_root, "ll/hdrnet")
    assert results["lpips_status"].startswith("computed: lpips v0.1, net=alex, inputs scaled to [-1, 1]")
    assert table.at["local_laplacian", "hdrnet"] == pytest.approx(results["summary"]["lpips"], abs=1e-12)
    assert 0 < results["summary"]["lpips"] < 1


def test_lpips_skipped_is_stated_not_invented(runs_root, tmp_path):
    skipped = tmp_path / "skipped"
    shutil.copytree(runs_root / "ll" / "hdrnet", skipped)
    results = json.loads((skipped / "results.json").read_text())
    results["lpips_status"] = "skipped: alexnet ImageNet weights not in torch cache"
    results["summary"]["lpips"] = None
    for row in results["images"]:
        row["lpips"] = None
    (skipped / "results.json").write_text(json.dumps(results))
    assert main([str(skipped), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "tables" / "quality_lpips.csv", index_col="task")
    assert table.isna().all().all()
    assert "skipped" in (tmp_path / "out" / "tables" / "quality_lpips.md").read_text().splitlines()[0]
    assert "LPIPS not computed for some or all runs: skipped: alexnet" in (tmp_path / "out" / "index.html").read_text()


def test_speed_table_speedup_over_the_reference_row(report):
    speed = pd.read_csv(report / "tables" / "speed.csv").set_index("method")
    assert set(speed.index) == {"reference", "hdrnet", "bicubic"}
    assert speed.at["hdrnet", "speedup"] == pytest.approx(30.0 / 12.0)
    assert speed.at["bicubic", "ms_per_mp"] == pytest.approx(6.0 / 0.393216)
    assert speed.at["hdrnet", "parameters"] == 482049 and speed.at["hdrnet", "threads"] == 2
    stages = pd.read_csv(report / "tables" / "speed_stages.csv")
    assert set(stages["stage"]) == {"lowres_net", "fullres_bandwidth"}


def test_runs_save_example_outputs_that_are_the_scored_outputs(runs_root):
    results = _results(runs_root, "ll/hdrnet")
    examples = runs_root / "ll" / "hdrnet" / "examples"
    names = sorted(results["split"]["test"])[:2]
    assert sorted(p.name for p in examples.iterdir()) == sorted(
        f"{name}_{role}.png" for name in names for role in ("input", "output", "target")
    )
    for row in (r for r in results["images"] if r["image"] in names):
        output, target = (read_image(examples / f"{row['image']}_{role}.png") for role in ("output", "target"))
        assert psnr(output, target) == pytest.approx(row["psnr"], abs=0.05)  # 8-bit rounding only


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs
                       if (tag, name) in (("img", "src"), ("a", "href"), ("option", "value")) and value]


def test_index_links_resolve_and_every_figure_exists(report):
    page = (report / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    assert parser.links and all((report / link).is_file() for link in parser.links)
    assert not any(link.startswith(("/", "http")) for link in parser.links)
    figures = {p.stem for p in (report / "figures").glob("*.png")} | {p.stem for p in (report / "figures").glob("*.jpg")}
    expected = {f"local_laplacian_{kind}" for kind in ("pareto", "grid", "training", "per_image", "examples")}
    assert expected | {"photoshop_pareto", "photoshop_per_image", "explainer_slicing"} <= figures
    assert (report / "figures" / "local_laplacian_examples.jpg").is_file()  # photos: JPEG, a tenth of a PNG
    assert not list(report.rglob("*.pdf"))  # PDFs only on demand
    assert "photoshop_grid" not in figures and "needs hdrnet runs with at least two grid" in page
    for text in ("Caveats", "Upper bounds (recipes)", "Synthetic targets", "git_revision"):
        assert text in page


def test_pdf_figures_on_demand(runs_root, tmp_path):
    out = tmp_path / "with_pdf"
    assert main([str(runs_root / "ps"), "--out", str(out), "--pdf"]) == 0
    rasters = [*(out / "figures").glob("*.png"), *(out / "figures").glob("*.jpg")]
    assert rasters and all(path.with_suffix(".pdf").is_file() for path in rasters)
    assert 'pdf</a>' in (out / "index.html").read_text()


def _chromium(page: Path, *arguments: str) -> str:
    """Headless Debian chromium on ``page`` once its images have loaded; returns stdout."""
    chromium = shutil.which("chromium")
    if chromium is None:  # .ci/run installs it: in CI this test runs
        pytest.skip("no chromium on PATH (apt-get install chromium); the html.parser link check above still ran")
    # --no-sandbox: chromium refuses to start as root (CI runs as root) without it
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=10000", *arguments, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def test_index_renders_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    dom = _chromium(report / "index.html", "--dump-dom")
    assert 'data-broken-images="0"' in dom and '<p class="warning">' not in dom
    assert "Table 1: quality" in dom and "<table" in dom and 'class="compare"' in dom
    shot = tmp_path / "index.png"
    _chromium(report / "index.html", "--window-size=1280,1400", f"--screenshot={shot}")
    pixels = read_image(shot)
    assert pixels.shape[:2] == (1400, 1280)
    assert (pixels.min(axis=2) < 0.9).mean() > 0.02 and pixels.std() > 0.05  # text, tables, figures: not blank


def test_a_missing_image_is_counted_and_shown_in_the_browser(report, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(report, broken)
    (broken / "figures" / "local_laplacian_pareto.png").unlink()
    dom = _chromium(broken / "index.html", "--dump-dom")
    assert 'data-broken-images="1"' in dom and '<p class="warning">1 image(s) did not load' in dom


def test_slicing_then_applying_equals_blending_the_cells_outputs(report):
    explainer = json.loads((report / "figures" / "explainer_slicing.json").read_text())
    assert explainer["max_abs_difference"] < 1e-5
    grid, image = random_grid(seed=1)[..., :5, :7], torch.rand(1, 3, 20, 30)
    guide = image.mean(dim=1)
    sliced = apply_affine(bilateral_slice(grid, guide), image)
    assert (sliced - apply_then_blend(grid, guide, image)).abs().max() < 1e-5
    shifted = apply_then_blend(grid.roll(1, dims=-1), guide, image)  # a wrong cell: must be caught
    assert (sliced - shifted).abs().max() > 1e-2


def test_failed_jobs_with_one_reason_are_one_caveat_line(runs_root, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(runs_root / "ll" / "bicubic", sweep / "1_local_laplacian_bicubic")
    for job in ("2_fivek_hdrnet", "3_fivek_bicubic"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / "error.txt").write_text("task=fivek needs MIT-Adobe FiveK:\n pass data.root\n")
    (sweep / "4_tone_mapping_jbu" / ".hydra").mkdir(parents=True)  # killed: no error.txt
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    lines = re.findall(r"<li [^>]*>([^<]*)</li>", (tmp_path / "out" / "index.html").read_text())
    failed = [line for line in lines if "without results.json" in line]
    assert failed == [  # the reason first: a long list of folders must not hide it
        "task=fivek needs MIT-Adobe FiveK: pass data.root — 2 run folder(s) without results.json ignored: "
        "2_fivek_hdrnet, 3_fivek_bicubic",
        "interrupted (no error.txt) — 1 run folder(s) without results.json ignored: 4_tone_mapping_jbu",
    ]


def test_folder_without_results_is_one_error_line_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "reports" / "x"
    env = {"PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmark.report", str(tmp_path / "empty"), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2
    expected = f"error: {tmp_path / 'empty'}: no results.json or speed.json found (not a run, multirun or speed directory)"
    assert done.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "reports").exists()


def test_corrupt_results_names_the_file_and_keeps_the_previous_report(runs_root, report, tmp_path, capsys):
    bad = tmp_path / "bad_run"
    bad.mkdir()
    (bad / "results.json").write_text('{"task": "local_laplacian", "model"')
    out = tmp_path / "previous"
    shutil.copytree(report, out)
    assert main([str(runs_root / "ll"), str(bad), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {bad / 'results.json'}: unreadable or corrupt JSON")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_run", "previous"]  # no staging left
    assert (out / "index.html").read_text() == (report / "index.html").read_text()


def test_failure_while_building_leaves_no_output(runs_root, tmp_path, monkeypatch):
    def fail(*args: object) -> None:
        (args[5] / "half.txt").write_text("half")  # the staging folder
        raise RuntimeError("disk full")

    monkeypatch.setattr("benchmark.report.build_report", fail)
    with pytest.raises(RuntimeError):
        main([str(runs_root / "ps"), "--out", str(tmp_path / "out")])
    assert list(tmp_path.iterdir()) == []


def test_out_folder_that_is_not_a_report_is_refused(runs_root, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main([str(runs_root / "ps"), "--out", str(tmp_path)]) == 2
    assert "not a previous report" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_published_fivek_figures_sit_beside_the_measured_cell_never_in_it(runs_root, tmp_path):
    fivek = tmp_path / "fivek_run"
    shutil.copytree(runs_root / "ll" / "hdrnet", fivek)
    results = json.loads((fivek / "results.json").read_text())
    results["task"] = "fivek"
    (fivek / "results.json").write_text(json.dumps(results))
    assert main([str(fivek), str(runs_root / "ll"), "--out", str(tmp_path / "out")]) == 0
    published = pd.read_csv(tmp_path / "out" / "tables" / "published_fivek.csv")
    hdrnet = published[published["model"] == "hdrnet"]
    assert sorted(hdrnet["published PSNR (dB)"]) == [24.32, 24.66]
    assert list(hdrnet["measured here (dB)"]) == pytest.approx([results["summary"]["psnr"]] * 2)
    assert published.set_index("model").at["AdaInt", "published PSNR (dB)"] == 25.49
    quality = pd.read_csv(tmp_path / "out" / "tables" / "quality_psnr.csv", index_col="task")
    assert quality.at["fivek", "hdrnet"] == pytest.approx(results["summary"]["psnr"])  # measured only
    assert "AdaInt" not in quality.columns
    assert "Published FiveK figures (not measured here)" in (tmp_path / "out" / "index.html").read_text()
    assert main([str(runs_root / "ll"), "--out", str(tmp_path / "without")]) == 0  # no fivek run: no table
    assert not (tmp_path / "without" / "tables" / "published_fivek.csv").exists()
