"""The face model: MediaPipe's canonical face mesh turned into a renderable, fittable head model.

Conventions used throughout the project ("image frame"): x to the right, y down, z away from the
viewer (larger z = farther), all in the same unit. The canonical mesh (centimetres, y up, z towards the
viewer) is converted once by flipping y and z, so that an image-frame point is ``s * R @ p + t`` with a
proper rotation R.

Model points are the 468 face-mesh landmarks (the canonical mesh vertices, same order). The render
mesh adds what the paper's FaceVerse model gets from separate eyeballs and what its mouth lacks:

- the triangles bridging each eye are replaced by a fan around an *eye centre* vertex that is placed at
  the iris, so the texture's pupil follows the gaze;
- the triangles bridging the lips are replaced by a *mouth-interior* patch: copies of the inner-lip ring
  with their own UV region (a disc in a free corner of UV space) and a centre vertex set back behind the
  lips, so the network has a place for teeth and tongue;
- a *forehead band* carries the mesh on past its top edge (which lies mid-forehead) over the hairline into
  the hair, so that the upper forehead and the hair are in the texture render and move with the head rather
  than being left to the network at the place they held in the training frames. How far it reaches at each
  point is fitted to the person's head outline (:func:`~styleavatar.tracking.fit.fit_forehead_reach`). Face
  models made before the band keep the render mesh without it (``render_topology(forehead=False)``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

# Closed vertex loops of the face mesh (MediaPipe topology), in order around the loop.
RIGHT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE_RING = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
INNER_LIP_RING = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
EYE_CORNERS = ((33, 133), (263, 362))
"""Outer and inner corner of the right and left eye (subject's right/left)."""
EYES = (((159, 145), (33, 133)), ((386, 374), (263, 362)))
"""Openness parts of the eyes: per eye (upper lid, lower lid) and (corner, corner); openness = gap / width."""
MOUTH = (((13, 14), (78, 308)),)
"""Openness part of the mouth: inner lips (upper, lower) and mouth corners."""
BROWS = ((46, 53, 52, 65, 55, 70, 63, 105, 66, 107), (276, 283, 282, 295, 285, 300, 293, 334, 296, 336))
"""Right and left eyebrow points (lower and upper edge)."""
OUTER_LIP_RING = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
IRIS_CENTRES = (468, 473)
"""Landmarks at the centre of the two irises (468-477 exist only with refined landmarks)."""
NUM_POINTS = 468
NUM_LANDMARKS = 478

MOUTH_UV_CENTRE = (0.12, 0.90)
"""Centre of the mouth-interior disc in UV space (a corner the face layout leaves empty)."""
MOUTH_UV_RADIUS = 0.08
MOUTH_DEPTH = 1.2
"""How far (centimetres, head frame) the mouth-interior centre sits behind the inner-lip ring."""
FOREHEAD_ARC = (162, 21, 54, 103, 67, 109, 10, 338, 297, 332, 284, 251, 389)
"""The face outline's upper arc, from the right temple over the forehead to the left temple, in order."""
FOREHEAD_REACH = 2.5
"""How far the forehead band of face models made before its reach was fitted per subject reaches past the arc at
the middle of the forehead, in steps of the mesh there (each arc point's distance from its neighbours inside the
mesh; about 1.6 cm on an adult): past the hairline into the hair (1.0 stops at the hairline on anchor_71s; 1.5
left the network's seam along the hairline: BENCHMARKS.md, "the forehead band"). It tapers to
``FOREHEAD_TEMPLE_REACH`` at the temples, which are near the head's outline."""
FOREHEAD_TEMPLE_REACH = 1.5
"""The reach of that default band at the two temples, in the same steps."""
FOREHEAD_REACH_RANGE = (0.5, 4.0)
"""Smallest and largest reach a subject's band is fitted to (:func:`~styleavatar.tracking.fit.fit_forehead_reach`);
from 4.5 steps the band's triangles over the middle of the forehead can fold back over the top of the head."""
FOREHEAD_UV_SQUEEZE = 0.45
"""The band's extent in UV space as a fraction of the default band's extent on the face (UV space has about 0.1
free above the arc, less than the band's full length). It is the same for every subject, so a longer band is
stretched over the same texels."""


@dataclass(frozen=True)
class CanonicalMesh:
    """MediaPipe's canonical face mesh in the image-frame convention."""

    vertices: np.ndarray
    """(468, 3) float64, centimetres, x right, y down, z away from the viewer."""
    uvs: np.ndarray
    """(468, 2) float64 in [0, 1], v = 0 at the top of the texture."""
    triangles: np.ndarray
    """(898, 3) int64 vertex indices."""
    procrustes_ids: np.ndarray
    """(33,) int64 landmark ids of the rigid points used for Procrustes alignment."""
    procrustes_weights: np.ndarray
    """(33,) float64 weights of those points."""


@functools.lru_cache(maxsize=1)
def canonical_mesh() -> CanonicalMesh:
    """Load the canonical mesh shipped in ``tracking/assets`` (see scripts/extract_canonical_mesh.py)."""
    raw = json.loads(resources.files(__package__).joinpath("assets/canonical_face_mesh.json").read_text())
    verts = np.asarray(raw["vertices"], np.float64) * np.array([1.0, -1.0, -1.0])
    weights = np.asarray(raw["procrustes_weights"], np.float64)
    return CanonicalMesh(verts, np.asarray(raw["uvs"], np.float64), np.asarray(raw["triangles"], np.int64),
                         weights[:, 0].astype(np.int64), weights[:, 1])


def point_weights() -> np.ndarray:
    """(468,) Procrustes weight per model point (0 for non-rigid points), summing to 1."""
    mesh = canonical_mesh()
    w = np.zeros(NUM_POINTS)
    w[mesh.procrustes_ids] = mesh.procrustes_weights
    return w / w.sum()


@dataclass(frozen=True)
class RenderTopology:
    """The render mesh: model points plus the eye and mouth patches and (by default) the forehead band.

    Render vertex i takes its position from model point ``source[i]`` when ``source[i] >= 0``; the
    derived vertices (two eye centres, one mouth centre, the band's upper edge) are placed by
    :func:`render_vertices`.
    """

    source: np.ndarray
    """(R,) int64 model point index of each render vertex, -1 for derived vertices."""
    uvs: np.ndarray
    """(R, 2) float64 UV coordinates of the render vertices."""
    triangles: np.ndarray
    """(F, 3) int64 render vertex indices."""
    eye_centres: tuple[int, int]
    """Render vertex indices of the right and left eye centres."""
    mouth_centre: int
    """Render vertex index of the mouth-interior centre."""
    mouth_ring: np.ndarray
    """(20,) render vertex indices of the inner-lip copies bordering the mouth interior."""
    forehead: np.ndarray
    """(B,) render vertex indices of the forehead band's upper edge (empty without the band)."""


def _without_ring_triangles(triangles: np.ndarray, ring: tuple[int, ...]) -> np.ndarray:
    """Drop the triangles whose three vertices all lie on ``ring`` (those bridging the opening)."""
    inside = np.isin(triangles, ring).all(axis=1)
    return triangles[~inside]


def _fan(centre: int, ring: list[int] | np.ndarray) -> np.ndarray:
    """Triangles joining consecutive ring vertices to a centre vertex."""
    ring = np.asarray(ring)
    return np.stack([np.full(len(ring), centre), ring, np.roll(ring, -1)], axis=1)


def mesh_outline(triangles: np.ndarray) -> set[int]:
    """Vertices on the boundary of a triangle mesh (on an edge that only one triangle uses)."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), 1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    return set(uniq[count == 1].ravel().tolist())


def default_forehead_reach() -> tuple[float, ...]:
    """The band's reach at each arc point (temple to temple, in steps of the mesh) for face models that were
    not fitted: ``FOREHEAD_REACH`` at the middle of the forehead, ``FOREHEAD_TEMPLE_REACH`` at the temples."""
    rise = np.sin(np.pi * np.arange(len(FOREHEAD_ARC)) / (len(FOREHEAD_ARC) - 1))
    return tuple(float(r) for r in FOREHEAD_TEMPLE_REACH + (FOREHEAD_REACH - FOREHEAD_TEMPLE_REACH) * rise)


@functools.lru_cache(maxsize=8)
def forehead_band(reach: tuple[float, ...]) -> np.ndarray:
    """(B, 468) weights placing each forehead-band vertex: arc point i carried on outwards by ``reach[i]`` times
    the step from the mean of its neighbours inside the mesh, so the band continues the surface's own slope and
    scales with the face. Row i: (1 + r) at arc point i, -r spread over its inner neighbours. Read-only."""
    tris = canonical_mesh().triangles
    edge = mesh_outline(tris)
    weights = np.zeros((len(FOREHEAD_ARC), NUM_POINTS))
    for row, (point, r) in enumerate(zip(FOREHEAD_ARC, reach, strict=True)):
        inner = sorted(set(tris[(tris == point).any(1)].ravel().tolist()) - edge)
        weights[row, point] = 1 + r
        weights[row, inner] = -r / len(inner)
    weights.setflags(write=False)
    return weights


def _band_triangles(arc: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Triangles of the strip between consecutive arc points and their band vertices, wound as the canonical
    mesh is (its triangle on the inner side of each arc edge runs the edge the other way)."""
    i = np.arange(len(arc) - 1)
    return np.concatenate([np.stack([arc[i], arc[i + 1], band[i + 1]], 1),
                           np.stack([arc[i], band[i + 1], band[i]], 1)])


def render_topology(forehead: bool = True) -> RenderTopology:
    """The render mesh (built once): canonical triangles with eye fans, a mouth-interior patch and, unless
    ``forehead`` is False (face models made before it), the forehead band."""
    return _build_topology(bool(forehead))


@functools.lru_cache(maxsize=2)
def _build_topology(forehead: bool) -> RenderTopology:
    mesh = canonical_mesh()
    tris = mesh.triangles
    for ring in (RIGHT_EYE_RING, LEFT_EYE_RING, INNER_LIP_RING):
        tris = _without_ring_triangles(tris, ring)
    n = NUM_POINTS
    eye_r, eye_l, mouth_c = n, n + 1, n + 2
    mouth_ring = np.arange(n + 3, n + 3 + len(INNER_LIP_RING))
    source = np.concatenate([np.arange(n), [-1, -1, -1], INNER_LIP_RING])
    # Mouth disc: the inner-lip copies are spread evenly around a circle in loop order, starting at the
    # image-left mouth corner (angle pi) and running through the lower lip (v grows downwards).
    angle = np.pi - 2 * np.pi * np.arange(len(INNER_LIP_RING)) / len(INNER_LIP_RING)
    disc = np.asarray(MOUTH_UV_CENTRE) + MOUTH_UV_RADIUS * np.stack([np.cos(angle), np.sin(angle)], 1)
    uvs = np.concatenate([mesh.uvs,
                          mesh.uvs[list(RIGHT_EYE_RING)].mean(0, keepdims=True),
                          mesh.uvs[list(LEFT_EYE_RING)].mean(0, keepdims=True),
                          np.asarray([MOUTH_UV_CENTRE]), disc])
    tris = np.concatenate([tris, _fan(eye_r, RIGHT_EYE_RING), _fan(eye_l, LEFT_EYE_RING),
                           _fan(mouth_c, mouth_ring)])
    band = np.zeros(0, np.int64)
    if forehead:
        band = np.arange(len(source), len(source) + len(FOREHEAD_ARC))
        source = np.concatenate([source, np.full(len(band), -1)])
        # The same construction in UV space, shortened to fit above the arc (see FOREHEAD_UV_SQUEEZE).
        band_uvs = forehead_band(tuple(FOREHEAD_UV_SQUEEZE * r for r in default_forehead_reach())) @ mesh.uvs
        uvs = np.concatenate([uvs, band_uvs])
        tris = np.concatenate([tris, _band_triangles(np.asarray(FOREHEAD_ARC), band)])
    return RenderTopology(source, uvs, tris, (eye_r, eye_l), mouth_c, mouth_ring, band)


def topology_of(vertex_count: int) -> RenderTopology:
    """The render mesh with ``vertex_count`` vertices (with or without the forehead band)."""
    for forehead in (True, False):
        if len(render_topology(forehead).source) == vertex_count:
            return render_topology(forehead)
    raise ValueError(f"no render mesh has {vertex_count} vertices")


def eye_frames(shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (midpoint of the corners) and width of each eye.

    Args:
        shape: (..., 468, 3) points in any frame.
    Returns:
        centres (..., 2, 3) and widths (..., 2), in the units of ``shape``.
    """
    a = shape[..., [c[0] for c in EYE_CORNERS], :]
    b = shape[..., [c[1] for c in EYE_CORNERS], :]
    return (a + b) / 2, np.linalg.norm(a - b, axis=-1)


def render_vertices(shape: np.ndarray, gaze: np.ndarray, forehead_reach: tuple[float, ...] | None = None
                    ) -> np.ndarray:
    """Positions of all render vertices from model points and gaze, in the head frame.

    Args:
        shape: (..., 468, 3) model points in the head frame (canonical units, image-frame axes).
        gaze: (..., 4) iris offsets (dx_right, dy_right, dx_left, dy_left) from each eye's centre, in
            units of that eye's width (x right, y down).
        forehead_reach: the forehead band's reach at each arc point (:func:`forehead_band`); None: the
            default (:func:`default_forehead_reach`); empty: no band (face models made before it).
    Returns:
        (..., R, 3) render vertex positions.
    """
    reach = default_forehead_reach() if forehead_reach is None else tuple(forehead_reach)
    topo = render_topology(bool(reach))
    out = shape[..., np.where(topo.source >= 0, topo.source, 0), :].copy()
    centres, widths = eye_frames(shape)
    offsets = gaze.reshape(*gaze.shape[:-1], 2, 2) * widths[..., None]
    eyes = centres.copy()
    eyes[..., :2] += offsets
    out[..., topo.eye_centres, :] = eyes
    ring = shape[..., list(INNER_LIP_RING), :].mean(-2)
    ring[..., 2] += MOUTH_DEPTH  # +z is away from the viewer: set the mouth interior back
    out[..., topo.mouth_centre, :] = ring
    if reach:
        out[..., topo.forehead, :] = np.einsum("bp,...pc->...bc", forehead_band(reach), shape)
    return out


def _down_normal(points: np.ndarray, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit normal (..., 2) of the line from corner c0 to corner c1, pointing down the image, and the width."""
    u = points[..., c1, :2] - points[..., c0, :2]
    width = np.maximum(np.linalg.norm(u, axis=-1), 1e-9)
    n = np.stack([-u[..., 1], u[..., 0]], -1) / width[..., None]
    return n * np.where(n[..., 1:] < 0, -1.0, 1.0), width


def openness(points: np.ndarray, parts) -> np.ndarray:
    """Signed openness of ``EYES`` or ``MOUTH``: the lower point's distance below the upper one, measured
    across the corner-to-corner line and divided by the corner distance, averaged over the parts.

    Positive when open, about 0 when closed, negative when the lips cross. Being a ratio it compares across
    people, and measured across the corner line it does not change with head roll.

    Args:
        points: (..., >=468, >=2) landmarks or model points, y down (image frame or head frame).
    Returns:
        (...) openness ratio.
    """
    vals = []
    for (upper, lower), (c0, c1) in parts:
        normal, width = _down_normal(points, c0, c1)
        gap = points[..., lower, :2] - points[..., upper, :2]
        vals.append((gap * normal).sum(-1) / width)
    return np.mean(vals, axis=0)


def openness_per_eye(points: np.ndarray) -> np.ndarray:
    """(..., >=468, >=2) landmarks or model points -> (..., 2) openness of the right and left eye apart
    (see :func:`openness`; ``openness(points, EYES)`` is their mean)."""
    return np.stack([openness(points, (part,)) for part in EYES], -1)


def brow_raise(points: np.ndarray) -> np.ndarray:
    """Height of the eyebrows above the eye corners' line, in eye widths, averaged over both sides.

    Args:
        points: (..., >=468, >=2) landmarks or model points, y down.
    Returns:
        (...) brow height (larger = raised).
    """
    vals = []
    for brow, (c0, c1) in zip(BROWS, EYE_CORNERS):
        normal, width = _down_normal(points, c0, c1)
        centre = (points[..., c0, :2] + points[..., c1, :2]) / 2
        above = ((centre[..., None, :] - points[..., list(brow), :2]) * normal[..., None, :]).sum(-1)
        vals.append(above.mean(-1) / width)
    return np.mean(vals, axis=0)
