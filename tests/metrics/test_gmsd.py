"""GMSD: parity with piq, the authors' published GMSD.m values, conventions, torch, the map."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import piq
import pytest
import torch
from click.testing import CliRunner
from helpers import write_png
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from iqa.cli import main

from iqa.errors import ShapeError
from iqa.io import prepare_pair, read_image
from iqa.metrics.gmsd import GMSDOptions, compute_gmsd, gmsd, gmsd_map_view
import helpers

# float64 (NumPy, paths, float64 tensors) against piq 0.8.0 in float64: the same operations
# in another order (separable Prewitt sums, the constant scaled instead of the pixels): the
# measured relative difference is at most ~1e-14 (round-off); 1e-10 catches any change of
# convention, the smallest of which (std2's n − 1) is ~1e-5 here.
TOL = 1e-10
# float32 tensors against the float64 value: measured ≤ 3e-8 on [0, 1], [0, 255] and
# [0, 65535] data (piq in float32: ≤ 2e-8); absolute, values are 0.01–0.3.
TOL_F32 = 1e-6


def distorted_pair(rng, shape, dtype=np.uint8, sigma=0.08):
    peak = np.iinfo(dtype).max
    ref = rng.integers(0, peak + 1, shape).astype(np.float64)
    # Smooth the reference a little so that gradients vary across the image.
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


def piq_gmsd(ref, dist, data_range, **kw):
    """piq's GMSD of NumPy images in float64 (its argument order: x distorted, y reference)."""
    return piq.gmsd(to_tensor(dist), to_tensor(ref), data_range=data_range, reduction="none", **kw).numpy()


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --------------------------------------------------------------------------------------
# Parity with piq
# --------------------------------------------------------------------------------------

CASES = [
    ("uint8 gray 32x32", (32, 32), np.uint8),
    ("uint8 gray odd 33x47", (33, 47), np.uint8),
    ("uint8 rgb 48x40", (48, 40, 3), np.uint8),
    ("uint8 rgb odd 31x29", (31, 29, 3), np.uint8),
    ("uint8 rgb 65x128", (65, 128, 3), np.uint8),
    ("uint16 gray 29x30", (29, 30), np.uint16),
    ("uint16 rgb odd 37x21", (37, 21, 3), np.uint16),
    ("smallest 5x5", (5, 5, 3), np.uint8),
    ("small 5x6 gray", (5, 6), np.uint8),
]


@pytest.mark.parametrize("name,shape,dtype", CASES, ids=[c[0] for c in CASES])
def test_matches_piq(rng, name, shape, dtype):
    ref, dist = distorted_pair(rng, shape, dtype)
    peak = np.iinfo(dtype).max
    # 16-bit: piq is given the same data and data_range (it divides by it), as for 8 bits.
    assert rel(gmsd(ref, dist), piq_gmsd(ref, dist, peak)[0]) < TOL


def test_bit_depth_and_float_data_range_match_piq(rng):
    ref, dist = distorted_pair(rng, (40, 36, 3), np.uint16)
    ref, dist = ref >> 4, dist >> 4  # 12-bit data in a 16-bit container
    assert rel(gmsd(ref, dist, bit_depth=12), piq_gmsd(ref, dist, 4095)[0]) < TOL
    a, b = ref / 4095.0, dist / 4095.0
    assert rel(gmsd(a, b, data_range=1.0), piq_gmsd(a, b, 1.0)[0]) < TOL


def test_batch_matches_piq_and_one_by_one(rng):
    ref, dist = distorted_pair(rng, (3, 27, 34, 3))
    batch = gmsd(ref, dist)
    assert batch.shape == (3,) and batch.dtype == np.float64
    assert rel(batch, piq_gmsd(ref, dist, 255)) < TOL
    np.testing.assert_array_equal(batch, [gmsd(ref[i], dist[i]) for i in range(3)])
    t = gmsd(to_tensor(ref), to_tensor(dist), data_range=255.0)
    np.testing.assert_array_equal(t.numpy(), [float(gmsd(to_tensor(ref[i])[0], to_tensor(dist[i])[0], data_range=255.0)) for i in range(3)])
    assert rel(t.numpy(), batch) < 1e-14


