"""MS-GMSD: parity with piq (scales, weights, chromatic), options, errors, torch, the CLI."""

from __future__ import annotations

import json

import numpy as np
import piq
import pytest
import torch
from click.testing import CliRunner
from helpers import write_png
from hypothesis import given, settings
from hypothesis import strategies as st
from iqa.cli import main
from iqa.cli.options import cli_namer

from iqa.errors import OptionError, RangeError, ShapeError
from iqa.io import prepare_pair
from iqa.metrics.ms_gmsd import MS_GMSD_WEIGHTS, MSGMSDOptions, compute_ms_gmsd, ms_gmsd

# float64 against piq 0.8.0 in float64: the same operations in another order (separable
# Prewitt sums, the constant scaled instead of the pixels, the chrominance of the downsampled
# difference): measured ≤ ~1e-15 relative; 1e-10 catches any change of convention.
TOL = 1e-10
# float32 tensors against the float64 value: measured ≤ 2e-8 (absolute; values 0.01–0.3).
TOL_F32 = 1e-6


def distorted_pair(rng, shape, dtype=np.uint8, sigma=0.08):
    peak = np.iinfo(dtype).max
    ref = rng.integers(0, peak + 1, shape).astype(np.float64)
    ref = (ref + np.roll(ref, 1, -2) + np.roll(ref, 1, -3 if len(shape) > 2 else -1)) / 3
    ref = np.rint(ref).astype(dtype)
    dist = np.clip(np.rint(ref + rng.normal(0, sigma * peak, shape)), 0, peak).astype(dtype)
    return ref, dist


def to_tensor(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1))).to(dtype)


def piq_ms(ref, dist, data_range, weights=None, **kw):
    """piq's MS-GMSD of NumPy images in float64 (x distorted, y reference)."""
    if weights is not None:
        kw["scale_weights"] = torch.tensor(weights, dtype=torch.float64)
    return piq.multi_scale_gmsd(to_tensor(dist), to_tensor(ref), data_range=data_range, reduction="none", **kw).numpy()


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
    ("smallest 17x17", (17, 17, 3), np.uint8),
]


@pytest.mark.parametrize("name,shape,dtype", CASES, ids=[c[0] for c in CASES])
def test_matches_piq(rng, name, shape, dtype):
    ref, dist = distorted_pair(rng, shape, dtype)
    peak = np.iinfo(dtype).max
    assert rel(ms_gmsd(ref, dist), piq_ms(ref, dist, peak)[0]) < TOL
    if len(shape) == 3:
        assert rel(ms_gmsd(ref, dist, chromatic=True), piq_ms(ref, dist, peak, chromatic=True)[0]) < TOL


@pytest.mark.parametrize("scales", [1, 2, 3])
def test_fewer_scales_are_piq_with_the_first_weights(rng, scales):
    # piq normalises scale_weights: the first k published weights give iqa's scales=k.
    ref, dist = distorted_pair(rng, (35, 42, 3))
    w = MS_GMSD_WEIGHTS[:scales]
    assert rel(ms_gmsd(ref, dist, scales=scales), piq_ms(ref, dist, 255, w)[0]) < TOL
    got = ms_gmsd(ref, dist, scales=scales, chromatic=True)
    assert rel(got, piq_ms(ref, dist, 255, w, chromatic=True)[0]) < TOL


def test_custom_weights_are_normalised_as_piq_does(rng):
    ref, dist = distorted_pair(rng, (70, 66, 3))
    w = (3.0, 4.0, 2.0, 1.0, 2.0)  # five scales: 2^5 + 1 = 33 px
    assert rel(ms_gmsd(ref, dist, scale_weights=w), piq_ms(ref, dist, 255, w)[0]) < TOL
    assert ms_gmsd(ref, dist, scale_weights=w) == ms_gmsd(ref, dist, scale_weights=[x * 10 for x in w])
    assert MSGMSDOptions(scale_weights=w).scale_weights == tuple(x / 12 for x in w)
    assert MSGMSDOptions(scale_weights=w).scales == 5


