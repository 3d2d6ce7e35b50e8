"""The PSNR-versus-training-time curve of a run: CSV and PNG in the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


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