def test_path_inputs(tmp_path, rng):
    ref, dist = distorted_pair(rng, (30, 41, 3))
    a, b = write_png(tmp_path / "a.png", ref), write_png(tmp_path / "b.png", dist)
    assert gmsd(a, b) == gmsd(ref, dist)
    assert rel(gmsd(a, b), piq_gmsd(ref, dist, 255)[0]) < TOL


def test_symmetric_like_piq(rng):
    ref, dist = distorted_pair(rng, (20, 22, 3))
    assert gmsd(ref, dist) == gmsd(dist, ref)  # the similarity map is symmetric, exactly


# --------------------------------------------------------------------------------------
# The conventions: each one, flipped, moves the number far beyond the tolerance
# --------------------------------------------------------------------------------------


def test_flipped_conventions_fail_the_tolerance(rng):
    ref, dist = distorted_pair(rng, (45, 61, 3))
    value = gmsd(ref, dist)
    # The constant is 170 on the 0-255 scale, rescaled with the data range: GMSD.m's T = 170
    # taken on [0, 1] data (im2double images) is another number.
    unscaled = piq.gmsd(to_tensor(dist) / 255, to_tensor(ref) / 255, data_range=1.0, t=170.0).item()
    assert rel(value, unscaled) > 1e3 * TOL
    # BT.601 luma (iqa's color="y", 16-235) instead of YIQ's (0-255): the gradients shrink by
    # 219/255, which the constant does not follow.
    assert rel(gmsd(ref, dist, color="y"), value) > 1e3 * TOL
    # GMSD.m's std2 (sample standard deviation, n − 1): a relative 1/(2n) on n = 23·31 pixels.
    n = math.ceil(45 / 2) * math.ceil(61 / 2)
    assert rel(value * math.sqrt(n / (n - 1)), value) > 1e3 * TOL
    # Downsampling that drops the odd last row and column (avg_pool2d alone) instead of
    # averaging it with zeros.
    cut_ref, cut_dist = ref[:44, :60], dist[:44, :60]
    assert rel(gmsd(cut_ref, cut_dist), value) > 1e3 * TOL
    # Without the 2x downsampling (GMSD at full resolution).
    def upsampled_luma(a):  # a 2x nearest upsampling makes piq's 2x2 average the identity
        y = piq.functional.rgb2yiq(to_tensor(a) / 255)[:, :1]
        return y.repeat_interleave(2, 2).repeat_interleave(2, 3)

    full = piq.gmsd(upsampled_luma(dist), upsampled_luma(ref)).item()
    assert rel(full, value) > 1e3 * TOL


def test_color_y_and_crop_are_piq_on_the_converted_images(rng):
    from iqa.color import rgb_to_y

    ref, dist = distorted_pair(rng, (40, 43, 3))
    k = 3

    def y(a):
        return rgb_to_y(a[None, k:-k, k:-k].astype(np.float64), 255.0, "numpy")[0]

    assert rel(gmsd(ref, dist, color="y", crop_border=k), piq_gmsd(y(ref), y(dist), 255.0)[0]) < TOL
    assert rel(gmsd(ref, dist, crop_border=k), piq_gmsd(ref[k:-k, k:-k], dist[k:-k, k:-k], 255)[0]) < TOL


def test_16_bit_equals_8_bit_scaled(rng):
    # The constant follows the data range: a 16-bit image that is an 8-bit one times 257
    # scores the same (GMSD.m on raw 16-bit values would use T = 170 in 16-bit units).
    ref, dist = distorted_pair(rng, (33, 35, 3))
    wide_ref, wide_dist = ref.astype(np.uint16) * 257, dist.astype(np.uint16) * 257
    assert abs(gmsd(wide_ref, wide_dist) - gmsd(ref, dist)) < 1e-14


