"""The two per-frame renders of paper Sec. 3.1 and the subject's UV texture (the analogue of Eq. 3).

- UV render: R = u, G = v, B = coverage (the network samples its neural texture through it).
- Texture render: the subject's texture under one fixed light, so expression changes stand out.

Vertices come in crop-normalised coordinates (x, y in [0, 1] over the crop, z in the same unit, larger
z = farther) and are scaled to the output size here. Which render mesh they belong to (with the forehead band
or, for face models made before it, without) is told by their count.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from ..tracking.face_model import LEFT_EYE_RING, RIGHT_EYE_RING, RenderTopology, render_topology, topology_of
from ..tracking.fit import SubjectModel
from .rasterize import Rasterizer

LIGHT = np.array([-0.35, -0.45, -1.0]) / np.linalg.norm([-0.35, -0.45, -1.0])
"""Unit direction towards the fixed light (image frame: up-left in front of the face)."""
AMBIENT = 0.35
MOUTH_COLOUR = (70, 25, 25)
"""RGB of the mouth interior in the texture, so an open mouth shows as a dark region."""


def vertex_normals(verts: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals of a mesh; the face side points towards the viewer (-z)."""
    a, b, c = (verts[triangles[:, i]] for i in range(3))
    face = np.cross(b - a, c - a)  # length = 2 x area
    normals = np.zeros_like(verts)
    for i in range(3):
        np.add.at(normals, triangles[:, i], face)
    # Orient towards the viewer: the face mesh as a whole faces -z.
    if normals[:, 2].sum() > 0:
        normals = -normals
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


def shading(normals: np.ndarray) -> np.ndarray:
    """(V,) Lambertian shading in [AMBIENT, 1] under the fixed light."""
    return AMBIENT + (1 - AMBIENT) * np.clip(normals @ LIGHT, 0.0, 1.0)


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``image`` at continuous pixel coordinates (pixel centres at +0.5)."""
    return cv2.remap(image, (x - 0.5).astype(np.float32), (y - 0.5).astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def render_frame(rasterizer: Rasterizer, verts: np.ndarray, texture: np.ndarray, size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame.

    Args:
        rasterizer: a :class:`~styleavatar.rendering.rasterize.Rasterizer`.
        verts: (R, 3) crop-normalised render-mesh vertices.
        texture: (T, T, 3) uint8 RGB UV texture.
        size: output side in pixels.
    Returns:
        uv: (size, size, 3) float32, u, v in [0, 1] and coverage in {0, 1};
        textured: (size, size, 3) uint8 RGB texture render (black background).
    """
    topo = topology_of(len(verts))
    px = verts * size
    shade = shading(vertex_normals(px, topo.triangles))
    out = rasterizer(px, topo.triangles, np.concatenate([topo.uvs, shade[:, None]], 1), size, size)
    uv = out[..., [0, 1, 3]]
    t = texture.shape[0]
    colour = _sample(texture, out[..., 0] * t, out[..., 1] * t).astype(np.float32)
    textured = colour * (out[..., 2] * out[..., 3])[..., None]
    return uv, np.clip(textured + 0.5, 0, 255).astype(np.uint8)


def _uv_space_vertices(size: int, topo: RenderTopology) -> np.ndarray:
    """(R, 3) render-mesh vertices laid flat in UV space, in texels of a ``size`` texture (depth 0)."""
    return np.concatenate([topo.uvs * size, np.zeros((len(topo.uvs), 1))], 1)


def uv_mask(size: int, rasterizer: Rasterizer, forehead: bool = True) -> np.ndarray:
    """(size, size) bool: texels of UV space covered by the render mesh (with or without the forehead band)."""
    topo = render_topology(forehead)
    flat = _uv_space_vertices(size, topo)
    return rasterizer(flat, topo.triangles, np.zeros((len(flat), 1)), size, size)[..., -1] > 0


