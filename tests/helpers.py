"""Helpers shared by the tests (importable: pytest adds tests/ to sys.path)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def write_png(path: Path, arr: np.ndarray) -> Path:
    """A minimal PNG encoder (any of gray, gray+alpha, RGB, RGBA; 8 or 16 bits).

    OpenCV and Pillow cannot write every combination (16-bit gray+alpha in particular), so
    the tests write those files themselves, byte by byte, from the PNG specification.
    """
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    depth = 16 if arr.dtype == np.uint16 else 8
    raw = arr.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    body = b"".join(b"\x00" + raw[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path