# --------------------------------------------------------------------------------------
# Published GMSD.m values (optional: piq's test images)
# --------------------------------------------------------------------------------------

# piq's test images (tests/helpers.py: PIQ_ASSETS), optional.
def piq_asset(name: str) -> Path:
    return helpers.piq_asset(name, "GMSD.m values")


gray_gif = helpers.gray_gif



@pytest.mark.parametrize(
    "ref_name,dist_name,published",
    [
        # piq tests/test_gmsd.py (test_gmsd_compare_with_matlab): the authors' GMSD.m
        # (http://www4.comp.polyu.edu.hk/~cslzhang/IQA/GMSD/GMSD.htm) on 0-255 data; the
        # colour pair reduced to 0.299 R + 0.587 G + 0.114 B unrounded (rgb2gray's rounded
        # uint8 would differ by 2.7e-5 relative).
        ("goldhill.gif", "goldhill_jpeg.gif", 0.138012587141798),
        ("I01.BMP", "i01_01_5.bmp", 0.094124655829098),
    ],
)
def test_published_gmsd_m_values(ref_name, dist_name, published):
    load = gray_gif if ref_name.endswith(".gif") else read_image
    ref, dist = load(piq_asset(ref_name)), load(piq_asset(dist_name))
    value = gmsd(ref, dist)
    h, w = ref.shape[:2]
    n = math.ceil(h / 2) * math.ceil(w / 2)
    # GMSD.m pools with std2, the sample standard deviation: iqa's (and piq's) population
    # deviation times sqrt(n/(n-1)) reproduces all 15 printed digits. Tolerance 1e-14: the
    # printed values are at float64 round-off (MATLAB sums in another order).
    assert abs(value * math.sqrt(n / (n - 1)) - published) < 1e-14
    # Uncorrected, the two differ by that factor alone, ~1/(2n) ≈ 1e-5 relative.
    assert abs((published - value) / published - 1 / (2 * n)) < 1e-9


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("peak", [1.0, 255.0, 65535.0])
def test_torch_float32_within_tolerance(rng, peak):
    ref, dist = distorted_pair(rng, (2, 40, 37, 3))
    expected = gmsd(ref, dist)
    a, b = to_tensor(ref, torch.float32) * (peak / 255), to_tensor(dist, torch.float32) * (peak / 255)
    got = gmsd(a, b, data_range=peak)
    assert got.dtype == torch.float32 and got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL_F32)
    np.testing.assert_allclose(got.numpy(), piq.gmsd(b, a, data_range=peak, reduction="none").numpy(), rtol=0, atol=TOL_F32)


def test_torch_float32_bright_low_contrast(rng):
    # The worst case for float32 gradients: large values, small differences between them.
    ref = 0.9 + 0.05 * rng.random((1, 48, 48, 3))
    dist = np.clip(ref + rng.normal(0, 0.02, ref.shape), 0, 1)
    expected = gmsd(ref, dist, data_range=1.0)
    assert expected > 0.01
    got = gmsd(to_tensor(ref, torch.float32), to_tensor(dist, torch.float32), data_range=1.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL_F32)


def test_torch_uint8_tensors(rng):
    ref, dist = distorted_pair(rng, (2, 20, 21, 3))
    got = gmsd(to_tensor(ref, torch.uint8), to_tensor(dist, torch.uint8))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), gmsd(ref, dist), rtol=0, atol=TOL_F32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(rng, dtype):
    # float16 would overflow the squared gradients on [0, 255] data (65504 at most): half
    # tensors are computed in float32 and the value comes back in their dtype.
    ref, dist = distorted_pair(rng, (1, 30, 28, 3))
    a, b = to_tensor(ref, dtype), to_tensor(dist, dtype)
    got = gmsd(a, b, data_range=255.0)
    assert got.dtype == dtype
    expected = gmsd(a.to(torch.float32), b.to(torch.float32), data_range=255.0)
    assert got.item() == expected.to(dtype).item()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-15), (torch.float32, 1e-7)])
