"""PSNR: parity with scikit-image, the conventions, the torch path and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.metrics import peak_signal_noise_ratio

from helpers import write_png
from iqa.errors import OptionError, RangeError
from iqa.io import prepare_pair
from iqa.metrics.psnr import PSNROptions, compute_psnr, psnr

# NumPy and path inputs: the acceptance bound is 1e-9 dB against a float64 reference; both
# sides compute one float64 MSE, so they differ by summation order only (~1e-13 dB).
TOL_DB = 1e-9
# float32 tensors: the acceptance bound (the MSE is summed in float32).
TOL_F32 = 5e-4


def distorted_pair(rng, shape, dtype=np.uint8, sigma=0.08):
    peak = np.iinfo(dtype).max
    ref = rng.integers(0, peak + 1, shape).astype(dtype)
    noise = rng.normal(0, sigma * peak, shape)
    dist = np.clip(np.rint(ref + noise), 0, peak).astype(dtype)
    return ref, dist


CASES = [
    ("uint8 gray", (64, 80), np.uint8),
    ("uint8 rgb", (48, 40, 3), np.uint8),
    ("uint16 gray", (33, 47), np.uint16),
    ("uint16 rgb", (31, 29, 3), np.uint16),
    ("tiny 11x11", (11, 11, 3), np.uint8),
    ("odd large", (1000, 872, 3), np.uint8),
]


@pytest.mark.parametrize("name,shape,dtype", CASES, ids=[c[0] for c in CASES])
def test_matches_skimage(rng, name, shape, dtype):
    ref, dist = distorted_pair(rng, shape, dtype)
    expected = peak_signal_noise_ratio(ref, dist, data_range=np.iinfo(dtype).max)
    assert abs(psnr(ref, dist) - expected) < TOL_DB


def test_float_input_with_data_range_matches_skimage(rng):
    ref, dist = distorted_pair(rng, (40, 41, 3))
    a, b = ref / 255.0, dist / 255.0
    assert abs(psnr(a, b, data_range=1.0) - peak_signal_noise_ratio(a, b, data_range=1.0)) < TOL_DB
    # A float image scored with the uint8 range gives the uint8 number.
    assert abs(psnr(a * 255, b * 255, data_range=255.0) - psnr(ref, dist)) < TOL_DB


def test_bit_depth_sets_the_peak(rng):
    ref = rng.integers(0, 1024, (20, 21), dtype=np.uint16)
    dist = np.clip(ref.astype(int) + rng.integers(-9, 10, ref.shape), 0, 1023).astype(np.uint16)
    expected = peak_signal_noise_ratio(ref, dist, data_range=1023)
    assert abs(psnr(ref, dist, bit_depth=10) - expected) < TOL_DB


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_path_inputs_match_skimage(tmp_path, rng, dtype, channels):
    shape = (37, 45) if channels == 1 else (37, 45, 3)
    ref, dist = distorted_pair(rng, shape, dtype)
    pa, pb = write_png(tmp_path / "a.png", ref), write_png(tmp_path / "b.png", dist)
    expected = peak_signal_noise_ratio(ref, dist, data_range=np.iinfo(dtype).max)
    value = psnr(pa, pb)
    assert isinstance(value, float)
    assert abs(value - expected) < TOL_DB


def test_identical_images_give_inf(rng):
    ref, _ = distorted_pair(rng, (16, 16, 3))
    assert psnr(ref, ref.copy()) == math.inf


def test_flat_images(rng):
    a = np.full((19, 23), 100, np.uint8)
    b = np.full((19, 23), 110, np.uint8)
    # MSE = 100 everywhere: 10·log10(255² / 100).
    assert abs(psnr(a, b) - 10 * math.log10(255**2 / 100)) < TOL_DB
    assert abs(psnr(a, b) - peak_signal_noise_ratio(a, b, data_range=255)) < TOL_DB


def test_one_mse_over_all_channels(rng):
    ref, dist = distorted_pair(rng, (20, 30, 3))
    mse = np.mean((ref.astype(np.float64) - dist) ** 2)
    assert abs(psnr(ref, dist) - 10 * math.log10(255**2 / mse)) < TOL_DB


def test_batch_gives_one_value_per_image(rng):
    ref, dist = distorted_pair(rng, (4, 24, 26, 3))
    dist[2] = ref[2]
    values = psnr(ref, dist)
    assert isinstance(values, np.ndarray) and values.shape == (4,)
    for i in range(4):
        assert values[i] == psnr(ref[i], dist[i])
    assert values[2] == math.inf


def test_float_without_data_range_is_an_error(rng):
    a = rng.random((8, 8))
    with pytest.raises(RangeError, match="data_range"):
        psnr(a, a)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"color": "ycbcr"}, "color must be one of rgb, y; got 'ycbcr'"),
        ({"crop_border": -1}, "crop_border must be an integer of at least 0, got -1"),
        ({"alpha": "ignore"}, "alpha must be one of error, drop, keep; got 'ignore'"),
        ({"data_range": 0}, "data_range must be a positive finite number, got 0"),
    ],
    ids=["color", "crop_border", "alpha", "data_range"],
)
def test_bad_option_values_are_option_errors(rng, kwargs, match):
    a = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with pytest.raises(OptionError, match=match):
        psnr(a, a, **kwargs)


# --------------------------------------------------------------------------------------
# Super-resolution conventions
# --------------------------------------------------------------------------------------


def y_of(rgb: np.ndarray, data_range: float) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) / data_range for i in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


@pytest.mark.parametrize("crop", [0, 4])
def test_color_y_and_crop_match_the_direct_formula(rng, crop):
    ref, dist = distorted_pair(rng, (40, 44, 3))
    sl = (slice(crop, -crop), slice(crop, -crop)) if crop else (slice(None), slice(None))
    ya, yb = y_of(ref[sl], 255.0), y_of(dist[sl], 255.0)
    expected = 10 * math.log10(255.0**2 / np.mean((ya - yb) ** 2))
    assert abs(psnr(ref, dist, color="y", crop_border=crop) - expected) < TOL_DB
    assert abs(expected - peak_signal_noise_ratio(ya, yb, data_range=255.0)) < TOL_DB


def test_color_y_on_16_bit(rng):
    ref, dist = distorted_pair(rng, (30, 31, 3), np.uint16)
    ya, yb = y_of(ref, 65535.0), y_of(dist, 65535.0)
    expected = peak_signal_noise_ratio(ya, yb, data_range=255.0)
    assert abs(psnr(ref, dist, color="y") - expected) < TOL_DB


def test_crop_border_rgb(rng):
    ref, dist = distorted_pair(rng, (30, 32, 3))
    expected = peak_signal_noise_ratio(ref[2:-2, 2:-2], dist[2:-2, 2:-2], data_range=255)
    assert abs(psnr(ref, dist, crop_border=2) - expected) < TOL_DB


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------


def to_tensor(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, -3))).to(dtype)


def test_torch_float32_within_tolerance(rng):
    ref, dist = distorted_pair(rng, (3, 50, 47, 3))
    expected = psnr(ref, dist)
    got = psnr(to_tensor(ref), to_tensor(dist), data_range=255.0)
    assert got.dtype == torch.float32 and got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL_F32)


def test_torch_float64_and_uint8_tensors(rng):
    ref, dist = distorted_pair(rng, (2, 20, 21, 3))
    expected = psnr(ref, dist)
    got = psnr(to_tensor(ref, torch.float64), to_tensor(dist, torch.float64), data_range=255.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL_DB)
    got_u8 = psnr(to_tensor(ref, torch.uint8), to_tensor(dist, torch.uint8))
    np.testing.assert_allclose(got_u8.numpy(), expected, rtol=0, atol=TOL_F32)


def test_torch_gradient_exists_and_values_match(rng):
    ref, dist = distorted_pair(rng, (2, 16, 18, 3))
    a = to_tensor(ref, torch.float64) / 255
    b = (to_tensor(dist, torch.float64) / 255).requires_grad_(True)
    value = psnr(a, b, data_range=1.0)
    value.sum().backward()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    with torch.no_grad():
        plain = psnr(a, b, data_range=1.0)
    assert torch.allclose(value.detach(), plain, rtol=0, atol=1e-12)
    # d/db 10·log10(1/MSE) = 10/ln10 · 2(a−b)/(n·MSE): the analytic gradient of one image.
    d = (a[0] - b[0]).detach()
    mse = d.square().mean()
    analytic = 10 / math.log(10) * 2 * d / (d.numel() * mse)
    assert torch.allclose(b.grad[0], analytic, rtol=1e-10, atol=0)


def test_kernel_on_a_prepared_pair_matches_skimage(rng):
    # The kernel alone, on a prepared batch: one float64 value per image and no map.
    ref, dist = distorted_pair(rng, (3, 20, 22, 3))
    dist[1] = ref[1]
    values, maps = compute_psnr(prepare_pair(ref, dist), PSNROptions())
    assert maps is None
    assert isinstance(values, np.ndarray) and values.dtype == np.float64 and values.shape == (3,)
    assert values[1] == math.inf
    for i in (0, 2):
        assert abs(values[i] - peak_signal_noise_ratio(ref[i], dist[i], data_range=255)) < TOL_DB


def test_kernel_does_not_apply_the_conventions(rng):
    # Conventions are the caller's (iqa.pairwise): the kernel scores the pixels it is given.
    ref, dist = distorted_pair(rng, (20, 22, 3))
    values, _ = compute_psnr(prepare_pair(ref, dist), PSNROptions())
    assert abs(values[0] - peak_signal_noise_ratio(ref, dist, data_range=255)) < TOL_DB
    assert abs(values[0] - psnr(ref, dist, color="y", crop_border=2)) > 0.1


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

images_u8 = arrays(np.uint8, st.tuples(st.integers(2, 24), st.integers(2, 24), st.sampled_from([1, 3])))


@settings(deadline=None, max_examples=40)
@given(images_u8, st.data())
def test_properties(a, data):
    b = data.draw(arrays(np.uint8, a.shape))
    v = psnr(a, b)
    assert v == psnr(b, a)  # symmetric: the MSE is
    assert psnr(a, a) == math.inf  # identity
    # Bounds: the MSE is at most 255², so PSNR >= 0 dB.
    assert v >= 0.0
    # dtype invariance: uint8 against the same image as float in [0, 1].
    assert abs(v - psnr(a / 255.0, b / 255.0, data_range=1.0)) < TOL_DB or v == math.inf


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 4), st.integers(5, 20), st.integers(5, 20), st.data())
def test_batch_equals_one_by_one(n, h, w, data):
    a = data.draw(arrays(np.uint8, (n, h, w, 3)))
    b = data.draw(arrays(np.uint8, (n, h, w, 3)))
    batch = psnr(a, b)
    assert list(batch) == [psnr(a[i], b[i]) for i in range(n)]


# --------------------------------------------------------------------------------------
# The peer settings stated in docs/conventions.md
# --------------------------------------------------------------------------------------


def test_peer_settings_piq_and_torchmetrics(rng):
    import piq
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

    ref, dist = distorted_pair(rng, (2, 30, 40, 3))
    ours = psnr(ref, dist)
    a, b = to_tensor(ref, torch.float64), to_tensor(dist, torch.float64)
    tm = tm_psnr(a, b, data_range=255.0, reduction="none", dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(tm, ours, rtol=0, atol=1e-5)  # float32 log(data_range) inside
    pq = piq.psnr(a, b, data_range=255, reduction="none").numpy()
    np.testing.assert_allclose(pq, ours, rtol=0, atol=1e-4)  # piq's EPS = 1e-8 on the MSE
    assert piq.psnr(a[:1], a[:1], data_range=255).item() == pytest.approx(80.0)  # not inf
    # piq's YIQ luma: iqa's BT.601 Y PSNR is piq's + 20·log10(255/219).
    grey = piq.psnr(a[:1], b[:1], data_range=255, convert_to_greyscale=True).item()
    assert abs(grey + 20 * math.log10(255 / 219) - psnr(ref[0], dist[0], color="y")) < 1e-4


# The MSE of uint8, uint16 and float64 NumPy images is summed by OpenCV in float64 blocks:
# within 1e-15 relative of the exact sum (exact integers; math.fsum for float64).
TOL_SUM = 1e-15


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_mse_is_the_exact_integer_sum(rng, dtype):
    ref, dist = distorted_pair(rng, (3, 700, 650, 3), dtype)
    for i in range(3):
        exact = int(((ref[i].astype(np.int64) - dist[i]) ** 2).sum())
        mse = exact / ref[i].size
        expected = 10 * math.log10(np.iinfo(dtype).max ** 2 / mse)
        got = psnr(ref, dist)[i]
        # dB from an MSE off by a relative e moves by 10·log10(1 + e) ≈ 4.3·e.
        assert abs(got - expected) <= 4.35 * TOL_SUM * abs(expected) + 1e-12


def test_float64_mse_is_within_round_off_of_fsum(rng):
    ref, dist = distorted_pair(rng, (500, 450, 3))
    a, b = ref / 255.0, dist / 255.0
    exact = math.fsum(((a - b) ** 2).ravel().tolist()) / a.size
    expected = 10 * math.log10(1 / exact)
    assert abs(psnr(a, b, data_range=1.0) - expected) <= 4.35 * TOL_SUM * abs(expected) + 1e-12
    f32 = psnr(a.astype(np.float32), b.astype(np.float32), data_range=1.0)
    exact32 = math.fsum(((a.astype(np.float32).astype(np.float64) - b.astype(np.float32)) ** 2).ravel().tolist())
    assert abs(f32 - 10 * math.log10(a.size / exact32)) < 1e-12  # float32 input: differences formed in float64


def test_integer_and_float_inputs_agree_in_a_scoring_run(rng, tmp_path):
    from iqa import Scorer

    ref, dist = distorted_pair(rng, (2, 64, 72, 3))
    scorer = Scorer(["psnr", "ssim"])
    ints = list(scorer.iter_scores(list(zip(ref, dist))))
    floats = list(Scorer(["psnr", "ssim"], data_range=1.0).iter_scores(list(zip(ref / 255.0, dist / 255.0))))
    for a, b in zip(ints, floats):
        assert abs(a.values["psnr"] - b.values["psnr"]) < 1e-12
        assert abs(a.values["ssim"] - b.values["ssim"]) < 1e-14


def test_integer_extremes_give_the_exact_value():
    # 0 against 255 everywhere: MSE exactly 65025, PSNR exactly 0 dB (not -4.8e-16).
    a = np.zeros((1000, 1000, 3), np.uint8)
    assert psnr(a, a + 255) == 0.0
    b = np.zeros((300, 300), np.uint16)
    assert psnr(b, b + 65535) == 0.0


# --- float64 pairs checked while the MSE reads them (iqa.io.Pair.unchecked) -------------
# psnr() leaves a float64 pair's NaN/infinity and range checks to its kernel, which takes
# the min and max block by block (blocks of _CHECK_BLOCK elements) while the block is in
# cache. The same errors and warnings as the image layer's, wherever the bad value is.


def _float_pair(rng, shape=(2, 300, 260, 3)):
    ref, dist = distorted_pair(rng, shape)
    return ref / 255.0, dist / 255.0


@pytest.mark.parametrize("check_range", [True, False])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["reference", "distorted"])
def test_fused_check_refuses_nan_and_inf_in_any_block(rng, check_range, bad, where):
    from iqa.metrics import psnr as module

    ref, dist = _float_pair(rng)
    target = ref if where == "reference" else dist
    # The last element of the second image: in a later block than the first, not in block 0.
    assert target[1].size > module._CHECK_BLOCK
    target[1, -1, -1, -1] = bad
    with pytest.raises(RangeError, match=f"^{where} array: contains NaN or infinite values"):
        psnr(ref, dist, data_range=1.0, check_range=check_range)
    with pytest.raises(RangeError, match=f"^{where} array: contains NaN or infinite values"):
        psnr(ref[1], dist[1], data_range=1.0, check_range=check_range)


def test_fused_check_warns_like_the_image_layer(rng):
    from iqa.errors import RangeWarning

    ref, dist = _float_pair(rng)
    dist[1, 5, 7, 2] = 1.5  # one value 50 % above the range, in the second image
    with pytest.warns(RangeWarning, match=r"^distorted array: values from 0 to 1\.5, outside the data range") as got:
        value = psnr(ref, dist, data_range=1.0)
    assert got[0].filename == __file__  # pointed at the caller, not at iqa
    expected = [peak_signal_noise_ratio(ref[i], dist[i], data_range=1.0) for i in range(2)]
    assert np.allclose(value, expected, rtol=0, atol=TOL_DB)
    dist[1, 5, 7, 2] = 1.009  # within the 1 % tolerance: no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        psnr(ref, dist, data_range=1.0)
        psnr(ref * 300, dist, data_range=1.0, check_range=False)  # no check, no warning


def test_fused_check_matches_skimage_and_fsum(rng):
    ref, dist = _float_pair(rng, (3, 301, 257, 3))  # blocks that do not divide the image
    got = psnr(ref, dist, data_range=1.0)
    for i in range(3):
        exact = math.fsum(((ref[i] - dist[i]) ** 2).ravel().tolist()) / ref[i].size
        assert abs(got[i] - 10 * math.log10(1 / exact)) <= 4.35 * TOL_SUM * abs(got[i]) + 1e-12
        assert abs(got[i] - peak_signal_noise_ratio(ref[i], dist[i], data_range=1.0)) < TOL_DB


def test_fused_check_is_used_only_where_it_sees_the_values_as_given(rng):
    # Deferred: float64, contiguous, one shape, gray or RGB, no crop or Y conversion. Other
    # pairs are checked by the image layer before the kernel runs.
    from iqa.pairwise import prepare
    from iqa.options import ImageOptions

    ref, dist = _float_pair(rng, (1, 40, 30, 3))
    image = ImageOptions(data_range=1.0)
    assert prepare(ref, dist, image, defer_checks=True).unchecked == (True, True)
    assert prepare(ref, dist, image, defer_checks=False).unchecked is None
    assert prepare(ref.astype(np.float32), dist.astype(np.float32), image, defer_checks=True).unchecked is None
    assert prepare(ref[:, :, ::2], dist[:, :, ::2], image, defer_checks=True).unchecked is None
    ref[0, 0, 0, 0] = np.nan
    with pytest.raises(RangeError, match="reference array: contains NaN"):
        psnr(ref, dist, data_range=1.0, crop_border=2)  # NaN in the cropped border: still refused
    with pytest.raises(RangeError, match="reference array: contains NaN"):
        psnr(ref, dist, data_range=1.0, color="y")


def test_fused_check_overflowing_differences_are_not_errors():
    # Finite values whose difference overflows: the MSE is infinite, the images are not.
    a = np.full((4, 4), 1e300)
    with np.errstate(over="ignore"):
        assert psnr(a, -a, data_range=1.0, check_range=False) == -math.inf


def test_fused_check_gives_the_bits_of_batch_scoring(rng):
    # psnr() checks while it sums (blocks of _CHECK_BLOCK); Scorer checks first and sums with
    # _mse_opencv: the same blocks in the same order, so the same bits, not merely close ones.
    from iqa import Scorer

    ref, dist = _float_pair(rng, (2, 301, 257, 3))
    scored = [s.values["psnr"] for s in Scorer(["psnr"], data_range=1.0).iter_scores(list(zip(ref, dist)))]
    assert [psnr(ref[i], dist[i], data_range=1.0) for i in range(2)] == scored


def test_an_unchecked_pair_is_checked_for_any_other_kernel(rng):
    # prepare(defer_checks=True) leaves the checks to PSNR's kernel; any other kernel, or PSNR
    # under a crop or Y conversion (which would see converted values), gets them done first.
    from iqa import registry
    from iqa.options import Conventions, ImageOptions
    from iqa.pairwise import PreparedPair, prepare

    ref, dist = _float_pair(rng, (1, 40, 30, 3))
    ref[0, 0, 0, 0] = np.nan
    image = ImageOptions(data_range=1.0)
    for metric, conventions in [("ssim", Conventions()), ("psnr", Conventions(crop_border=2)),
                                ("psnr", Conventions(color="y")), ("lpips", Conventions())]:
        prepared = PreparedPair(prepare(ref, dist, image, defer_checks=True), conventions)
        assert prepared.pair.unchecked is not None
        with pytest.raises(RangeError, match="reference array: contains NaN"):
            prepared.for_metric(registry.get(metric))
    prepared = PreparedPair(prepare(ref, dist, image, defer_checks=True), Conventions())
    assert prepared.for_metric(registry.get("psnr")).unchecked is not None  # left to its kernel
    with pytest.raises(RangeError, match="reference array: contains NaN"):
        prepared.score(registry.get("psnr"), PSNROptions())


def test_a_single_image_against_a_batch_of_one_is_checked_first(rng):
    # The values are checked before the shapes are compared, deferred or not.
    ref, dist = _float_pair(rng, (1, 20, 30, 3))
    ref[0, 0, 0, 0] = np.nan
    with pytest.raises(RangeError, match="NaN"):
        psnr(ref[0], dist, data_range=1.0)
