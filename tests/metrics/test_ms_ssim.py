"""MS-SSIM: parity with pytorch-msssim and Wang's ``msssim.m`` rule for odd sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_msssim
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.signal import correlate2d

from iqa.cli.options import cli_namer
from iqa.errors import OptionError, RangeError, ShapeError
from iqa.io import prepare_pair
from iqa.metrics.ms_ssim import MS_SSIM_WEIGHTS, MSSSIMOptions, compute_ms_ssim, ms_ssim
from iqa.metrics.ssim import box_downsample_plane, box_downsample_torch, gaussian_window, ssim

# NumPy/path inputs and float64 tensors: the acceptance bound is 1e-6; both sides are
# float64 with the same window, so they differ by round-off only (~1e-15) and 1e-9 is used.
TOL = 1e-9
# float32 tensors: the acceptance bound.
TOL_F32 = 5e-4
WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik (2003)


def distorted_pair(rng, shape, dtype=np.uint8, sigma=0.08):
    peak = np.iinfo(dtype).max
    ref = rng.integers(0, peak + 1, shape).astype(np.float64)
    ref = (ref + np.roll(ref, 1, 0) + np.roll(ref, 1, 1) + np.roll(ref, (1, 1), (0, 1))) / 4
    ref = np.rint(ref).astype(dtype)
    dist = np.clip(np.rint(ref + rng.normal(0, sigma * peak, shape)), 0, peak).astype(dtype)
    return ref, dist


def to_tensor(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """H×W → 1×H×W, H×W×C → C×H×W, N×H×W×C → N×C×H×W."""
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, -3))).to(dtype)


def peer(ref: np.ndarray, dist: np.ndarray, data_range: float) -> np.ndarray:
    """pytorch-msssim in float64, given our float64 window (its own is built in float32)."""
    a, b = to_tensor(ref), to_tensor(dist)
    if a.ndim == 3:
        a, b = a[None], b[None]
    win = torch.from_numpy(gaussian_window(11, 1.5)).view(1, 1, 1, -1).repeat(a.shape[1], 1, 1, 1)
    return pytorch_msssim.ms_ssim(a, b, data_range=data_range, size_average=False, win=win).numpy()


def test_weights_are_the_published_ones():
    assert MS_SSIM_WEIGHTS == WEIGHTS
    assert MSSSIMOptions().scale_weights == WEIGHTS and MSSSIMOptions().scales == 5
    assert MSSSIMOptions(scales=5).scale_weights == WEIGHTS  # as published, not renormalised


# --------------------------------------------------------------------------------------
# pytorch-msssim, on sizes divisible by 16 (elsewhere its zero padding differs by design)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,dtype",
    [
        ((176, 176), np.uint8),  # the smallest size with five scales
        ((208, 192, 3), np.uint8),
        ((2, 256, 256, 3), np.uint8),
        ((192, 224, 3), np.uint16),
    ],
)
def test_matches_pytorch_msssim(rng, shape, dtype):
    ref, dist = distorted_pair(rng, shape, dtype)
    expected = peer(ref, dist, float(np.iinfo(dtype).max))
    got = np.atleast_1d(ms_ssim(ref, dist))
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)


def test_float_input_matches_pytorch_msssim(rng):
    ref, dist = distorted_pair(rng, (192, 192, 3))
    a, b = ref / 255.0, dist / 255.0
    np.testing.assert_allclose(ms_ssim(a, b, data_range=1.0), peer(a, b, 1.0)[0], rtol=0, atol=TOL)


def test_pytorch_msssim_own_float32_window_differs_slightly(rng):
    # Why the parity test passes a float64 window: pytorch-msssim builds its Gaussian in float32,
    # which moves the value by ~1e-7 (below the 1e-6 acceptance, above round-off).
    ref, dist = distorted_pair(rng, (176, 176))
    own = pytorch_msssim.ms_ssim(to_tensor(ref)[None], to_tensor(dist)[None], data_range=255, size_average=False)
    assert 1e-9 < abs(own.item() - ms_ssim(ref, dist)) < 1e-6


# --------------------------------------------------------------------------------------
# Odd sizes: Wang's msssim.m (imfilter(x, ones(2)/4, 'symmetric', 'same'), then x(1:2:end, 1:2:end))
# --------------------------------------------------------------------------------------


def test_downsample_hand_computed_3x5():
    x = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]], np.float64)
    # Output (i, j) averages rows 2i, 2i+1 and columns 2j, 2j+1; the row/column past the
    # bottom/right edge is the edge itself (symmetric extension). Output size ceil(n/2).
    expected = np.array(
        [
            [(1 + 2 + 6 + 7) / 4, (3 + 4 + 8 + 9) / 4, (5 + 5 + 10 + 10) / 4],
            [(11 + 12 + 11 + 12) / 4, (13 + 14 + 13 + 14) / 4, (15 + 15 + 15 + 15) / 4],
        ]
    )
    np.testing.assert_array_equal(expected, [[4.0, 6.0, 7.5], [11.5, 13.5, 15.0]])
    np.testing.assert_array_equal(box_downsample_plane(x, 2), expected)
    t = torch.from_numpy(x)[None, None]
    np.testing.assert_array_equal(box_downsample_torch(t, 2)[0, 0].numpy(), expected)


def test_downsample_hand_computed_even_and_single():
    x = np.array([[0, 4], [8, 12]], np.float64)
    np.testing.assert_array_equal(box_downsample_plane(x, 2), [[6.0]])
    x1 = np.array([[3.0]])
    np.testing.assert_array_equal(box_downsample_plane(x1, 2), [[3.0]])
    col = np.array([[1.0], [2.0], [3.0]])  # 3×1: rows (1, 2) and (3, 3); the column repeats
    np.testing.assert_array_equal(box_downsample_plane(col, 2), [[1.5], [3.0]])


def msssim_m(ref: np.ndarray, dist: np.ndarray, data_range: float, weights=WEIGHTS) -> float:
    """Wang's msssim.m for one gray image, written out with the textbook five moments."""
    x2 = np.arange(-5, 6, dtype=np.float64)
    g = np.exp(-(x2**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()  # fspecial('gaussian', 11, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = ref.astype(np.float64), dist.astype(np.float64)
    mssim, mcs = [], []
    for level in range(len(weights)):
        f = lambda img: correlate2d(img, win, mode="valid")  # filter2(window, img, 'valid')
        mu1, mu2 = f(x), f(y)
        s11, s22, s12 = f(x * x) - mu1**2, f(y * y) - mu2**2, f(x * y) - mu1 * mu2
        cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
        ssim_map = (2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1) * cs_map
        mssim.append(ssim_map.mean())
        mcs.append(cs_map.mean())
        # imfilter(img, ones(2)/4, 'symmetric', 'same') anchors the 2-tap kernel at its first
        # tap: out(i) = (img(i) + img(i+1)) / 2, with img(n+1) = img(n). Then (1:2:end).
        xp = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
        yp = np.pad(y, ((0, 1), (0, 1)), mode="symmetric")
        x = ((xp[:-1, :-1] + xp[1:, :-1] + xp[:-1, 1:] + xp[1:, 1:]) / 4)[::2, ::2]
        y = ((yp[:-1, :-1] + yp[1:, :-1] + yp[:-1, 1:] + yp[1:, 1:]) / 4)[::2, ::2]
    s = len(weights)
    return float(np.prod(np.array(mcs[: s - 1]) ** np.array(weights[: s - 1])) * mssim[s - 1] ** weights[s - 1])


@pytest.mark.parametrize("shape", [(181, 199), (200, 227), (177, 190, 3)])
def test_odd_sizes_match_msssim_m(rng, shape):
    ref, dist = distorted_pair(rng, shape)
    if ref.ndim == 2:
        expected = msssim_m(ref, dist, 255.0)
    else:  # colour: per channel, then averaged
        expected = np.mean([msssim_m(ref[..., c], dist[..., c], 255.0) for c in range(3)])
    assert abs(ms_ssim(ref, dist) - expected) < TOL
    # The torch routes (OpenCV without gradient, conv2d with gradient) follow the same rule.
    a = to_tensor(ref)
    b = to_tensor(dist).requires_grad_(True)
    assert abs(ms_ssim(a, b, data_range=255.0).item() - expected) < TOL
    with torch.no_grad():
        assert abs(ms_ssim(a, b, data_range=255.0).item() - expected) < TOL


def test_odd_sizes_differ_from_pytorch_msssim_zero_padding(rng):
    # pytorch-msssim pads odd sizes with zeros inside avg_pool2d (count_include_pad): a
    # different convention, documented in docs/conventions.md. The difference is visible.
    ref, dist = distorted_pair(rng, (181, 199))
    assert abs(ms_ssim(ref, dist) - peer(ref, dist, 255.0)[0]) > 1e-5


# --------------------------------------------------------------------------------------
# Scales, weights, clamping
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scales", [1, 2, 3, 4])
def test_fewer_scales_renormalise_the_weights(rng, scales):
    ref, dist = distorted_pair(rng, (96, 100))
    w = np.array(WEIGHTS[:scales]) / sum(WEIGHTS[:scales])
    assert abs(ms_ssim(ref, dist, scales=scales) - msssim_m(ref, dist, 255.0, tuple(w))) < TOL
    np.testing.assert_allclose(MSSSIMOptions(scales=scales).scale_weights, w, rtol=1e-15, atol=0)


def test_one_scale_is_ssim(rng):
    ref, dist = distorted_pair(rng, (40, 50, 3))
    assert abs(ms_ssim(ref, dist, scales=1) - ssim(ref, dist)) < 1e-12


def test_custom_weights(rng):
    ref, dist = distorted_pair(rng, (100, 100))
    w = (0.2, 0.3, 0.5)
    assert abs(ms_ssim(ref, dist, scale_weights=w) - msssim_m(ref, dist, 255.0, w)) < TOL


def test_custom_weights_are_used_as_given(rng):
    # Not renormalised (pytorch-msssim's convention), and a zero weight drops its scale.
    ref, dist = distorted_pair(rng, (100, 100))
    w = (0.5, 0.0, 1.5)
    assert abs(ms_ssim(ref, dist, scale_weights=w) - msssim_m(ref, dist, 255.0, w)) < TOL
    assert abs(ms_ssim(ref, dist, scale_weights=np.array(w)) - msssim_m(ref, dist, 255.0, w)) < TOL


def test_weights_set_the_number_of_scales(rng):
    ref, dist = distorted_pair(rng, (100, 100))
    w = (0.2, 0.3, 0.5)
    assert ms_ssim(ref, dist, scale_weights=w, scales=3) == ms_ssim(ref, dist, scale_weights=w)
    assert MSSSIMOptions(scale_weights=w).scales == 3 and MSSSIMOptions(scale_weights=w).scale_weights == w
    # An explicit scales that disagrees is an error, not silently ignored.
    with pytest.raises(OptionError, match=r"scales=5 disagrees with the 3 weights given; give the weights alone"):
        ms_ssim(ref, dist, scale_weights=w, scales=5)
    with pytest.raises(OptionError, match=r"scales=2 disagrees with the 3 weights given"):
        MSSSIMOptions(scale_weights=w, scales=2)


def test_default_scales_unchanged(rng):
    ref, dist = distorted_pair(rng, (176, 180))
    expected = msssim_m(ref, dist, 255.0)
    assert abs(ms_ssim(ref, dist) - expected) < TOL
    assert ms_ssim(ref, dist, scales=5) == ms_ssim(ref, dist) == ms_ssim(ref, dist, scale_weights=WEIGHTS)


@pytest.mark.parametrize(
    "weights",
    [(0.0, 0.0, 0.0), (math.nan, 0.5, 0.5), (0.5, math.inf, 0.5), (0.5, -0.1, 0.5), (-0.0, 0.0), ()],
    ids=["all zero", "nan", "inf", "negative", "signed zeros", "empty"],
)
def test_weights_must_be_finite_non_negative_and_not_all_zero(weights):
    # All-zero weights scored every pair 1.0; NaN weights passed a plain `< 0` test.
    a = np.zeros((100, 100), np.uint8)
    with pytest.raises(OptionError, match="scale_weights must be finite, non-negative and not all zero"):
        ms_ssim(a, 255 - a, scale_weights=weights)


@pytest.mark.parametrize("weights", ["0.5", (0.5, "x"), 0.5, (0.5, None)], ids=["str", "str item", "scalar", "None item"])
def test_weights_must_be_numbers(weights):
    a = np.zeros((100, 100), np.uint8)
    with pytest.raises(OptionError, match="scale_weights must be a sequence of numbers"):
        ms_ssim(a, a, scale_weights=weights)


def test_negative_terms_are_clamped_not_nan(rng):
    ref = rng.integers(0, 256, (176, 176)).astype(np.uint8)
    dist = 255 - ref  # anti-correlated: cs at the first scale is negative
    value = ms_ssim(ref, dist)
    assert value == 0.0 and not math.isnan(value)
    assert peer(ref, dist, 255.0)[0] == 0.0  # pytorch-msssim clamps the same way (relu)
    b = to_tensor(dist).requires_grad_(True)
    t = ms_ssim(to_tensor(ref), b, data_range=255.0)
    assert t.item() == 0.0
    t.backward()  # a clamped term has a zero gradient, not NaN
    assert torch.isfinite(b.grad).all()


def test_clamped_channel_keeps_the_other_channels_gradient(rng):
    ref, dist = distorted_pair(rng, (176, 176, 3))
    dist[..., 0] = 255 - ref[..., 0]  # channel 0 anti-correlated: its product is clamped to 0
    expected = ms_ssim(ref, dist)
    assert abs(expected - np.mean([ms_ssim(ref[..., c], dist[..., c]) for c in (1, 2)]) * 2 / 3) < 1e-12
    b = to_tensor(dist).requires_grad_(True)
    t = ms_ssim(to_tensor(ref), b, data_range=255.0)
    assert abs(t.item() - expected) < TOL
    t.backward()
    assert torch.isfinite(b.grad).all() and b.grad[1:].abs().sum() > 0


# --------------------------------------------------------------------------------------
# Super-resolution conventions
# --------------------------------------------------------------------------------------


def y_of(rgb: np.ndarray, data_range: float) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) / data_range for i in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def test_color_y_and_crop_match_the_direct_formula(rng):
    ref, dist = distorted_pair(rng, (186, 190, 3))
    expected = msssim_m(y_of(ref[4:-4, 4:-4], 255.0), y_of(dist[4:-4, 4:-4], 255.0), 255.0)
    assert abs(ms_ssim(ref, dist, color="y", crop_border=4) - expected) < TOL


def test_color_y_on_16_bit(rng):
    ref, dist = distorted_pair(rng, (176, 180, 3), np.uint16)
    expected = msssim_m(y_of(ref, 65535.0), y_of(dist, 65535.0), 255.0)
    assert abs(ms_ssim(ref, dist, color="y") - expected) < TOL


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------


def test_torch_float32_within_tolerance(rng):
    ref, dist = distorted_pair(rng, (2, 192, 176, 3))
    expected = ms_ssim(ref, dist)
    for scale in (1.0, 255.0):
        got = ms_ssim(to_tensor(ref, torch.float32) * (scale / 255), to_tensor(dist, torch.float32) * (scale / 255), data_range=scale)
        assert got.dtype == torch.float32 and got.shape == (2,)
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL_F32)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_torch_gradient_exists_and_equals_no_grad_values(rng, dtype, tol):
    ref, dist = distorted_pair(rng, (2, 176, 180, 1))
    a = to_tensor(ref, dtype) / 255
    b = (to_tensor(dist, dtype) / 255).requires_grad_(True)
    value = ms_ssim(a, b, data_range=1.0)
    value.sum().backward()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    with torch.no_grad():
        plain = ms_ssim(a, b, data_range=1.0)
    assert torch.allclose(value.detach(), plain, rtol=0, atol=tol)