def _project_into_uv(rasterizer: Rasterizer, frames: list[np.ndarray], verts: list[np.ndarray],
                     size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's colour carried into UV space through the fitted mesh: (T, T, 3) float64 weighted colour
    sum and (T, T) weight sum. A texel takes the colour at its projected position, weighted by how squarely
    its surface faces the camera and only where it is not hidden (depth test against the frame's own render)."""
    topo = topology_of(len(verts[0]))
    acc = np.zeros((size, size, 3))
    wsum = np.zeros((size, size))
    flat = _uv_space_vertices(size, topo)
    for rgb, v in zip(frames, verts):
        s = rgb.shape[0]
        px = v * s
        facing = np.clip(-vertex_normals(px, topo.triangles)[:, 2], 0, 1) ** 2
        depth = rasterizer(px, topo.triangles, px[:, 2:3], s, s)
        # In UV space, interpolate where each texel lands in the frame, its depth and facing weight.
        att = rasterizer(flat, topo.triangles, np.concatenate([px, facing[:, None]], 1), size, size)
        x, y, z, wgt, cov = (att[..., i] for i in range(5))
        front = _sample(depth[..., 0], x, y)
        visible = (cov > 0) & (z <= front + 0.01 * s)
        wgt = np.where(visible, wgt, 0.0)
        acc += _sample(rgb, x, y).astype(np.float64) * wgt[..., None]
        wsum += wgt
    return acc, wsum


SEEN_WEIGHT = 1e-3
"""Summed facing weight under which a texel counts as not seen by the frames it is baked from."""


def bake_texture(rasterizer: Rasterizer, frames: list[np.ndarray], verts: list[np.ndarray],
                 size: int) -> np.ndarray:
    """Build the subject's UV texture from a few frames (see :func:`_project_into_uv`).

    Texels never seen are filled by inpainting; the mouth-interior disc is painted a fixed dark colour.

    Args:
        rasterizer: a :class:`~styleavatar.rendering.rasterize.Rasterizer`.
        frames: list of (S, S, 3) uint8 RGB crops.
        verts: list of (R, 3) crop-normalised render-mesh vertices, one per frame.
        size: texture side T.
    Returns:
        (T, T, 3) uint8 RGB texture.
    """
    topo = topology_of(len(verts[0]))
    acc, wsum = _project_into_uv(rasterizer, frames, verts, size)
    seen = wsum > SEEN_WEIGHT
    texture = np.where(seen[..., None], acc / np.maximum(wsum, 1e-8)[..., None], 0).astype(np.uint8)
    texture = cv2.inpaint(texture, (~seen).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    mouth = np.zeros((size, size), np.uint8)
    disc = topo.uvs[topo.mouth_ring] * size
    cv2.fillPoly(mouth, [np.round(disc * 16).astype(np.int32)], 1, shift=4)
    texture[mouth > 0] = MOUTH_COLOUR
    return texture


def bake_closed_eyes(rasterizer: Rasterizer, frames: list[np.ndarray], verts: list[np.ndarray],
                     texture: np.ndarray) -> np.ndarray:
    """The subject's texture with its eye regions (:func:`eye_masks`) as blink frames show them.

    A shut eye's opening has no area in the frame, so its texels are not seen: they are inpainted from the
    lids around them (lashes and lid skin), so that an eye half-way shut shows the lid's shadow over its
    opening rather than an iris squashed flat. Outside the eyes' masks the texture is ``texture``'s.

    Args:
        frames, verts: blink frames and their mesh vertices, as for :func:`bake_texture`.
        texture: (T, T, 3) uint8 RGB open-eyed texture.
    Returns:
        (T, T, 3) uint8 RGB.
    """
    acc, wsum = _project_into_uv(rasterizer, frames, verts, texture.shape[0])
    seen = wsum > SEEN_WEIGHT
    shut = np.where(seen[..., None], acc / np.maximum(wsum, 1e-8)[..., None] + 0.5, texture)
    shut = cv2.inpaint(np.clip(shut, 0, 255).astype(np.uint8), (~seen).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    inside = eye_masks(texture.shape[0]).max(0)[..., None] > 0
    return np.where(inside, shut, texture)


@functools.lru_cache(maxsize=4)
def eye_masks(size: int) -> np.ndarray:
    """(2, T, T) float32 in [0, 1]: each eye's region in UV space (right, left): an ellipse over the eye ring
    raised to take in the upper lid, which is what moves in a blink, with a feathered edge."""
    uvs = render_topology().uvs
    masks = []
    for ring in (RIGHT_EYE_RING, LEFT_EYE_RING):
        pts = uvs[list(ring)] * size
        (cx, cy), width = pts.mean(0), float(np.ptp(pts[:, 0]))
        mask = np.zeros((size, size), np.float32)
        # Axes in eye widths: 0.75 across and 0.55 up and down, centred 0.15 above the ring's centre.
        centre = (int(round(cx)), int(round(cy - 0.15 * width)))
        cv2.ellipse(mask, centre, (int(round(0.75 * width)), int(round(0.55 * width))), 0, 0, 360, 1.0, -1)
        masks.append(cv2.GaussianBlur(mask, (0, 0), 0.12 * width))
    return np.stack(masks)


def frame_texture(subject: SubjectModel, expression: np.ndarray) -> np.ndarray:
    """The subject's texture for one frame: each eye's region moves from the open texture to the closed one
    (:attr:`SubjectModel.closed_texture`) as that eye shuts, so a blink draws shut lids rather than a
    squashed eye.

    Args:
        subject: the face model (its texture alone when it has no closed texture).
        expression: (K,) the frame's expression coefficients.
    Returns:
        (T, T, 3) uint8 RGB.
    """
    closure = subject.eye_closure(np.asarray(expression)[None])[0]
    if subject.closed_texture is None or not closure.any():
        return subject.texture
    weight = np.tensordot(closure.astype(np.float32), eye_masks(subject.texture.shape[0]), 1)[..., None]
    blend = subject.texture * (1 - weight) + subject.closed_texture * weight
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """Square image -> (size, size, ...): area averaging when shrinking, bilinear when enlarging."""
    if img.shape[0] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def resize_uv(uv: np.ndarray, size: int) -> np.ndarray:
    """Resize a (H, W, 3) UV render (u, v, coverage) without pulling u, v towards 0 at the silhouette.

    u and v are resized premultiplied by coverage and divided back, so edge pixels keep true coordinates
    and coverage becomes fractional there.
    """
    if uv.shape[0] == size:
        return uv
    cov = uv[..., 2:3]
    pre = resize_image(np.concatenate([uv[..., :2] * cov, cov], axis=2).astype(np.float32), size)
    c = pre[..., 2:3]
    return np.concatenate([np.where(c > 1e-6, pre[..., :2] / np.maximum(c, 1e-6), 0), c], axis=2).astype(np.float32)
