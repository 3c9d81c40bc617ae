"""``styleavatar verify``: what a video or image says about its origin (the three layers of :mod:`.provenance`).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .provenance import GENERATOR, SOURCE_TYPE, TAG_PREFIX
from .video import probe, read_frames
from .watermark import Z_MARK, Detection, detect, high_pass


@dataclass(frozen=True)
class C2paStatus:
    """What a file's C2PA manifest says, if it has one."""

    present: bool
    state: str = ""
    """The reader's validation state: ``Valid``, ``Trusted`` or ``Invalid``."""
    synthetic: bool = False
    """The active manifest records an action with digitalSourceType trainedAlgorithmicMedia."""
    signer: str = ""
    """Issuer of the signing certificate."""
    generator: str = ""
    """Name of the software that made the claim (``styleavatar`` for ours)."""
    failures: tuple[str, ...] = ()
    """Validation failure codes (``signingCredential.untrusted`` for a local key)."""


def read_c2pa(path: Path, mime: str) -> C2paStatus:
    """The C2PA manifest of ``path``; ``present`` False when it has none."""
    import c2pa

    try:
        with open(path, "rb") as f, c2pa.Reader(mime, f) as reader:
            active = reader.get_active_manifest() or {}
            state = reader.get_validation_state() or ""
            results = reader.get_validation_results() or {}
    except Exception:  # no manifest, or a format c2pa does not read: nothing to report
        return C2paStatus(present=False)
    actions = [a for s in active.get("assertions", []) if s.get("label", "").startswith("c2pa.actions")
               for a in s.get("data", {}).get("actions", [])]
    failures = tuple(f.get("code", "") for f in results.get("activeManifest", {}).get("failure", []))
    generator = (active.get("claim_generator_info") or [{}])[0].get("name", "")
    return C2paStatus(True, state, any(a.get("digitalSourceType") == SOURCE_TYPE for a in actions),
                      str(active.get("signature_info", {}).get("issuer", "")), str(generator), failures)


@dataclass(frozen=True)
class Verdict:
    """Everything ``verify`` found in one file."""

    path: Path
    kind: str
    """``video`` or ``image``."""
    frames: int
    """Frames looked at."""
    watermark: Detection
    tag: str
    """The ``comment`` metadata tag ('' when absent or not ours)."""
    c2pa: C2paStatus

    @property
    def synthetic(self) -> bool:
        """Any of this project's layers says the file was made by it (another tool's manifest does not count)."""
        ours = self.c2pa.present and self.c2pa.synthetic and self.c2pa.generator == GENERATOR
        return self.watermark.found or bool(self.tag) or ours

    def describe(self) -> str:
        d, c = self.watermark, self.c2pa
        if d.found:
            said = (f"synthetic={d.payload.synthetic}, avatar {d.payload.avatar_prefix}, format {d.payload.version}"
                    if d.payload is not None else "payload unreadable (too damaged)")
            mark = f"found (score {d.score:.1f}, false-alarm chance {d.false_alarm:.0e}): {said}"
        else:
            mark = f"not found (score {d.score:.1f}; a mark scores {Z_MARK:.0f} or more)"
        if c.present:
            trust = ("intact; its signer is in no trust list (a local key?)"
                     if "signingCredential.untrusted" in c.failures else ", ".join(c.failures) or "intact")
            manifest_line = (f"{c.state} ({trust}); made by {c.generator or '?'}, signed by {c.signer or '?'}; "
                             f"trainedAlgorithmicMedia: {'yes' if c.synthetic else 'no'}")
        else:
            manifest_line = "none"
        verdict = "SYNTHETIC (made by styleavatar)" if self.synthetic else "no styleavatar mark found"
        return (f"{self.path}: {verdict}\n  watermark: {mark} [{self.kind}, {self.frames} frames]\n"
                f"  metadata tag: {self.tag or 'none'}\n  C2PA manifest: {manifest_line}")

    def to_json(self) -> dict:
        d = self.watermark
        return {"path": str(self.path), "synthetic": self.synthetic, "kind": self.kind, "frames": self.frames,
                "watermark": {"found": d.found, "score": round(d.score, 2), "false_alarm": d.false_alarm,
                              "payload": None if d.payload is None else {
                                  "synthetic": d.payload.synthetic, "avatar_prefix": d.payload.avatar_prefix,
                                  "format_version": d.payload.version}},
                "tag": self.tag, "c2pa": dataclasses.asdict(self.c2pa)}


IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
                  ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}
MAX_VERIFY_FRAMES = 300
"""Frames averaged by ``verify`` for a video (evenly spread over the whole video)."""


def clip_residual(frames) -> tuple[np.ndarray, int]:
    """(mean :func:`.watermark.high_pass` of a clip's (H, W, 3) uint8 frames, number of frames): the input
    :func:`.watermark.detect` takes for video."""
    acc, n = None, 0
    for rgb in frames:
        r = high_pass(rgb)
        acc = r if acc is None else acc + r
        n += 1
    if acc is None:
        raise UserError("no frames to check")
    return acc / n, n


def verify(path: str | Path) -> Verdict:
    """Check a video or image for the pixel mark, the metadata tag and a C2PA manifest.

    Raises :class:`UserError` for a file that is missing or neither a readable image nor a video."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no file at {path}")
    mime = IMAGE_SUFFIXES.get(path.suffix.lower())
    if mime is not None:
        import cv2

        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UserError(f"{path} is not a readable image")
        return Verdict(path, "image", 1, detect(bgr[..., ::-1].copy()), "", read_c2pa(path, mime))
    info = probe(path)
    step = max(1, info.frame_count // MAX_VERIFY_FRAMES)
    frames = (f.rgb for f in read_frames(path) if f.index % step == 0)
    residual, n = clip_residual(frames)
    return Verdict(path, "video", n, detect(residual), _tag(path),
                   read_c2pa(path, "video/mp4"))


def _tag(path: Path) -> str:
    import av

    with av.open(str(path)) as container:
        comment = container.metadata.get("comment", "")
    return comment if comment.startswith(TAG_PREFIX) else ""


def verdict_json(verdict: Verdict) -> str:
    return json.dumps(verdict.to_json(), indent=2)
