"""FSIM and FSIMc: parity with piq, the published FeatureSIM.m values, conventions, torch."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import piq
from helpers import write_png
from iqa.cli import main
from iqa.errors import OptionError, ShapeError
from iqa.io import read_image
from iqa.metrics.fsim import FSIMcOptions, FSIMOptions, downsample_factor, fsim, fsimc
import helpers

# float64 (NumPy, paths, float64 tensors) against piq 0.8.0 in float64: the same operations
# except for summation order, the layout of the FFT outputs, pooling before the 0-255
# rescaling and the filter bank built once: the measured relative difference is at most
# ~3e-16 (round-off). 1e-10 catches any change of convention, the smallest of which here
# (MATLAB's I/Q coefficients) is ~5e-6.
TOL = 1e-10
# float32 tensors against the float64 value: float32 FFTs, medians and sums; measured
# ≤ 1.5e-7 on these images (against piq in float32: ≤ 1.2e-7). Absolute; values are 0.6-1.
TOL_F32 = 1e-5


def distorted_pair(rng, shape, dtype=np.uint8, sigma=0.08):
    peak = np.iinfo(dtype).max
    ref = rng.integers(0, peak + 1, shape).astype(np.float64)
    # Smooth the reference a little so that it has edges at several scales.
    ref = (ref + np.roll(ref, 1, -2) + np.roll(ref, 1, -3 if len(shape) > 2 else -1)) / 3
    ref = np.rint(ref).astype(dtype)
    dist = np.clip(np.rint(ref + rng.normal(0, sigma * peak, shape)), 0, peak).astype(dtype)
    return ref, dist


def to_tensor(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """H×W, H×W×C or N×H×W×C NumPy → N×C×H×W tensor."""
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1))).to(dtype)


def piq_fsim(ref, dist, data_range, chromatic, **kw):
    """piq's FSIM of NumPy images in float64 (x distorted, y reference, as its MATLAB test)."""
    return piq.fsim(
        to_tensor(dist), to_tensor(ref), data_range=data_range, chromatic=chromatic, reduction="none", **kw
    ).numpy()


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --------------------------------------------------------------------------------------
# Parity with piq
# --------------------------------------------------------------------------------------

CASES = [
    ("uint8 gray 64x80", (64, 80), np.uint8),
    ("uint8 rgb 48x40", (48, 40, 3), np.uint8),
    ("odd 37x53 rgb", (37, 53, 3), np.uint8),
    ("uint16 rgb 33x47", (33, 47, 3), np.uint16),
    ("uint16 gray 31x29", (31, 29), np.uint16),
    ("tiny 2x2 gray", (2, 2), np.uint8),
    ("tiny 3x5 rgb", (3, 5, 3), np.uint8),
    ("pooled by 2, odd 385x391 rgb", (385, 391, 3), np.uint8),  # round(1.504): trailing row/column dropped
]


@pytest.mark.parametrize("name,shape,dtype", CASES, ids=[c[0] for c in CASES])
def test_matches_piq(rng, name, shape, dtype):
    ref, dist = distorted_pair(rng, shape, dtype)
    peak = np.iinfo(dtype).max
    assert rel(fsim(ref, dist), piq_fsim(ref, dist, peak, chromatic=False)[0]) < TOL
    if len(shape) == 3:
        assert rel(fsimc(ref, dist), piq_fsim(ref, dist, peak, chromatic=True)[0]) < TOL


def test_python_rounding_of_the_downsampling_factor_matches_piq(rng):
    # 640 / 256 = 2.5: Python rounds half to even (2), MATLAB's round gives 3.
    assert [downsample_factor(n, 1000) for n in (383, 384, 640, 641, 896)] == [1, 2, 2, 3, 4]
    ref, dist = distorted_pair(rng, (640, 640))
    value = fsim(ref, dist)
    assert rel(value, piq_fsim(ref, dist, 255, chromatic=False)[0]) < TOL
    # The same as scoring the 2×2 block averages (320×320: not downsampled again) ...
    pool = lambda a, f: torch.nn.functional.avg_pool2d(to_tensor(a) / 255, f)
    assert rel(fsim(pool(ref, 2), pool(dist, 2), data_range=1.0), value) < TOL
    # ... and far from FeatureSIM.m's factor 3 (its round(2.5)).
    assert rel(fsim(pool(ref, 3), pool(dist, 3), data_range=1.0), value) > 1e3 * TOL


