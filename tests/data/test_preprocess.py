"""End-to-end preprocess on the synthetic astronaut clip, whose true motion is known."""
from __future__ import annotations

import json

import numpy as np
import pytest

from styleavatar.config import PREPROCESS_PRESETS, PreprocessConfig
from styleavatar.data.dataset import Dataset
from styleavatar.data.preprocess import preprocess
from styleavatar.errors import UserError
from styleavatar.io.atomic import folder_lock, partial_path
from styleavatar.io.video import VideoWriter, probe
from styleavatar.tracking.face_model import MOUTH, openness
from styleavatar.tracking.fit import reprojection_error
from styleavatar.tracking.procrustes import rotation_error_degrees, rotation_from_euler

TINY = PreprocessConfig(size=128, render_size=64, texture_size=64, texture_frames=4, preview=False)


def test_tracking_matches_the_known_motion(astro_clip, astro_dataset):
    ds = Dataset.open(astro_dataset.output)
    # The canonical head frame and the photo's head differ by one constant rotation: removed.
    err = rotation_error_degrees(ds.params.rotation, rotation_from_euler(astro_clip.motion.euler_deg))
    assert np.median(err) < 2.0, f"rotation error median {np.median(err):.2f} deg"
    landmarks = ds.arrays["landmarks"].astype(np.float64)
    reproj = reprojection_error(ds.subject, ds.params, landmarks) * 256
    assert np.nanmedian(reproj) < 2.0 and np.nanmax(reproj) < 4.0
    box = ds.meta["crop_box"]
    true_2d = (astro_clip.landmarks[:, :468, :2] - [box["x0"], box["y0"]]) / box["side"]
    gt_err = np.linalg.norm(ds.params.points(ds.subject)[..., :2] - true_2d, axis=-1).mean(-1) * 256
    assert np.median(gt_err) < 2.0, f"landmark error against the truth {np.median(gt_err):.2f} px"
    # the fitted mouth opens and closes with the scripted jaw (signed: an inverted mouth fails)
    mouth = openness(ds.params.points(ds.subject), MOUTH)
    corr = np.corrcoef(mouth, astro_clip.motion.mouth)[0, 1]
    assert corr > 0.8, f"mouth openness correlation {corr:.2f}"


def test_dataset_layout(astro_dataset):
    root = astro_dataset.output
    meta = json.loads((root / "meta.json").read_text())
    n = meta["frame_count"]
    assert n == 100 and meta["tracked_fraction"] == 1.0
    assert meta["split"] == {"train": [0, 80], "test": [80, 100]}
    assert len(meta["source"]["sha256"]) == 64 and meta["fps"] == 25.0
    for sub, ext in (("frames", "jpg"), ("masks", "png"), ("renders", "png"), ("uv", "png")):
        assert len(list((root / sub).glob(f"*.{ext}"))) == n
    for name in ("params.safetensors", "face_model.safetensors", "face_model.json", "texture.png",
                 "config.json", "track.mp4"):
        assert (root / name).exists(), name
    assert probe(root / "track.mp4").width == 4 * 256
    ds = Dataset.open(root)
    assert ds.frame(5).shape == (256, 256, 3) and ds.render(5).shape == (256, 256, 3)
    uv, mask = ds.uv(5), ds.mask(5)
    assert uv.dtype == np.float32 and set(np.unique(uv[..., 2])) <= {0.0, 1.0}
    assert 0.05 < uv[..., 2].mean() < 0.6 and 0.1 < (mask > 0.5).mean() < 0.9
    # the person mask covers the rendered face
    assert mask[uv[..., 2] > 0].mean() > 0.9
    assert not partial_path(root).exists()


def test_refuses_existing_dataset_and_force_overwrites(astro_clip, tmp_path):
    out = tmp_path / "ds"
    cfg = PreprocessConfig(**{**TINY.__dict__, "max_frames": 12})
    preprocess(astro_clip.path, out, cfg, progress=False)
    with pytest.raises(UserError, match="already holds a complete dataset"):
        preprocess(astro_clip.path, out, cfg, progress=False)
    summary = preprocess(astro_clip.path, out, cfg, force=True, progress=False)
    assert summary.frames == 12 and Dataset.open(out).meta["frame_count"] == 12


