import numpy as np
import pytest

from styleavatar.tracking.crop import choose_crop, crop_frame


@pytest.mark.parametrize("width,height", [(512, 512), (720, 1280), (1920, 1080)])
def test_crop_is_square_inside_and_holds_the_face(width, height, rng):
    centre = np.array([width * 0.45, height * 0.4])
    size = min(width, height) * 0.25
    c = centre + rng.normal(0, size * 0.05, (100, 2))
    boxes = np.concatenate([c - size / 2, c + size / 2], 1)
    box = choose_crop(boxes, width, height, 2.2, 1.5)
    assert box.x0 >= 0 and box.y0 >= 0 and box.x0 + box.side <= width and box.y0 + box.side <= height
    assert box.side <= min(width, height)
    assert (boxes[:, :2] >= [box.x0, box.y0]).all() and (boxes[:, 2:] <= [box.x0 + box.side, box.y0 + box.side]).all()
    frame = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert crop_frame(frame, box, 256).shape == (256, 256, 3)
    norm = box.normalise(np.array([[box.x0, box.y0 + box.side, 0.0]]))
    np.testing.assert_allclose(norm, [[0, 1, 0]])


def test_small_face_gets_an_enlarged_portrait_region():
    boxes = np.array([[900.0, 400, 1000, 500]] * 10)
    box = choose_crop(boxes, 1920, 1080, 2.2, 1.5)
    assert box.side == pytest.approx(2.2 * 1.5 * 100, abs=1)
