"""Reference face landmarks and person masks from MediaPipe 0.10.21 itself, for tests/tracking.

The project runs MediaPipe's model files with its own code (styleavatar.tracking); this script records
what the original package computes on the same frames, so a test can check that the two agree. Run it
once, in a separate environment that has the old package (it exists for Python <= 3.12 only):

    python3.12 -m venv /tmp/mp && /tmp/mp/bin/pip install --no-deps mediapipe==0.10.21 && \
    /tmp/mp/bin/pip install "numpy<2" "protobuf<5" absl-py attrs flatbuffers matplotlib \
        opencv-python-headless av scikit-image
    /tmp/mp/bin/python scripts/face_reference.py --data ../shared/data -o tests/tracking/data/mediapipe_reference.json

It needs nothing of this project. Videos are decoded with PyAV as the project decodes them.

Nothing that shows a real person's face goes into the repository: for the real clips the file keeps,
per frame, the face box and 16 random +-1 projections of the landmarks' x, y (and 16 of the 128x128
person mask). A test can estimate from them the root-mean-square difference of its own landmarks
(E[(r . e)^2] = |e|^2 for a random +-1 vector r), without the landmarks being recoverable. The public-
domain astronaut photo keeps its full landmarks (pixels, x, y and z scaled like x, at 1/64 px).
"""
from __future__ import annotations

import argparse
import base64
import json
import zlib
from pathlib import Path

import av
import cv2
import numpy as np

CLIPS = ("train/anchor_71s.mp4", "drive/hdtf_woman1_8s.mp4", "drive/phone_portrait_720x1280_12s.mp4",
         "drive/mead_happy_1080p_3s.mp4")
FRAMES = 30  # consecutive frames per clip, from the first: tracking carries state from frame to frame
MASK_FRAMES = (0, 29)
MASK_SIZE = 128
LANDMARK_SCALE = 64  # stored as integers of 1/64 px
PROJECTIONS = 16


def signs(rows: int, cols: int) -> np.ndarray:
    """(rows, cols) pseudo-random +-1 matrix from integer hashing: the same on every machine and numpy."""
    k = np.arange(rows * cols, dtype=np.uint64).reshape(rows, cols)
    h = (k * np.uint64(2654435761) + np.uint64(12345)) % np.uint64(2 ** 32)
    return np.where((h >> np.uint64(16)) & np.uint64(1), 1.0, -1.0)


def pack(array: np.ndarray, dtype: str) -> dict:
    return {"shape": list(array.shape), "dtype": dtype,
            "zlib_b64": base64.b64encode(zlib.compress(array.astype(dtype).tobytes(), 9)).decode()}


def frames(path: Path, count: int):
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(container.streams.video[0])):
            if i >= count:
                return
            yield frame.to_ndarray(format="rgb24")


def faces(result, w: int, h: int) -> list[np.ndarray]:
    return [np.array([(p.x * w, p.y * h, p.z * w) for p in f.landmark]) for f in result.multi_face_landmarks or []]


def clip_reference(path: Path) -> dict:
    import mediapipe as mp  # only here: the tests import this module for frames() and signs()

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=2, refine_landmarks=True,
                                           min_detection_confidence=0.5, min_tracking_confidence=0.5)
    seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    landmarks, means, masks = [], [], {}
    r_pts, r_mask = signs(PROJECTIONS, 478 * 2), signs(PROJECTIONS, MASK_SIZE * MASK_SIZE)
    for i, rgb in enumerate(frames(path, FRAMES)):
        h, w = rgb.shape[:2]
        found = faces(mesh.process(rgb), w, h)
        # the largest face (the clip's subject); NaN when none was found
        pts = max(found, key=lambda f: np.ptp(f[:, 0]) * np.ptp(f[:, 1])) if found else np.full((478, 3), np.nan)
        landmarks.append(pts)
        means.append(float(rgb.mean()))
        if i in MASK_FRAMES:
            mask = np.clip(seg.process(rgb).segmentation_mask, 0, 1)
            small = cv2.resize(mask, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_AREA)
            masks[str(i)] = {"mean": float(small.mean()), "projections": (r_mask @ small.ravel()).tolist()}
    mesh.close()
    seg.close()
    xy = np.array(landmarks)[:, :, :2]
    found = ~np.isnan(xy[:, 0, 0])
    boxes = [np.concatenate([f.min(0), f.max(0)]).tolist() if ok else None for f, ok in zip(xy, found)]
    proj = [(r_pts @ f.ravel()).tolist() if ok else None for f, ok in zip(xy, found)]
    return {"frames": len(landmarks), "frame_means": means, "boxes": boxes, "projections": proj, "masks": masks}


def photo_reference() -> dict:
    """The scikit-image astronaut photo, in static mode, as it is and turned by 20 degrees."""
    import mediapipe as mp
    from skimage import data

    rgb = np.ascontiguousarray(data.astronaut())
    out = {}
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        for angle in (0, 20):
            m = cv2.getRotationMatrix2D((256, 256), angle, 1.0)
            img = cv2.warpAffine(rgb, m, (512, 512), flags=cv2.INTER_LINEAR) if angle else rgb
            pts = faces(mesh.process(img), 512, 512)[0]
            out[str(angle)] = pack(np.round(pts * LANDMARK_SCALE)[None], "int32")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (with train/ and drive/)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    import mediapipe as mp

    ref = {"mediapipe": mp.__version__, "landmark_scale": LANDMARK_SCALE, "mask_size": MASK_SIZE,
           "projections": PROJECTIONS,
           "clips": {clip: clip_reference(args.data / clip) for clip in CLIPS}, "astronaut": photo_reference()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(ref, separators=(",", ":")))
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
