#!/usr/bin/env python3
"""Regenerate ``src/styleavatar/tracking/assets/canonical_face_mesh.json``.

The MediaPipe canonical face mesh (468 vertices with UVs, 898 triangles and the
33 Procrustes landmark weights) is not in the mediapipe Python wheel. It ships in
the npm package ``@mediapipe/face_mesh`` (Apache-2.0) as the protobuf
``geometry_pipeline_metadata_landmarks.binarypb``, packed inside
``face_mesh_solution_packed_assets.data`` at the byte range that
``face_mesh_solution_packed_assets_loader.js`` lists.

Usage::

    python scripts/extract_canonical_mesh.py            # runs `npm pack` itself
    python scripts/extract_canonical_mesh.py --tgz FILE  # from a downloaded tarball

The protobuf is decoded with a minimal wire-format reader (no .proto needed):
GeometryPipelineMetadata { 1: Mesh3d canonical_mesh; 2: repeated WeightedLandmarkRef }
Mesh3d { 1: vertex_type; 2: primitive_type; 3: repeated float vertex_buffer (x,y,z,u,v);
4: repeated uint32 index_buffer }; WeightedLandmarkRef { 1: landmark_id; 2: float weight }.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@mediapipe/face_mesh@0.4.1657299874"
TGZ_SHA256 = "c08a7e0742a326285da666cf81d77c8b6f3a181a2ee948cadaf166008e0d3bc7"
OUT = Path(__file__).resolve().parents[1] / "src/styleavatar/tracking/assets/canonical_face_mesh.json"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(buf: bytes) -> list[tuple[int, int, object]]:
    """Decode one protobuf message into (field number, wire type, raw value) triples."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((field, wire, value))
    return out


def _floats(entries) -> list[float]:
    vals: list[float] = []
    for _, wire, raw in entries:
        if wire == 5:
            vals.append(struct.unpack("<f", raw)[0])
        else:  # packed
            vals.extend(struct.unpack(f"<{len(raw) // 4}f", raw))
    return vals


def _uints(entries) -> list[int]:
    vals: list[int] = []
    for _, wire, raw in entries:
        if wire == 0:
            vals.append(raw)
        else:  # packed varints
            i = 0
            while i < len(raw):
                v, i = _varint(raw, i)
                vals.append(v)
    return vals


def parse_metadata(blob: bytes) -> dict:
    top = _fields(blob)
    mesh = _fields(next(v for f, _, v in top if f == 1))
    buf = _floats([e for e in mesh if e[0] == 3])
    idx = _uints([e for e in mesh if e[0] == 4])
    assert len(buf) % 5 == 0 and len(idx) % 3 == 0
    verts = [buf[i:i + 5] for i in range(0, len(buf), 5)]
    weights = []
    for f, _, raw in top:
        if f != 2:
            continue
        ref = dict((ff, vv) for ff, _, vv in _fields(raw))
        weights.append([int(ref.get(1, 0)), struct.unpack("<f", ref[2])[0] if 2 in ref else 0.0])
    return {
        "vertices": [[round(v, 6) for v in vert[:3]] for vert in verts],
        "uvs": [[round(v, 6) for v in vert[3:]] for vert in verts],
        "triangles": [idx[i:i + 3] for i in range(0, len(idx), 3)],
        "procrustes_weights": weights,
    }


def extract(tgz: Path) -> dict:
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if digest != TGZ_SHA256:
        raise SystemExit(f"{tgz}: sha256 {digest} is not the expected {TGZ_SHA256}")
    with tarfile.open(tgz) as tar:
        loader = tar.extractfile("package/face_mesh_solution_packed_assets_loader.js").read().decode()
        data = tar.extractfile("package/face_mesh_solution_packed_assets.data").read()
    m = re.search(r'geometry_pipeline_metadata_landmarks\.binarypb", "start": (\d+), "end": (\d+)', loader)
    if m is None:
        raise SystemExit("geometry_pipeline_metadata_landmarks.binarypb not listed in the loader")
    return parse_metadata(data[int(m.group(1)):int(m.group(2))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tgz", type=Path, help="npm tarball of " + PACKAGE + " (default: run `npm pack`)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tgz
        if tgz is None:
            name = subprocess.run(["npm", "pack", PACKAGE], cwd=tmp, check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1]
            tgz = Path(tmp) / name
        mesh = extract(tgz)
    mesh = {"source": f"npm {PACKAGE} (Apache-2.0), geometry_pipeline_metadata_landmarks.binarypb",
            "units": "centimetres; x right, y up, z towards the viewer; uv with v=0 at the top", **mesh}
    OUT.write_text(json.dumps(mesh, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}: {len(mesh['vertices'])} vertices, {len(mesh['triangles'])} triangles, "
          f"{len(mesh['procrustes_weights'])} Procrustes weights")


if __name__ == "__main__":
    main()