def test_non_default_options_match_piq(rng):
    opts = {"scales": 3, "orientations": 6, "min_length": 4, "mult": 3, "sigma_f": 0.65, "delta_theta": 1.5, "k": 3.0}
    ref, dist = distorted_pair(rng, (45, 52, 3))
    assert rel(fsimc(ref, dist, **opts), piq_fsim(ref, dist, 255, chromatic=True, **opts)[0]) < TOL
    assert rel(fsim(ref, dist, **opts), piq_fsim(ref, dist, 255, chromatic=False, **opts)[0]) < TOL
    # Every option reaches the kernel.
    base = fsimc(ref, dist)
    for name, value in opts.items():
        assert rel(fsimc(ref, dist, **{name: value}), base) > 1e3 * TOL, name


def test_large_plane_in_orientation_groups_matches_piq(rng):
    # 257×260 with 8 orientations × 4 scales is more than one chunk of responses (2^21) for
    # one plane: its orientations are processed in groups (7 + 1).
    ref, dist = distorted_pair(rng, (257, 260))
    assert rel(fsim(ref, dist, orientations=8), piq_fsim(ref, dist, 255, chromatic=False, orientations=8)[0]) < TOL


def test_bit_depth_and_float_data_range_match_piq(rng):
    ref, dist = distorted_pair(rng, (30, 34, 3), np.uint16)
    r12, d12 = ref >> 4, dist >> 4
    assert rel(fsimc(r12, d12, bit_depth=12), piq_fsim(r12, d12, 4095, chromatic=True)[0]) < TOL
    a, b = ref / 65535.0, dist / 65535.0
    assert rel(fsim(a, b, data_range=1.0), piq_fsim(a, b, 1.0, chromatic=False)[0]) < TOL


def test_16_bit_equals_8_bit_scaled(rng):
    # The 0-255 constants follow the data range: a 16-bit image that is an 8-bit one times
    # 257 scores the same (x·257/65535·255 = x).
    ref, dist = distorted_pair(rng, (36, 41, 3))
    r16, d16 = ref.astype(np.uint16) * 257, dist.astype(np.uint16) * 257
    assert rel(fsimc(r16, d16), fsimc(ref, dist)) < TOL
    assert rel(fsim(r16, d16), fsim(ref, dist)) < TOL


def test_batch_matches_piq_and_one_by_one(rng):
    # Five 128×128 pairs: 10 luma planes, more than one chunk (8 planes) of the
    # phase-congruency stage.
    ref, dist = distorted_pair(rng, (5, 128, 128, 3))
    values = fsimc(ref, dist)
    assert values.shape == (5,)
    np.testing.assert_allclose(values, piq_fsim(ref, dist, 255, chromatic=True), rtol=TOL, atol=0)
    np.testing.assert_allclose(values, [fsimc(ref[i], dist[i]) for i in range(5)], rtol=1e-15, atol=0)
    t = fsimc(to_tensor(ref), to_tensor(dist), data_range=255.0)
    np.testing.assert_allclose(t.numpy(), values, rtol=1e-15, atol=0)


def test_path_inputs(tmp_path, rng):
    ref, dist = distorted_pair(rng, (37, 45, 3), np.uint16)
    pa, pb = write_png(tmp_path / "a.png", ref), write_png(tmp_path / "b.png", dist)
    value = fsimc(pa, pb)
    assert isinstance(value, float)
    assert value == fsimc(ref, dist)


def test_symmetric(rng):
    ref, dist = distorted_pair(rng, (40, 37, 3))
    assert abs(fsimc(ref, dist) - fsimc(dist, ref)) < 1e-15
    assert abs(fsim(ref, dist) - fsim(dist, ref)) < 1e-15


def test_flipped_conventions_fail_the_tolerance(rng):
    ref, dist = distorted_pair(rng, (45, 61, 3))
    value = fsim(ref, dist)
    # BT.601 luma (iqa's color="y", 16-235) instead of YIQ's Y (0-255).
    assert rel(fsim(ref, dist, color="y"), value) > 1e3 * TOL
    # The constants taken on [0, 1] data instead of 0-255 (T2 = 160 against gradients ≤ 1).
    assert rel(fsim(ref / 255.0, dist / 255.0, data_range=255.0), value) > 1e3 * TOL
    # The chrominance term.
    assert rel(fsimc(ref, dist), value) > 1e3 * TOL
    # The pooling (f = 2 from 384 on) drops a trailing odd row and column: the image cut to
    # even sides scores the same, blocks that start one pixel later do not.
    ref2, dist2 = distorted_pair(rng, (385, 387))
    assert rel(fsim(ref2[:384, :386], dist2[:384, :386]), fsim(ref2, dist2)) < TOL
    assert rel(fsim(ref2[1:, 1:], dist2[1:, 1:]), fsim(ref2, dist2)) > 1e3 * TOL


