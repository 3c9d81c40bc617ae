import math

import cv2
import numpy as np

from styleavatar.tracking.roi import Rect, crop, project, rect_around


def test_project_maps_the_crop_corners_onto_the_rect_corners():
    rect = Rect(100.0, 80.0, 60.0, 40.0, 0.4)
    unit = np.array([[0, 1], [0, 0], [1, 0], [1, 1]], np.float64)  # boxPoints order
    assert np.allclose(project(unit, rect), rect.corners(), atol=1e-3)


def test_rect_around_turns_the_keypoint_line_horizontal():
    # a thick line from (100, 100) down-right at 30 degrees; cropped, it must run along the x axis
    img = np.zeros((300, 300, 3), np.uint8)
    a = math.radians(30)
    start, end = np.array([100.0, 100.0]), np.array([100 + 80 * math.cos(a), 100 + 80 * math.sin(a)])
    cv2.line(img, tuple(int(v) for v in start), tuple(int(v) for v in end), (255, 255, 255), 5)
    rect = rect_around(np.array([90, 90, 180, 150]), start, end)
    assert math.isclose(rect.rotation, a, abs_tol=1e-9) and math.isclose(rect.w, 90 * 1.5)
    out = crop(img, Rect(*(start + end) / 2, 100, 100, rect.rotation), 100, 100)[..., 0]
    rows = np.flatnonzero(out.max(1) > 128)
    assert rows.max() - rows.min() <= 8  # one thin horizontal band


def test_project_scales_depth_like_x():
    rect = Rect(50.0, 50.0, 200.0, 200.0)
    assert np.isclose(project(np.array([[0.5, 0.5, 0.1]]), rect)[0, 2], 20.0)
