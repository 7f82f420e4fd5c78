"""SSIM: parity with scikit-image and MATLAB ``ssim.m``, the conventions, torch, properties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.metrics import structural_similarity

from helpers import write_png
from iqa.errors import OptionError, RangeError, RenamedOptionWarning, ShapeError
from iqa.io import prepare_pair, read_image
from iqa.metrics.ms_ssim import ms_ssim
from iqa.metrics.ssim import SSIMOptions, check_sigma, check_win_size, compute_ssim, gaussian_window, ssim
import helpers

# piq's test images (tests/helpers.py: PIQ_ASSETS), optional.
def piq_asset(name: str) -> Path:
    return helpers.piq_asset(name, "ssim.m values")


gray_gif = helpers.gray_gif

# NumPy and path inputs: the acceptance bound is 1e-6 against float64 scikit-image. Both are
# float64 with the same window and valid region; they differ by round-off (~1e-15), so a
# tighter 1e-9 is used here to catch any change in the formula early.
TOL = 1e-9
# float32 tensors: the acceptance bound (moments filtered in float32).
TOL_F32 = 5e-4


def skimage_ssim(a, b, data_range, full=False):
    """scikit-image with the settings that reproduce Wang et al. (2004)."""
    return structural_similarity(
        a, b, data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=-1 if a.ndim == 3 else None, full=full,
    )


def distorted_pair(rng, shape, dtype=np.uint8, sigma=0.1):
    peak = np.iinfo(dtype).max
    ref = rng.integers(0, peak + 1, shape).astype(np.float64)
    # Smooth the reference a little so the SSIM is not close to 0 everywhere.
    ref = (ref + np.roll(ref, 1, 0) + np.roll(ref, 1, 1) + np.roll(ref, (1, 1), (0, 1))) / 4
    ref = np.rint(ref).astype(dtype)
    dist = np.clip(np.rint(ref + rng.normal(0, sigma * peak, shape)), 0, peak).astype(dtype)
    return ref, dist


def to_tensor(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, -3))).to(dtype)


CASES = [
    ("uint8 gray", (64, 80), np.uint8),
    ("uint8 rgb", (48, 40, 3), np.uint8),
    ("uint16 gray", (33, 47), np.uint16),
    ("uint16 rgb", (31, 29, 3), np.uint16),
    ("odd 101x67", (101, 67, 3), np.uint8),
    ("tiny 11x11 gray", (11, 11), np.uint8),
    ("tiny 11x11 rgb", (11, 11, 3), np.uint16),
    ("12x11", (12, 11), np.uint8),
    ("large 1000x872", (1000, 872, 3), np.uint8),
]


@pytest.mark.parametrize("name,shape,dtype", CASES, ids=[c[0] for c in CASES])
def test_matches_skimage(rng, name, shape, dtype):
    ref, dist = distorted_pair(rng, shape, dtype)
    expected = skimage_ssim(ref, dist, np.iinfo(dtype).max)
    assert abs(ssim(ref, dist) - expected) < TOL


def test_float_input_matches_skimage(rng):
    ref, dist = distorted_pair(rng, (40, 41, 3))
    a, b = ref / 255.0, dist / 255.0
    assert abs(ssim(a, b, data_range=1.0) - skimage_ssim(a, b, 1.0)) < TOL


@pytest.mark.parametrize(
    "a,b",
    [
        (np.full((20, 24), 90, np.uint8), np.full((20, 24), 90, np.uint8)),
        (np.full((20, 24), 90, np.uint8), np.full((20, 24), 140, np.uint8)),
        (np.zeros((20, 24, 3), np.uint8), np.full((20, 24, 3), 255, np.uint8)),
        (np.full((20, 24), 7, np.uint8), np.arange(480, dtype=np.uint8).reshape(20, 24)),
    ],
    ids=["flat equal", "flat different", "black vs white", "flat vs ramp"],
)
def test_flat_images_match_skimage(a, b):
    assert abs(ssim(a, b) - skimage_ssim(a, b, 255)) < TOL


def test_flat_different_by_formula():
    # Both flat: σ = 0, so cs = C2/C2 = 1 and SSIM = (2μxμy + C1) / (μx² + μy² + C1).
    a, b = np.full((15, 15), 90, np.uint8), np.full((15, 15), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert abs(ssim(a, b) - (2 * 90 * 140 + c1) / (90**2 + 140**2 + c1)) < 1e-12


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_path_inputs_match_skimage(tmp_path, rng, dtype, channels):
    shape = (37, 45) if channels == 1 else (37, 45, 3)
    ref, dist = distorted_pair(rng, shape, dtype)
    pa, pb = write_png(tmp_path / "a.png", ref), write_png(tmp_path / "b.png", dist)
    value = ssim(pa, pb)
    assert isinstance(value, float)
    assert abs(value - skimage_ssim(ref, dist, np.iinfo(dtype).max)) < TOL


def test_full_map_matches_skimage_valid_region(rng):
    ref, dist = distorted_pair(rng, (30, 35, 3))
    value, smap = ssim(ref, dist, return_map=True)
    expected, sk_map = skimage_ssim(ref, dist, 255, full=True)
    assert smap.shape == (20, 25, 3)
    np.testing.assert_allclose(smap, sk_map[5:-5, 5:-5], rtol=0, atol=1e-12)
    assert abs(value - expected) < TOL
    assert abs(smap.mean() - value) < 1e-12


def test_full_map_batch_and_torch_layouts(rng):
    ref, dist = distorted_pair(rng, (2, 30, 35, 3))
    values, maps = ssim(ref, dist, return_map=True)
    assert values.shape == (2,) and maps.shape == (2, 20, 25, 3)
    tv, tmap = ssim(to_tensor(ref, torch.float64), to_tensor(dist, torch.float64), data_range=255.0, return_map=True)
    assert tmap.shape == (2, 3, 20, 25)
    np.testing.assert_allclose(tmap.permute(0, 2, 3, 1).numpy(), maps, atol=1e-12)


def test_batch_gives_one_value_per_image(rng):
    ref, dist = distorted_pair(rng, (3, 24, 26, 3))
    values = ssim(ref, dist)
    assert values.shape == (3,)
    for i in range(3):
        assert abs(values[i] - skimage_ssim(ref[i], dist[i], 255)) < TOL


def test_window_options_match_skimage(rng):
    ref, dist = distorted_pair(rng, (40, 40))
    # skimage's Gaussian has truncate=3.5: radius int(3.5·σ + 0.5), so σ = 1 gives 9 taps
    # (and σ = 1.5 the usual 11).
    expected = structural_similarity(
        ref, dist, data_range=255, gaussian_weights=True, sigma=1.0, use_sample_covariance=False
    )
    assert abs(ssim(ref, dist, win_size=9, sigma=1.0) - expected) < TOL
    assert abs(ssim(ref, dist, win_size=7, sigma=1.0) - expected) > 1e-4  # the taps matter


def test_gaussian_window():
    g = gaussian_window(11, 1.5)
    x = np.arange(-5, 6)
    expected = np.exp(-(x**2) / 4.5)
    np.testing.assert_allclose(g, expected / expected.sum(), rtol=1e-15)
    assert abs(g.sum() - 1) < 1e-15


# --------------------------------------------------------------------------------------
# Published MATLAB values
# --------------------------------------------------------------------------------------


def test_goldhill_matches_matlab_ssim_m():
    # piq 0.8.0 tests/test_ssim.py (test_ssim_simmular_to_matlab_implementation): Wang's
    # ssim.m (http://www.cns.nyu.edu/~lcv/ssim/ssim.m) gives 0.8202 for goldhill_jpeg vs
    # goldhill. ssim.m downsamples by f = max(1, round(min(H, W)/256)) = 2 for 512×512.
    # Tolerance: half a unit of the 4th published decimal.
    ref, dist = gray_gif(piq_asset("goldhill.gif")), gray_gif(piq_asset("goldhill_jpeg.gif"))
    assert ref.shape == (512, 512)
    assert abs(ssim(ref, dist, downsample=True) - 0.8202) <= 5e-5
    assert abs(ssim(dist, ref, downsample=True) - 0.8202) <= 5e-5


def test_tid2013_matches_matlab_ssim_m_per_channel():
    # piq 0.8.0 tests/test_ssim.py records 0.7820 as "Output of ssim.m" for TID2013's
    # i01_01_5.bmp vs I01.BMP (it now asserts 0.7842 with atol 1e-2). ssim.m is gray-only; this
    # is the mean of the three channels' ssim.m values (f = round(384/256) = 2).
    ref, dist = read_image(piq_asset("I01.BMP")), read_image(piq_asset("i01_01_5.bmp"))
    assert ref.shape == (384, 512, 3)
    assert abs(ssim(ref, dist, downsample=True) - 0.7820) <= 5e-5


# --------------------------------------------------------------------------------------
# downsample=True: MATLAB ssim.m's automatic downsampling, reimplemented directly
# --------------------------------------------------------------------------------------


def matlab_round(x: float) -> int:
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def ssim_m_downsample(img: np.ndarray, f: int) -> np.ndarray:
    """imfilter(img, ones(f)/f², 'symmetric', 'same') then img(1:f:end, 1:f:end).

    imfilter correlates with the kernel anchored at tap floor((f+1)/2) (1-based), so output
    pixel i averages img(i - a + 1 : i - a + f) with a = floor((f+1)/2).
    """
    a = (f + 1) // 2
    before, after = a - 1, f - a
    pad = [(before, after), (before, after)] + [(0, 0)] * (img.ndim - 2)
    padded = np.pad(img.astype(np.float64), pad, mode="symmetric")
    h, w = img.shape[:2]
    out = np.zeros(img.shape, np.float64)
    for di in range(f):
        for dj in range(f):
            out += padded[di : di + h, dj : dj + w]
    out /= f * f
    return out[::f, ::f]


@pytest.mark.parametrize(
    "shape,f",
    [
        ((300, 310), 1),  # round(1.17) = 1: no downsampling
        ((400, 383, 3), 1),  # round(1.496) = 1
        ((384, 390), 2),  # round(1.5) = 2: MATLAB rounds half away from zero
        ((513, 601, 3), 2),  # odd sizes: symmetric edge on the last block
        ((640, 645), 3),  # round(2.5) = 3 (Python's round would give 2)
        ((777, 800), 3),  # 777 = 3·259: exact blocks
    ],
)
def test_downsample_matches_direct_reimplementation(rng, shape, f):
    ref, dist = distorted_pair(rng, shape)
    assert max(1, matlab_round(min(shape[:2]) / 256)) == f
    expected = skimage_ssim(ssim_m_downsample(ref, f), ssim_m_downsample(dist, f), 255)
    assert abs(ssim(ref, dist, downsample=True) - expected) < TOL


def test_downsample_torch_route_matches_numpy(rng):
    ref, dist = distorted_pair(rng, (1, 385, 390, 3))
    expected = ssim(ref, dist, downsample=True)
    a = to_tensor(ref, torch.float64).requires_grad_(True)
    b = to_tensor(dist, torch.float64)
    got = ssim(a, b, data_range=255.0, downsample=True)
    assert abs(got.item() - expected[0]) < TOL


# --------------------------------------------------------------------------------------
# Super-resolution conventions
# --------------------------------------------------------------------------------------


def y_of(rgb: np.ndarray, data_range: float) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) / data_range for i in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


@pytest.mark.parametrize("crop", [0, 3])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_color_y_and_crop_match_the_direct_formula(rng, crop, dtype):
    ref, dist = distorted_pair(rng, (40, 44, 3), dtype)
    sl = (slice(crop, -crop), slice(crop, -crop)) if crop else (slice(None), slice(None))
    peak = float(np.iinfo(dtype).max)
    expected = skimage_ssim(y_of(ref[sl], peak), y_of(dist[sl], peak), 255.0)
    assert abs(ssim(ref, dist, color="y", crop_border=crop) - expected) < TOL


def test_crop_border_rgb(rng):
    ref, dist = distorted_pair(rng, (30, 32, 3))
    expected = skimage_ssim(ref[4:-4, 4:-4], dist[4:-4, 4:-4], 255)
    assert abs(ssim(ref, dist, crop_border=4) - expected) < TOL


def test_color_y_on_gray_scores_the_gray_image(rng):
    # A gray image is luma already (BasicSR's rule): color='y' scores it as it is.
    ref, dist = distorted_pair(rng, (20, 20))
    assert ref.ndim == 2
    assert ssim(ref, dist, color="y") == ssim(ref, dist)


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------


def test_torch_float32_within_tolerance(rng):
    ref, dist = distorted_pair(rng, (3, 50, 47, 3))
    expected = ssim(ref, dist)
    for scale in (1.0, 255.0):  # [0, 1] and [0, 255] floats: the cancellation differs
        got = ssim(to_tensor(ref) * (scale / 255), to_tensor(dist) * (scale / 255), data_range=scale)
        assert got.dtype == torch.float32 and got.shape == (3,)
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL_F32)


@pytest.mark.parametrize("peak", [1.0, 65535.0])
def test_torch_float32_bright_low_contrast(rng, peak):
    # The worst case for float32 moments: large means, small variances (E[x²] − μ² cancels).
    ref = (0.99 + 0.002 * rng.random((1, 64, 64, 3))) * peak
    dist = np.clip(ref + rng.normal(0, 0.0005 * peak, ref.shape), 0, peak)
    expected = ssim(ref, dist, data_range=peak)
    got = ssim(to_tensor(ref), to_tensor(dist), data_range=peak)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL_F32)
    with torch.enable_grad():
        got_grad = ssim(to_tensor(ref).requires_grad_(True), to_tensor(dist), data_range=peak)
    np.testing.assert_allclose(got_grad.detach().numpy(), expected, rtol=0, atol=TOL_F32)


def test_bit_depth_sets_the_constants(rng):
    ref = rng.integers(0, 4096, (40, 41), dtype=np.uint16)
    dist = np.clip(ref.astype(int) + rng.integers(-200, 201, ref.shape), 0, 4095).astype(np.uint16)
    assert abs(ssim(ref, dist, bit_depth=12) - skimage_ssim(ref, dist, 4095)) < TOL


def test_torch_float64_and_uint8_tensors(rng):
    ref, dist = distorted_pair(rng, (2, 20, 21, 3))
    expected = ssim(ref, dist)
    got = ssim(to_tensor(ref, torch.float64), to_tensor(dist, torch.float64), data_range=255.0)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL)
    got_u8 = ssim(to_tensor(ref, torch.uint8), to_tensor(dist, torch.uint8))
    np.testing.assert_allclose(got_u8.numpy(), expected, rtol=0, atol=TOL_F32)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_torch_gradient_exists_and_equals_no_grad_values(rng, dtype, tol):
    ref, dist = distorted_pair(rng, (2, 24, 22, 3))
    a = to_tensor(ref, dtype) / 255
    b = (to_tensor(dist, dtype) / 255).requires_grad_(True)
    value = ssim(a, b, data_range=1.0)
    assert value.requires_grad
    value.sum().backward()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    with torch.no_grad():
        plain = ssim(a, b, data_range=1.0)  # the OpenCV route
    # float64: both routes are exact to round-off; float32: two float32 filter orders.
    assert torch.allclose(value.detach(), plain, rtol=0, atol=tol)
    assert abs(plain[0].item() - ssim(ref[0], dist[0])) < (TOL if dtype == torch.float64 else TOL_F32)


def test_torch_gradient_is_correct():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, 12, 13, generator=g, dtype=torch.float64)
    b = torch.rand(1, 1, 12, 13, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: ssim(a, y, data_range=1.0), (b,))


def test_kernel_on_a_prepared_pair_matches_skimage(rng):
    # The kernel alone, on a prepared batch: one value per image, and the valid-region maps.
    ref, dist = distorted_pair(rng, (2, 20, 23, 3))
    values, maps = compute_ssim(prepare_pair(ref, dist), SSIMOptions())
    assert values.shape == (2,) and maps is None
    values_m, maps = compute_ssim(prepare_pair(ref, dist), SSIMOptions(), want_map=True)
    assert maps.shape == (2, 10, 13, 3)
    np.testing.assert_array_equal(values_m, values)
    for i in range(2):
        expected, sk_map = skimage_ssim(ref[i], dist[i], 255, full=True)
        assert abs(values[i] - expected) < TOL
        np.testing.assert_allclose(maps[i], sk_map[5:-5, 5:-5], rtol=0, atol=1e-12)


def test_kernel_takes_its_options(rng):
    ref, dist = distorted_pair(rng, (40, 40))
    expected = structural_similarity(
        ref, dist, data_range=255, gaussian_weights=True, sigma=1.0, use_sample_covariance=False
    )
    values, _ = compute_ssim(prepare_pair(ref, dist), SSIMOptions(win_size=9, sigma=1.0))
    assert abs(values[0] - expected) < TOL


def test_full_still_works_but_warns(rng):
    ref, dist = distorted_pair(rng, (30, 35, 3))
    expected_value, expected_map = ssim(ref, dist, return_map=True)
    with pytest.warns(RenamedOptionWarning, match="full= is now called return_map="):
        value, smap = ssim(ref, dist, full=True)
    assert value == expected_value
    np.testing.assert_array_equal(smap, expected_map)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_smaller_than_window_is_an_error():
    a = np.zeros((10, 30), np.uint8)
    with pytest.raises(ShapeError, match=r"at least 11×11 \(the window\), got 30×10; pass a smaller win_size"):
        ssim(a, a)


def test_smaller_than_window_after_downsampling_is_an_error():
    # 384×400 fits a 201-tap window, but downsample=True halves it (f = round(384/256) = 2)
    # to 192×200, which does not.
    a = np.zeros((384, 400), np.uint8)
    assert ssim(a, a, win_size=201) == 1.0
    with pytest.raises(ShapeError, match=r"at least 201×201 \(the window\), got 200×192; pass a smaller win_size"):
        ssim(a, a, win_size=201, downsample=True)


def test_downsampling_keeps_ordinary_images_scorable():
    a = np.zeros((20, 640), np.uint8)  # min side 20: f = 1, no downsampling
    assert ssim(a, a, downsample=True) == 1.0
    b = np.zeros((600, 1300), np.uint8)  # f = 2: 300×650, still larger than the window
    assert ssim(b, b, downsample=True) == 1.0


@pytest.mark.parametrize("win_size", [10, 4, 0, -3, 7.0, True, "11"])
def test_window_size_must_be_an_odd_positive_integer(win_size):
    a = np.zeros((20, 20), np.uint8)
    with pytest.raises(OptionError, match="win_size must be odd and positive"):
        ssim(a, a, win_size=win_size)
    with pytest.raises(OptionError, match="win_size must be odd and positive"):
        ms_ssim(a, a, scales=1, win_size=win_size)
    with pytest.raises(OptionError, match="win_size must be odd and positive"):
        check_win_size(win_size)


# 1e-300 and 1e-170: 2σ² underflows to 0 and the centre tap would be exp(-0/0) = NaN.
@pytest.mark.parametrize("sigma", [0.0, -1.5, math.nan, math.inf, -math.inf, 1e-300, 1e-170, True, "1.5", None])
def test_sigma_must_give_a_finite_window(sigma):
    a = np.zeros((20, 20), np.uint8)
    # filterwarnings = error: a NumPy RuntimeWarning (the old failure) would surface instead.
    with pytest.raises(OptionError, match="sigma must be a positive finite number large enough"):
        ssim(a, a, sigma=sigma)
    with pytest.raises(OptionError, match="sigma must be a positive finite number large enough"):
        ms_ssim(a, a, scales=1, sigma=sigma)
    with pytest.raises(OptionError, match="sigma must be a positive finite number large enough"):
        gaussian_window(11, sigma)
    with pytest.raises(OptionError, match="sigma must be a positive finite number large enough"):
        check_sigma(sigma)


@pytest.mark.parametrize("downsample", [1, "yes", None])
def test_downsample_must_be_a_boolean(downsample):
    a = np.zeros((20, 20), np.uint8)
    with pytest.raises(OptionError, match=f"downsample must be True or False, got {downsample!r}"):
        ssim(a, a, downsample=downsample)


def test_tiny_sigma_is_a_single_tap_window(rng):
    # 2σ² is subnormal here: x²/2σ² overflows to inf and exp(-inf) = 0, the exact tap, with
    # no warning. The window is then a delta, so the map is win_size=1's map, cropped.
    g = gaussian_window(11, 1e-160)
    np.testing.assert_array_equal(g, np.eye(11)[5])
    ref, dist = distorted_pair(rng, (30, 33, 3))
    _, delta_map = ssim(ref, dist, sigma=1e-160, return_map=True)
    _, pixel_map = ssim(ref, dist, win_size=1, return_map=True)
    np.testing.assert_allclose(delta_map, pixel_map[5:-5, 5:-5], rtol=0, atol=1e-15)


def test_huge_sigma_is_the_box_window(rng):
    # 2σ² overflows to inf: the window is flat, the Gaussian's limit, which is scikit-image's
    # uniform window (same population covariances and valid region; round-off only).
    np.testing.assert_array_equal(gaussian_window(7, 1e200), np.full(7, 1 / 7))
    ref, dist = distorted_pair(rng, (40, 37))
    expected = structural_similarity(ref, dist, data_range=255, win_size=7, use_sample_covariance=False)
    assert abs(ssim(ref, dist, win_size=7, sigma=1e200) - expected) < TOL


def test_float_without_data_range_is_an_error(rng):
    with pytest.raises(RangeError, match="data_range"):
        ssim(rng.random((16, 16)), rng.random((16, 16)))


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

images_u8 = arrays(np.uint8, st.tuples(st.integers(11, 30), st.integers(11, 30), st.sampled_from([1, 3])))


@settings(deadline=None, max_examples=40)
@given(images_u8, st.data())
def test_properties(a, data):
    b = data.draw(arrays(np.uint8, a.shape))
    v = ssim(a, b)
    assert abs(v - ssim(b, a)) < 1e-12  # symmetric
    assert abs(ssim(a, a) - 1.0) < 1e-12  # identity
    assert -1.0 <= v <= 1.0 + 1e-12  # bounds
    # dtype invariance: uint8 against the same image as float in [0, 1].
    assert abs(v - ssim(a / 255.0, b / 255.0, data_range=1.0)) < TOL
    assert abs(v - skimage_ssim(a, b, 255)) < TOL


@settings(deadline=None, max_examples=15)
@given(st.integers(1, 4), st.integers(11, 24), st.integers(11, 24), st.data())
def test_batch_equals_one_by_one(n, h, w, data):
    a = data.draw(arrays(np.uint8, (n, h, w, 3)))
    b = data.draw(arrays(np.uint8, (n, h, w, 3)))
    batch = ssim(a, b)
    np.testing.assert_allclose(batch, [ssim(a[i], b[i]) for i in range(n)], rtol=0, atol=1e-15)
    tb = ssim(to_tensor(a, torch.float64), to_tensor(b, torch.float64), data_range=255.0)
    np.testing.assert_allclose(tb.numpy(), batch, rtol=0, atol=TOL)


# --------------------------------------------------------------------------------------
# The peer settings stated in docs/conventions.md
# --------------------------------------------------------------------------------------


def test_peer_settings_pytorch_msssim_and_piq(rng):
    import piq
    import pytorch_msssim

    ref, dist = distorted_pair(rng, (101, 67, 3))
    ours = ssim(ref, dist)
    a, b = to_tensor(ref, torch.float64)[None], to_tensor(dist, torch.float64)[None]
    win = torch.from_numpy(gaussian_window(11, 1.5)).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    # float64 on both sides: round-off only.
    assert abs(pytorch_msssim.ssim(a, b, data_range=255, size_average=False, win=win).item() - ours) < TOL
    assert abs(piq.ssim(a, b, data_range=255, downsample=False, reduction="none").item() - ours) < TOL
    # pytorch-msssim's own window is float32: off by ~1e-7, inside the 1e-6 acceptance.
    assert abs(pytorch_msssim.ssim(a, b, data_range=255, size_average=False).item() - ours) < 1e-6


def test_peer_piq_downsample_agrees_only_for_even_f2(rng):
    import piq

    def piq_ds(r, d):
        return piq.ssim(to_tensor(r, torch.float64)[None], to_tensor(d, torch.float64)[None], data_range=255, reduction="none").item()

    r, d = distorted_pair(rng, (512, 384, 1))
    assert abs(piq_ds(r, d) - ssim(r, d, downsample=True)) < TOL  # f = 2, even sizes
    r, d = distorted_pair(rng, (640, 644, 1))  # MATLAB round(2.5) = 3, Python's round gives 2
    assert abs(piq_ds(r, d) - ssim(r, d, downsample=True)) > 1e-3


def test_peer_torchmetrics_averages_the_reflect_padded_image(rng):
    from torchmetrics.functional.image import structural_similarity_index_measure

    ref, dist = distorted_pair(rng, (64, 80, 3))
    tm = structural_similarity_index_measure(
        to_tensor(ref, torch.float64)[None], to_tensor(dist, torch.float64)[None], data_range=255.0, reduction="none"
    ).item()
    assert abs(tm - ssim(ref, dist)) > 1e-5  # a different convention
    pad = ((5, 5), (5, 5), (0, 0))
    # numpy's "reflect" is torch's: mirror without repeating the edge sample.
    padded = ssim(np.pad(ref, pad, mode="reflect").astype(np.float64), np.pad(dist, pad, mode="reflect").astype(np.float64), data_range=255.0)
    assert abs(tm - padded) < TOL


# --------------------------------------------------------------------------------------
# The thread pool
# --------------------------------------------------------------------------------------


def test_thread_budget_does_not_change_values(rng):
    import cv2

    ref, dist = distorted_pair(rng, (3, 40, 45, 3))
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)  # the documented way to make iqa single-threaded
        single = ssim(ref, dist)
        cv2.setNumThreads(max(2, before))
        threaded = ssim(ref, dist)
    finally:
        cv2.setNumThreads(before)
    np.testing.assert_array_equal(single, threaded)  # planes are independent: bit-identical


def _ssim_in_child(queue, ref, dist):
    queue.put(ssim(ref, dist))


def test_works_in_a_forked_child_after_the_pool_started(rng):
    # DataLoader workers fork a process whose parent may already hold the pool's threads.
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    ref, dist = distorted_pair(rng, (2, 30, 31, 3))
    expected = ssim(ref, dist)  # starts the pool in this process
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_ssim_in_child, args=(queue, ref, dist))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the child hung or failed"
    np.testing.assert_array_equal(queue.get(timeout=5), expected)


def test_bands_and_strips_cover_the_valid_region_exactly(rng, monkeypatch):
    # Small bands (with their halo rows) and strips with remainders, against scikit-image's map.
    import iqa.metrics.ssim as ssim_module

    monkeypatch.setattr(ssim_module, "_BAND_ELEMS", 1)
    monkeypatch.setattr(ssim_module, "_BAND_MIN_ROWS", 7)
    monkeypatch.setattr(ssim_module, "_STRIP_ELEMS", 50)
    ref, dist = distorted_pair(rng, (61, 33, 3))
    value, smap = ssim(ref, dist, return_map=True)
    expected, sk_map = skimage_ssim(ref, dist, 255, full=True)
    np.testing.assert_allclose(smap, sk_map[5:-5, 5:-5], rtol=0, atol=1e-12)
    assert abs(value - expected) < TOL
    small_bands = ms_ssim(ref, dist, scales=2)  # the cs terms take the same path
    monkeypatch.undo()
    assert abs(small_bands - ms_ssim(ref, dist, scales=2)) < 1e-13


def test_concurrent_callers_survive_a_growing_thread_budget(rng, monkeypatch):
    # The batch scorer (iqa score --workers N) calls SSIM from several threads. Raising the
    # thread budget replaces the pool while another caller may hold the old one and be about
    # to submit to it: that caller must not find its pool shut down. A tiny switch interval
    # makes the interleaving likely; the budget climbs so the pool is replaced many times.
    import sys
    import threading
    import time

    import iqa.metrics.ssim as ssim_module

    top = 24
    ref, dist = distorted_pair(rng, (8, 16, 16, 3))  # 24 planes: every budget up to 24 is used
    monkeypatch.setattr(ssim_module, "_thread_budget", lambda: 1)
    expected = ssim(ref, dist)
    budget = [2]
    monkeypatch.setattr(ssim_module, "_thread_budget", lambda: budget[0])
    monkeypatch.setattr(ssim_module, "_POOL", None)
    monkeypatch.setattr(ssim_module, "_POOL_SIZE", 0)
    errors: list[BaseException] = []
    stop = threading.Event()

    def caller() -> None:
        try:
            while not stop.is_set():
                np.testing.assert_array_equal(ssim(ref, dist), expected)
        except BaseException as exc:  # reported by the test's thread below
            errors.append(exc)
            stop.set()

    already_running = set(threading.enumerate())
    callers = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in callers:
            t.start()
        for n in range(3, top + 1):
            for _ in range(3):  # a few rounds of calls at each budget
                if stop.wait(0.003):
                    break
            budget[0] = n
    finally:
        stop.set()
        for t in callers:
            t.join(timeout=60)
        sys.setswitchinterval(switch)
    assert not any(t.is_alive() for t in callers), "a caller hung"
    assert not errors, repr(errors[0])
    # The replaced pools are not leaked: once their callers return, their workers exit.
    deadline = time.monotonic() + 10
    while True:
        workers = [t for t in threading.enumerate() if t.name.startswith("iqa-ssim") and t not in already_running]
        if len(workers) <= ssim_module._POOL_SIZE or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(workers) <= ssim_module._POOL_SIZE