def test_color_y_and_crop_are_piq_on_the_converted_images(rng):
    from iqa.color import rgb_to_y

    ref, dist = distorted_pair(rng, (40, 43, 3))
    k = 3
    y = lambda a: rgb_to_y(a[None, k:-k, k:-k].astype(np.float64), 255.0, "numpy")[0]
    assert rel(fsim(ref, dist, color="y", crop_border=k), piq_fsim(y(ref), y(dist), 255.0, chromatic=False)[0]) < TOL
    cropped = piq_fsim(ref[k:-k, k:-k], dist[k:-k, k:-k], 255, chromatic=True)[0]
    assert rel(fsimc(ref, dist, crop_border=k), cropped) < TOL


# --------------------------------------------------------------------------------------
# Published values: FeatureSIM.m (Zhang et al.) on piq's test images
# --------------------------------------------------------------------------------------

# piq's test images (tests/helpers.py: PIQ_ASSETS), optional.
def piq_asset(name: str) -> Path:
    return helpers.piq_asset(name, "FeatureSIM.m values")


gray_gif = helpers.gray_gif



def test_published_feature_sim_m_values():
    # piq 0.8.0 tests/test_fsim.py (test_fsim_simmular_to_matlab_implementation): "Baseline
    # values are from original MATLAB code", Zhang's FeatureSIM.m
    # (https://www4.comp.polyu.edu.hk/~cslzhang/IQA/FSIM/FSIM.htm). Both pairs are
    # downsampled by 2 (min side 512 and 384).
    ref, dist = gray_gif(piq_asset("goldhill.gif")), gray_gif(piq_asset("goldhill_jpeg.gif"))
    assert ref.shape == (512, 512)
    # FSIM: half a unit of the 5th printed decimal (iqa: 0.8969134).
    assert abs(fsim(ref, dist) - 0.89691) <= 5e-6
    ref, dist = read_image(piq_asset("I01.BMP")), read_image(piq_asset("i01_01_5.bmp"))
    assert ref.shape == (384, 512, 3)
    assert abs(fsim(ref, dist) - 0.93674) <= 5e-6  # iqa: 0.9367393
    # FSIMc: piq's stated tolerance, atol 1e-4 (iqa and piq: 0.9258971, 2.7e-5 above). Two
    # conventions of FeatureSIM.m that piq does not follow account for it: real((S_I·S_Q)^λ)
    # (a complex power where the product is negative) instead of |S_I·S_Q|^λ, and its I/Q
    # coefficients rounded to 3 digits (0.596, -0.274, ...); with both, 0.9258725.
    assert abs(fsimc(ref, dist) - 0.92587) <= 1e-4
    # The same through paths (iqa's reader refuses GIF since its format allowlist, so the
    # BMP pair is read from its paths).
    assert fsim(piq_asset("I01.BMP"), piq_asset("i01_01_5.bmp")) == fsim(ref, dist)


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("peak", [1.0, 255.0, 65535.0])
def test_torch_float32_within_tolerance(rng, peak):
    ref, dist = distorted_pair(rng, (2, 40, 37, 3))
    expected = fsimc(ref, dist)
    a, b = to_tensor(ref, torch.float32) * (peak / 255), to_tensor(dist, torch.float32) * (peak / 255)
    got = fsimc(a, b, data_range=peak)
    assert got.dtype == torch.float32 and got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL_F32)
    theirs = piq.fsim(b, a, data_range=peak, chromatic=True, reduction="none").numpy()
    np.testing.assert_allclose(got.numpy(), theirs, rtol=0, atol=TOL_F32)