def test_gradient_path_gives_the_same_values(rng, dtype, tol):
    # With a gradient to record the kernel avoids in-place operations: same numbers.
    ref, dist = distorted_pair(rng, (2, 24, 22, 3))
    a, b = to_tensor(ref, dtype) / 255, (to_tensor(dist, dtype) / 255).requires_grad_(True)
    value = gmsd(a, b, data_range=1.0)
    assert value.requires_grad
    value.sum().backward()
    assert torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    with torch.no_grad():
        plain = gmsd(a, b, data_range=1.0)
    assert torch.allclose(value.detach(), plain, rtol=0, atol=tol)


def test_gradient_is_correct():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 7, 10, generator=g, dtype=torch.float64)
    b = (a + 0.2 * torch.rand(2, 3, 7, 10, generator=g, dtype=torch.float64)).clamp(0, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: gmsd(a, y, data_range=1.0), (b,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda y: gmsd(y, b.detach(), data_range=1.0), (a.requires_grad_(True),), fast_mode=True)


def test_gradient_is_finite_on_identical_and_flat_images():
    # √ of a zero variance (identical images) or of zero gradients (flat regions) has an
    # infinite derivative: the kernel gives it 0 there instead of NaN.
    flat = torch.full((1, 3, 24, 24), 0.5, dtype=torch.float64)
    for target in (flat, flat.clone().index_fill_(2, torch.arange(8, 16), 0.7)):
        x = flat.clone().requires_grad_(True)
        value = gmsd(target, x, data_range=1.0)
        value.backward()
        assert torch.isfinite(x.grad).all()
    assert gmsd(flat, flat, data_range=1.0).item() == 0.0


# --------------------------------------------------------------------------------------
# Identity, bounds, properties
# --------------------------------------------------------------------------------------


def test_identical_images_give_exactly_zero(rng):
    ref, _ = distorted_pair(rng, (31, 40, 3))
    assert gmsd(ref, ref) == 0.0
    f = rng.random((2, 3, 26, 25)).astype(np.float32)
    assert (gmsd(torch.from_numpy(f), torch.from_numpy(f), data_range=1.0) == 0).all()


@settings(deadline=None, max_examples=15)
@given(st.integers(5, 40), st.integers(5, 40), st.sampled_from([1, 3]), st.integers(0, 2**32 - 1), st.floats(0.0, 0.6))
def test_properties(h, w, c, seed, noise):
    rng = np.random.default_rng(seed)
    a, b = distorted_pair(rng, (h, w, c), sigma=noise)
    v = gmsd(a, b)
    assert v == gmsd(b, a)  # symmetric
    assert gmsd(a, a) == 0.0  # identity
    assert 0.0 <= v <= 0.5  # the deviation of values in [0, 1]
    assert abs(v - gmsd(a / 255.0, b / 255.0, data_range=1.0)) < 1e-12  # uint8 vs float/255


@settings(deadline=None, max_examples=5)
@given(st.integers(1, 3), st.data())
def test_batch_equals_one_by_one(n, data):
    a = data.draw(arrays(np.uint8, (n, 13, 16, 1)))
    b = data.draw(arrays(np.uint8, (n, 13, 16, 1)))
    np.testing.assert_array_equal(gmsd(a, b), [gmsd(a[i], b[i]) for i in range(n)])


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 30), (30, 4), (4, 4, 3)])
def test_too_small_is_an_error(shape):
    a = np.zeros(shape, np.uint8)
    with pytest.raises(ShapeError, match=r"GMSD needs images of at least 5×5 .* got \d+×\d+ \(after crop_border, if any\)"):
        gmsd(a, a)


def test_crop_leaving_too_little_names_crop_border():
    a = np.zeros((12, 12, 3), np.uint8)
    assert gmsd(a, a, crop_border=3) == 0.0  # 6×6 left
    with pytest.raises(ShapeError, match="got 4×4"):
        gmsd(a, a, crop_border=4)


