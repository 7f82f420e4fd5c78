"""The image layer: decoding matrix, alpha policy, pair validation, conversions, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import write_png
from PIL import Image

import iqa
from iqa.errors import IQAError, ImageLoadError, OptionError, RangeError, ShapeError
from iqa.io import (
    iter_image_files,
    prepare_image,
    prepare_pair,
    read_image,
    resolve_data_range,
    to_rgb,
    to_uint8,
)

# --------------------------------------------------------------------------------------
# Decoding: every format keeps its stored dtype and pixels
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip_keeps_depth_and_channels(tmp_path, rng, channels, dtype):
    shape = (13, 17) if channels == 1 else (13, 17, channels)
    arr = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    out = read_image(write_png(tmp_path / "x.png", arr))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, arr)


def test_png_written_by_pillow_and_opencv(tmp_path, rng):
    rgb16 = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "cv16.png"), rgb16[:, :, ::-1])  # OpenCV writes BGR
    np.testing.assert_array_equal(read_image(tmp_path / "cv16.png"), rgb16)
    rgba16 = rng.integers(0, 65536, (9, 11, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "cv16a.png"), rgba16[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(read_image(tmp_path / "cv16a.png"), rgba16)
    gray16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    Image.fromarray(gray16).save(tmp_path / "pil16.png")
    out = read_image(tmp_path / "pil16.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, gray16)


def test_palette_png_with_and_without_transparency(tmp_path, rng):
    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    expected = np.asarray(pal.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), expected)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    out = read_image(tmp_path / "pt.png")
    assert out.shape == (10, 12, 4)
    np.testing.assert_array_equal(out[..., :3], expected)


@pytest.mark.parametrize("ext", ["bmp", "webp", "tif"])
def test_lossless_8bit_formats(tmp_path, rng, ext):
    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    path = tmp_path / f"x.{ext}"
    Image.fromarray(rgb).save(path, **({"lossless": True} if ext == "webp" else {}))
    np.testing.assert_array_equal(read_image(path), rgb)


def test_jpeg_decodes_like_pillow(tmp_path, rng):
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.jpg", quality=80)
    with Image.open(tmp_path / "x.jpg") as im:
        expected = np.asarray(im)
    np.testing.assert_array_equal(read_image(tmp_path / "x.jpg"), expected)


def test_tiff_16bit_and_float(tmp_path, rng):
    rgb16 = rng.integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.tif"), rgb16[:, :, ::-1])
    out = read_image(tmp_path / "rgb16.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rgb16)
    gray16 = rng.integers(0, 65536, (8, 10), dtype=np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "g16.tif"), gray16)
    f32 = rng.random((8, 10), dtype=np.float32)
    Image.fromarray(f32).save(tmp_path / "f.tif")
    out = read_image(tmp_path / "f.tif")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, f32)
    f32rgb = rng.random((8, 10, 3), dtype=np.float32)
    cv2.imwrite(str(tmp_path / "frgb.tif"), f32rgb[:, :, ::-1])
    np.testing.assert_array_equal(read_image(tmp_path / "frgb.tif"), f32rgb)


def test_exif_orientation_is_not_applied(tmp_path, rng):
    rgb = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° CW to display"
    Image.fromarray(rgb).save(tmp_path / "o.jpg", exif=exif, quality=95)
    Image.fromarray(rgb).save(tmp_path / "o.webp", exif=exif, lossless=True)
    assert read_image(tmp_path / "o.jpg").shape == (8, 16, 3)  # as stored, not rotated
    np.testing.assert_array_equal(read_image(tmp_path / "o.webp"), rgb)


def test_cmyk_is_refused(tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "CMYK").save(tmp_path / "c.jpg")
    with pytest.raises(ImageLoadError, match=r"c\.jpg: CMYK images are not supported"):
        read_image(tmp_path / "c.jpg")


# --------------------------------------------------------------------------------------
# Bad files: one clear error naming the file
# --------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match=r"nope\.png: no such file"):
        read_image(tmp_path / "nope.png")


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"e\.png: empty file"):
        read_image(tmp_path / "e.png")


def test_not_an_image(tmp_path):
    (tmp_path / "t.png").write_text("this is text, not pixels")
    with pytest.raises(ImageLoadError, match=r"t\.png: not an image file in a supported format \(PNG, JPEG, TIFF, BMP, WebP, PNM"):
        read_image(tmp_path / "t.png")
    (tmp_path / "notes.txt").write_text("this is text, not pixels")
    with pytest.raises(ImageLoadError, match=r"notes\.txt: not an image file"):
        read_image(tmp_path / "notes.txt")


def test_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="is a directory"):
        read_image(tmp_path)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_truncated_png(tmp_path, rng, dtype, capfd):
    arr = rng.integers(0, np.iinfo(dtype).max + 1, (64, 64, 3), dtype=dtype)
    data = write_png(tmp_path / "full.png", arr).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.png: cannot decode.*truncated"):
        read_image(tmp_path / "cut.png")
    assert capfd.readouterr().err == ""  # the decoder's own warnings are not printed


def test_truncated_jpeg(tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "f.jpg")
    data = (tmp_path / "f.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_decompression_bomb(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match=r"bomb\.png: refused as a possible decompression bomb"):
        read_image(tmp_path / "bomb.png")


def test_load_errors_are_oserrors_and_iqa_errors(tmp_path):
    with pytest.raises(OSError):
        read_image(tmp_path / "missing.png")
    with pytest.raises(IQAError):
        read_image(tmp_path / "missing.png")


# --------------------------------------------------------------------------------------
# Data range
# --------------------------------------------------------------------------------------


def test_data_range_rules():
    assert resolve_data_range(np.uint8) == 255
    assert resolve_data_range(np.dtype("uint16")) == 65535
    assert resolve_data_range(np.uint16, bit_depth=10) == 1023
    assert resolve_data_range(np.uint16, bit_depth=12) == 4095
    assert resolve_data_range(torch.uint8) == 255
    assert resolve_data_range(np.float32, data_range=1.0) == 1.0
    with pytest.raises(RangeError, match="float input needs an explicit data_range"):
        resolve_data_range(np.float64)
    with pytest.raises(RangeError, match="not both"):
        resolve_data_range(np.uint16, data_range=1023, bit_depth=10)
    with pytest.raises(RangeError, match="bit_depth must be"):
        resolve_data_range(np.uint8, bit_depth=10)
    with pytest.raises(RangeError, match="positive"):
        resolve_data_range(np.float32, data_range=0)
    with pytest.raises(RangeError, match="unsupported sample type int32"):
        resolve_data_range(np.int32)


def test_float_without_data_range_is_an_error():
    a = np.zeros((8, 8), np.float64)
    with pytest.raises(RangeError, match="data_range=1.0"):
        prepare_pair(a, a)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_errors(bad):
    a = np.zeros((8, 8), np.float32)
    b = a.copy()
    b[3, 3] = bad
    with pytest.raises(RangeError, match="distorted array: contains NaN or infinite"):
        prepare_pair(a, b, data_range=1.0)
    with pytest.raises(RangeError, match="NaN or infinite"):
        prepare_pair(torch.from_numpy(a)[None], torch.from_numpy(b)[None], data_range=1.0)


def test_bit_depth_mismatch_between_files(tmp_path, rng):
    a = write_png(tmp_path / "a.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    b = write_png(tmp_path / "b.png", rng.integers(0, 65536, (8, 8), dtype=np.uint16))
    with pytest.raises(RangeError, match=r"b\.png: sample type uint16 does not match reference .*a\.png \(uint8\)"):
        prepare_pair(a, b)


# --------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------


def test_size_mismatch_names_both_files(tmp_path, rng):
    a = write_png(tmp_path / "ref.png", rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))
    b = write_png(tmp_path / "0042.png", rng.integers(0, 256, (512, 511, 3), dtype=np.uint8))
    with pytest.raises(ShapeError, match=r"0042\.png: size 511×512×3 does not match reference .*ref\.png 512×512×3"):
        prepare_pair(a, b)


def test_gray_against_rgb_is_an_error(rng):
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pytest.raises(ShapeError, match="gray is not compared with RGB"):
        prepare_pair(gray, rgb)


def test_numpy_pair_becomes_float64_batch(rng):
    a = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    pair = prepare_pair(a, a)
    assert pair.reference.dtype == np.float64
    assert pair.reference.shape == (1, 10, 12, 3)
    assert not pair.batched and pair.backend == "numpy" and pair.data_range == 255
    np.testing.assert_array_equal(pair.reference[0], a)
    gray = prepare_pair(a[..., 0], a[..., 0])
    assert gray.reference.shape == (1, 10, 12, 1)
    batch = prepare_pair(np.stack([a, a]), np.stack([a, a]))
    assert batch.batched and batch.reference.shape == (2, 10, 12, 3)


def test_path_and_array_mix(tmp_path, rng):
    a = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    path = write_png(tmp_path / "a.png", a)
    pair = prepare_pair(path, a)
    np.testing.assert_array_equal(pair.reference, pair.distorted)
    assert pair.names == (str(path), "distorted array")


def test_torch_pair_layout_and_dtype(rng):
    a = torch.from_numpy(rng.integers(0, 256, (3, 10, 12), dtype=np.uint8))
    pair = prepare_pair(a, a)
    assert pair.backend == "torch" and pair.reference.dtype == torch.float32
    assert pair.reference.shape == (1, 3, 10, 12)
    f64 = prepare_pair(a.double(), a.double(), data_range=255)
    assert f64.reference.dtype == torch.float64


def test_torch_and_numpy_cannot_mix(rng):
    a = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    with pytest.raises(TypeError, match="cannot mix"):
        prepare_pair(a, torch.from_numpy(a).permute(2, 0, 1))


def test_layout_errors_explain_the_convention(rng):
    with pytest.raises(ShapeError, match="channels-last"):
        prepare_pair(np.zeros((3, 8, 8, 9), np.uint8), np.zeros((3, 8, 8, 9), np.uint8))
    with pytest.raises(ShapeError, match="channels-first"):
        prepare_pair(torch.zeros(8, 8, 3, dtype=torch.uint8), torch.zeros(8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="C×H×W"):
        prepare_pair(torch.zeros(8, 8, dtype=torch.uint8), torch.zeros(8, 8, dtype=torch.uint8))


def test_unsupported_input_type():
    with pytest.raises(TypeError, match="expected a path, a NumPy array or a torch tensor"):
        prepare_pair([[1, 2]], [[1, 2]])


# --------------------------------------------------------------------------------------
# Alpha policy
# --------------------------------------------------------------------------------------


def _rgba(rng, alpha_value=255, shape=(8, 9)):
    rgba = rng.integers(0, 256, (*shape, 4), dtype=np.uint8)
    rgba[..., 3] = alpha_value
    return rgba


def test_opaque_alpha_is_dropped_and_noted(rng):
    a, b = _rgba(rng), _rgba(rng)
    pair = prepare_pair(a, b)
    assert pair.channels == 3
    assert pair.notes == ("alpha channel fully opaque: dropped",)


def test_transparency_under_default_is_an_error_naming_the_option(tmp_path, rng):
    a = _rgba(rng)
    b = _rgba(rng)
    b[0, 0, 3] = 10
    path = write_png(tmp_path / "t.png", b)
    with pytest.raises(ShapeError, match=r"t\.png: has transparent pixels; pass alpha='drop' .* or alpha='keep' ") as info:
        prepare_pair(a, path)
    # The command line names the same options as flags.
    from iqa.cli.options import cli_namer

    assert "pass --alpha drop " in info.value.render(cli_namer()) and "--alpha keep " in info.value.render(cli_namer())


def test_alpha_drop_and_keep(rng):
    a = _rgba(rng, alpha_value=7)
    assert prepare_pair(a, a, alpha="drop").channels == 3
    assert prepare_pair(a, a, alpha="keep").channels == 4
    with pytest.raises(OptionError, match="alpha must be one of error, drop, keep; got 'ignore'"):
        prepare_pair(a, a, alpha="ignore")


def test_gray_alpha_and_16bit_alpha(tmp_path, rng):
    la = rng.integers(0, 65536, (8, 8, 2), dtype=np.uint16)
    la[..., 1] = 65535
    path = write_png(tmp_path / "la16.png", la)
    pair = prepare_pair(path, path)
    assert pair.channels == 1 and pair.data_range == 65535
    np.testing.assert_array_equal(pair.reference[0, :, :, 0], la[..., 0])


def test_alpha_in_torch(rng):
    t = torch.from_numpy(_rgba(rng)).permute(2, 0, 1)
    assert prepare_pair(t, t).channels == 3


def test_opaque_alpha_against_no_alpha(rng):
    a = _rgba(rng)
    pair = prepare_pair(a, a[..., :3].copy())
    assert pair.channels == 3


# --------------------------------------------------------------------------------------
# Single images, batches and helpers
# --------------------------------------------------------------------------------------


def test_prepare_image(tmp_path, rng):
    a = rng.integers(0, 4096, (8, 9, 3), dtype=np.uint16)
    prep = prepare_image(write_png(tmp_path / "a.png", a), bit_depth=12)
    assert prep.data_range == 4095 and prep.size == (8, 9) and prep.channels == 3
    assert prep.source_dtype == "uint16"


def test_to_rgb_and_to_uint8(rng):
    g = rng.integers(0, 256, (1, 4, 4, 1), dtype=np.uint8)
    assert to_rgb(g, "numpy").shape == (1, 4, 4, 3)
    t = torch.zeros(1, 1, 4, 4)
    assert to_rgb(t, "torch").shape == (1, 3, 4, 4)
    with pytest.raises(ShapeError):
        to_rgb(np.zeros((1, 4, 4, 4)), "numpy")
    x16 = (np.arange(256, dtype=np.uint16) * 257)
    np.testing.assert_array_equal(to_uint8(x16, 65535.0), np.arange(256))


def test_iter_image_files(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ["z.PNG", "a.jpg", "b/c.TIFF", "notes.txt", "b/d.webp"]:
        (tmp_path / name).write_bytes(b"x")
    files = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert files == ["a.jpg", "b/c.TIFF", "b/d.webp", "z.PNG"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_iter_image_files_refuses_symlink_loops(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    with pytest.raises(ImageLoadError, match="symbolic link loop"):
        iter_image_files(tmp_path)


def test_result_shapes(rng):
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert isinstance(iqa.psnr(a, a // 2), float)
    out = iqa.psnr(np.stack([a, a]), np.stack([a // 2, a // 3]))
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    t = torch.from_numpy(a).permute(2, 0, 1)
    assert iqa.psnr(t, t // 2).shape == ()
    assert iqa.psnr(t[None].expand(3, -1, -1, -1), (t // 2)[None].expand(3, -1, -1, -1)).shape == (3,)


def test_samples_are_readable(samples_dir: Path):
    refs = iter_image_files(samples_dir / "reference")
    assert len(refs) >= 3
    for p in refs:
        img = read_image(p)
        assert min(img.shape[:2]) >= 256  # every metric applies, MS-SSIM included


def test_huge_finite_values_are_not_mistaken_for_inf():
    big = np.full((8, 8), np.finfo(np.float32).max, np.float32)  # the sum overflows float32
    assert prepare_pair(big, big, data_range=1e10, check_range=False).data_range > 0
    t = torch.full((1, 8, 8), torch.finfo(torch.float16).max, dtype=torch.float16)
    assert prepare_pair(t, t, data_range=1.0, check_range=False).backend == "torch"
    # The range check's min/max does not overflow either: out of range, but finite.
    with pytest.warns(iqa.RangeWarning, match="values from 6.55e\\+04 to 6.55e\\+04"):
        assert prepare_pair(t, t, data_range=1.0).backend == "torch"


def test_bit_depth_that_does_not_fit_the_data_is_an_error(tmp_path, rng):
    full = rng.integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    full[0, 0, 0] = 65535
    with pytest.raises(RangeError, match=r"values up to 65535, above the data range 1023"):
        prepare_pair(full, full, bit_depth=10)
    ten_bit = (full >> 6).astype(np.uint16)
    assert prepare_pair(ten_bit, ten_bit, bit_depth=10).data_range == 1023
    with pytest.raises(RangeError, match="above the data range 100"):
        prepare_image(np.full((4, 4), 200, np.uint8), data_range=100)


def test_truncated_16bit_png_prints_nothing_even_from_libpng(tmp_path, rng):
    import subprocess
    import sys

    arr = rng.integers(0, 65536, (64, 64, 3), dtype=np.uint16)
    data = write_png(tmp_path / "full.png", arr).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    code = (
        "from iqa.io import read_image\n"
        "try:\n    read_image(r'%s')\nexcept OSError as e:\n    print(e)\n" % (tmp_path / "cut.png")
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr == ""  # C libraries write straight to the stderr file descriptor
    assert "cut.png: cannot decode" in proc.stdout and "truncated" in proc.stdout


def test_truncated_tiff_is_quiet_and_says_truncated(tmp_path, rng, capfd):
    arr = rng.integers(0, 65536, (64, 64, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "t.tif"), arr)
    data = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.tif: cannot decode.*truncated or corrupt"):
        read_image(tmp_path / "cut.tif")
    assert capfd.readouterr().err == ""


def test_decompression_bomb_check_is_thread_safe(tmp_path, monkeypatch):
    import threading
    import warnings

    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "bomb.png")  # warn-only zone
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "ok.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    filters_before = list(warnings.filters)
    decoded_bombs = []

    def work(i):
        for _ in range(40):
            try:
                read_image(tmp_path / ("bomb.png" if i % 2 else "ok.png"))
                if i % 2:
                    decoded_bombs.append(i)
            except ImageLoadError:
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert decoded_bombs == []
    assert list(warnings.filters) == filters_before