def test_interrupted_run_resumes_from_its_tracking(astro_clip, tmp_path, monkeypatch):
    import styleavatar.data.preprocess as pre

    out = tmp_path / "ds"
    cfg = PreprocessConfig(**{**TINY.__dict__, "max_frames": 10})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pre, "_write_frames", crash)
    with pytest.raises(KeyboardInterrupt):
        preprocess(astro_clip.path, out, cfg, progress=False)
    assert not out.exists() and (partial_path(out) / "tracking.safetensors").exists()
    monkeypatch.undo()
    summary = preprocess(astro_clip.path, out, cfg, progress=False)
    assert summary.resumed and Dataset.open(out).meta["frame_count"] == 10


def _write(path, frames):
    with VideoWriter(path, 25) as w:
        for f in frames:
            w.write(f)


def test_bad_inputs_give_one_line_errors(tmp_path, astro_clip):
    from skimage import data
    import cv2

    photo = data.astronaut()
    cases = {}
    cases["missing"] = (tmp_path / "missing.mp4", "not found")
    text = tmp_path / "text.mp4"
    text.write_text("hello\n" * 1000)
    cases["text"] = (text, "not a video file")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(astro_clip.path.read_bytes()[: astro_clip.path.stat().st_size // 2])
    cases["truncated"] = (cut, "truncated")
    noface = tmp_path / "noface.mp4"
    _write(noface, [np.roll(data.coffee(), i, 1) for i in range(10)])
    cases["no face"] = (noface, "no face found")
    small = tmp_path / "small.mp4"
    tiny = cv2.resize(photo, (160, 160), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(10):
        canvas = np.full((720, 720, 3), 120, np.uint8)
        canvas[300 + i:460 + i, 280:440] = tiny
        frames.append(canvas)
    _write(small, frames)
    cases["small face"] = (small, "face too small")
    side = tmp_path / "side.mp4"
    _write(side, [np.ascontiguousarray(np.rot90(photo))] * 10)
    cases["sideways"] = (side, "sideways")
    for name, (video, message) in cases.items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        with pytest.raises(UserError, match=message) as info:
            preprocess(video, out, TINY, progress=False)
        assert "\n" not in str(info.value), name
        assert not out.exists() and not partial_path(out).exists(), name
    file_out = tmp_path / "file.txt"
    file_out.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        preprocess(astro_clip.path, file_out, TINY, progress=False)


def test_a_second_preprocess_of_one_dataset_stops_and_leaves_the_first_alone(astro_clip, tmp_path):
    out = tmp_path / "ds"
    with folder_lock(partial_path(out), "a preprocess"):  # the first run, still working
        (partial_path(out) / "tracking.json").write_text("{}")
        with pytest.raises(UserError, match="in use by a preprocess"):
            preprocess(astro_clip.path, out, PREPROCESS_PRESETS["tiny"], progress=False)
        assert (partial_path(out) / "tracking.json").exists() and not out.exists()


def _blinking_subject():
    """A face model whose one coefficient shuts the eyes: 1 moves each upper lid onto its lower lid."""
    from styleavatar.tracking.face_model import EYES, canonical_mesh
    from styleavatar.tracking.fit import SubjectModel

    neutral = canonical_mesh().vertices.copy()
    close = np.zeros((1, *neutral.shape))
    for (upper, lower), _ in EYES:
        close[0, upper] = neutral[lower] - neutral[upper]
    return SubjectModel(neutral, close, np.ones(1), np.zeros(1), np.ones(1))


def test_blink_frames_are_the_shut_training_frames_of_different_blinks():
    from styleavatar.data.preprocess import BLINK_GAP, _blink_frames
    from styleavatar.tracking.face_model import openness_per_eye

    shut = np.zeros((60, 1))
    shut[[10, 11, 12, 30, 55], 0] = [0.9, 1.0, 0.95, 0.97, 1.0]  # blinks at 10-12 and 30; 55 is held out
    shut[20, 0] = 0.6  # a squint is not a blink
    train = np.arange(50)
    picked = _blink_frames(openness_per_eye(_blinking_subject().shape(shut)), train)
    assert picked.tolist() == [11, 30] and BLINK_GAP > 1  # the most shut of each blink, training frames only
    assert _blink_frames(openness_per_eye(_blinking_subject().shape(np.zeros((60, 1)))), train).size == 0


def test_texture_frames_pass_over_blinks_and_glances():
    """A blink or a glance in a texture frame leaves a half-shut lid or a ghost iris in every render."""
    from styleavatar.data.preprocess import _texture_frames
    from styleavatar.tracking.fit import FrameParams

    subject = _blinking_subject()
    n, segments = 40, 4
    yaw = np.tile(np.linspace(2.0, 6.0, n // segments), segments)  # the first frame of each segment faces best
    expression, gaze = np.zeros((n, 1)), np.zeros((n, 4))
    best = np.arange(0, n, n // segments)
    expression[best[:2], 0] = 0.9  # ... but blinks in the first two segments
    gaze[best[2:], 0] = 0.3  # and glances aside in the other two
    euler = np.stack([yaw, np.zeros(n), np.zeros(n)], 1)
    params = FrameParams(np.ones(n, bool), np.full(n, 0.02), rotation_from_euler(euler), np.full((n, 3), 0.5),
                         expression, gaze)
    picked = _texture_frames(params, subject, segments)
    assert picked.tolist() == (best + 1).tolist()  # the next best frame of each segment, eyes open and ahead
    expression[:] = 0.0
    gaze[:] = 0.0
    assert _texture_frames(params, subject, segments).tolist() == best.tolist()


def test_the_forehead_band_is_rendered_and_older_face_models_keep_their_mesh(astro_dataset, tmp_path):
    """A dataset renders the forehead above the mesh's top edge; a face model saved before the band loads
    without it, so its textures and avatars keep the mesh they were made with."""
    import dataclasses

    from styleavatar.data.dataset import load_face_model, save_face_model
    from styleavatar.rendering.rasterize import make_rasterizer
    from styleavatar.rendering.render import render_frame
    from styleavatar.tracking.face_model import FOREHEAD_ARC, render_topology

    ds = Dataset.open(astro_dataset.output)
    assert ds.subject.forehead
    frame = ds.params.select(slice(5, 6))
    verts = frame.vertices(ds.subject)[0]
    assert len(verts) == len(render_topology().source)
    save_face_model(tmp_path, dataclasses.replace(ds.subject, forehead_reach=()))
    old = load_face_model(tmp_path)
    assert not old.forehead and np.array_equal(old.texture, ds.subject.texture)
    old_verts = frame.vertices(old)[0]
    assert len(old_verts) == len(render_topology(forehead=False).source)
    # the frame's UV render is the band's: it covers what the old mesh leaves between its top edge and the hair
    uv = ds.uv(5)
    rast, size = make_rasterizer("auto"), uv.shape[0]
    old_uv, _ = render_frame(rast, old_verts, old.texture, size)
    new_uv, _ = render_frame(rast, verts, ds.subject.texture, size)
    assert np.abs(new_uv[..., 2] - uv[..., 2]).mean() < 0.01
    band = (new_uv[..., 2] > 0) & (old_uv[..., 2] == 0)
    top = verts[list(FOREHEAD_ARC), 1].min() * size
    rows = np.nonzero(band)[0]
    assert band.sum() > 0.1 * (old_uv[..., 2] > 0).sum() and rows.max() < top + 0.2 * size
    assert ds.mask(5)[band].mean() > 0.9  # on the person (her forehead and hair), not the background


def test_the_forehead_band_is_fitted_to_the_person_and_older_bands_keep_their_reach(astro_dataset, tmp_path):
    """The band's reach is fitted to the person's outline, written to the face model and meta.json; a face
    model whose band was made before the fit loads with the band it was made with."""
    import dataclasses

    from safetensors.numpy import load_file, save_file

    from styleavatar.data.dataset import load_face_model, save_face_model
    from styleavatar.tracking.face_model import FOREHEAD_REACH_RANGE, default_forehead_reach, render_topology

    ds = Dataset.open(astro_dataset.output)
    reach = ds.subject.forehead_reach
    assert list(reach) == ds.meta["forehead_reach"] and reach != default_forehead_reach()
    assert all(FOREHEAD_REACH_RANGE[0] <= r <= FOREHEAD_REACH_RANGE[1] for r in reach)
    # the fitted band's upper edge stays on the person in the training frames
    rows = np.arange(0, ds.meta["split"]["train"][1], 5)
    size = ds.meta["size"]
    top = ds.params.select(rows).vertices(ds.subject)[:, render_topology().forehead, :2] * size
    xy = np.clip(np.round(top - 0.5).astype(int), 0, size - 1)
    masks = np.stack([ds.mask(int(i)) for i in rows])
    assert (masks[np.arange(len(rows))[:, None], xy[..., 1], xy[..., 0]] > 0.5).mean() > 0.9
    # older bands: no stored reach, the default one
    save_face_model(tmp_path, ds.subject)
    assert load_face_model(tmp_path).forehead_reach == reach
    tensors = load_file(str(tmp_path / "face_model.safetensors"))
    del tensors["forehead_reach"]
    save_file(tensors, str(tmp_path / "face_model.safetensors"))
    assert load_face_model(tmp_path).forehead_reach == default_forehead_reach()
    assert dataclasses.replace(ds.subject, forehead_reach=()).forehead is False
