"""Hostile inputs: files, devices, headers, statistics and arguments built to break the input side.

Every case ends in one error naming the file and the problem (an iqa error, also a builtin),
without hanging, without reading what it refuses, and without a traceback on the command line.
The files are made here: sparse files, FIFOs, device nodes, forged headers, unreadable files
(in a child process that drops to an unprivileged user where the tests run as root).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_png
from PIL import Image

import iqa
from iqa.cli import main
from iqa.decode import read_image
from iqa.distribution.statistics import FIDStatistics
from iqa.errors import IQAError, ImageLoadError, ShapeError

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int, depth: int = 8, color_type: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return PNG_SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def _one_line_cli_error(result, *needles: str) -> str:
    """The command failed with exit 1 and one line ``iqa: error: ...`` holding ``needles``."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iqa: error: "), result.output
    for n in needles:
        assert n in lines[0], result.output
    return lines[0]


def _finishes(fn, seconds: float = 10.0):
    """Run ``fn`` in a daemon thread; fail (instead of hanging the suite) if it blocks."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked (a FIFO opened for reading?)"
    return out


# --------------------------------------------------------------------------------------
# Not regular files: refused by name, never opened in a way that blocks
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_refused_by_name_without_blocking(tmp_path, rng):
    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    out = _finishes(lambda: read_image(fifo))
    assert isinstance(out.get("error"), ImageLoadError)
    assert "f.png: not a regular file (a FIFO" in str(out["error"]) and "empty" not in str(out["error"])
    ok = write_png(tmp_path / "ok.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    out = _finishes(lambda: CliRunner().invoke(main, ["psnr", str(ok), str(fifo)]))
    _one_line_cli_error(out["value"], "f.png: not a regular file")
    # A pair list that is a FIFO would block a reader too.
    (tmp_path / "r").mkdir()
    out = _finishes(lambda: CliRunner().invoke(main, ["score", str(tmp_path / "r"), str(tmp_path / "r"), "--pairs", str(fifo)]))
    _one_line_cli_error(out["value"], "f.png: ", "FIFO", "not a regular file")


def test_binary_and_huge_file_lists_are_refused_unread(tmp_path):
    zeros = tmp_path / "zeros.txt"
    zeros.write_bytes(b"a.png\n" + b"\0" * 4096)
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as fh:
        fh.truncate(2**30)
    for path, says in ((zeros, "zeros.txt: not a text file (it holds NUL bytes), so not a file list"),
                       (huge, "huge.txt: 1073741824 bytes is too large for a file list")):
        _one_line_cli_error(CliRunner().invoke(main, ["fid", str(path), str(path)]), says)
    (tmp_path / "r").mkdir()
    result = CliRunner().invoke(main, ["score", str(tmp_path / "r"), str(tmp_path / "r"), "--pairs", str(zeros)])
    _one_line_cli_error(result, "zeros.txt:", "NUL")
    # A pair list has the same bound as a file list: a sparse 1 GiB CSV is refused unread.
    result = CliRunner().invoke(main, ["score", str(tmp_path / "r"), str(tmp_path / "r"), "--pairs", str(huge)])
    _one_line_cli_error(result, "huge.txt: 1073741824 bytes is too large for a pair list")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_device_nodes_are_refused(device):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    out = _finishes(lambda: read_image(device))
    assert isinstance(out.get("error"), ImageLoadError)
    assert f"{device}: not a regular file (a character device)" in str(out["error"])


def test_directory_through_the_cli_is_one_line_like_a_missing_file(tmp_path, rng):
    ok = write_png(tmp_path / "ok.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    _one_line_cli_error(CliRunner().invoke(main, ["psnr", str(ok), str(tmp_path)]), "is a directory")
    _one_line_cli_error(CliRunner().invoke(main, ["psnr", str(ok), str(tmp_path / "nope.png")]), "no such file")
    _one_line_cli_error(CliRunner().invoke(main, ["score", str(tmp_path / "nope"), str(tmp_path)]), "nope: no such file")
    _one_line_cli_error(CliRunner().invoke(main, ["score", str(ok), str(tmp_path)]), "ok.png: not a folder")


# --------------------------------------------------------------------------------------
# Formats: an allowlist by signature, sizes from the header before any decoder
# --------------------------------------------------------------------------------------


_CHILD_RSS = """
import resource, sys
from iqa.decode import read_image
for path in sys.argv[1:]:
    try:
        read_image(path)
        print("decoded", path)
    except OSError as exc:
        print(exc)
