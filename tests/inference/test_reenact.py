"""reenact end to end on the synthetic astronaut, motion templates, paste-back seams and bad inputs."""
from __future__ import annotations

import av
import numpy as np

from styleavatar.cli import main
from styleavatar.inference import codec
from styleavatar.inference.motion import DriverMotion
from styleavatar.inference.reenact import feather_mask, paste_back, reenact
from styleavatar.io.verify import verify
from styleavatar.io.video import VideoWriter


def _frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_reenact_writes_the_drivers_length_and_side_by_side(tiny_run, drive_clip, tmp_path):
    out = tmp_path / "out.mp4"
    summary = reenact(tiny_run, drive_clip.path, out, progress=False)
    frames = _frames(out)
    assert summary.frames == len(frames) == 50 and frames[0].shape == (64, 64, 3)
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob("*.c2pa"))
    v = verify(out)  # marked as synthetic, with the avatar's id, and signed (64^2 is too small to find the pixel mark)
    prefix = codec.avatar_id(tiny_run)[:4]
    assert v.synthetic and f"avatar {prefix}" in v.tag and v.c2pa.present and v.c2pa.synthetic
    assert f"avatar {prefix}" in summary.describe()
    sbs = tmp_path / "sbs.mp4"
    assert main(["reenact", str(tiny_run), "--drive", str(drive_clip.path), "-o", str(sbs), "--side-by-side",
                 "--quiet", "--eyes", "x1.2", "--pose-offset", "5,0,0"]) == 0
    assert _frames(sbs)[0].shape == (64, 128, 3)


def test_reenact_follows_the_drivers_motion(tiny_run, drive_clip, tmp_path):
    moving = DriverMotion.from_video(drive_clip.path, progress=False)
    frozen = DriverMotion(moving.fps, moving.params.select(np.zeros(len(moving), int)), moving.neutral,
                          moving.basis, "frame 0 held")
    outs = {}
    for name, motion in (("moving", moving), ("frozen", frozen)):
        motion.save(tmp_path / f"{name}.npz")
        reenact(tiny_run, tmp_path / f"{name}.npz", tmp_path / f"{name}.mp4", progress=False)
        outs[name] = np.stack(_frames(tmp_path / f"{name}.mp4")).astype(int)
    still = np.abs(outs["frozen"] - outs["frozen"][:1]).mean(axis=(1, 2, 3))
    moved = np.abs(outs["moving"] - outs["moving"][:1]).mean(axis=(1, 2, 3))
    assert still.max() < 0.5, still  # no motion in, none out (video coding noise only)
    assert moved.max() > 1 and moved.mean() > 10 * still.mean(), (moved, still)


def test_motion_template_drives_like_the_video(tiny_run, drive_clip, tmp_path):
    npz = tmp_path / "motion.npz"
    assert main(["motion", str(drive_clip.path), "-o", str(npz), "--quiet"]) == 0
    with np.load(npz, allow_pickle=False) as z:
        assert "frames" not in z.files and z["expression"].shape[0] == 50
    direct = DriverMotion.from_video(drive_clip.path, progress=False)
    loaded = DriverMotion.load(npz)
    assert np.allclose(direct.params.rotation, loaded.params.rotation)
    assert np.allclose(direct.params.expression, loaded.params.expression)
    assert np.allclose(direct.shapes(), loaded.shapes())
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    reenact(tiny_run, drive_clip.path, a, progress=False)
    reenact(tiny_run, npz, b, progress=False)
    fa, fb = _frames(a), _frames(b)
    assert len(fa) == len(fb) and max(np.abs(x.astype(int) - y).max() for x, y in zip(fa, fb)) <= 1


def test_paste_back_leaves_no_seam():
    """A patch that differs from the frame by a brightness step blends in without a visible edge."""
    h = w = 200
    yy, xx = np.mgrid[:h, :w]
    frame = np.stack([xx * 0.6, yy * 0.6, (xx + yy) * 0.3], -1).astype(np.uint8)
    box = (50.0, 40.0, 100.0)
    patch = np.clip(frame[40:140, 50:150].astype(int) + 24, 0, 255).astype(np.uint8)
    out = paste_back(frame, patch, box).astype(int)
    assert np.abs(out[90, 100] - patch[50, 50]).max() <= 2  # centre is the avatar
    assert np.array_equal(out[:40], frame[:40])  # outside untouched
    # Across every border the step of 24 levels is spread over the feather: no jump between neighbouring
    # pixels exceeds 30% of it (plus the image's own gradient), where a hard paste jumps by all of it.
    own = np.abs(np.diff(frame.astype(int), axis=1)).max()
    limit = own + 0.3 * 24
    for line in (out[40:140, 48:53], out[40:140, 147:152]):
        assert np.abs(np.diff(line, axis=1)).max() <= limit
    for line in (out[38:43, 50:150], out[137:142, 50:150]):
        assert np.abs(np.diff(line, axis=0)).max() <= limit
    hard = frame.copy()
    hard[40:140, 50:150] = patch
    assert np.abs(np.diff(hard[40:140, 48:53].astype(int), axis=1)).max() >= 22
    m = feather_mask(10, 3)
    assert m[5, 5] == 1 and m[0, 5] < 0.5 and np.allclose(m, m.T)


def test_bad_inputs_are_clear_errors(tiny_run, tmp_path, capsys, drive_clip):
    noise = tmp_path / "noise.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(noise, 25) as wr:
        for _ in range(10):
            wr.write(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
    out = tmp_path / "o.mp4"
    assert main(["reenact", str(tiny_run), "--drive", str(noise), "-o", str(out), "--quiet"]) == 2
    assert "no face" in capsys.readouterr().err
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert main(["reenact", str(tiny_run), "--drive", str(text), "-o", str(out), "--quiet"]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["reenact", str(tmp_path), "--drive", str(drive_clip.path), "-o", str(out), "--quiet"]) == 2
    assert "not a styleavatar run folder" in capsys.readouterr().err
    assert main(["reenact", str(tiny_run), "--drive", str(tmp_path / "missing.mp4"), "-o", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