def test_kernel_on_a_prepared_pair_matches_pytorch_msssim(rng):
    # The kernel alone, on a prepared batch: one value per image, no map.
    ref, dist = distorted_pair(rng, (2, 176, 192, 3))
    values, maps = compute_ms_ssim(prepare_pair(ref, dist), MSSSIMOptions())
    assert maps is None and values.shape == (2,)
    np.testing.assert_allclose(values, peer(ref, dist, 255.0), rtol=0, atol=TOL)


def test_kernel_takes_its_options(rng):
    ref, dist = distorted_pair(rng, (100, 100))
    w = (0.2, 0.3, 0.5)
    values, _ = compute_ms_ssim(prepare_pair(ref, dist), MSSSIMOptions(scale_weights=w))
    assert abs(values[0] - msssim_m(ref, dist, 255.0, w)) < TOL


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_too_small_names_the_scales_option():
    a = np.zeros((100, 300), np.uint8)
    with pytest.raises(ShapeError, match=r"5 scales needs a short side of at least 176 px, got 300×100; pass scales=4"):
        ms_ssim(a, a)
    assert ms_ssim(a, a, scales=4) == 1.0


def test_size_error_names_scales_in_the_callers_language():
    # One error, two renderings: Python keywords by default, the command's flags on demand.
    a = np.zeros((100, 300), np.uint8)
    with pytest.raises(ShapeError) as info:
        ms_ssim(a, a)
    err = info.value
    assert "pass scales=4 (weights renormalised)" in str(err)
    assert "--scales" not in str(err)
    cli = err.render(cli_namer())
    assert cli.endswith("got 300×100; pass --scales 4 (weights renormalised)")
    assert "scales=" not in cli
    # iqa score prefixes the options of metrics that share the command.
    assert err.render(cli_namer(["ms_ssim"])).endswith("pass --ms-ssim-scales 4 (weights renormalised)")


