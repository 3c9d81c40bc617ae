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


class _FakeContext:
    def __init__(self, renderer: str) -> None:
        self.info = {"GL_RENDERER": renderer}
        self.released = False

    def release(self) -> None:
        self.released = True


def test_egl_prefers_a_gpu_driver_over_mesa_device_zero(monkeypatch):
    import moderngl

    from styleavatar.rendering import gl

    made = []

    def create_context(standalone, backend, device_index=None):
        names = ["llvmpipe (LLVM 15.0.6, 256 bits)", "NVIDIA H200/PCIe/SSE2"]
        if device_index is None or device_index >= len(names):
            raise RuntimeError(f"requested device index {device_index}, but found {len(names)} devices")
        made.append(_FakeContext(names[device_index]))
        return made[-1]

    monkeypatch.setattr(moderngl, "create_context", create_context)
    ctx = gl._egl_context()
    assert ctx.info["GL_RENDERER"].startswith("NVIDIA") and made[0].released and not ctx.released
    assert len(made) == 2  # Mesa's context was released before the GPU's was made
    # a machine with Mesa only keeps Mesa
    monkeypatch.setattr(moderngl, "create_context",
                        lambda standalone, backend, device_index=None: _FakeContext("llvmpipe") if device_index == 0
                        else (_ for _ in ()).throw(RuntimeError("found 1 devices")))
    only = gl._egl_context()
    assert only.info["GL_RENDERER"] == "llvmpipe" and not only.released
    assert gl.is_software("llvmpipe (LLVM 15.0.6, 256 bits)") and not gl.is_software("NVIDIA H200/PCIe/SSE2")


def test_falling_back_to_the_reference_rasteriser_is_said_once(monkeypatch, capsys):
    from styleavatar.rendering import gl, rasterize

    monkeypatch.setattr(gl, "gl_unavailable_reason", lambda: "no EGL here")
    rasterize._warn_once.cache_clear()
    assert rasterize.make_rasterizer("auto").name == "torch"
    assert rasterize.make_rasterizer("auto").name == "torch"
    err = capsys.readouterr().err
    assert err.count("no EGL here") == 1 and "PyTorch reference" in err


def test_the_rasteriser_in_use_is_described():
    from styleavatar.rendering.gl import gl_unavailable_reason
    from styleavatar.rendering.rasterize import make_rasterizer

    if gl_unavailable_reason() is not None:
        pytest.skip(f"no OpenGL here: {gl_unavailable_reason()}")
    r = make_rasterizer("gl")
    assert r.description.startswith("OpenGL ") and " on " in r.description
