"""The fast rasteriser: moderngl with a headless EGL context (Mesa llvmpipe on a CPU, the GPU's OpenGL
driver on a GPU machine). It follows the contract of :mod:`styleavatar.rendering.rasterize` and is
tested against :func:`~styleavatar.rendering.rasterize.rasterize_torch`.
"""
from __future__ import annotations

import functools
import threading

import numpy as np

_VERTEX_SHADER = """
#version 330
uniform vec2 size;      // output width, height in pixels
uniform vec2 depth;     // z range (near, far) mapped to NDC [-1, 1]
in vec3 in_pos;         // x, y in pixels (y down), z depth (smaller = nearer)
in vec4 in_attr;
out vec4 v_attr;
void main() {
    float z = 2.0 * (in_pos.z - depth.x) / max(depth.y - depth.x, 1e-6) - 1.0;
    gl_Position = vec4(2.0 * in_pos.x / size.x - 1.0, 1.0 - 2.0 * in_pos.y / size.y, z, 1.0);
    v_attr = in_attr;
}
"""
_FRAGMENT_SHADER = """
#version 330
in vec4 v_attr;
layout(location = 0) out vec4 out_attr;
layout(location = 1) out vec4 out_more;
void main() { out_attr = vec4(v_attr.xyz, 1.0); out_more = vec4(v_attr.w, 0.0, 0.0, 0.0); }
"""


_THREAD = threading.local()


def _load_triton_first() -> None:
    """Import triton (if installed) before Mesa's driver loads: both bundle LLVM, and triton loaded
    after a Mesa (llvmpipe) context crashes the process (PyPI's CUDA build of PyTorch brings triton,
    and PyTorch imports it on first use of torch.compile or an optimizer). In the other order both work."""
    try:
        import triton  # noqa: F401
    except Exception:  # not installed, or unusable here: PyTorch then does without it
        pass


SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "swiftshader", "lavapipe")
"""Words in GL_RENDERER that mark a software OpenGL (Mesa on the CPU), passed over when a GPU's driver is there."""


def is_software(renderer: str) -> bool:
    return any(word in renderer.lower() for word in SOFTWARE_RENDERERS)


def _egl_context():
    """A headless EGL context on the first hardware EGL device, else on the first device (Mesa's llvmpipe).

    EGL device 0 is often Mesa's software renderer even on a GPU machine, so each device is tried in turn;
    software ones are released before the next is made, so the context returned is the current one."""
    import moderngl

    first_software = None
    for index in range(16):
        try:
            ctx = moderngl.create_context(standalone=True, backend="egl", device_index=index)
        except Exception:  # past the last device (or a device without OpenGL 3.3)
            break
        if not is_software(ctx.info.get("GL_RENDERER", "")):
            return ctx
        ctx.release()
        first_software = index if first_software is None else first_software
    if first_software is None:
        return moderngl.create_context(standalone=True, backend="egl")  # raises with EGL's own reason
    return moderngl.create_context(standalone=True, backend="egl", device_index=first_software)


def _context():
    """This thread's OpenGL context (a context is current in the thread that created it only)."""
    import moderngl

    if getattr(_THREAD, "ctx", None) is None:
        _load_triton_first()
        try:
            _THREAD.ctx = _egl_context()
        except Exception:  # no EGL: try the platform default (GLX/WGL/CGL with a display)
            _THREAD.ctx = moderngl.create_context(standalone=True)
    return _THREAD.ctx


@functools.lru_cache(maxsize=1)
def gl_unavailable_reason() -> str | None:
    """None when an OpenGL 3.3 context can be created here, else why not (one line)."""
    try:
        _context()
    except Exception as exc:  # moderngl raises plain Exceptions for missing libraries/devices
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no context'}"
    return None


def gl_description() -> str:
    """'OpenGL <version> on <renderer> (<vendor>)' for this thread's context (call when available)."""
    info = _context().info
    return f"OpenGL {info.get('GL_VERSION', '?')} on {info.get('GL_RENDERER', '?')} ({info.get('GL_VENDOR', '?')})"


class GLRasterizer:
    """moderngl rasteriser with float32 render targets; up to 4 attribute channels."""

    name = "gl"

    def __init__(self) -> None:
        self.ctx = _context()
        self.description = gl_description()
        self.prog = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self._fbo_size: tuple[int, int] | None = None

    def _framebuffer(self, height: int, width: int):
        if self._fbo_size != (height, width):
            ctx = self.ctx
            self.targets = [ctx.renderbuffer((width, height), components=4, dtype="f4") for _ in range(2)]
            self.fbo = ctx.framebuffer(color_attachments=self.targets,
                                       depth_attachment=ctx.depth_renderbuffer((width, height)))
            self._fbo_size = (height, width)
        return self.fbo

    def __call__(self, verts: np.ndarray, triangles: np.ndarray, attrs: np.ndarray,
                 height: int, width: int) -> np.ndarray:
        """See :class:`~styleavatar.rendering.rasterize.Rasterizer`; returns (H, W, C + 1) float32."""
        import moderngl

        channels = attrs.shape[1]
        if channels > 4:
            raise ValueError("the OpenGL rasteriser interpolates at most 4 attribute channels")
        ctx = self.ctx
        fbo = self._framebuffer(height, width)
        attr4 = np.zeros((len(attrs), 4), np.float32)
        attr4[:, :channels] = attrs
        # Expand to one vertex per triangle corner so no index buffer is needed.
        data = np.concatenate([np.asarray(verts, np.float32), attr4], 1)[np.asarray(triangles).reshape(-1)]
        z = np.asarray(verts)[:, 2]
        vbo = ctx.buffer(np.ascontiguousarray(data, np.float32).tobytes())
        vao = ctx.vertex_array(self.prog, [(vbo, "3f 4f", "in_pos", "in_attr")])
        self.prog["size"].value = (float(width), float(height))
        margin = 1e-3 * max(float(np.ptp(z)), 1.0)
        self.prog["depth"].value = (float(z.min()) - margin, float(z.max()) + margin)
        fbo.use()
        ctx.viewport = (0, 0, width, height)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.depth_func = "<"
        vao.render(moderngl.TRIANGLES)
        first = np.frombuffer(fbo.read(components=4, dtype="f4", attachment=0), np.float32).reshape(height, width, 4)
        out = np.empty((height, width, channels + 1), np.float32)
        # GL rows start at the bottom of the image: flip them.
        out[..., : min(channels, 3)] = first[::-1, :, : min(channels, 3)]
        if channels == 4:
            second = np.frombuffer(fbo.read(components=4, dtype="f4", attachment=1), np.float32)
            out[..., 3] = second.reshape(height, width, 4)[::-1, :, 0]
        out[..., -1] = first[::-1, :, 3]
        vao.release()
        vbo.release()
        return out