def test_too_small_for_one_scale():
    a = np.zeros((10, 300), np.uint8)
    with pytest.raises(ShapeError, match="at least 176 px, got 300×10$"):
        ms_ssim(a, a)


@pytest.mark.parametrize("scales", [0, 6, 2.5])
def test_bad_scales(scales):
    a = np.zeros((200, 200), np.uint8)
    with pytest.raises(OptionError, match="scales must be an integer from 1 to 5"):
        ms_ssim(a, a, scales=scales)


def test_float_without_data_range_is_an_error(rng):
    with pytest.raises(RangeError, match="data_range"):
        ms_ssim(rng.random((176, 176)), rng.random((176, 176)))


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=10)
@given(st.integers(176, 190), st.integers(176, 190), st.sampled_from([1, 3]), st.integers(0, 2**32 - 1), st.floats(0.0, 0.6))
def test_properties(h, w, c, seed, noise):
    rng = np.random.default_rng(seed)
    a, b = distorted_pair(rng, (h, w, c), sigma=noise)
    v = ms_ssim(a, b)
    assert abs(v - ms_ssim(b, a)) < 1e-12  # symmetric
    assert abs(ms_ssim(a, a) - 1.0) < 1e-12  # identity
    assert 0.0 <= v <= 1.0 + 1e-12  # bounds (negative terms are clamped at 0)
    assert abs(v - ms_ssim(a / 255.0, b / 255.0, data_range=1.0)) < TOL  # uint8 vs float/255