# VmHWM is this process's own peak (ru_maxrss keeps the forking parent's peak across exec).
try:
    with open("/proc/self/status") as fh:
        peak_kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("peak_mib", peak_kib // 1024)
"""


def test_sparse_and_disguised_files_cost_no_memory(tmp_path):
    """A 1 GiB sparse file (with and without a valid PNG header) and a 6 MB-class Radiance
    HDR named .png are refused before they are read: peak memory stays at the interpreter's."""
    plain = tmp_path / "sparse.png"
    with open(plain, "wb") as fh:
        fh.truncate(2**30)
    headed = tmp_path / "headed.png"
    with open(headed, "wb") as fh:
        fh.write(_png_claiming(10, 10))
        fh.truncate(2**30)
    hdr = tmp_path / "radiance.png"
    with open(hdr, "wb") as fh:  # 30000×30000 RGBE pixels: OpenCV would allocate 10 GB of floats
        fh.write(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n")
        fh.write(b"\x02\x02\x80\x00" * (6 * 2**20 // 4))
    proc = subprocess.run([sys.executable, "-c", _CHILD_RSS, str(plain), str(headed), str(hdr)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "sparse.png: not an image file in a supported format" in out
    assert "headed.png: 1073741824 bytes for a 10×10 image" in out
    assert "radiance.png: a Radiance HDR file, which iqa does not read" in out
    assert "decoded" not in out and proc.stderr == ""
    peak = int(out.split("peak_mib")[1])
    assert peak < 400, f"peak RSS {peak} MiB: a refused file was read into memory"


def _jpeg_claiming(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def _tiff_claiming(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 8), (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


_HUGE = {
    "png": lambda: _png_claiming(100_000, 100_000),
    "16-bit.png": lambda: _png_claiming(40_000, 40_000, depth=16, color_type=6),  # the OpenCV route
    "jpg": lambda: _jpeg_claiming(60_000, 60_000),
    "tif": lambda: _tiff_claiming(70_000, 70_000),
    "bmp": lambda: b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 50_000, 50_000, 1, 24, 0, 0, 0, 0, 0, 0),
    "webp": lambda: b"RIFF" + struct.pack("<I", 22) + b"WEBPVP8X" + struct.pack("<I", 10) + b"\0\0\0\0"
    + (16383).to_bytes(3, "little") + (16383).to_bytes(3, "little"),
    "ppm": lambda: b"P6\n30000 30000\n255\n" + b"\0" * 64,
}


@pytest.mark.parametrize("kind", sorted(_HUGE))
def test_headers_claiming_huge_sizes_are_refused_before_decoding(tmp_path, kind):
    path = tmp_path / f"huge.{kind}"
    path.write_bytes(_HUGE[kind]())
    with pytest.raises(ImageLoadError, match=r"huge\..*: refused as a possible decompression bomb \(\d+×\d+ = \d+ pixels"):
        read_image(path)


def test_opencv_limit_is_set_before_cv2_is_imported():
    code = "import iqa, os, sys; assert 'cv2' not in sys.modules; print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.strip() == str(Image.MAX_IMAGE_PIXELS), proc.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"GIF89a" + b"\0" * 40, "a GIF file, which iqa does not read"),
        (b"\x93NUMPY\x01\x00" + b"\0" * 40, "a NumPy .npy file"),
        (b"\x00\x00\x00\x18ftypheic" + b"\0" * 40, "an ISO media (HEIF/AVIF/MP4) file"),
        (b"hello, I am text" * 4, "not an image file in a supported format (PNG, JPEG, TIFF, BMP, WebP, PNM"),
    ],
)
def test_formats_outside_the_allowlist_are_named(tmp_path, content, says):
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(ImageLoadError, match=r"x\.png: " + re.escape(says)):
        read_image(tmp_path / "x.png")


def test_allowlisted_formats_are_recognised_by_content_not_name(tmp_path, rng):
    arr = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.bmp")
    shutil.copy(tmp_path / "a.bmp", tmp_path / "misnamed.png")
    np.testing.assert_array_equal(read_image(tmp_path / "misnamed.png"), arr)
    # PNM: binary and ASCII, 8 and 16 bits, decoded at their stored depth.
    (tmp_path / "a.ppm").write_bytes(b"P6\n10 12\n255\n" + arr.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "a.ppm"), arr)
    wide = arr.astype(np.uint16) * 257
    (tmp_path / "w.ppm").write_bytes(b"P6\n# a comment\n10 12\n65535\n" + wide.astype(">u2").tobytes())
    got = read_image(tmp_path / "w.ppm")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, wide)
    (tmp_path / "g.pgm").write_bytes(b"P2\n3 1\n255\n0 128 255\n")
    np.testing.assert_array_equal(read_image(tmp_path / "g.pgm"), [[0, 128, 255]])
    (tmp_path / "odd.pgm").write_bytes(b"P5\n2 1\n1023\n" + np.array([1023, 5], ">u2").tobytes())
    with pytest.raises(ImageLoadError, match=r"odd\.pgm: PNM maximum value 1023 is not supported"):
        read_image(tmp_path / "odd.pgm")


# --------------------------------------------------------------------------------------
# Several images in one file: refused, said as what they are
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ext", "says"), [("png", "an animated PNG (3 frames)"), ("webp", "an animated WebP"),
                                           ("tif", "a multi-page TIFF")])
def test_multi_frame_files_are_refused(tmp_path, ext, says):
    frames = [Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)) for i in range(3)]
    path = tmp_path / f"anim.{ext}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageLoadError, match=f"anim\\.{ext}: {re.escape(says)}: iqa scores still images"):
        read_image(path)
    frames[0].save(tmp_path / f"still.{ext}")  # the same format with one frame is fine
    assert read_image(tmp_path / f"still.{ext}").shape == (8, 8, 3)


