"""bilateral-bench: benchmark HDRNet and baselines against slow reference image operators."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout: data/, conf/, checkpoints/, reports/

# torch's OpenMP threads spin for a while after each op (GOMP_SPINCOUNT 300000 by default): where
# numba runs on its own thread pool (its OpenMP layer unavailable) they starve the fused kernel that
# follows the low-res network: 1080p inference 20.8 -> 15.3 ms with 30000 (DESIGN §10). Set before
# torch is imported; a value the user set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "30000")
# Run-to-run reproducibility (one machine, one thread count): MKL's conditional numerical
# reproducibility makes its GEMMs independent of memory alignment (STRICT: of the thread count
# too), and neither MKL nor OpenMP may change the thread count on their own under load.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("MKL_DYNAMIC", "FALSE")
os.environ.setdefault("OMP_DYNAMIC", "FALSE")