@pytest.mark.parametrize("channels", [2, 4])
def test_kept_alpha_is_an_error(rng, channels):
    a = rng.integers(0, 256, (16, 16, channels), dtype=np.uint8)
    with pytest.raises(ShapeError, match=rf"GMSD takes gray or RGB images, got {channels} channels .* use alpha='drop'"):
        gmsd(a, a, alpha="keep")
    assert gmsd(a, a, alpha="drop") == 0.0


def test_color_y_scores_a_gray_image_as_it_is(rng):
    ref, dist = distorted_pair(rng, (16, 19))
    assert gmsd(ref, dist, color="y") == gmsd(ref, dist)


# --------------------------------------------------------------------------------------
# The map
# --------------------------------------------------------------------------------------


def test_map_is_the_similarity_map_whose_deviation_is_the_value(rng):
    ref, dist = distorted_pair(rng, (2, 23, 30, 3))
    values, maps = gmsd(ref, dist, return_map=True)
    assert maps.shape == (2, 12, 15, 1)  # ⌈H/2⌉ × ⌈W/2⌉, channels-last for NumPy
    np.testing.assert_allclose(maps.reshape(2, -1).std(axis=1), values, rtol=1e-12)
    assert maps.max() <= 1.0 and maps.min() > 0.0
    one, one_map = gmsd(ref[0], dist[0], return_map=True)
    assert one == values[0] and one_map.shape == (12, 15, 1)
    _, t_maps = gmsd(to_tensor(ref), to_tensor(dist), data_range=255.0, return_map=True)
    assert t_maps.shape == (2, 1, 12, 15)
    np.testing.assert_allclose(t_maps.permute(0, 2, 3, 1).numpy(), maps, rtol=0, atol=1e-15)
    _, same = gmsd(ref[0], ref[0], return_map=True)
    assert (same == 1.0).all()


def test_map_view_draws_similarity_dark(rng):
    ref, dist = distorted_pair(rng, (2, 20, 26, 3))
    pair = prepare_pair(ref, dist)
    for p in (pair, prepare_pair(to_tensor(ref), to_tensor(dist), data_range=255.0)):
        values, maps = compute_gmsd(p, GMSDOptions(), want_map=True)
        plane, style = gmsd_map_view(maps, 1, GMSDOptions())
        assert plane.shape == (10, 13) and plane.dtype == np.float64
        assert abs(plane.std() - float(values[1])) < 1e-12
        assert style["vmax"] == 1.0 and style["reverse"] and style["vmin"] == 0.0
        assert "13x10" in style["title"] and "bright = different" in style["title"]


def test_kernel_without_map_returns_none(rng):
    ref, dist = distorted_pair(rng, (16, 16))
    values, maps = compute_gmsd(prepare_pair(ref, dist), GMSDOptions())
    assert maps is None and values.shape == (1,)


def test_options_have_no_fields_and_record_the_constants():
    opts = GMSDOptions()
    assert GMSDOptions.fields() == ()
    prov = opts.provenance()
    assert prov["c"] == 170.0 and "yiq" in prov["luma"] and "population" in prov["pooling"]


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


def test_command_prints_the_library_value(pair_files, tmp_path):
    result = run("gmsd", *pair_files)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{gmsd(*pair_files)!r}\n"
    out = tmp_path / "map.png"
    result = run("gmsd", *pair_files, "--format", "json", "--color", "y", "--map", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["value"] == gmsd(*pair_files, color="y")
    assert doc["settings"]["c"] == 170.0 and doc["settings"]["color"] == "y"
    assert out.read_bytes().startswith(b"\x89PNG")


def test_iqa_score_column_is_the_library_value(pair_files):
    ref, dist = pair_files
    result = run("score", ref.parent, dist.parent, "-m", "gmsd", "--crop-border", "2")
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header == "reference,distorted,gmsd,error"
    assert row.split(",")[2] == repr(gmsd(ref, dist, crop_border=2))
