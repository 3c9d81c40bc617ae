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


def _shutting_subject(texture, closed):
    """A face model whose one coefficient shuts both eyes (1: each upper lid on its lower lid), with the
    openness of its eyes open and shut recorded as preprocess records it."""
    from styleavatar.tracking.face_model import EYES, openness_per_eye
    from styleavatar.tracking.fit import SubjectModel

    neutral = canonical_mesh().vertices.copy()
    basis = np.zeros((1, *neutral.shape))
    for (upper, lower), _ in EYES:
        basis[0, upper] = neutral[lower] - neutral[upper]
    subject = SubjectModel(neutral, basis, np.ones(1), np.zeros(1), np.ones(1), texture)
    reference = openness_per_eye(subject.shape(np.array([[0.0], [1.0]]))).T  # (eye, open / shut)
    return SubjectModel(neutral, basis, np.ones(1), np.zeros(1), np.ones(1), texture, closed, reference)


def test_a_blink_moves_each_eye_region_to_the_closed_texture():
    from styleavatar.rendering.render import eye_masks, frame_texture
    from styleavatar.tracking.face_model import LEFT_EYE_RING, RIGHT_EYE_RING, render_topology

    size = 128
    opened, closed = np.full((size, size, 3), 100, np.uint8), np.full((size, size, 3), 200, np.uint8)
    subject = _shutting_subject(opened, closed)
    masks = eye_masks(size)
    uvs = render_topology().uvs
    for mask, ring in zip(masks, (RIGHT_EYE_RING, LEFT_EYE_RING)):  # each covers its own eye, not the other
        x, y = (uvs[list(ring)].mean(0) * size).astype(int)
        assert mask[y, x] > 0.99
    assert (masks.min(0) < 1e-3).all() and (masks.max(0) < 1e-3).mean() > 0.8
    assert frame_texture(subject, np.array([0.0])) is opened
    shut, half = frame_texture(subject, np.array([1.0])).astype(float), frame_texture(subject, np.array([0.5]))
    expected = 100 + 100 * masks.max(0)
    assert np.abs(shut[..., 0] - expected).max() <= 1
    assert np.abs(half[..., 0] - (100 + 50 * masks.max(0))).max() <= 1
    # without a closed texture nothing changes
    assert frame_texture(_shutting_subject(opened, None), np.array([1.0])) is opened


def test_closed_eyes_are_baked_from_the_lids_a_blink_shows():
    from styleavatar.rendering.render import bake_closed_eyes, eye_masks
    from styleavatar.tracking.face_model import render_topology

    rast, size = make_rasterizer("auto"), 128
    subject = _shutting_subject(np.full((size, size, 3), 100, np.uint8), None)
    shape = subject.shape(np.array([[1.0]]))[0]
    rv = render_vertices(shape[None], np.zeros((1, 4)))[0]
    verts = (rv - rv.mean(0)) / 40 + [0.5, 0.5, 1.0]
    _, frame = render_frame(rast, verts, np.full((size, size, 3), 230, np.uint8), 256)  # shut lids, lit
    closed = bake_closed_eyes(rast, [frame], [verts], subject.texture).astype(int)
    inside = eye_masks(size).max(0) > 0.5
    assert (closed[eye_masks(size).max(0) == 0] == 100).all()  # outside the eyes: the open texture
    assert np.median(closed[inside, 0]) > 150  # the lids: what the blink frame shows
    centre = (render_topology().uvs[list(render_topology().eye_centres)] * size).astype(int)
    assert (closed[centre[:, 1], centre[:, 0], 0] > 130).all()  # a shut eye's opening: filled from the lids
