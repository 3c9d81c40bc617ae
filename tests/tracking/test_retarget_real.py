"""Retargeting between two different real people: anchor_71s (the avatar's face model, fitted from its first
20 seconds) driven by hdtf_woman1_8s, a clip that starts mid-word and blinks. No network is involved: these
check the face model the renderer would draw."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from styleavatar.config import PreprocessConfig, TransferOptions
from styleavatar.inference.motion import DriverMotion
from styleavatar.io.video import read_frames
from styleavatar.live.driver import LiveDriver
from styleavatar.tracking.face_model import EYES, MOUTH, openness
from styleavatar.tracking.fit import FrameParams
from styleavatar.tracking.procrustes import rotation_angle_degrees
from styleavatar.tracking.retarget import AvatarRange, retarget
from styleavatar.tracking.video import track_video
from ..conftest import shared_video

AVATAR_FRAMES = 500


@pytest.fixture(scope="module")
def avatar():
    """(subject, AvatarRange) of anchor_71s from its first 500 frames, 80% of them as the training split."""
    cfg = dataclasses.replace(PreprocessConfig(), max_frames=AVATAR_FRAMES)
    _, _, _, _, subject, params = track_video(shared_video("train/anchor_71s.mp4"), cfg, progress=False)
    return subject, AvatarRange.of_training(subject, params, range(int(round(0.8 * len(params)))))


@pytest.fixture(scope="module")
def driver() -> DriverMotion:
    return DriverMotion.from_video(shared_video("drive/hdtf_woman1_8s.mp4"), progress=False)


def _avatar_openness(subject, out: FrameParams, parts) -> np.ndarray:
    return openness(subject.shape(out.expression), parts)


def test_the_avatars_lips_part_when_the_drivers_do(avatar, driver):
    subject, rng = avatar
    out = retarget(driver.shapes(), driver.params, driver.fps, subject, rng)
    theirs, ours = openness(driver.shapes(), MOUTH), _avatar_openness(subject, out, MOUTH)
    assert np.corrcoef(theirs, ours)[0, 1] > 0.85
    wide, shut = theirs > np.percentile(theirs, 85), theirs < np.percentile(theirs, 15)
    assert ours[wide].mean() > ours[shut].mean() + 0.1  # a clear gap, in units of mouth width


def test_the_avatar_blinks_when_the_driver_blinks(avatar, driver):
    subject, rng = avatar
    out = retarget(driver.shapes(), driver.params, driver.fps, subject, rng)
    theirs, ours = openness(driver.shapes(), EYES), _avatar_openness(subject, out, EYES)
    blink = theirs < 0.5 * np.median(theirs)
    assert blink.sum() >= 5  # the clip does blink
    assert np.corrcoef(theirs, ours)[0, 1] > 0.7
    assert ours[blink].mean() < 0.6 * np.median(ours)


def test_a_driver_that_starts_mid_word_still_closes_the_mouth(avatar, driver):
    subject, rng = avatar
    theirs = openness(driver.shapes(), MOUTH)
    assert theirs[0] > np.percentile(theirs, 90)  # the clip's first frame is mid-word
    shut, wide = theirs < np.percentile(theirs, 15), theirs > np.percentile(theirs, 85)
    auto = _avatar_openness(subject, retarget(driver.shapes(), driver.params, driver.fps, subject, rng), MOUTH)
    first = _avatar_openness(subject, retarget(driver.shapes(), driver.params, driver.fps, subject, rng,
                                               TransferOptions(neutral="first")), MOUTH)
    rest = openness(rng.rest.shape, MOUTH)
    assert abs(auto[shut].mean() - rest) < 0.04  # closed lips map to the avatar's closed lips
    assert auto[shut].min() > rng.mouth[0] - 0.1 * (rng.mouth[1] - rng.mouth[0]) - 1e-9  # never crossed
    # The first frame as rest would press the lips shut and keep them from opening when the driver's do.
    assert first[shut].mean() < auto[shut].mean() and first[wide].mean() < auto[wide].mean() - 0.1


def test_live_and_offline_retargeting_of_the_same_driver_agree(avatar, driver):
    subject, rng = avatar
    opts = TransferOptions(smooth=0)
    offline = retarget(driver.shapes(), driver.params, driver.fps, subject, rng, opts)
    live = LiveDriver(subject, rng, driver.fps, opts)
    try:
        frames = [live(f.rgb) for f in read_frames(shared_video("drive/hdtf_woman1_8s.mp4"))]
    finally:
        live.close()
    assert sum(f is None for f in frames) == 2  # the warm-up; a face in every other frame
    tail = slice(len(frames) - 100, len(frames))  # once the live rest has seen most of the clip
    on = FrameParams.concat([f for f in frames[tail]])
    off = offline.select(tail)
    mouth_on, mouth_off = _avatar_openness(subject, on, MOUTH), _avatar_openness(subject, off, MOUTH)
    assert np.corrcoef(mouth_on, mouth_off)[0, 1] > 0.95
    assert np.abs(mouth_on - mouth_off).mean() < 0.03
    eyes_on, eyes_off = _avatar_openness(subject, on, EYES), _avatar_openness(subject, off, EYES)
    assert np.abs(eyes_on - eyes_off).mean() < 0.04
    assert np.median(rotation_angle_degrees(on.rotation, off.rotation)) < 1.5