# --------------------------------------------------------------------------------------
# Corrupt 16-bit PNG: one line, nothing from libpng on stderr
# --------------------------------------------------------------------------------------


def test_corrupt_16bit_png_is_one_line_and_libpng_stays_quiet(tmp_path, rng):
    good = write_png(tmp_path / "good.png", rng.integers(0, 65536, (32, 32, 3), dtype=np.uint16)).read_bytes()
    idat = good.index(b"IDAT")
    (length,) = struct.unpack(">I", good[idat - 4 : idat])
    crc = bytearray(good)
    crc[idat + 20] ^= 0xFF  # the data changes, the CRC does not
    (tmp_path / "crc.png").write_bytes(bytes(crc))
    stream = bytearray(good)
    stream[idat + 4 + 10 : idat + 4 + 40] = b"\0" * 30  # a broken zlib stream with a valid CRC
    stream[idat + 4 + length : idat + 8 + length] = struct.pack(">I", zlib.crc32(bytes(stream[idat : idat + 4 + length])))
    (tmp_path / "zlib.png").write_bytes(bytes(stream))
    code = "import sys\nfrom iqa.io import read_image\nfor p in sys.argv[1:]:\n    try:\n        read_image(p)\n    except OSError as e:\n        print(e)\n"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "crc.png"), str(tmp_path / "zlib.png")],
                          capture_output=True, text=True, timeout=60)
    assert proc.stderr == ""  # libpng writes straight to file descriptor 2
    lines = proc.stdout.splitlines()
    assert "crc.png: cannot decode (CRC error in PNG chunk 'IDAT'); the file is corrupt" in lines[0]
    assert "zlib.png: cannot decode (PNG image data" in lines[1] and "corrupt" in lines[1]


# --------------------------------------------------------------------------------------
# Permissions: said as such, in a child process that is not root
# --------------------------------------------------------------------------------------