def test_bit_depth_and_float_data_range_match_piq(rng):
    ref, dist = distorted_pair(rng, (40, 36, 3), np.uint16)
    ref, dist = ref >> 4, dist >> 4  # 12-bit data in a 16-bit container
    got = ms_gmsd(ref, dist, bit_depth=12, chromatic=True)
    assert rel(got, piq_ms(ref, dist, 4095, chromatic=True)[0]) < TOL
    a, b = ref / 4095.0, dist / 4095.0
    assert rel(ms_gmsd(a, b, data_range=1.0, chromatic=True), piq_ms(a, b, 1.0, chromatic=True)[0]) < TOL
    assert abs(got - ms_gmsd(a, b, data_range=1.0, chromatic=True)) < 1e-13


def test_batch_matches_piq_and_one_by_one(rng):
    ref, dist = distorted_pair(rng, (3, 27, 34, 3))
    for chromatic in (False, True):
        batch = ms_gmsd(ref, dist, chromatic=chromatic)
        assert batch.shape == (3,)
        assert rel(batch, piq_ms(ref, dist, 255, chromatic=chromatic)) < TOL
        np.testing.assert_array_equal(batch, [ms_gmsd(ref[i], dist[i], chromatic=chromatic) for i in range(3)])
        t = ms_gmsd(to_tensor(ref), to_tensor(dist), data_range=255.0, chromatic=chromatic)
        assert rel(t.numpy(), batch) < 1e-14


def test_chromatic_value_can_exceed_one():
    # Flat red against the flat green of the same luma: M = 0, so γ = 2/1.32 − 1 and the
    # value is (1 − γ)·0.01·R with R the I/Q distance on the 0-255 scale: above 1 (piq too).
    a = np.zeros((32, 32, 3))
    b = np.zeros((32, 32, 3))
    a[..., 0], b[..., 1] = 1.0, 0.299 / 0.587
    value = ms_gmsd(a, b, data_range=1.0, chromatic=True)
    assert ms_gmsd(a, b, data_range=1.0) == 0.0
    assert value > 1.08 and rel(value, piq_ms(a, b, 1.0, chromatic=True)[0]) < TOL


def test_path_inputs(tmp_path, rng):
    ref, dist = distorted_pair(rng, (30, 41, 3))
    a, b = write_png(tmp_path / "a.png", ref), write_png(tmp_path / "b.png", dist)
    assert ms_gmsd(a, b, chromatic=True) == ms_gmsd(ref, dist, chromatic=True)


def test_color_y_and_crop_are_piq_on_the_converted_images(rng):
    from iqa.color import rgb_to_y

    ref, dist = distorted_pair(rng, (40, 43, 3))
    k = 2

    def y(a):
        return rgb_to_y(a[None, k:-k, k:-k].astype(np.float64), 255.0, "numpy")[0]

    assert rel(ms_gmsd(ref, dist, color="y", crop_border=k), piq_ms(y(ref), y(dist), 255.0)[0]) < TOL


# --------------------------------------------------------------------------------------
# Flipped conventions
# --------------------------------------------------------------------------------------


def test_flipped_conventions_fail_the_tolerance(rng):
    ref, dist = distorted_pair(rng, (45, 61, 3))
    value = ms_gmsd(ref, dist)
    # Without the masking (GMSD's similarity map, alpha = 0) at every scale.
    unmasked = piq.multi_scale_gmsd(to_tensor(dist), to_tensor(ref), data_range=255, alpha=0.0).item()
    assert rel(unmasked, value) > 1e3 * TOL
    # The constant taken on [0, 1] data without rescaling (170/255² instead of 170).
    unscaled = piq.multi_scale_gmsd(to_tensor(dist), to_tensor(ref), data_range=255, t=170 / 255**2).item()
    assert rel(unscaled, value) > 1e3 * TOL
    # Equal weights instead of the published ones.
    assert rel(ms_gmsd(ref, dist, scale_weights=(1, 1, 1, 1)), value) > 1e3 * TOL
    # BT.601 luma instead of YIQ's.
    assert rel(ms_gmsd(ref, dist, color="y"), value) > 1e3 * TOL
    # The chrominance term.
    assert rel(ms_gmsd(ref, dist, chromatic=True), value) > 1e3 * TOL
    # Odd sizes: dropping the last row and column instead of averaging them with zeros.
    assert rel(ms_gmsd(ref[:44, :60], dist[:44, :60]), value) > 1e3 * TOL


# --------------------------------------------------------------------------------------
# Options and errors
# --------------------------------------------------------------------------------------


