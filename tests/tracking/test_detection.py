import numpy as np

from styleavatar.tracking.detection import FaceDetector, anchors, weighted_nms


def test_anchors_follow_the_ssd_grid():
    a = anchors()
    assert a.shape == (896, 2)
    assert np.allclose(a[:2], [1 / 32, 1 / 32])  # two anchors per cell of the 16x16 (stride 8) grid
    assert np.allclose(a[2], [3 / 32, 1 / 32])
    assert np.allclose(a[512:518], [1 / 16, 1 / 16])  # then six per cell of the 8x8 grid
    assert np.allclose(a[-1], [15 / 16, 15 / 16])


def test_weighted_nms_merges_overlaps_and_keeps_the_rest():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    points[1] += 3
    merged = weighted_nms(boxes, points, np.array([0.9, 0.3, 0.8]))
    assert len(merged) == 2
    box, pts, score = merged[0]
    assert score == 0.9 and np.allclose(box, [0.25, 0, 10.25, 10]) and np.allclose(pts, 0.75)
    assert np.allclose(merged[1][0], boxes[2])


def test_detector_finds_the_astronaut_face_with_eyes_inside(astronaut_rgb):
    faces = FaceDetector()(astronaut_rgb)
    assert len(faces) == 1 and faces[0].score > 0.8
    x0, y0, x1, y1 = faces[0].box
    assert 150 < x0 < x1 < 330 and 40 < y0 < y1 < 250  # the face, not the suit or the flag
    eyes = faces[0].keypoints[:2]
    assert np.all((eyes[:, 0] > x0) & (eyes[:, 0] < x1) & (eyes[:, 1] > y0) & (eyes[:, 1] < (y0 + y1) / 2))
    # the image's right-hand eye (the subject's left) comes second
    assert eyes[0, 0] < eyes[1, 0]


def test_letterbox_maps_back_to_source_pixels(astronaut_rgb):
    # the same face in a wide canvas: the box moves with the paste offset, in source pixels
    wide = np.zeros((512, 640, 3), np.uint8)
    wide[:, 100:612] = astronaut_rgb
    a, b = FaceDetector()(astronaut_rgb)[0], FaceDetector()(wide)[0]
    assert np.allclose(b.box, a.box + [100, 0, 100, 0], atol=6)