def _unprivileged(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop privileges to test permissions")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


def test_permission_denied_is_said_as_such(rng):
    with tempfile.TemporaryDirectory() as d:  # outside pytest's private (0700) folder
        root = Path(d)
        root.chmod(0o755)
        arr = rng.integers(0, 256, (16, 16), dtype=np.uint8)
        ok = write_png(root / "ok.png", arr)
        locked = write_png(root / "locked.png", arr)
        locked.chmod(0)
        shut = root / "shut"
        shut.mkdir()
        write_png(shut / "inside.png", arr)
        shut.chmod(0)
        ok.chmod(0o644)
        code = (
            "import sys\nfrom iqa.io import read_image\n"
            "for p in sys.argv[1:]:\n    try:\n        read_image(p)\n        print('read', p)\n"
            "    except OSError as e:\n        print(e)\n"
            "from iqa.decode import iter_image_files\n"
            "try:\n    iter_image_files(sys.argv[2].rsplit('/', 1)[0])\nexcept OSError as e:\n    print(e)\n"
        )
        argv = _unprivileged([sys.executable, "-c", code, str(locked), str(shut / "inside.png"), str(ok)])
        probe = subprocess.run(_unprivileged([sys.executable, "-c", "import iqa"]), capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"the unprivileged user cannot import iqa here: {probe.stderr.strip()[-200:]}")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        lines = proc.stdout.splitlines()
        assert lines[0] == f"{locked}: permission denied (cannot read the file: check its permissions)"
        assert lines[1].startswith(f"{shut / 'inside.png'}: permission denied")
        assert lines[2] == f"read {ok}" and proc.stderr == ""
        assert lines[3] == f"{shut}: permission denied (cannot list the folder: check its permissions)"
        # The command line: one line, exit 1, as for a missing file.
        cli = subprocess.run(_unprivileged([sys.executable, "-m", "iqa.cli", "psnr", str(ok), str(locked)]),
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode == 1 and cli.stdout == ""
        assert cli.stderr.strip().splitlines() == [f"iqa: error: {lines[0]}"]
        shut.chmod(0o755)


# --------------------------------------------------------------------------------------
# .npz statistics: refused before any computation, naming the file
# --------------------------------------------------------------------------------------


def _write_npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


_D = 64
_MU = np.linspace(0, 1, _D)
_SIGMA = np.eye(_D) * 0.5


def _bad_npz(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.npz"
    if kind == "object":
        return _write_npz(p, mu=np.array([1, "a", None], dtype=object), sigma=_SIGMA)
    if kind == "inf_mu":
        return _write_npz(p, mu=np.full(_D, np.inf), sigma=_SIGMA)
    if kind == "nan_sigma":
        s = _SIGMA.copy()
        s[3, 4] = np.nan
        return _write_npz(p, mu=_MU, sigma=s)
    if kind == "shape":
        return _write_npz(p, mu=_MU, sigma=_SIGMA[:10])
    if kind == "truncated":
        data = _write_npz(p, mu=_MU, sigma=_SIGMA).read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p
    if kind == "npy":
        with open(p, "wb") as fh:
            np.save(fh, _MU)
        return p
    if kind == "empty_archive":
        zipfile.ZipFile(p, "w").close()
        return p
    if kind == "strings":
        return _write_npz(p, mu=np.array(["x"] * _D), sigma=_SIGMA)
    if kind == "no_keys":
        return _write_npz(p, something=np.zeros(3))
    raise AssertionError(kind)


_NPZ_SAYS = {
    "object": "'mu' is an object array (pickled Python objects are never loaded)",
    "inf_mu": "'mu' contains NaN or infinite values",
    "nan_sigma": "'sigma' contains NaN or infinite values",
    "shape": "'sigma' has shape (10, 64), expected 64 × 64",
    "truncated": "cannot be read as an .npz archive",
    "npy": "a single .npy array, not an .npz archive",
    "empty_archive": "the archive holds no arrays",
    "strings": "'mu' holds <U1 values, not real numbers",
    "no_keys": "expected the keys 'mu' and 'sigma'",
}


@pytest.mark.parametrize("kind", sorted(_NPZ_SAYS))
def test_malformed_statistics_are_refused_naming_the_file(tmp_path, kind):
    bad = _bad_npz(tmp_path, kind)
    with pytest.raises(ImageLoadError, match=f"{kind}\\.npz: .*{re.escape(_NPZ_SAYS[kind])}"):
        FIDStatistics.load(bad)


@pytest.mark.parametrize("kind", ["inf_mu", "object", "empty_archive", "npy"])
def test_malformed_statistics_through_the_cli_exit_1_in_one_line(tmp_path, kind):
    good = _write_npz(tmp_path / "good.npz", mu=_MU, sigma=_SIGMA)
    bad = _bad_npz(tmp_path, kind)
    result = CliRunner().invoke(main, ["fid", str(bad), str(good)])
    # The good file is pytorch-fid's layout and warns that its conventions are unknown.
    lines = [ln for ln in result.output.strip().splitlines() if not ln.startswith("iqa: warning:")]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("iqa: error: ") and f"{kind}.npz" in lines[0]
    assert "inf" not in result.output.split("iqa: error:")[0]  # no value printed


def test_statistics_of_a_dimension_the_extractor_does_not_give(tmp_path):
    odd = _write_npz(tmp_path / "odd.npz", mu=np.zeros(1000), sigma=np.eye(1000))
    other = _write_npz(tmp_path / "other.npz", mu=np.zeros(768), sigma=np.eye(768))
    result = CliRunner().invoke(main, ["fid", str(odd), str(other)])
    line = _one_line_cli_error(
        type("R", (), {"exit_code": result.exit_code, "output": "\n".join(
            ln for ln in result.output.splitlines() if not ln.startswith("iqa: warning:"))})(),
        "odd.npz: 1000-d statistics: not features of the inception network")
    assert "--dims" not in line


def test_frechet_distance_refuses_non_finite_statistics():
    from iqa.distribution.frechet import frechet_distance

    with pytest.raises(ValueError, match="mu2 contains NaN or infinite values"):
        frechet_distance(_MU, _SIGMA, _MU + np.inf, _SIGMA)


# --------------------------------------------------------------------------------------
# Python API: bad arguments raise iqa errors (also builtins), not torch's or Python's
# --------------------------------------------------------------------------------------


def test_empty_image_is_a_shape_error():
    with pytest.raises(ShapeError, match="has no pixels"):
        iqa.psnr(np.zeros((0, 0), np.uint8), np.zeros((0, 0), np.uint8))


def test_empty_batches_are_a_shape_error():
    """0 images (torch's aminmax raised its own RuntimeError on an empty batch)."""
    torch = pytest.importorskip("torch")
    x = torch.rand(0, 3, 16, 16)
    with pytest.raises(ShapeError, match="an empty batch"):
        iqa.ssim(x, x, data_range=1.0)
    with pytest.raises(ShapeError, match="an empty batch"):
        iqa.psnr(np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 8, 8, 3), np.uint8))


def test_meta_tensors_are_refused():
    torch = pytest.importorskip("torch")
    x = torch.zeros(1, 3, 16, 16, device="meta")
    with pytest.raises(ShapeError, match="meta device holds no values"):
        iqa.psnr(x, x, data_range=1.0)


@pytest.mark.parametrize("value", [1e308, 1e-320, 1e11, 1e-11, float("inf")])
def test_data_range_out_of_bounds_is_an_option_error(value):
    a = np.zeros((16, 16))
    with pytest.raises(ValueError) as info:
        iqa.ssim(a, a, data_range=value)
    assert isinstance(info.value, IQAError) and "data_range must be" in str(info.value)


def test_a_string_is_not_unpacked_into_a_pair():
    (score,) = iqa.iter_scores(["ab"], ["psnr"])  # an error result, not the pair ("a", "b")
    assert "expected a (reference, distorted) pair" in score.error and "'ab'" in score.error
    assert score.values == {"psnr": None}


# --------------------------------------------------------------------------------------
# Weight files: short messages that say what the file is, never "weights_only=False"
# --------------------------------------------------------------------------------------


def test_weights_for_another_network_are_named_on_the_command_line(squeeze_weights, tmp_path, rng):
    """The SqueezeNet file given to FID: one line of a few hundred characters, naming the
    network it belongs to and the option that uses it."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        write_png(folder / f"{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    result = CliRunner().invoke(main, ["fid", str(folder), str(folder), "--weights", str(squeeze_weights)])
    line = _one_line_cli_error(result, "does not fit pytorch-fid's FID Inception network",
                               "looks like a torchvision SqueezeNet 1.1 file (squeezenet1_1): for LPIPS use --net squeeze")
    assert len(line) < 450


@pytest.mark.parametrize("kind", ["text", "truncated", "pickled"])
def test_unloadable_weight_files_are_one_short_line(squeeze_weights, tmp_path, rng, kind):
    torch = pytest.importorskip("torch")
    path = tmp_path / f"{kind}.pth"
    if kind == "text":
        path.write_text("these are not weights")
    elif kind == "truncated":
        data = squeeze_weights.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        from fractions import Fraction

        torch.save({"features.0.weight": torch.zeros(1), "note": Fraction(1, 3)}, path)
    a = write_png(tmp_path / "a.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    result = CliRunner().invoke(main, ["lpips", str(a), str(a), "--weights", str(path)])
    line = _one_line_cli_error(result, f"{kind}.pth: ")
    assert len(line) < 300 and "weights_only=False" not in line
    if kind == "truncated":
        assert "truncated or corrupt archive" in line


def test_weights_list_and_verify_agree_on_a_corrupt_hub_file(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from iqa.weights import REGISTRY

    monkeypatch.setenv("IQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = Path(torch.hub.get_dir()) / "checkpoints" / REGISTRY["squeezenet1_1"].filename
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"not the official file")
    listed = CliRunner().invoke(main, ["weights", "list"])
    verified = CliRunner().invoke(main, ["weights", "verify", "squeezenet1_1"])
    row = next(ln for ln in listed.output.splitlines() if ln.startswith("squeezenet1_1"))
    assert row.split("\t")[1:3] == ["present (torch-hub)", str(hub)]
    assert verified.exit_code == 1 and f"squeezenet1_1\tcorrupt" in verified.output and str(hub) in verified.output


# --------------------------------------------------------------------------------------
# Float data outside [0, data_range]: warned about, naming the input and its min/max
# --------------------------------------------------------------------------------------


def test_images_scaled_to_255_with_data_range_1_warn(rng):
    a = rng.random((32, 32))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    with pytest.warns(iqa.RangeWarning) as record:
        iqa.ssim(a * 255, b * 255, data_range=1.0)
    assert [str(w.message).split(":")[0] for w in record] == ["reference array", "distorted array"]
    assert re.match(r"reference array: values from 0\.0\d+ to 25\d\.\d+, outside the data range \[0, 1\]; is the "
                    r"data range larger \(255 for \[0, 255\] data", str(record[0].message))
    with warnings_as_errors():  # in range, and within 1 % of it: silent
        iqa.ssim(a, b, data_range=1.0)
        iqa.ssim(a * 1.009, b, data_range=1.0)
        iqa.ssim(a * 255, b * 255, data_range=1.0, check_range=False)


def test_minus_one_to_one_tensors_for_lpips_are_caught(squeeze_weights, rng):
    """Users of the lpips package pass [-1, 1] tensors; with data_range=1 iqa would score
    other pixels. The warning says what to do."""
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(rng.random((1, 3, 40, 40))).float() * 2 - 1
    y = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    with pytest.warns(iqa.RangeWarning) as record:
        iqa.lpips(x, y, data_range=1.0, net="squeeze", weights=squeeze_weights)
    messages = [str(w.message) for w in record]
    assert any(m.startswith("reference tensor: values from -0.99") and "map it to [0, 1] with (x + 1) / 2" in m
               for m in messages), messages
    with warnings_as_errors():
        iqa.lpips((x + 1) / 2, (y + 1) / 2, data_range=1.0, net="squeeze", weights=squeeze_weights)
        iqa.lpips(x, y, data_range=1.0, net="squeeze", weights=squeeze_weights, check_range=False)


def test_float_file_out_of_range_warns_through_the_path_and_once_per_score_run(tmp_path, rng):
    cv2 = pytest.importorskip("cv2")
    (tmp_path / "r").mkdir()
    (tmp_path / "d").mkdir()
    for i in range(3):
        a = rng.random((24, 24, 3)).astype(np.float32) * (255 if i < 2 else 1)
        cv2.imwrite(str(tmp_path / "r" / f"{i}.tif"), a)
        cv2.imwrite(str(tmp_path / "d" / f"{i}.tif"), a * 0.9)
    with pytest.warns(iqa.RangeWarning) as record:
        iqa.psnr(tmp_path / "r" / "0.tif", tmp_path / "d" / "0.tif", data_range=1.0)
    assert re.match(re.escape(str(tmp_path / "r" / "0.tif")) + r": values from .* to 25\d\.\d+, outside the data "
                    r"range \[0, 1\]", str(record[0].message))
    result = CliRunner().invoke(main, ["score", str(tmp_path / "r"), str(tmp_path / "d"), "-m", "psnr",
                                       "--data-range", "1", "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    warned = [ln for ln in result.output.splitlines() if ln.startswith("iqa: warning:")]
    assert warned == ["iqa: warning: 2 pair(s) have float values outside [0, data range] by more than 1%: "
                      "check --data-range ('iqa psnr REFERENCE DISTORTED' shows the values of one pair)"]
    assert "note: float values outside [0, data range] by more than 1% (check the data range): 2 pair(s)" in result.output
    one = CliRunner().invoke(main, ["psnr", str(tmp_path / "r" / "0.tif"), str(tmp_path / "d" / "0.tif"), "--data-range", "1"])
    assert one.exit_code == 0 and [ln for ln in one.output.splitlines() if ln.startswith("iqa: warning: ")][0].startswith(
        f"iqa: warning: {tmp_path / 'r' / '0.tif'}: values from")
    quiet = CliRunner().invoke(main, ["psnr", str(tmp_path / "r" / "0.tif"), str(tmp_path / "d" / "0.tif"),
                                      "--data-range", "1", "--no-check-range"])
    assert quiet.exit_code == 0 and "warning" not in quiet.output


@contextlib.contextmanager
def warnings_as_errors():
    """Any warning fails (as the suite's filterwarnings = error does, said where it matters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
