"""Decoding image files: an allowlist of formats, limits checked before decoding, one-line errors.

Every file iqa scores is read here (:func:`read_image`), and every folder is listed here
(:func:`iter_image_files`, recursive, sorted by code point), so that the rules on bad files
hold for every command and every decoder.

The order of the checks is what keeps hostile files cheap. A path is ``stat``-ed before it
is opened: folders, FIFOs, devices and sockets are refused by name and never read. A regular
file is opened without blocking and its first bytes are matched against the signatures of
the supported formats (:data:`SUPPORTED_FORMATS`); anything else is refused before a decoder
sees it. The image's width, height and frame count are then read from its header (at most
:data:`HEADER_BYTES` are read for that), and checked against the pixel limit
(``PIL.Image.MAX_IMAGE_PIXELS``) and against the file's size, before any decoder allocates
pixels. Only then does Pillow, or OpenCV for the layouts Pillow would reduce to 8 bits
(16-bit colour PNG, PPM and TIFF; float TIFF), decode the pixels.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import stat
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from iqa.errors import ImageLoadError

__all__ = ["HEADER_BYTES", "IMAGE_EXTENSIONS", "SUPPORTED_FORMATS", "iter_image_files", "max_image_pixels", "read_image"]

#: The formats iqa decodes, recognised by their signature (never by the file name).
SUPPORTED_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WebP", "PNM")

#: File name endings recognised as images when a folder is scanned (compared lower-case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".pbm", ".pgm", ".ppm", ".pnm")

#: At most this many bytes of a file are read before its size in pixels has been checked.
HEADER_BYTES = 32 * 2**20

#: Bytes a file may hold per pixel of its first frame, beyond ``HEADER_BYTES`` of metadata:
#: room for 4 float32 channels, or ASCII PNM; a larger file is not one plain image.
_BYTES_PER_PIXEL = 32

#: Pillow's default ``MAX_IMAGE_PIXELS``; OpenCV's own limit is set to it (see iqa/__init__.py).
DEFAULT_MAX_PIXELS = 89_478_485


def max_image_pixels() -> int | None:
    """The pixel limit: ``PIL.Image.MAX_IMAGE_PIXELS`` (None: no limit)."""
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS


# --------------------------------------------------------------------------------------
# Opening: regular files only, never blocking
# --------------------------------------------------------------------------------------

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a file"


def _os_error(p: str, exc: OSError, what: str = "cannot read the file") -> ImageLoadError:
    if isinstance(exc, PermissionError):
        return ImageLoadError(f"{p}: permission denied ({what}: check its permissions)")
    if isinstance(exc, FileNotFoundError):
        return ImageLoadError(f"{p}: no such file")
    if isinstance(exc, NotADirectoryError):
        return ImageLoadError(f"{p}: no such file (a part of the path is not a folder)")
    return ImageLoadError(f"{p}: {what} ({exc.strerror or exc})")


def _check_regular(p: str, mode: int, what: str = "an image file") -> None:
    if stat.S_ISDIR(mode):
        raise ImageLoadError(f"{p}: is a directory, not {what}")
    if not stat.S_ISREG(mode):
        raise ImageLoadError(f"{p}: not a regular file ({_kind(mode)}); {what} is read from a regular file only")


@contextlib.contextmanager
def open_regular_file(
    path: str | os.PathLike, *, allow_empty: bool = False, what: str = "an image file"
) -> Iterator[tuple[Any, int]]:
    """Open a regular file for reading: ``(binary file object, size in bytes)``.

    The path is ``stat``-ed first, so a FIFO, device, socket or folder is refused by name
    without being opened; the file is then opened with ``O_NONBLOCK`` (a FIFO swapped in
    between cannot block) and checked again through its descriptor.

    Raises:
        ImageLoadError: missing, not a regular file, permission denied, empty (unless
            ``allow_empty``).
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise _os_error(p, exc, "cannot look up the file") from None
    _check_regular(p, st.st_mode, what)
    if st.st_size == 0 and not allow_empty:
        raise ImageLoadError(f"{p}: empty file (0 bytes)")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise _os_error(p, exc) from None
    try:
        st = os.fstat(fd)
        _check_regular(p, st.st_mode, what)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st.st_size


#: The largest text file (pair list, file list) read: 256 MiB is millions of lines.
TEXT_BYTES = 256 * 2**20