def test_torch_uint8_and_half_tensors(rng):
    ref, dist = distorted_pair(rng, (2, 20, 21, 3))
    got = fsim(to_tensor(ref, torch.uint8), to_tensor(dist, torch.uint8))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), fsim(ref, dist), rtol=0, atol=TOL_F32)
    # float16 is computed in float32 (CPU FFTs need it) and returned as float16.
    half = fsimc(to_tensor(ref, torch.float16) / 255, to_tensor(dist, torch.float16) / 255, data_range=1.0)
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.float().numpy(), fsimc(ref, dist), rtol=0, atol=2e-3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_path_gives_the_same_values(rng, dtype):
    # With a gradient to record, the kernel runs the same operations without reusing
    # buffers: the very same numbers.
    ref, dist = distorted_pair(rng, (2, 24, 22, 3))
    a, b = to_tensor(ref, dtype) / 255, (to_tensor(dist, dtype) / 255).requires_grad_(True)
    value = fsimc(a, b, data_range=1.0)
    assert value.requires_grad
    value.sum().backward()
    assert torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    with torch.no_grad():
        plain = fsimc(a, b, data_range=1.0)
    assert torch.equal(value.detach(), plain)


def test_gradient_is_correct():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 7, 9, generator=g, dtype=torch.float64)
    b = (a + 0.2 * torch.rand(1, 3, 7, 9, generator=g, dtype=torch.float64)).clamp(0, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: fsimc(a, y, data_range=1.0), (b,), fast_mode=True)
    gray = a[:, :1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fsim(x, b[:, :1].detach(), data_range=1.0), (gray,), fast_mode=True)


def test_gradient_matches_piq(rng):
    # The same derivative as piq's autograd through its operations (float64; measured
    # ~1.5e-15 relative to the largest component: round-off).
    ref, dist = distorted_pair(rng, (2, 21, 26, 3))
    a = to_tensor(ref) / 255
    ours, theirs = (to_tensor(dist) / 255).requires_grad_(True), (to_tensor(dist) / 255).requires_grad_(True)
    fsimc(a, ours, data_range=1.0).sum().backward()
    piq.fsim(theirs, a, data_range=1.0, chromatic=True, reduction="sum").backward()
    scale = theirs.grad.abs().max()
    assert scale > 0 and (ours.grad - theirs.grad).abs().max() <= 1e-12 * scale


def test_gradient_is_finite_on_flat_identical_images():
    # Flat images have zero filter responses and gradients, where √ has an infinite
    # derivative (piq's gradient is NaN there): the kernel takes it as 0.
    for level in (0.0, 0.5):
        flat = torch.full((1, 3, 24, 24), level, dtype=torch.float64)
        x = flat.clone().requires_grad_(True)
        value = fsimc(flat, x, data_range=1.0)
        value.backward()
        assert value.item() == 1.0 and torch.isfinite(x.grad).all()


def test_cached_filter_bank_serves_inference_mode_then_gradients(rng):
    # The filter bank is cached per size: one built under inference_mode must still serve a
    # later differentiable call.
    ref, dist = distorted_pair(rng, (1, 19, 23, 3))
    a, b = to_tensor(ref) / 255, to_tensor(dist) / 255
    with torch.inference_mode():
        first = fsimc(a, b, data_range=1.0)
    x = b.clone().requires_grad_(True)
    value = fsimc(a, x, data_range=1.0)
    value.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(first, value.detach())


# --------------------------------------------------------------------------------------
# Identity, special images
# --------------------------------------------------------------------------------------


def test_identical_images_give_exactly_one(rng):
    ref, _ = distorted_pair(rng, (31, 40, 3))
    assert fsim(ref, ref) == 1.0
    assert fsimc(ref, ref) == 1.0
    gray, _ = distorted_pair(rng, (3, 30, 33))
    np.testing.assert_array_equal(fsim(gray[..., None], gray[..., None]), np.ones(3))


@pytest.mark.parametrize("level", [0, 255])
def test_flat_identical_images_give_one(level):
    # piq's special cases: all zeros and all ones give 1.
    a = np.full((28, 30, 3), level, np.uint8)
    assert fsim(a, a) == 1.0 and fsimc(a, a) == 1.0


def test_values_are_in_the_registry_range(rng):
    ref, dist = distorted_pair(rng, (4, 33, 35, 3), sigma=0.4)
    for values in (fsim(ref, dist), fsimc(ref, dist), fsimc(ref, 255 - ref)):
        assert np.all((values >= 0) & (values <= 1))


# --------------------------------------------------------------------------------------
# Errors and options
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 5), (7, 1, 3)])
def test_too_small_is_an_error(shape):
    a = np.zeros(shape, np.uint8)
    with pytest.raises(ShapeError, match="at least 2×2"):
        fsim(a, a)


def test_crop_leaving_too_little_names_crop_border():
    a = np.zeros((5, 9, 3), np.uint8)
    with pytest.raises(ShapeError, match="crop_border"):
        fsimc(a, a, crop_border=2)


