"""The OpenGL rasteriser's process-level side: what it loads and in which order."""
import importlib.util
import subprocess
import sys

import pytest


def test_triton_loads_after_the_gl_context_without_crashing():
    # PyPI's CUDA build of PyTorch brings triton; loaded after Mesa's LLVM it used to crash the process
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed here (PyTorch's CPU build): nothing can clash")
    code = ("from styleavatar.rendering.gl import gl_unavailable_reason; gl_unavailable_reason(); "
            "import torch; torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))]); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