def read_text_file(path: str | os.PathLike, what: str) -> bytes:
    """The bytes of a text file (a pair list, a file list), refusing what
    :func:`open_regular_file` refuses (but an empty file), a file with NUL bytes in its
    first 64 KiB (not text: a binary or sparse file) and one over :data:`TEXT_BYTES`."""
    p = os.fspath(path)
    with open_regular_file(p, allow_empty=True, what=what) as (fh, size):
        if size > TEXT_BYTES:
            raise ImageLoadError(f"{p}: {size} bytes is too large for {what} (at most {TEXT_BYTES})")
        try:
            head = fh.read(65536)
            if b"\0" in head:
                raise ImageLoadError(f"{p}: not a text file (it holds NUL bytes), so not {what}")
            return head + fh.read()
        except OSError as exc:
            raise _os_error(p, exc) from None


class _Bounded(io.RawIOBase):
    """A file of which at most ``limit`` bytes may be read (while a header is parsed): a read
    beyond that raises instead of reading (or allocating) more. Seeking is free, so a TIFF
    directory at the end of a large file costs only its own bytes."""

    def __init__(self, fh: Any, size: int, name: str, limit: float) -> None:
        super().__init__()
        self._fh, self.size, self.name_, self.limit = fh, size, name, limit
        self.spent = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fh.fileno()

    def tell(self) -> int:
        return self._fh.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self.size - self._fh.tell())
        want = left if n is None or n < 0 else min(n, left)
        if self.spent + want > self.limit:
            raise ImageLoadError(
                f"{self.name_}: more than {int(self.limit)} bytes of header before the image's size: "
                "not a plain image file, or a corrupt one"
            )
        data = self._fh.read(-1 if n is None else n)
        self.spent += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


# --------------------------------------------------------------------------------------
# Signatures and headers
# --------------------------------------------------------------------------------------