def test_default_options():
    opts = MSGMSDOptions()
    assert opts.scales == 4 and opts.scale_weights == MS_GMSD_WEIGHTS and opts.chromatic is False
    prov = opts.provenance()
    assert prov["c"] == 170.0 and prov["masking"] == 0.5
    assert (prov["beta1"], prov["beta2"], prov["beta3"]) == (0.01, 0.32, 15.0)
    w2 = MSGMSDOptions(scales=2).scale_weights
    assert w2 == (0.096 / 0.692, 0.596 / 0.692)


@pytest.mark.parametrize("scales", [0, 5, 2.5, True, "3"])
def test_bad_scales(scales):
    with pytest.raises(OptionError, match="scales must be an integer from 1 to 4"):
        MSGMSDOptions(scales=scales)


@pytest.mark.parametrize("weights", [(), (1.0, -1.0), (0.0, 0.0), (1.0, float("nan")), "abc", (1.0, "x"), 3])
def test_bad_scale_weights(weights):
    with pytest.raises(OptionError, match="scale_weights must be"):
        MSGMSDOptions(scale_weights=weights)


def test_scales_disagreeing_with_weights():
    with pytest.raises(OptionError, match=r"scales=3 disagrees with the 2 weights given"):
        MSGMSDOptions(scales=3, scale_weights=(1.0, 2.0))
    assert MSGMSDOptions(scales=2, scale_weights=(1.0, 3.0)).scale_weights == (0.25, 0.75)


@pytest.mark.parametrize("chromatic", [1, "yes", None])
def test_chromatic_must_be_a_boolean(chromatic):
    with pytest.raises(OptionError, match="chromatic must be True or False"):
        MSGMSDOptions(chromatic=chromatic)


def test_too_small_names_the_scales_that_fit():
    a = np.zeros((16, 40, 3), np.uint8)
    with pytest.raises(ShapeError) as info:
        ms_gmsd(a, a)
    err = info.value
    assert str(err).endswith("MS-GMSD with 4 scales needs both sides to be at least 2^4 + 1 = 17 px, got 40×16; "
                             "pass scales=3 (weights renormalised)")
    assert err.render(cli_namer()).endswith("; pass --scales 3 (weights renormalised)")
    assert err.render(cli_namer(["ms_gmsd"])).endswith("; pass --ms-gmsd-scales 3 (weights renormalised)")
    assert ms_gmsd(a, a, scales=3) == 0.0  # the advice works
    with pytest.raises(ShapeError, match=r"with 4 scales .* got 40×16; give 3 weights instead of 4$"):
        ms_gmsd(a, a, scale_weights=(1, 1, 1, 1))
    with pytest.raises(ShapeError, match=r"at least 2\^1 \+ 1 = 3 px, got 2×2$"):
        ms_gmsd(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), scales=1)


def test_chromatic_needs_rgb():
    gray = np.zeros((20, 20), np.uint8)
    with pytest.raises(ShapeError, match=r"chromatic=True needs RGB images .* got 1 channel") as info:
        ms_gmsd(gray, gray, chromatic=True)
    assert "--chromatic needs RGB" in info.value.render(cli_namer())
    assert "--ms-gmsd-chromatic needs RGB" in info.value.render(cli_namer(["ms_gmsd"]))  # iqa score
    rgb = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ShapeError, match=r"reduced to luma by the colour convention y, has no chrominance"):
        ms_gmsd(rgb, rgb, chromatic=True, color="y")


@pytest.mark.parametrize("channels", [2, 4])
def test_kept_alpha_is_an_error(rng, channels):
    a = rng.integers(0, 256, (20, 20, channels), dtype=np.uint8)
    with pytest.raises(ShapeError, match=rf"MS-GMSD takes gray or RGB images, got {channels} channels .* use alpha='drop'"):
        ms_gmsd(a, a, alpha="keep")


def test_float_without_data_range_is_an_error(rng):
    with pytest.raises(RangeError, match="data_range"):
        ms_gmsd(rng.random((20, 20)), rng.random((20, 20)))


