"""Marked videos: the pixel mark after re-encoding, the metadata tag, the signed C2PA manifest."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from styleavatar.config import ProvenanceOptions
from styleavatar.errors import UserError
from styleavatar.io.provenance import LOCAL_SIGNER, Mark, local_credentials
from styleavatar.io.verify import verify
from styleavatar.io.video import VideoWriter, read_frames
from styleavatar.io.watermark import Payload

PAYLOAD = Payload.for_avatar("abcdef")


@pytest.fixture(scope="module")
def clip(astronaut_rgb):
    """75 frames (3 s) at 256^2 uint8 RGB like a talking head's: a still scene (the astronaut photo, softened
    like camera video), camera noise, and a region that moves (the face, shifted by a few pixels per frame)."""
    rng = np.random.default_rng(0)
    still = cv2.resize(cv2.GaussianBlur(astronaut_rgb, (0, 0), 1.5), (256, 256), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(75):
        f = still.copy()
        f[40:140, 90:190] = np.roll(still[40:140, 90:190], int(4 * np.sin(i / 5)), axis=(0, 1))
        frames.append(np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8))
    return frames


@pytest.fixture()
def signing_home(tmp_path, monkeypatch):
    """A fresh cache folder, so the local signing key is made for the test."""
    monkeypatch.setenv("STYLEAVATAR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _write(path, frames, mark=None, crf=18):
    with VideoWriter(path, 25, crf=crf, mark=mark) as writer:
        for f in frames:
            writer.write(f)
    return path


def test_marked_video_carries_all_three_marks(clip, tmp_path, signing_home):
    out = _write(tmp_path / "marked.mp4", clip[:50], Mark(PAYLOAD))
    assert (signing_home / "c2pa" / "signer-key.pem").exists()  # the local key, made on first use
    v = verify(out)
    assert v.synthetic and v.watermark.found and v.watermark.payload == PAYLOAD
    assert v.tag.startswith("AI-generated (synthetic) video made with styleavatar") and "avatar abcd" in v.tag
    assert v.c2pa.present and v.c2pa.synthetic and v.c2pa.state == "Valid"
    assert "signingCredential.untrusted" in v.c2pa.failures  # nobody trusts a local key
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob("*.c2pa"))
    decoded = [f.rgb for f in read_frames(out)]
    assert len(decoded) == 50


def test_tampering_breaks_the_manifest_not_the_mark(clip, tmp_path, signing_home):
    out = _write(tmp_path / "marked.mp4", clip[:50], Mark(PAYLOAD))
    data = bytearray(out.read_bytes())
    at = data.index(b"mdat") + 4000  # a byte of the coded frames
    data[at] ^= 0x55
    out.write_bytes(bytes(data))
    v = verify(out)
    assert v.c2pa.present and v.c2pa.state == "Invalid"


def test_user_certificate_and_no_c2pa(clip, tmp_path, signing_home):
    chain, key = local_credentials(tmp_path / "mine")  # stands in for a certificate the user owns
    out = _write(tmp_path / "own.mp4", clip[:30], Mark(PAYLOAD, ProvenanceOptions(sign_cert=chain, sign_key=key)))
    assert verify(out).c2pa.state == "Valid"
    plain = _write(tmp_path / "plain.mp4", clip[:30], Mark(PAYLOAD, ProvenanceOptions(c2pa=False)))
    v = verify(plain)
    assert not v.c2pa.present and v.tag and v.watermark.found
    with pytest.raises(UserError, match="--sign-key"):
        _write(tmp_path / "half.mp4", clip[:5], Mark(PAYLOAD, ProvenanceOptions(sign_cert=chain)))
    assert not (tmp_path / "half.mp4").exists()
    assert LOCAL_SIGNER in chain.read_text() or chain.read_text().startswith("-----BEGIN CERTIFICATE")


def test_mark_survives_downscale_crop_and_recompression(clip, tmp_path):
    marked = _write(tmp_path / "m.mp4", clip[:75], Mark(PAYLOAD, ProvenanceOptions(c2pa=False)))
    frames = [f.rgb for f in read_frames(marked)]
    small = [cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA) for f in frames]
    cropped = [f[26:-26, 20:-32] for f in frames]
    for attacked in (small, cropped):
        v = verify(_write(tmp_path / "attacked.mp4", attacked, crf=23))
        assert v.watermark.found and not v.tag and not v.c2pa.present  # re-encoding drops the metadata
        assert v.watermark.payload in (None, PAYLOAD)
    unmarked = _write(tmp_path / "u.mp4", clip[:75])
    assert not verify(unmarked).synthetic