#: Formats recognised only to be named in the refusal.
_OTHER_SIGNATURES = (
    (b"GIF87a", "a GIF"),
    (b"GIF89a", "a GIF"),
    (b"#?RADIANCE", "a Radiance HDR"),
    (b"#?RGBE", "a Radiance HDR"),
    (b"v/1\x01", "an OpenEXR"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000"),
    (b"\xff\x0a", "a JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL"),
    (b"8BPS", "a Photoshop"),
    (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a ZIP (or .npz)"),
    (b"\x93NUMPY", "a NumPy .npy"),
    (b"P7", "a PAM"),
    (b"Pf", "a PFM"),
    (b"PF", "a PFM"),
    (b"DDS ", "a DDS"),
    (b"\x00\x00\x01\x00", "an ICO"),
    (b"SIMPLE  =", "a FITS"),
)


def sniff_format(head: bytes) -> str | None:
    """The supported format whose signature starts ``head``, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head.startswith(b"BM") and len(head) >= 18:
        return "BMP"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n#":
        return "PNM"
    return None


def _unsupported(p: str, head: bytes) -> ImageLoadError:
    known = ", ".join(SUPPORTED_FORMATS)
    if head[4:8] == b"ftyp":
        what = "an ISO media (HEIF/AVIF/MP4)"
    else:
        what = next((name for sig, name in _OTHER_SIGNATURES if head.startswith(sig)), None)
    if what is not None:
        return ImageLoadError(f"{p}: {what} file, which iqa does not read (supported: {known}); convert it to PNG")
    return ImageLoadError(f"{p}: not an image file in a supported format ({known}; recognised by content, not by name)")


@dataclass
class Header:
    """What is known of an image before decoding it."""

    format: str
    width: int
    height: int
    frames: str | None = None  # a description when the file holds several images
    bit_depth: int = 8  # bits per sample where the header says (PNG, PNM)
    color_type: int = -1  # PNG's colour type
    maxval: int = 0  # PNM's maximum value


def _truncated_header(p: str, fmt: str) -> ImageLoadError:
    return ImageLoadError(f"{p}: cannot decode ({fmt} header cut short); the file is truncated")


def _png_header(p: str, head: bytes) -> Header:
    # Signature (8) + chunk length (4) + "IHDR" (4) + width, height (8) + depth, colour type.
    if len(head) < 26:
        raise _truncated_header(p, "PNG")
    if head[12:16] != b"IHDR":
        raise ImageLoadError(f"{p}: cannot decode (the PNG does not start with IHDR); the file is corrupt")
    w, h = struct.unpack(">II", head[16:24])
    return Header("PNG", w, h, bit_depth=head[24], color_type=head[25])


def _bmp_header(p: str, head: bytes) -> Header:
    (dib,) = struct.unpack("<I", head[14:18])
    if dib == 12:
        if len(head) < 26:
            raise _truncated_header(p, "BMP")
        w, h = struct.unpack("<HH", head[18:22])
    else:
        if len(head) < 26:
            raise _truncated_header(p, "BMP")
        w, h = struct.unpack("<ii", head[18:26])
    return Header("BMP", abs(w), abs(h))


def _webp_header(p: str, head: bytes) -> Header:
    if len(head) < 30:
        raise _truncated_header(p, "WebP")
    chunk = head[12:16]
    if chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise ImageLoadError(f"{p}: cannot decode (bad VP8 start code); the file is corrupt")
        w, h = struct.unpack("<HH", head[26:30])
        return Header("WebP", w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L":
        if head[20] != 0x2F:
            raise ImageLoadError(f"{p}: cannot decode (bad VP8L signature); the file is corrupt")
        (bits,) = struct.unpack("<I", head[21:25])
        return Header("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        flags = head[20]
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return Header("WebP", w, h, frames="an animated WebP" if flags & 0x02 else None)
    raise ImageLoadError(f"{p}: cannot decode (unknown WebP chunk {chunk!r}); the file is corrupt")


def _pnm_header(p: str, head: bytes) -> Header:
    """Width, height and maximum value of a PBM/PGM/PPM (P1-P6) header."""
    kind = head[1] - ord("0")
    tokens: list[int] = []
    want = 2 if kind in (1, 4) else 3
    i = 2
    while len(tokens) < want:
        while i < len(head) and head[i : i + 1] in b" \t\r\n#":
            if head[i : i + 1] == b"#":
                while i < len(head) and head[i : i + 1] not in b"\r\n":
                    i += 1
            else:
                i += 1
        j = i
        while j < len(head) and head[j : j + 1].isdigit():
            j += 1
        if j == i or j >= len(head):
            if j >= len(head):
                raise _truncated_header(p, "PNM")
            raise ImageLoadError(f"{p}: cannot decode (bad PNM header); the file is corrupt")
        tokens.append(int(head[i:j]))
        i = j
    maxval = tokens[2] if want == 3 else 1
    return Header("PNM", tokens[0], tokens[1], bit_depth=16 if maxval > 255 else 8, maxval=maxval, color_type=kind)


#: JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(p: str, fh: Any) -> Header:
    """The frame size from a JPEG's start-of-frame segment, skipping the segments before it."""
    fh.seek(2)
    while True:
        byte = fh.read(1)
        if not byte:
            raise _truncated_header(p, "JPEG")
        if byte != b"\xff":
            raise ImageLoadError(f"{p}: cannot decode (bad JPEG marker); the file is corrupt")
        marker = 0xFF
        while marker == 0xFF:  # fill bytes
            byte = fh.read(1)
            if not byte:
                raise _truncated_header(p, "JPEG")
            marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            continue
        if marker in (0xD9, 0xDA):
            raise ImageLoadError(f"{p}: cannot decode (no JPEG frame header before the image data); the file is corrupt")
        seg = fh.read(2)
        if len(seg) < 2:
            raise _truncated_header(p, "JPEG")
        (length,) = struct.unpack(">H", seg)
        if length < 2:
            raise ImageLoadError(f"{p}: cannot decode (bad JPEG segment length); the file is corrupt")
        if marker in _JPEG_SOF:
            body = fh.read(5)
            if len(body) < 5:
                raise _truncated_header(p, "JPEG")
            h, w = struct.unpack(">HH", body[1:5])
            return Header("JPEG", w, h)
        fh.seek(length - 2, 1)


def _tiff_header(p: str, fh: Any) -> Header:
    """The first page's size from the TIFF's first directory, and whether another follows."""
    from PIL import TiffImagePlugin

    fh.seek(0)
    ifh = fh.read(16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh[:16] if ifh[2:4] in (b"+\x00", b"\x00+") else ifh[:8])
            fh.seek(ifd.next)
            ifd.load(fh)
        except ImageLoadError:
            raise
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise ImageLoadError(f"{p}: cannot decode (TIFF header: {exc}); the file is truncated or corrupt") from None
    w, h = ifd.get(256), ifd.get(257)
    if not isinstance(w, int) or not isinstance(h, int):
        raise ImageLoadError(f"{p}: cannot decode (no image size in the TIFF's first directory); the file is truncated or corrupt")
    return Header("TIFF", w, h, frames="a multi-page TIFF" if ifd.next else None)


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file into an array with its stored dtype.

    Formats (recognised by their signature, whatever the file is called): PNG (8/16-bit
    gray, gray+alpha, RGB, RGBA, palette), JPEG (baseline and progressive; of an MPO, its
    primary picture), TIFF (8/16-bit, float32; one page), BMP, WebP (still) and PNM
    (PBM/PGM/PPM, binary or ASCII, maximum value 255 or 65535). Pixels are returned as
    stored: EXIF orientation is not applied, 16-bit stays ``uint16``, channels are in
    RGB(A) order. Animated and multi-page files are refused.

    The file must be a regular file; its size in pixels is read from its header and checked
    against ``PIL.Image.MAX_IMAGE_PIXELS`` (and the file's size against what that many
    pixels can take) before any decoder allocates memory.

    Args:
        path: the file to read.

    Returns:
        ``H×W`` for gray images, ``H×W×C`` otherwise (C = 2, 3 or 4).

    Raises:
        ImageLoadError: the file is missing, unreadable (permission denied), not a regular
            file, empty, truncated, corrupt, in an unsupported format, animated or
            multi-page, larger than the pixel limit, or in a colour mode iqa does not score
            (CMYK, Lab, 32-bit integer).

    Example:
        >>> img = read_image("data/samples/reference/astronaut.png")  # doctest: +SKIP
        >>> img.shape, img.dtype  # doctest: +SKIP
        ((512, 512, 3), dtype('uint8'))
    """
    p = os.fspath(path)
    with open_regular_file(p) as (fh, size):
        try:
            return _read_open_file(p, fh, size)
        except ImageLoadError:
            raise
        except OSError as exc:
            if exc.errno is not None:  # the system's error (EIO...), not a decoder's complaint
                raise _os_error(p, exc) from None
            raise ImageLoadError(f"{p}: cannot decode ({exc}); the file is truncated or corrupt") from None
        except (SyntaxError, ValueError, EOFError, struct.error) as exc:
            # Pillow reports corrupt data as OSError or SyntaxError; struct errors from short reads.
            raise ImageLoadError(f"{p}: cannot decode ({exc}); the file is truncated or corrupt") from None


_OWN_HEADERS = {"PNG": _png_header, "BMP": _bmp_header, "WebP": _webp_header, "PNM": _pnm_header}
_OWN_FILE_HEADERS = {"JPEG": _jpeg_header, "TIFF": _tiff_header}

#: Pillow's name of each format (Pillow opens PBM/PGM/PPM as "PPM").
_PILLOW_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "TIFF": "TIFF", "BMP": "BMP", "WebP": "WEBP", "PNM": "PPM"}


def _read_open_file(p: str, fh: Any, size: int) -> np.ndarray:
    head = fh.read(4096)  # signatures, and the whole header of PNG, BMP, WebP and PNM
    fmt = sniff_format(head)
    if fmt is None:
        raise _unsupported(p, head)
    reader = _Bounded(fh, size, p, HEADER_BYTES)
    if fmt in _OWN_HEADERS:
        header = _OWN_HEADERS[fmt](p, head)
    else:
        header = _OWN_FILE_HEADERS[fmt](p, reader)
    _check_header(p, header, size)
    reader.limit = math.inf  # the whole file is within what its pixels allow
    from PIL import UnidentifiedImageError

    try:
        im = _open_pillow(reader, p, _PILLOW_NAMES[fmt])
    except UnidentifiedImageError:
        if fmt != "TIFF":
            raise ImageLoadError(f"{p}: cannot decode (the {fmt} header is corrupt); the file is truncated or corrupt") from None
        # A TIFF layout Pillow does not know (e.g. float32 RGB): OpenCV decodes it.
        return _decode_opencv(reader, p, header)
    with im:
        header.frames = _frames(im)
        _check_header(p, header, size)
        if im.size != (header.width, header.height):
            raise ImageLoadError(f"{p}: cannot decode (inconsistent {fmt} header); the file is corrupt")
        return _decode_pillow(im, p, header, reader)


def _frames(im: Any) -> str | None:
    """A description of a file holding several images (None for one image)."""
    if im.format == "MPO":  # a JPEG with previews or depth maps: its primary picture is the image
        return None
    if not getattr(im, "is_animated", False):
        return None
    if im.format == "TIFF":
        return "a multi-page TIFF"
    name = {"PNG": "an animated PNG", "WEBP": "an animated WebP"}.get(im.format, f"a multi-frame {im.format}")
    try:
        return f"{name} ({im.n_frames} frames)"
    except Exception:  # the count is only for the message
        return name


def _check_header(p: str, h: Header, size: int) -> None:
    """Refuse, from the header alone, what must not reach a decoder."""
    if h.frames:
        raise ImageLoadError(
            f"{p}: {h.frames}: iqa scores still images; save the frame to score as its own file"
        )
    if h.width < 1 or h.height < 1:
        raise ImageLoadError(f"{p}: the header gives a size of {h.width}×{h.height}: no pixels; the file is corrupt")
    pixels = h.width * h.height
    limit = max_image_pixels()
    if limit is not None and pixels > limit:
        raise ImageLoadError(
            f"{p}: refused as a possible decompression bomb ({h.width}×{h.height} = {pixels} pixels, above the "
            f"limit of {limit}); if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS"
        )
    most = _BYTES_PER_PIXEL * pixels + HEADER_BYTES
    if size > most:
        raise ImageLoadError(
            f"{p}: {size} bytes for a {h.width}×{h.height} image (at most {most} expected): "
            "not a plain image file"
        )


# Image.open parses only the header; it runs under a lock because catching its warnings
# changes process-wide state (warnings filters are not thread-safe before Python 3.14).
_OPEN_LOCK = threading.Lock()


def _open_pillow(fp: Any, p: str, fmt: str) -> Any:
    """``Image.open`` restricted to one format, refusing decompression bombs and keeping
    Pillow's warnings quiet.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and raises above twice that; iqa refuses both.
    Other warnings while parsing a header (e.g. corrupt EXIF in a truncated TIFF) are
    dropped: the library never prints, and a broken file fails with an error when decoded.
    """
    from PIL import Image

    try:
        with _OPEN_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            im = Image.open(fp, formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(
            f"{p}: refused as a possible decompression bomb ({exc}); "
            "if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS"
        ) from None
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            im.close()
            raise ImageLoadError(
                f"{p}: refused as a possible decompression bomb ({w.message}); "
                "if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS"
            )
    return im


def _decode_pillow(im: Any, path: str, header: Header, reader: Any) -> np.ndarray:
    fmt, mode = im.format, im.mode
    if header.format == "PNG" and header.bit_depth == 16 and header.color_type != 0:
        # Pillow reduces 16-bit colour and gray+alpha PNG to 8 bits; OpenCV keeps the depth.
        return _decode_opencv(reader, path, header)
    if header.format == "PNM":
        if header.maxval not in (1, 255, 65535):
            raise ImageLoadError(
                f"{path}: PNM maximum value {header.maxval} is not supported (only 255 and 65535, "
                "whose data range is the sample type's): rescale the file, or store 16-bit data "
                "with maximum value 65535 and pass the bit depth"
            )
        if header.maxval == 65535:  # Pillow reduces 16-bit PPM to 8 bits
            return _decode_opencv(reader, path, header)
    if fmt == "TIFF" and mode in ("RGB", "RGBA"):
        bits = im.tag_v2.get(258, (8,))
        if any(int(b) > 8 for b in np.atleast_1d(bits)):
            return _decode_opencv(reader, path, header)
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
        if fmt in ("PNG", "PPM"):  # 16-bit gray PNG/PGM, which Pillow opens as 32-bit int
            arr = arr.astype(np.uint16)
        else:
            raise ImageLoadError(
                f"{path}: 32-bit integer images are not supported: store 8- or 16-bit "
                "integers or float32"
            )
    elif mode == "F":
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _check_png_chunks(path: str, buf: bytes, header: Header) -> None:
    """Walk a PNG's chunks, checking each CRC, up to IEND, and inflate its image data.
    libpng would print its own complaint about a bad CRC, a bad stream or a cut-off file on
    stderr: such a file is refused first, with one message."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(header.color_type, 0)
    interlaced = buf[28] == 1
    if channels == 0 or header.bit_depth != 16 or interlaced:
        expected = -1  # only non-interlaced 16-bit data comes here; others are not sized
    else:
        expected = header.height * (1 + header.width * channels * 2)
    idat: list[memoryview] = []
    view = memoryview(buf)
    pos, n = 8, len(buf)
    while True:
        if pos + 12 > n:
            raise ImageLoadError(f"{path}: cannot decode (no PNG end chunk); the file is truncated")
        (length,) = struct.unpack(">I", view[pos : pos + 4])
        end = pos + 12 + length
        name = bytes(view[pos + 4 : pos + 8]).decode("latin-1")
        if end > n:
            raise ImageLoadError(f"{path}: cannot decode (PNG chunk {name!r} cut short); the file is truncated")
        (crc,) = struct.unpack(">I", view[end - 4 : end])
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            raise ImageLoadError(f"{path}: cannot decode (CRC error in PNG chunk {name!r}); the file is corrupt")
        if name == "IEND":
            break
        if name == "IDAT":
            idat.append(view[pos + 8 : end - 4])
        pos = end
    # The image data must inflate to exactly the rows the header describes (libpng would
    # print "incorrect data check" and the like itself). Inflated in pieces, kept nowhere.
    inflater = zlib.decompressobj()
    total = 0
    try:
        for part in idat:
            while part:
                total += len(inflater.decompress(part, 2**22))
                part = inflater.unconsumed_tail
        total += len(inflater.flush())
    except zlib.error as exc:
        raise ImageLoadError(f"{path}: cannot decode (PNG image data: {exc}); the file is corrupt") from None
    if not inflater.eof or (expected >= 0 and total != expected):
        raise ImageLoadError(
            f"{path}: cannot decode (PNG image data {'cut short' if total < expected else 'too long'}); "
            "the file is truncated or corrupt"
        )


def _decode_opencv(reader: Any, path: str, header: Header) -> np.ndarray:
    import cv2

    pixels = header.width * header.height
    cv_limit = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 2**30))
    if pixels > cv_limit:
        raise ImageLoadError(
            f"{path}: {header.width}×{header.height} is above OpenCV's pixel limit ({cv_limit}): set "
            "OPENCV_IO_MAX_IMAGE_PIXELS before iqa is imported to decode it"
        )
    reader.seek(0)
    buf = reader.read()
    if header.format == "PNG":
        _check_png_chunks(path, buf, header)
    data = np.frombuffer(buf, dtype=np.uint8)
    with _quiet_opencv(cv2):
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # UNCHANGED: EXIF orientation ignored
    if img is None:
        raise ImageLoadError(f"{path}: cannot decode; the file is truncated or corrupt")
    if img.shape[:2] != (header.height, header.width):
        raise ImageLoadError(f"{path}: cannot decode (the pixels do not match the header's size); the file is corrupt")
    if img.ndim == 3:
        if img.shape[2] == 3:
            img = img[:, :, ::-1]
        elif img.shape[2] == 4:
            img = img[:, :, [2, 1, 0, 3]]
            if header.format == "PNG" and header.color_type == 4:
                img = img[:, :, [0, 3]]  # gray + alpha, which OpenCV expands to four channels
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageLoadError(f"{path}: unsupported sample type {img.dtype}")
    return np.ascontiguousarray(img)


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


def iter_image_files(folder: str | os.PathLike) -> list[Path]:
    """List the image files below ``folder``, recursively and in sorted order.

    Extensions are matched in any case. Symbolic links to folders are followed once; a link
    that leads back into a folder already being walked is refused.

    Raises:
        ImageLoadError: ``folder`` does not exist, is not a folder, or contains a symlink loop.
    """
    root = Path(folder)
    if not root.is_dir():
        try:
            os.stat(root)
        except OSError as exc:
            raise _os_error(os.fspath(root), exc, "cannot look up the folder") from None
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
            raise _os_error(os.fspath(d), exc, "cannot list the folder") from None
        for e in entries:
            path = Path(e.path)
            if e.is_dir(follow_symlinks=True):
                walk(path, seen)
            elif e.name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(path)

    walk(root, frozenset())
    return sorted(found, key=lambda q: q.relative_to(root).as_posix())
