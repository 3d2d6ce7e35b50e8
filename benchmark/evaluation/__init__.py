"""Scoring a run: metrics (PSNR, SSIM, ΔE, LPIPS and its offline weights), timing on test photos, results.json."""
