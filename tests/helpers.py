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


#: piq's test images with published MATLAB values (piq 0.8.0, Apache-2.0; see
#: tests/data/README.md). They are not redistributed here: point IQA_TEST_ASSETS at a copy of
#: piq's tests/assets folder.
PIQ_ASSETS = {
    "goldhill.gif": "d91c0c802805c8574b938adbf8ee6331fb6c567fbbb161251251d5d711a2d993",
    "goldhill_jpeg.gif": "801c0871583503a22c63d257e336bc7e6b34e33381592f31aff987b2096548c4",
    "I01.BMP": "43d3c92154c48529fae107749bb60777950ccb8e324b120a63c142f4279df63f",
    "i01_01_5.bmp": "74ec08fde9c5e6d6ec0168ca8a6b8c6824d55557c9bd6b816a52b99b2db3e4ed",
}


def piq_asset(name: str, values: str) -> Path:
    """A verified file of piq's tests/assets from IQA_TEST_ASSETS; skips (saying which
    published ``values`` need it) when the folder is not given."""
    import hashlib
    import os

    import pytest

    folder = os.environ.get("IQA_TEST_ASSETS")
    if not folder or not (Path(folder) / name).is_file():
        pytest.skip(f"published {values}: set IQA_TEST_ASSETS to a folder with piq's tests/assets/{name}")
    path = Path(folder) / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == PIQ_ASSETS[name], f"{path}: not piq's file (SHA-256 {digest})"
    return path


def gray_gif(path: Path) -> np.ndarray:
    """A gray-palette GIF as its gray levels (the palette indices' values)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"))
