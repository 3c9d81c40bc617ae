"""Triangle rasterisation with a depth test, interpolating per-vertex attributes.

Both backends share one contract (:class:`Rasterizer`): vertices in *pixel units* of the output image
(x right, y down, pixel (row i, column j) has its centre at (j + 0.5, i + 0.5)), a depth z where smaller
is nearer, triangles, and per-vertex attributes. The result is an (H, W, C + 1) float32 image: the
attributes linearly interpolated (orthographic, so no perspective correction) at each pixel centre
covered by a triangle, and a last channel that is 1 where covered and 0 elsewhere (attributes are 0 there).

:func:`rasterize_torch` is the plain-PyTorch reference; :mod:`styleavatar.rendering.gl` is the fast path.
"""
from __future__ import annotations

import functools
import sys
from typing import Protocol

import numpy as np
import torch


class Rasterizer(Protocol):
    """Callable rasteriser: ``(verts (V,3), triangles (F,3), attrs (V,C), height, width) -> (H,W,C+1)``."""

    name: str

    def __call__(self, verts: np.ndarray, triangles: np.ndarray, attrs: np.ndarray,
                 height: int, width: int) -> np.ndarray: ...


def rasterize_torch(verts: np.ndarray | torch.Tensor, triangles: np.ndarray | torch.Tensor,
                    attrs: np.ndarray | torch.Tensor, height: int, width: int) -> np.ndarray:
    """Reference rasteriser: enumerate each triangle's bounding-box pixels, keep the nearest hit.

    Args:
        verts: (V, 3) x, y in pixels, z depth (smaller = nearer).
        triangles: (F, 3) vertex indices.
        attrs: (V, C) attributes to interpolate.
        height, width: output size in pixels.
    Returns:
        (H, W, C + 1) float32: interpolated attributes and coverage.
    """
    v = torch.as_tensor(np.asarray(verts), dtype=torch.float64)
    tri = torch.as_tensor(np.asarray(triangles), dtype=torch.long)
    att = torch.as_tensor(np.asarray(attrs), dtype=torch.float64)
    out = torch.zeros(height * width, att.shape[1] + 1, dtype=torch.float64)
    p = v[tri]  # (F, 3 corners, 3 coords)
    # Pixel centres j + 0.5 inside [min, max] of the triangle: j in [ceil(min - 0.5), floor(max - 0.5)].
    lo = torch.ceil(p[..., :2].amin(1) - 0.5).clamp(min=0)
    hi = torch.floor(p[..., :2].amax(1) - 0.5)
    hi[:, 0].clamp_(max=width - 1)
    hi[:, 1].clamp_(max=height - 1)
    ext = (hi - lo + 1).clamp(min=0).long()  # (F, 2) columns and rows of each bbox
    count = ext[:, 0] * ext[:, 1]
    if int(count.sum()) == 0:
        return out.view(height, width, -1).float().numpy()
    # One row per (triangle, bbox pixel) pair: local offset k -> column k % nx, row k // nx.
    tid = torch.repeat_interleave(torch.arange(len(tri)), count)
    start = torch.cumsum(count, 0) - count
    k = torch.arange(int(count.sum())) - start[tid]
    px = lo[tid, 0] + (k % ext[tid, 0]) + 0.5
    py = lo[tid, 1] + torch.div(k, ext[tid, 0], rounding_mode="floor") + 0.5
    a, b, c = p[tid, 0], p[tid, 1], p[tid, 2]

    def edge(p0, p1, x, y):  # twice the signed area of (p0, p1, (x, y))
        return (p1[:, 0] - p0[:, 0]) * (y - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (x - p0[:, 0])

    area = edge(a, b, c[:, 0], c[:, 1])
    w0, w1, w2 = edge(b, c, px, py), edge(c, a, px, py), edge(a, b, px, py)
    safe = torch.where(area.abs() > 1e-12, area, torch.ones_like(area))
    bary = torch.stack([w0, w1, w2], 1) / safe[:, None]
    inside = (area.abs() > 1e-12) & (bary >= -1e-9).all(1)
    bary, tid, px, py = bary[inside], tid[inside], px[inside], py[inside]
    z = (bary * p[tid, :, 2]).sum(1)
    pid = py.long() * width + px.long()
    zbuf = torch.full((height * width,), torch.inf, dtype=torch.float64).scatter_reduce(0, pid, z, "amin")
    win = z <= zbuf[pid]
    # Equal depths: keep the lowest triangle id so the result is deterministic.
    first = torch.full((height * width,), len(tri), dtype=torch.long).scatter_reduce(0, pid[win], tid[win], "amin")
    win &= tid == first[pid]
    vals = (bary[win, :, None] * att[tri[tid[win]]]).sum(1)
    out[pid[win], :-1] = vals
    out[pid[win], -1] = 1.0
    return out.view(height, width, -1).float().numpy()


class TorchRasterizer:
    """The reference rasteriser behind the :class:`Rasterizer` interface."""

    name = "torch"

    def __call__(self, verts, triangles, attrs, height, width):
        return rasterize_torch(verts, triangles, attrs, height, width)


def make_rasterizer(backend: str = "auto") -> Rasterizer:
    """Return a rasteriser: 'gl' (moderngl, raises if no OpenGL), 'torch', or 'auto' (gl, else torch)."""
    if backend == "torch":
        return TorchRasterizer()
    if backend not in ("gl", "auto"):
        raise ValueError(f"unknown rasteriser backend {backend!r} (use 'auto', 'gl' or 'torch')")
    from .gl import GLRasterizer, gl_unavailable_reason

    reason = gl_unavailable_reason()
    if reason is None:
        return GLRasterizer()
    if backend == "gl":
        from ..errors import UserError

        raise UserError(f"OpenGL rasteriser unavailable: {reason}")
    _warn_once(f"warning: OpenGL is unavailable here ({reason}); rasterising with the PyTorch reference, "
               "which is slower (see `styleavatar doctor`)")
    return TorchRasterizer()


@functools.lru_cache(maxsize=None)
def _warn_once(text: str) -> None:
    print(text, file=sys.stderr)
