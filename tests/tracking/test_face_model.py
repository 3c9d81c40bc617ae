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


def test_render_topology_has_eye_and_mouth_patches():
    topo = fm.render_topology()
    assert len(topo.source) == 468 + 3 + len(fm.INNER_LIP_RING)
    edges = np.sort(np.concatenate([topo.triangles[:, [0, 1]], topo.triangles[:, [1, 2]],
                                    topo.triangles[:, [2, 0]]]), 1)
    _, count = np.unique(edges, axis=0, return_counts=True)
    assert count.max() == 2  # manifold
    # open edges: the face outline (36) and the lip ring, once on the lips and once on the mouth patch
    assert (count == 1).sum() == 36 + 2 * len(fm.INNER_LIP_RING)
    disc = topo.uvs[topo.mouth_ring]
    assert np.allclose(np.linalg.norm(disc - fm.MOUTH_UV_CENTRE, axis=1), fm.MOUTH_UV_RADIUS)


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
