"""The PSNR-versus-training-time curve of a run: CSV and PNG in the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def last_fifth_gain(curve: list[dict[str, Any]]) -> float | None:
    """Held-out PSNR gained over the last fifth of the training time (dB): the end of the curve
    minus its last point at or before 80% of the time. Near 0: the budget has run its course.

    >>> last_fifth_gain([{"train_seconds": t, "test_psnr": p} for t, p in [(0, 20), (50, 29), (80, 29.9), (100, 30)]])
    0.1
    """
    if len(curve) < 2:
        return None
    end = curve[-1]
    before = [point for point in curve if point["train_seconds"] <= 0.8 * end["train_seconds"]]
    return round(end["test_psnr"] - before[-1]["test_psnr"], 6) if before else None


def write_training_curve(curve: list[dict[str, Any]], run_dir: Path) -> None:
    """``training_curve.csv`` (step, train_seconds, test_psnr) and ``training_curve.png``."""
    frame = pd.DataFrame(curve)
    run_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(run_dir / "training_curve.csv", index=False)
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(frame["train_seconds"] / 60, frame["test_psnr"], marker="o")
    axis.set_xlabel("training time (min, excluding evaluation)")
    axis.set_ylabel("held-out PSNR (dB)")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(run_dir / "training_curve.png", dpi=120)
    plt.close(figure)
