import numpy as np

from styleavatar.rendering.rasterize import make_rasterizer
from styleavatar.rendering.render import bake_texture, render_frame, uv_mask
from styleavatar.tracking.face_model import canonical_mesh, render_vertices
from styleavatar.tracking.procrustes import rotation_from_euler


def _verts(yaw=0.0):
    shape = canonical_mesh().vertices
    rv = render_vertices(shape[None], np.zeros((1, 4)))[0]
    rv = (rv - rv.mean(0)) @ rotation_from_euler([[yaw, 0, 0]])[0].T
    return rv / 40 + [0.5, 0.5, 1.0]  # crop-normalised, face about 40% of the crop


def test_renders_have_the_documented_ranges():
    tex = np.full((64, 64, 3), 200, np.uint8)
    uv, textured = render_frame(make_rasterizer("auto"), _verts(), tex, 128)
    assert uv.shape == (128, 128, 3) and textured.shape == (128, 128, 3) and textured.dtype == np.uint8
    cov = uv[..., 2] > 0
    assert 0.1 < cov.mean() < 0.5
    assert uv[cov, :2].min() >= 0 and uv[cov, :2].max() <= 1
    assert (textured[~cov] == 0).all()
    # fixed lighting: shading varies over the face, never above the texture's value
    assert textured[cov].max() <= 201 and textured[cov, 0].std() > 5


def test_baking_recovers_a_known_texture():
    rast = make_rasterizer("auto")
    size = 128
    yy, xx = np.mgrid[0:size, 0:size]
    truth = np.stack([xx * 2, yy * 2, (xx + yy)], -1).clip(0, 255).astype(np.uint8)
    frames, verts = [], []
    for yaw in (-15, 0, 15):
        v = _verts(yaw)
        rgb = _unlit_render(rast, v, truth, 256)
        frames.append(rgb)
        verts.append(v)
    baked = bake_texture(rast, frames, verts, size)
    inside = uv_mask(size, rast)
    from styleavatar.tracking.face_model import MOUTH_UV_CENTRE, MOUTH_UV_RADIUS
    mouth = np.hypot(xx / size - MOUTH_UV_CENTRE[0], yy / size - MOUTH_UV_CENTRE[1]) < MOUTH_UV_RADIUS * 1.1
    inside &= ~mouth
    err = np.abs(baked[inside].astype(int) - truth[inside]).mean()
    assert err < 6, err


def _unlit_render(rast, verts, texture, size):
    """Render with the texture but without lighting (what a camera would see of a matte face)."""
    from styleavatar.tracking.face_model import render_topology
    import cv2

    topo = render_topology()
    out = rast(verts * size, topo.triangles, topo.uvs, size, size)
    t = texture.shape[0]
    rgb = cv2.remap(texture, out[..., 0] * t - 0.5, out[..., 1] * t - 0.5, cv2.INTER_LINEAR)
    return (rgb * (out[..., -1:] > 0)).astype(np.uint8)
