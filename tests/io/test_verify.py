"""`styleavatar verify`: its verdicts and exit codes on marked and unmarked videos, images and bad files."""
from __future__ import annotations

import cv2
import numpy as np

from styleavatar.cli import main
from styleavatar.config import ProvenanceOptions
from styleavatar.io.provenance import Mark
from styleavatar.io.video import VideoWriter, read_frames
from styleavatar.io.watermark import Payload

PAYLOAD = Payload.for_avatar("abcdef")


def _write(path, frames, mark=None):
    with VideoWriter(path, 25, mark=mark) as writer:
        for f in frames:
            writer.write(f)
    return path


def test_verify_exit_codes(tmp_path, capsys, astronaut_rgb):
    clip = [cv2.resize(np.roll(astronaut_rgb, 3 * i, axis=1), (256, 256), interpolation=cv2.INTER_AREA)
            for i in range(40)]  # a panning view of the photo
    marked = _write(tmp_path / "m.mp4", clip, Mark(PAYLOAD, ProvenanceOptions(c2pa=False)))
    assert main(["verify", str(marked)]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    png = tmp_path / "photo.png"
    cv2.imwrite(str(png), astronaut_rgb[..., ::-1])
    assert main(["verify", str(png), "--json"]) == 1
    assert '"synthetic": false' in capsys.readouterr().out
    shot = tmp_path / "shot.png"
    cv2.imwrite(str(shot), np.ascontiguousarray(next(read_frames(marked)).rgb[..., ::-1]))
    assert main(["verify", str(shot)]) == 0
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert main(["verify", str(text)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert main(["verify", str(tmp_path / "missing.png")]) == 2
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG broken")
    assert main(["verify", str(bad_png)]) == 2
