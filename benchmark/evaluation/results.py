"""results.json: what a run records (environment, summary), and the one-screen console table."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from benchmark import PROJECT_ROOT
from benchmark.core.runtime import reproducibility_settings
from benchmark.evaluation.metrics import METRICS
from benchmark.hdrnet import simd_lookup

SUMMARY_KEYS = (
    *METRICS, "identity_psnr", "time_ms", "time_ms_per_mp", "reference_time_ms", "reference_time_ms_per_mp",
)


def git_revision() -> str:
    """HEAD's hash, with '+dirty' when the tree has changes; 'unknown' outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, threads, device and revision: what a reader needs to trust or redo the numbers."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "fused_simd_lanes": simd_lookup.LANES,  # the fused kernel's slice: per-pixel lookups, or 0: the bin sweep
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "git_revision": git_revision(),
        "reproducibility": reproducibility_settings(),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over test images of each per-image value (None when a metric was skipped)."""
    summary: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        values = [row[key] for row in rows]
        summary[key] = None if any(v is None for v in values) else float(np.mean(values))
    summary["images"] = len(rows)
    return summary


def format_table(results: dict[str, Any]) -> str:
    """Per-image rows and their mean, with the untouched input's PSNR for scale."""
    columns = {
        "image": "image", **{key: metric.column for key, metric in METRICS.items()},
        "identity_psnr": "input PSNR", "time_ms": "ms", "time_ms_per_mp": "ms/MP",
        "reference_time_ms": "ref ms",
    }
    summary = results["summary"]
    mean_row = {"image": "mean", **{k: summary[k] for k in columns if k != "image"}}
    frame = pd.DataFrame([*results["images"], mean_row])[list(columns)].fillna(float("nan"))
    frame = frame.rename(columns=columns)
    formats = {metric.column: metric.fmt.format for metric in METRICS.values()}
    body = frame.to_string(index=False, na_rep="—", float_format="{:.2f}".format, formatters=formats)
    reference_ms = summary["reference_time_ms"]
    speedup = f"{reference_ms / summary['time_ms']:.1f}x" if reference_ms else "n/a (no reference operator)"
    flags = "".join(
        [
            "  [SYNTHETIC targets]" if results["synthetic"] else "",
            "  [UPPER BOUND: fitted on the full-res output]" if results["upper_bound"] else "",
        ]
    )
    lines = [
        f"task={results['task']}  model={results['model']}  needs_operator={results['needs_operator']}  "
        f"params={results['parameters']}  device={results['environment']['device']}  "
        f"threads={results['environment']['torch_threads']}{flags}",
        body,
        f"speedup over the reference operator: {speedup}   LPIPS: {results['lpips_status']}",
    ]
    if results["skipped_files"]:
        lines.append(f"skipped {len(results['skipped_files'])} bad file(s): see skipped_files in results.json")
    return "\n".join(lines)