@settings(deadline=None, max_examples=5)
@given(st.integers(1, 3), st.data())
def test_batch_equals_one_by_one(n, data):
    a = data.draw(arrays(np.uint8, (n, 176, 177, 1)))
    b = data.draw(arrays(np.uint8, (n, 176, 177, 1)))
    batch = ms_ssim(a, b)
    np.testing.assert_allclose(batch, [ms_ssim(a[i], b[i]) for i in range(n)], rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------
# The peer settings stated in docs/conventions.md
# --------------------------------------------------------------------------------------


def test_peer_piq_on_sizes_divisible_by_16(rng):
    import piq

    ref, dist = distorted_pair(rng, (176, 192, 3))
    got = piq.multi_scale_ssim(to_tensor(ref)[None], to_tensor(dist)[None], data_range=255, reduction="none").item()
    assert abs(got - ms_ssim(ref, dist)) < TOL
    # piq renormalises scale_weights: the first three weights give iqa's scales=3.
    w3 = torch.tensor(WEIGHTS[:3], dtype=torch.float64)
    got3 = piq.multi_scale_ssim(to_tensor(ref)[None], to_tensor(dist)[None], data_range=255, reduction="none", scale_weights=w3).item()
    assert abs(got3 - ms_ssim(ref, dist, scales=3)) < TOL


def test_peer_pytorch_msssim_weights_are_used_as_given(rng):
    ref, dist = distorted_pair(rng, (176, 176))
    a, b = to_tensor(ref)[None], to_tensor(dist)[None]
    win = torch.from_numpy(gaussian_window(11, 1.5)).view(1, 1, 1, -1)
    w3 = list(np.array(WEIGHTS[:3]) / sum(WEIGHTS[:3]))
    got = pytorch_msssim.ms_ssim(a, b, data_range=255, size_average=False, win=win, weights=w3).item()
    assert abs(got - ms_ssim(ref, dist, scales=3)) < TOL


def test_former_weights_keyword_still_works_and_warns(rng):
    from iqa.errors import RenamedOptionWarning

    ref, dist = distorted_pair(rng, (100, 100))
    w = (0.2, 0.3, 0.5)
    with pytest.warns(RenamedOptionWarning, match="scale_weights"):
        old = ms_ssim(ref, dist, weights=w)
    assert old == ms_ssim(ref, dist, scale_weights=w)