@pytest.mark.parametrize("channels", [2, 4])
def test_kept_alpha_is_an_error(rng, channels):
    a = rng.integers(0, 256, (16, 16, channels), dtype=np.uint8)
    with pytest.raises(ShapeError, match="alpha='drop'"):
        fsim(a, a, alpha="keep")


def test_chromatic_needs_rgb(rng):
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pytest.raises(ShapeError, match="FSIMc .* RGB"):
        fsimc(gray, gray)
    with pytest.raises(ShapeError, match="FSIMc .* RGB"):
        fsim(gray, gray, chromatic=True)
    with pytest.raises(ShapeError, match="FSIMc .* RGB"):
        fsimc(rgb, rgb, color="y")
    assert fsimc(gray, gray, chromatic=False) == 1.0


@pytest.mark.parametrize(
    "kw",
    [
        {"scales": 0}, {"scales": 2.5}, {"orientations": 0}, {"orientations": True}, {"min_length": 1},
        {"mult": 0}, {"sigma_f": 0}, {"sigma_f": 1.0}, {"sigma_f": math.nan}, {"delta_theta": 0},
        {"delta_theta": math.inf}, {"k": -1}, {"k": "2"}, {"chromatic": "yes"},
    ],
    ids=str,
)
def test_invalid_options(kw):
    name = next(iter(kw))
    with pytest.raises(OptionError, match=name):
        FSIMOptions(**kw)
    with pytest.raises(OptionError, match=name):
        fsimc(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), **kw)


def test_fsimc_is_fsim_with_chromatic(rng):
    assert issubclass(FSIMcOptions, FSIMOptions)
    assert FSIMOptions().chromatic is False and FSIMcOptions().chromatic is True
    assert FSIMOptions.metric == "fsim" and FSIMcOptions.metric == "fsimc"
    ref, dist = distorted_pair(rng, (30, 31, 3))
    assert fsimc(ref, dist) == fsim(ref, dist, chromatic=True)
    assert fsimc(ref, dist, chromatic=False) == fsim(ref, dist)


def test_options_record_the_constants():
    prov = FSIMcOptions(scales=3).provenance()
    assert prov["chromatic"] is True and prov["scales"] == 3 and prov["k"] == 2.0
    assert (prov["t1"], prov["t2"], prov["t3"], prov["t4"], prov["lambda"]) == (0.85, 160.0, 200.0, 200.0, 0.03)
    assert "round" in prov["downsample"] and "0.299" in prov["luma"]
    json.dumps(prov)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


@pytest.fixture
def pair_files(tmp_path, rng):
    ref, dist = distorted_pair(rng, (40, 48, 3))
    (tmp_path / "r").mkdir()
    (tmp_path / "d").mkdir()
    return write_png(tmp_path / "r" / "a.png", ref), write_png(tmp_path / "d" / "a.png", dist)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_commands_print_the_library_value(pair_files):
    result = run("fsim", *pair_files)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{fsim(*pair_files)!r}\n"
    result = run("fsimc", *pair_files, "--format", "json", "--scales", "3")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["value"] == fsimc(*pair_files, scales=3)
    assert doc["settings"]["chromatic"] is True and doc["settings"]["t2"] == 160.0
    result = run("fsim", *pair_files, "--chromatic", "--sigma-f", "0.6")
    assert result.stdout == f"{fsim(*pair_files, chromatic=True, sigma_f=0.6)!r}\n"
    result = run("fsimc", *pair_files, "--no-chromatic")  # FSIMc's default turned off: FSIM
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{fsim(*pair_files)!r}\n"


def test_command_option_errors_name_the_flag(pair_files):
    result = run("fsim", *pair_files, "--sigma-f", "2")
    assert result.exit_code == 2 and "--sigma-f" in result.stderr
    result = run("score", pair_files[0].parent, pair_files[1].parent, "-m", "fsim", "--fsim-sigma-f", "2")
    assert result.exit_code == 2 and "--fsim-sigma-f" in result.stderr


def test_iqa_score_columns_are_the_library_values(pair_files):
    ref, dist = pair_files
    result = run("score", ref.parent, dist.parent, "-m", "fsim,fsimc", "--crop-border", "2", "--fsimc-k", "3")
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header == "reference,distorted,fsim,fsimc,error"
    assert row.split(",")[2:4] == [repr(fsim(ref, dist, crop_border=2)), repr(fsimc(ref, dist, crop_border=2, k=3.0))]
