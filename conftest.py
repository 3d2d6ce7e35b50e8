"""pytest start-up: runs before any test or doctest module is imported."""

import os

# Without a GPU, Triton's kernels run in its interpreter on CPU tensors (tests/test_triton.py). Triton
# reads this when a kernel is decorated, i.e. when benchmark.hdrnet.triton_kernels is imported, which
# collecting the modules' doctests does before any test module runs. scripts/device_check.sh sets 0.
os.environ.setdefault("TRITON_INTERPRET", "1")