# --------------------------------------------------------------------------------------
# torch, identity, properties
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("peak", [1.0, 255.0, 65535.0])
def test_torch_float32_within_tolerance(rng, peak):
    ref, dist = distorted_pair(rng, (2, 40, 37, 3))
    a, b = to_tensor(ref, torch.float32) * (peak / 255), to_tensor(dist, torch.float32) * (peak / 255)
    for chromatic in (False, True):
        got = ms_gmsd(a, b, data_range=peak, chromatic=chromatic)
        assert got.dtype == torch.float32 and got.shape == (2,)
        np.testing.assert_allclose(got.numpy(), ms_gmsd(ref, dist, chromatic=chromatic), rtol=0, atol=TOL_F32)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-15), (torch.float32, 1e-7)])
def test_gradient_path_gives_the_same_values(rng, dtype, tol):
    ref, dist = distorted_pair(rng, (2, 24, 22, 3))
    a, b = to_tensor(ref, dtype) / 255, (to_tensor(dist, dtype) / 255).requires_grad_(True)
    value = ms_gmsd(a, b, data_range=1.0, chromatic=True)
    value.sum().backward()
    assert torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    with torch.no_grad():
        plain = ms_gmsd(a, b, data_range=1.0, chromatic=True)
    assert torch.allclose(value.detach(), plain, rtol=0, atol=tol)


def test_gradient_is_correct():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 9, 11, generator=g, dtype=torch.float64)
    b = (a + 0.2 * torch.rand(1, 3, 9, 11, generator=g, dtype=torch.float64)).clamp(0, 1).requires_grad_(True)
    for chromatic in (False, True):
        def f(y, chromatic=chromatic):
            return ms_gmsd(a, y, data_range=1.0, scales=3, chromatic=chromatic)

        assert torch.autograd.gradcheck(f, (b,), fast_mode=True)


def test_gradient_is_finite_at_identity():
    # piq 0.8 gives NaN gradients here (√ of a zero variance and of a zero chrominance).
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = x.clone().requires_grad_(True)
    value = ms_gmsd(x, y, data_range=1.0, chromatic=True)
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(y.grad).all()


def test_identical_images_give_exactly_zero(rng):
    ref, _ = distorted_pair(rng, (2, 31, 40, 3))
    assert (ms_gmsd(ref, ref) == 0).all() and (ms_gmsd(ref, ref, chromatic=True) == 0).all()


@settings(deadline=None, max_examples=10)
@given(st.integers(17, 40), st.integers(17, 40), st.integers(0, 2**32 - 1), st.floats(0.0, 0.6), st.booleans())
def test_properties(h, w, seed, noise, chromatic):
    rng = np.random.default_rng(seed)
    a, b = distorted_pair(rng, (h, w, 3), sigma=noise)
    v = ms_gmsd(a, b, chromatic=chromatic)
    assert v == ms_gmsd(b, a, chromatic=chromatic)  # symmetric
    assert v >= 0.0 and (chromatic or v <= 0.5)
    assert abs(v - ms_gmsd(a / 255.0, b / 255.0, data_range=1.0, chromatic=chromatic)) < 1e-12


def test_kernel_takes_its_options(rng):
    ref, dist = distorted_pair(rng, (24, 24, 3))
    pair = prepare_pair(ref, dist)
    values, maps = compute_ms_gmsd(pair, MSGMSDOptions(scales=2, chromatic=True))
    assert maps is None and values[0] == ms_gmsd(ref, dist, scales=2, chromatic=True)


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


def test_command_prints_the_library_value(pair_files):
    result = run("ms-gmsd", *pair_files)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{ms_gmsd(*pair_files)!r}\n"
    result = run("ms-gmsd", *pair_files, "--scales", "3", "--chromatic", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["value"] == ms_gmsd(*pair_files, scales=3, chromatic=True)
    assert doc["settings"]["scales"] == 3 and doc["settings"]["chromatic"] is True
    bad = run("ms-gmsd", *pair_files, "--scales", "7")
    assert bad.exit_code == 2 and "--scales must be an integer from 1 to 4, got 7" in bad.stderr


def test_iqa_score_column_is_the_library_value(pair_files):
    ref, dist = pair_files
    result = run("score", ref.parent, dist.parent, "-m", "ms-gmsd", "--ms-gmsd-scales", "3", "--ms-gmsd-chromatic")
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header == "reference,distorted,ms_gmsd,error"
    assert row.split(",")[2] == repr(ms_gmsd(ref, dist, scales=3, chromatic=True))
