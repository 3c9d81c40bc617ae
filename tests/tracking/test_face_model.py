import numpy as np

from styleavatar.tracking import face_model as fm


def test_canonical_mesh_contents():
    mesh = fm.canonical_mesh()
    assert mesh.vertices.shape == (468, 3) and mesh.triangles.shape == (898, 3)
    assert mesh.uvs.min() >= 0 and mesh.uvs.max() <= 1
    assert len(mesh.procrustes_ids) == 33 and np.isclose(fm.point_weights().sum(), 1)
    # image-frame convention: forehead (10) above chin (152) means smaller y; nose tip (1) nearest (min z)
    assert mesh.vertices[10, 1] < mesh.vertices[152, 1]
    assert mesh.vertices[1, 2] < np.median(mesh.vertices[:, 2]) - 2  # nose tip in front of the face


def test_rings_match_mesh_and_landmark_model():
    from styleavatar.tracking import landmarks as lm

    tri = fm.canonical_mesh().triangles
    mesh_edges = {frozenset(e) for t in tri for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}

    def ring_edges(ring):
        return {frozenset(e) for e in zip(ring, ring[1:] + ring[:1])}

    for ring in (fm.INNER_LIP_RING, fm.RIGHT_EYE_RING, fm.LEFT_EYE_RING):
        assert len(set(ring)) == len(ring) and ring_edges(ring) <= mesh_edges  # closed loops of mesh edges
    # the lid contours that the landmark model refines are exactly the eye rings (its "left eye" is
    # the subject's right), and the inner-lip ring is among its refined lip points
    assert set(lm.LEFT_EYE[:lm.EYE_CONTOUR]) == set(fm.RIGHT_EYE_RING)
    assert set(lm.RIGHT_EYE[:lm.EYE_CONTOUR]) == set(fm.LEFT_EYE_RING)
    assert set(fm.INNER_LIP_RING) <= set(lm.LIPS)


def _open_edges(triangles):
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), 1)
    _, count = np.unique(edges, axis=0, return_counts=True)
    assert count.max() == 2  # manifold
    return (count == 1).sum()


def test_render_topology_has_eye_and_mouth_patches():
    old = fm.render_topology(forehead=False)
    assert len(old.source) == 468 + 3 + len(fm.INNER_LIP_RING) and len(old.forehead) == 0
    # open edges: the face outline (36) and the lip ring, once on the lips and once on the mouth patch
    assert _open_edges(old.triangles) == 36 + 2 * len(fm.INNER_LIP_RING)
    topo = fm.render_topology()
    assert len(topo.source) == len(old.source) + len(fm.FOREHEAD_ARC)
    # the band replaces the arc's 12 outline edges by its top edge (12) and its two ends
    assert _open_edges(topo.triangles) == 36 + 2 + 2 * len(fm.INNER_LIP_RING)
    disc = topo.uvs[topo.mouth_ring]
    assert np.allclose(np.linalg.norm(disc - fm.MOUTH_UV_CENTRE, axis=1), fm.MOUTH_UV_RADIUS)
    assert fm.topology_of(len(topo.source)) is topo and fm.topology_of(len(old.source)) is old


def _uv_area(topo, triangles):
    u = topo.uvs[triangles]
    (ax, ay), (bx, by) = (u[:, 1] - u[:, 0]).T, (u[:, 2] - u[:, 0]).T
    return 0.5 * np.abs(ax * by - ay * bx)


def test_forehead_band_continues_the_face_upwards():
    topo = fm.render_topology()
    shape = fm.canonical_mesh().vertices
    verts = fm.render_vertices(shape[None], np.zeros((1, 4)))[0]
    band = verts[topo.forehead]
    arc = shape[list(fm.FOREHEAD_ARC)]
    assert (band[:, 1] < arc[:, 1]).all()  # above the mesh's top edge (y down)
    top = band[len(band) // 2, 1] - shape[10, 1]
    height = shape[152, 1] - shape[10, 1]  # forehead to chin, about 18 cm
    assert -0.3 * height < top < -0.15 * height  # past the hairline: about 4 cm above landmark 10
    # its triangles face the viewer (-z) as the face's do, so shading and the texture bake treat them alike
    # so do they for every reach a band can be fitted to (none folds back over the top of the head)
    band_tris = topo.triangles[len(fm.render_topology(forehead=False).triangles):]
    rng = np.random.default_rng(0)
    fitted = [(fm.FOREHEAD_REACH_RANGE[1],) * len(band)] + [tuple(rng.uniform(*fm.FOREHEAD_REACH_RANGE, len(band)))
                                                            for _ in range(200)]
    for v in [verts] + [fm.render_vertices(shape[None], np.zeros((1, 4)), r)[0] for r in fitted]:
        a, b, c = (v[band_tris[:, i]] for i in range(3))
        assert (np.cross(b - a, c - a)[:, 2] < 0).all()
    # in UV space inside [0, 1] and overlapping nothing: the layout's area adds up
    assert topo.uvs.min() >= 0 and topo.uvs.max() <= 1
    assert (topo.uvs[topo.forehead, 1] < topo.uvs[list(fm.FOREHEAD_ARC), 1]).all()
    whole = _uv_area(topo, topo.triangles).sum()
    assert np.isclose(whole, _uv_area(topo, topo.triangles[:len(topo.triangles) - len(band_tris)]).sum()
                      + _uv_area(topo, band_tris).sum())


def test_forehead_band_moves_and_scales_with_the_face():
    shape = fm.canonical_mesh().vertices
    topo = fm.render_topology()
    base = fm.render_vertices(shape[None], np.zeros((1, 4)))[0, topo.forehead]
    moved = fm.render_vertices(2.0 * shape[None] + [1.0, -3.0, 0.5], np.zeros((1, 4)))[0, topo.forehead]
    np.testing.assert_allclose(moved, 2.0 * base + [1.0, -3.0, 0.5], atol=1e-9)
    old = fm.render_vertices(shape[None], np.zeros((1, 4)), forehead_reach=())[0]
    np.testing.assert_array_equal(old, fm.render_vertices(shape[None], np.zeros((1, 4)))[0, :len(old)])


def test_eye_centre_follows_gaze():
    shape = fm.canonical_mesh().vertices[None]
    still = fm.render_vertices(shape, np.zeros((1, 4)))
    right = fm.render_vertices(shape, np.array([[0.2, 0.0, 0.2, 0.0]]))
    eyes = list(fm.render_topology().eye_centres)
    _, width = fm.eye_frames(shape)
    np.testing.assert_allclose(right[0, eyes, 0] - still[0, eyes, 0], 0.2 * width[0])
    moved = np.abs(right - still).sum(-1)[0] > 0
    assert set(np.flatnonzero(moved)) == set(eyes)
    mouth = fm.render_topology().mouth_centre
    assert still[0, mouth, 2] > shape[0, list(fm.INNER_LIP_RING), 2].mean()  # set back behind the lips
