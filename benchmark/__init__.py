"""bilateral-bench: benchmark HDRNet and baselines against slow reference image operators."""
