"""Decoding image files: formats, bit depths and channels as stored, one-line errors.

Every file iqa scores is read here (:func:`read_image`), and every folder is listed here
(:func:`iter_image_files`, recursive, sorted by code point), so that the rules on bad files
hold for every command.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from iqa.errors import ImageLoadError

__all__ = ["IMAGE_EXTENSIONS", "iter_image_files", "read_image"]

#: File name endings recognised as images when a folder is scanned (compared lower-case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file into an array with its stored dtype.

    PNG (8/16-bit gray, gray+alpha, RGB, RGBA, palette), JPEG, TIFF (8/16-bit and float32),
    BMP and WebP. Pixels are returned as stored: EXIF orientation is not applied, 16-bit
    stays ``uint16``, channels are in RGB(A) order.

    Args:
        path: the file to read.

    Returns:
        ``H×W`` for gray images, ``H×W×C`` otherwise (C = 2, 3 or 4).

    Raises:
        ImageLoadError: the file is missing, empty, truncated, not an image, a decompression
            bomb, or in a colour mode iqa does not score (CMYK, Lab, 32-bit integer).

    Example:
        >>> img = read_image("data/samples/reference/astronaut.png")  # doctest: +SKIP
        >>> img.shape, img.dtype  # doctest: +SKIP
        ((512, 512, 3), dtype('uint8'))
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ImageLoadError(f"{p}: no such file")
    if os.path.isdir(p):
        raise ImageLoadError(f"{p}: is a directory, not an image file")
    if os.path.getsize(p) == 0:
        raise ImageLoadError(f"{p}: empty file (0 bytes)")

    from PIL import Image, UnidentifiedImageError

    try:
        im = _open_pillow(p)
        with im:
            arr = _decode_pillow(im, p)
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(
            f"{p}: refused as a possible decompression bomb ({exc}); "
            "if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS"
        ) from None
    except UnidentifiedImageError:
        arr = _decode_opencv(p, fallback=True)
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated and corrupt data as OSError (or SyntaxError for bad headers).
        raise ImageLoadError(f"{p}: cannot decode ({exc}); the file is truncated or corrupt") from None
    return arr


# Image.open parses only the header; it runs under a lock because catching its warnings
# changes process-wide state (warnings filters are not thread-safe before Python 3.14).
_OPEN_LOCK = threading.Lock()


def _open_pillow(path: str) -> Any:
    """``Image.open`` that refuses decompression bombs and keeps Pillow's warnings quiet.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and raises above twice that; iqa refuses both.
    Other warnings while parsing a header (e.g. corrupt EXIF in a truncated TIFF) are
    dropped: the library never prints, and a broken file fails with an error when decoded.
    """
    from PIL import Image

    with _OPEN_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        im = Image.open(path)
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            im.close()
            raise Image.DecompressionBombError(str(w.message))
    return im


def _png_bit_depth(path: str) -> int:
    with open(path, "rb") as fh:
        head = fh.read(26)
    # Signature (8) + chunk length (4) + "IHDR" (4) + width (4) + height (4) + bit depth (1).
    return head[24] if len(head) >= 26 and head[12:16] == b"IHDR" else 8


def _decode_pillow(im: Any, path: str) -> np.ndarray:
    fmt, mode = im.format, im.mode
    if fmt == "PNG" and _png_bit_depth(path) == 16 and mode not in ("I;16", "I;16B", "I"):
        # Pillow reduces 16-bit colour and gray+alpha PNG to 8 bits; OpenCV keeps the depth.
        return _decode_opencv(path)
    if fmt == "TIFF" and mode in ("RGB", "RGBA"):
        bits = im.tag_v2.get(258, (8,))
        if any(int(b) > 8 for b in np.atleast_1d(bits)):
            return _decode_opencv(path)
    if mode in ("CMYK", "LAB", "HSV", "YCbCr"):
        raise ImageLoadError(
            f"{path}: {mode} images are not supported: convert to RGB with the colour "
            "management you intend, then score"
        )
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F"):
        raise ImageLoadError(f"{path}: unsupported image mode {mode!r}")
    im.load()
    arr = np.asarray(im)
    if mode in ("I;16", "I;16B", "I;16L"):
        arr = arr.astype(np.uint16)
    elif mode == "I":
        if fmt == "PNG":  # 16-bit gray PNG, which some Pillow versions open as 32-bit int
            arr = arr.astype(np.uint16)
        else:
            raise ImageLoadError(
                f"{path}: 32-bit integer images are not supported: store 8- or 16-bit "
                "integers or float32"
            )
    elif mode == "F":
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _decode_opencv(path: str, fallback: bool = False) -> np.ndarray:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    if data[:8].tobytes() == _PNG_SIGNATURE and b"IEND" not in data[-64:].tobytes():
        # libpng prints its own complaint about a cut-off stream on stderr: refuse it first.
        raise ImageLoadError(f"{path}: cannot decode (no PNG end chunk); the file is truncated")
    with _quiet_opencv(cv2):
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # UNCHANGED: EXIF orientation ignored
    if img is None:
        if fallback and not path.lower().endswith(IMAGE_EXTENSIONS):
            raise ImageLoadError(f"{path}: not an image file (no decoder recognises it)")
        if fallback:
            raise ImageLoadError(
                f"{path}: cannot decode: not an image file, or a truncated or corrupt one"
            )
        raise ImageLoadError(f"{path}: cannot decode; the file is truncated or corrupt")
    if img.ndim == 3:
        if img.shape[2] == 3:
            img = img[:, :, ::-1]
        elif img.shape[2] == 4:
            img = img[:, :, [2, 1, 0, 3]]
            if path.lower().endswith(".png") and _png_color_type(path) == 4:
                img = img[:, :, [0, 3]]  # gray + alpha, which OpenCV expands to four channels
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageLoadError(f"{path}: unsupported sample type {img.dtype}")
    return np.ascontiguousarray(img)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CV_QUIET_LOCK = threading.Lock()
_cv_quiet_users = 0
_cv_saved_level = 0


@contextlib.contextmanager
def _quiet_opencv(cv2: Any) -> Iterator[None]:
    """Silence OpenCV's logger while any thread decodes (the library never prints); the
    user's level is restored when the last decoding thread leaves."""
    global _cv_quiet_users, _cv_saved_level
    with _CV_QUIET_LOCK:
        if _cv_quiet_users == 0:
            _cv_saved_level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _cv_quiet_users += 1
    try:
        yield
    finally:
        with _CV_QUIET_LOCK:
            _cv_quiet_users -= 1
            if _cv_quiet_users == 0:
                cv2.utils.logging.setLogLevel(_cv_saved_level)


def _png_color_type(path: str) -> int:
    with open(path, "rb") as fh:
        head = fh.read(26)
    return head[25] if len(head) >= 26 else -1


def iter_image_files(folder: str | os.PathLike) -> list[Path]:
    """List the image files below ``folder``, recursively and in sorted order.

    Extensions are matched in any case. Symbolic links to folders are followed once; a link
    that leads back into a folder already being walked is refused.

    Raises:
        ImageLoadError: ``folder`` does not exist, is not a folder, or contains a symlink loop.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageLoadError(f"{root}: not a folder")
    found: list[Path] = []

    def walk(d: Path, seen: frozenset[str]) -> None:
        real = os.path.realpath(d)
        if real in seen:
            raise ImageLoadError(f"{d}: symbolic link loop (leads back to {real})")
        seen = seen | {real}
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise ImageLoadError(f"{d}: cannot list the folder ({exc.strerror or exc})") from None
        for e in entries:
            path = Path(e.path)
            if e.is_dir(follow_symlinks=True):
                walk(path, seen)
            elif e.name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(path)

    walk(root, frozenset())
    return sorted(found, key=lambda q: q.relative_to(root).as_posix())
